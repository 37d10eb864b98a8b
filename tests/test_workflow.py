"""The whole workflow on a tiny config: data -> manifests -> features -> runs -> table -> figure."""
import json

import pandas as pd
import pytest
import yaml

from conftest import ROOT
from workflow_util import TINY, snakemake


@pytest.mark.e2e
def test_dry_run_lists_the_fan_out(tmp_path):
    proc = snakemake(tmp_path, "-n", "--quiet", "rules", config=TINY)
    assert proc.returncode == 0, proc.stderr[-2000:]
    counts = _dry_run_counts(proc)
    # 2 datasets x (zeroshot + ensemble); 2 datasets x (linear probe + coop) x 2 shots, each job all seeds
    assert counts["run_zeroshot"] == 2 * 2
    assert counts["run_fewshot"] == 2 * 2 * 2
    # with fuse_seeds: false, one job per seed
    proc = snakemake(tmp_path, "-n", "--quiet", "rules", config={**TINY, "fuse_seeds": False})
    assert _dry_run_counts(proc)["run_fewshot"] == 2 * 2 * 2 * 2
    assert counts["fewshot_manifest"] == 2 * 2 * 2
    assert counts["toy_dataset"] == 2 and counts["test_features"] == 2 and counts["fewshot_features"] == 2


@pytest.mark.e2e
def test_table_and_figure(tiny_run):
    table = pd.read_csv(tiny_run / "results/tables/fewshot.csv")
    assert {"dataset", "backbone", "method", "variant", "shots", "acc_mean", "acc_std", "n_seeds"} <= set(table)
    assert len(table) == 2 * (2 + 2 * 2)
    few = table[table.method.isin(["linear_probe", "coop"])]
    assert set(few.shots) == {1, 2} and (few.n_seeds == 2).all()
    zs = table[table.method.isin(["zeroshot", "ensemble"])]
    assert (zs.shots == 0).all() and (zs.n_seeds == 1).all()
    # the table is the mean of the runs' metrics
    row = table[(table.dataset == "toy_shapes") & (table.method == "coop") & (table.shots == 2)].iloc[0]
    accs = [json.loads((tiny_run / f"results/runs/toy_shapes/toy-rn/coop/end_m4/shots2/seed{s}/metrics.json")
                       .read_text())["accuracy"] for s in (1, 2)]
    assert row.acc_mean == pytest.approx(sum(accs) / 2, abs=0.01)
    assert ((table.acc_mean >= 0) & (table.acc_mean <= 100)).all()
    png = tiny_run / "figures/fig3_fewshot.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert (tiny_run / "figures/fig3_fewshot.pdf").read_bytes()[:4] == b"%PDF"


@pytest.mark.e2e
def test_findings_report_of_the_tiny_run(tiny_run):
    """findings.csv has one row per registered finding; those of experiments the tiny config lacks are not
    measured, and the 2-shot gain it states is the one computed here from the runs' metrics.json."""
    from coop.report.findings import all_findings

    f = pd.read_csv(tiny_run / "results/tables/findings.csv", keep_default_na=False).set_index("finding")
    assert list(f.index) == [x.name for x in all_findings()]
    other = f[f.experiment != "fewshot"]
    assert len(other) > 5 and (other.verdict == "not measured").all()
    assert other.note.str.startswith("the config has no experiment").all()

    def acc(method, variant, dataset, shots, seed):
        run = tiny_run / f"results/runs/{dataset}/toy-rn/{method}/{variant}/shots{shots}/seed{seed}/metrics.json"
        return json.loads(run.read_text())["accuracy"]

    datasets = ("toy_shapes", "toy_textures")
    per_seed = [sum(acc("coop", "end_m4", d, 2, s) for d in datasets) / 2 for s in (1, 2)]
    zs = sum(acc("zeroshot", "default", d, 0, 0) for d in datasets) / 2
    mean, std = sum(per_seed) / 2, abs(per_seed[0] - per_seed[1]) / 2 ** 0.5
    assert f.loc["coop_from_two_shots", "ours"] == (f"coop at 2 shots {mean:.1f} ± {std:.1f} vs {zs:.1f} "
                                                    f"({mean - zs:+.1f}) over 2 datasets")
    se = std / 2 ** 0.5
    assert f.loc["coop_from_two_shots", "verdict"] == ("holds" if mean - zs > se else "does not hold")
    md = (tiny_run / "results/tables/findings.md").read_text()
    assert f"of {int((f.verdict != 'not measured').sum())} measured findings hold" in md


@pytest.mark.e2e
def test_runs_record_provenance_and_share_subsets(tiny_run):
    runs = tiny_run / "results/runs/toy_textures/toy-rn"
    lp = json.loads((runs / "linear_probe/default/shots2/seed1/metrics.json").read_text())
    co = json.loads((runs / "coop/end_m4/shots2/seed1/metrics.json").read_text())
    assert lp["manifest_hash"] == co["manifest_hash"]  # every method trains on the same images
    for m in (lp, co):
        assert m["n_test"] == 8 * 5 and m["git_commit"]
        assert {"torch", "open_clip_torch", "snakemake"} <= set(m["versions"])
        assert all(m["versions"][k] != "not installed" for k in ("torch", "open_clip_torch", "snakemake"))
        assert m["device"] == "cpu" and m["device_name"] and m["precision"] == "fp32"
        assert m["seed"] == 1 and len(m["manifest_hash"]) >= 16
        # the resolved config: every argument of the run with the method's parameters after defaults
        assert m["config"]["seed"] == 1 and m["config"]["shots"] == 2 and m["config"]["dataset"] == "toy_textures"
        assert m["config"]["params"] == m["params"] and m["config"]["protocol"] == m["protocol"]
        assert m["command"].split()[0].endswith("coop") and "--seed 1 2" in m["command"]
        assert m["wall_seconds"] > 0 and m["peak_memory"]["cpu_rss_mb"] > 0
    assert co["params"]["n_ctx"] == 4 and co["epochs"] == 20 and len(co["loss_history"]) == 20
    assert (runs / "coop/end_m4/shots2/seed1/prompt.safetensors").is_file()
    assert 0 < lp["C"]
    # a second call finds nothing to do
    proc = snakemake(tiny_run, "-n", "--cores", "2")
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.badinput
def test_config_typo_names_the_key(tmp_path):
    fewshot = {**TINY["experiments"]["fewshot"], "shot": [1]}  # a typo of "shots"
    proc = snakemake(tmp_path, "-n", config={**TINY, "experiments": {"fewshot": fewshot}})
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "Additional properties are not allowed ('shot' was unexpected)" in out


def _dry_run_counts(proc) -> dict[str, int]:
    counts = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


@pytest.mark.e2e
def test_paper_config_dry_run_without_data(tmp_path):
    """config/paper.yaml plans the whole sweep with no dataset on disk; shared runs are planned once."""
    cfg = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    proc = snakemake(tmp_path, "-n", "--quiet", "rules", config=cfg)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    counts = _dry_run_counts(proc)
    few_shot = {"linear_probe", "coop", "text_bias", "text_transform", "finetune_image"}
    cells = set()
    for exp in cfg["experiments"].values():
        for d in exp["datasets"]:
            for b in exp["backbones"]:
                for run in exp["runs"].values():
                    method, variant = run.split("/")
                    if method in few_shot:
                        cells |= {(d, b, run, k) for k in exp["shots"]}
                    else:
                        cells.add((d, b, run, 0))
    # one job per variant (fuse_variants off): each few-shot job trains every seed of its cell
    separate = _dry_run_counts(snakemake(tmp_path, "-n", "--quiet", "rules",
                                         config={**cfg, "fuse_variants": False}))
    assert separate["run_fewshot"] + separate["run_zeroshot"] == len(cells)
    assert not any(rule.startswith("run_variants_") for rule in separate)
    unfused = _dry_run_counts(snakemake(tmp_path, "-n", "--quiet", "rules", config={**cfg, "fuse_seeds": False}))
    assert unfused["run_fewshot"] == separate["run_fewshot"] * len(cfg["seeds"])
    # fused variants (the default): the CoOp variants of a cell in one job where the fused
    # job is short (coop.job_sizes.FUSE_VARIANTS_MINUTES: small datasets, few shots; not ImageNet at 16 shots)
    variant_jobs = sum(n for rule, n in counts.items() if rule.startswith("run_variants_coop_"))
    assert variant_jobs > 0 and counts["run_zeroshot"] == separate["run_zeroshot"]
    assert counts["run_fewshot"] + variant_jobs < separate["run_fewshot"]
    fig3 = cfg["experiments"]["fewshot"]
    trained = [r for r in fig3["runs"].values() if r.split("/")[0] in few_shot]
    assert len(fig3["datasets"]) * len(trained) * len(fig3["shots"]) * len(cfg["seeds"]) == 825
    assert counts["transfer"] == 4 * 4  # 4 backbones x (zero-shot, linear probe, CoOp M=16, CoOp M=4)
    tables = ["table1_domain_generalization", "table2_prompt_ensembling", "table3_initialization",
              "table4_nearest_words", "table5_finetuning_methods", "fig1_prompt_engineering"]
    figures = ["fig3_fewshot", "fig4_gain_over_zeroshot", "fig5a_context_length", "fig5b_backbones"]
    assert all(counts[name] == 1 for name in tables + figures + ["findings"])
    assert counts["prepare_imagenet"] == 1 and counts["fewshot_manifest"] == 11 * 5 * 3


@pytest.mark.e2e
def test_html_report(tiny_run):
    proc = snakemake(tiny_run, "--report", "report.html")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    html = (tiny_run / "report.html").read_text(errors="replace")
    assert "fig3_fewshot.png" in html and "fig4_gain_over_zeroshot.png" in html and "fewshot.csv" in html
    assert "Few-shot learning curves" in html  # the caption
    assert "findings.csv" in html and "The paper's findings checked on this run" in html
