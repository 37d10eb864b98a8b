"""fuse_variants in the workflow: the CoOp variants of a dataset x backbone x shots cell train in one job
(a run_variants_* rule, `coop run --variants`) and write what one job per variant writes; `coop status` knows
that job, its log and its rule."""
import copy
import json

import pytest

from coop.status import sweep_status
from coop.sweep import fused_rule, load_config, sweep_jobs
from workflow_util import TINY, snakemake

# TINY with three CoOp variants in Fig. 3: end and middle share the schedule (one job per cell); "long" trains
# more epochs, so it cannot train with them (a job of its own).
VARIANTS = {"end_m4": {"n_ctx": 4, "epochs": 20}, "mid_csc": {"n_ctx": 4, "epochs": 20, "csc": True,
                                                              "class_token_position": "middle"},
            "long": {"n_ctx": 4, "epochs": 25}}
CONFIG = copy.deepcopy(TINY)
CONFIG["methods"]["coop"] = VARIANTS
CONFIG["experiments"]["fewshot"]["runs"] = {**TINY["experiments"]["fewshot"]["runs"], "coop_mid_csc": "coop/mid_csc",
                                            "coop_long": "coop/long"}
FUSED = ("end_m4", "mid_csc")
# What the two workflow runs train (kept small for CI): one dataset at 2 shots, zero-shot and the three variants.
RUN_CONFIG = copy.deepcopy(CONFIG)
RUN_CONFIG["experiments"]["fewshot"].update(
    datasets=["toy_shapes"], shots=[2],
    runs={"zeroshot": "zeroshot/default", "coop": "coop/end_m4", "coop_mid_csc": "coop/mid_csc", "coop_long": "coop/long"})


def _counts(proc) -> dict[str, int]:
    parts = (line.split() for line in proc.stdout.splitlines())
    return {p[0]: int(p[1]) for p in parts if len(p) == 2 and p[1].isdigit()}


@pytest.mark.e2e
def test_dry_run_plans_one_job_per_cell_for_the_variants_that_train_together(tmp_path):
    counts = _counts(snakemake(tmp_path, "-n", "--quiet", "rules", config=CONFIG))
    rule = fused_rule("coop", FUSED)
    # 2 datasets x 2 shots: end_m4 + mid_csc in one job each, long alone; the linear probe alone
    assert counts[rule] == 2 * 2 and counts["run_fewshot"] == 2 * 2 * 2
    off = _counts(snakemake(tmp_path, "-n", "--quiet", "rules", config={**CONFIG, "fuse_variants": False}))
    assert rule not in off and off["run_fewshot"] == 2 * 2 * 4
    seeds_off = _counts(snakemake(tmp_path, "-n", "--quiet", "rules", config={**CONFIG, "fuse_seeds": False}))
    assert rule not in seeds_off and seeds_off["run_fewshot"] == 2 * 2 * 4 * 2  # one job per variant and seed


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The config run twice: variants fused, and one job per variant."""
    out = {}
    for fuse in (True, False):
        work = tmp_path_factory.mktemp(f"fuse_{fuse}")
        proc = snakemake(work, "--cores", "2", config={**RUN_CONFIG, "fuse_variants": fuse})
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        out[fuse] = work
    return out


def _metrics(work, variant, dataset="toy_shapes", shots=2, seed=1):
    path = work / f"results/runs/{dataset}/toy-rn/coop/{variant}/shots{shots}/seed{seed}/metrics.json"
    return json.loads(path.read_text())


@pytest.mark.e2e
def test_fused_variants_write_what_separate_jobs_write(two_runs):
    for seed in (1, 2):
        for variant in VARIANTS:
            f, a = (_metrics(two_runs[k], variant, seed=seed) for k in (True, False))
            assert (f["accuracy"], f["macro_f1"], f["manifest_hash"]) == (a["accuracy"], a["macro_f1"],
                                                                          a["manifest_hash"])
            assert f["loss_history"] == pytest.approx(a["loss_history"], abs=1e-5)
            assert f.get("fused_variants") == (list(FUSED) if variant in FUSED else None)
            assert "fused_variants" not in a
    fused = _metrics(two_runs[True], "end_m4")
    assert fused["job_seconds"] == _metrics(two_runs[True], "mid_csc")["job_seconds"]  # one job made both


@pytest.mark.e2e
def test_every_variant_log_path_reads_the_jobs_log(two_runs):
    logs = two_runs[True] / "results/logs/runs/toy_shapes/toy-rn/coop"
    first, other = logs / "end_m4/shots2.log", logs / "mid_csc/shots2.log"
    assert other.is_symlink() and other.resolve() == first.resolve()
    text = first.read_text()
    assert "coop/end_m4 on toy_shapes" in text and "coop/mid_csc on toy_shapes" in text
    assert "training: " in text and "4 seeds" in text  # 2 variants x 2 seeds in one loop
    assert not (logs / "long/shots2.log").is_symlink()


@pytest.mark.e2e
def test_status_knows_the_variants_job(two_runs, tmp_path):
    config = load_config(_write(tmp_path, CONFIG))
    jobs = [j for j in sweep_jobs(config)["fewshot"] if j.rule == fused_rule("coop", FUSED)]
    assert len(jobs) == 2 * 2  # one per dataset x shots
    (job,) = [j for j in jobs if dict(j.wildcards) == {"dataset": "toy_shapes", "backbone": "toy-rn", "shots": "1"}]
    assert {c[3] for c in job.cells} == set(FUSED) and len(job.cells) == 2 * 2
    assert job.log == "results/logs/runs/toy_shapes/toy-rn/coop/end_m4/shots1.log"
    work = two_runs[True]
    status = sweep_status(_write(work, RUN_CONFIG), work, slurm=False)
    assert status.counts(status.experiments["fewshot"]) == {**status.counts([]), "done": 7, "total": 7}  # 1 + 3 x 2
    gone = work / "results/runs/toy_shapes/toy-rn/coop/mid_csc/shots2/seed2/metrics.json"
    kept = gone.read_bytes()
    gone.unlink()
    try:
        status = sweep_status(_write(work, RUN_CONFIG), work, slurm=False)
        (s,) = [s for s in status.experiments["fewshot"] if s.state != "done"]
        assert (s.job.rule, s.state, s.done_runs, len(s.job.cells)) == (job.rule, "started", 3, 4)  # log there
        assert status.counts(status.experiments["fewshot"])["started"] == 1
    finally:
        gone.write_bytes(kept)


def _write(folder, config):
    import yaml

    path = folder / "status_config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
