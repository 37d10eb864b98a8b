"""The built-in default reproduces the paper's findings in miniature (issue 5): the default workflow is run as a
fresh clone would run it, and its results/tables/fewshot.csv is read as the paper's Fig. 3 reads."""
import pandas as pd
import pytest
import yaml

from conftest import ROOT
from workflow_util import snakemake

CONFIG = yaml.safe_load((ROOT / "config/config.yaml").read_text())
FEWSHOT = CONFIG["experiments"]["fewshot"]
CLASSES = {"toy_shapes": 10, "toy_textures": 8, "toy_flowers": 8, "toy_sketches": 10, "toy_icons": 7}


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The default workflow (config/config.yaml, the shipped toy CLIPs) run whole in a scratch folder."""
    work = tmp_path_factory.mktemp("default")
    proc = snakemake(work, "--cores", "2", config=CONFIG, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work


@pytest.fixture(scope="module")
def fig3(default_run):
    """acc_mean of the Fig. 3 cells: method -> shots -> {dataset: accuracy} (zero-shot methods at shots 0)."""
    table = pd.read_csv(default_run / "results/tables/fewshot.csv")
    cells = {}
    for label, run in FEWSHOT["runs"].items():
        method, variant = run.split("/")
        rows = table[(table.method == method) & (table.variant == variant) & table.dataset.isin(FEWSHOT["datasets"])
                     & (table.backbone == FEWSHOT["backbones"][0])]
        for shots, group in rows.groupby("shots"):
            cells.setdefault(label, {})[int(shots)] = dict(zip(group.dataset, group.acc_mean))
    return cells


def _average(cells: dict, label: str, shots: int) -> float:
    accs = cells[label][shots]
    assert set(accs) == set(FEWSHOT["datasets"]), f"{label} at {shots} shots misses datasets: {sorted(accs)}"
    return sum(accs.values()) / len(accs)


@pytest.mark.e2e
@pytest.mark.findings
def test_the_default_covers_three_toy_datasets_of_different_kinds():
    assert set(FEWSHOT["datasets"]) == set(CLASSES)
    assert all(CONFIG["backbones"][b]["pretrained"] == "toyworld" for b in CONFIG["backbones"])


@pytest.mark.e2e
@pytest.mark.findings
def test_zero_shot_is_clearly_above_chance_on_every_toy_dataset(fig3):
    for dataset, acc in fig3["zeroshot"][0].items():
        chance = 100 / CLASSES[dataset]
        assert acc >= 2 * chance and acc >= chance + 15, f"zero-shot on {dataset}: {acc:.1f}% (chance {chance:.1f}%)"


@pytest.mark.e2e
@pytest.mark.findings
def test_coop_beats_zero_shot_on_average_from_two_shots_and_by_over_5_points_at_16(fig3):
    zs = _average(fig3, "zeroshot", 0)
    top = max(fig3["coop"])
    assert _average(fig3, "coop", top) > zs + 5, (top, _average(fig3, "coop", top), zs)
    assert _average(fig3, "coop", 2) > zs, (_average(fig3, "coop", 2), zs)


@pytest.mark.e2e
@pytest.mark.findings
def test_the_linear_probe_needs_more_than_one_shot(fig3):
    zs = _average(fig3, "zeroshot", 0)
    assert _average(fig3, "linear_probe", 1) < zs, (_average(fig3, "linear_probe", 1), zs)


@pytest.mark.e2e
@pytest.mark.findings
def test_the_runs_findings_report_agrees_with_its_tables(default_run, fig3):
    """results/tables/findings.csv, written by the run itself, says the findings asserted above hold, with the
    averages this file computes from fewshot.csv (to the report's one decimal, fewshot.csv being rounded)."""
    import re

    report = pd.read_csv(default_run / "results/tables/findings.csv", keep_default_na=False).set_index("finding")
    assert (default_run / "results/tables/findings.md").read_text().count("\n| ") >= len(report)
    for name in ("zero_shot_above_chance", "coop_gain_16_shots", "coop_from_two_shots", "probe_needs_shots"):
        assert report.loc[name, "verdict"] == "holds", (name, report.loc[name].to_dict())
    zs, top = _average(fig3, "zeroshot", 0), max(fig3["coop"])
    for name, ours in (("coop_gain_16_shots", _average(fig3, "coop", top)),
                       ("coop_from_two_shots", _average(fig3, "coop", 2))):
        stated = re.search(r"shots (\d+\.\d)(?: ± \d+\.\d)? vs (\d+\.\d) ", report.loc[name, "ours"])
        assert float(stated[1]) == pytest.approx(ours, abs=0.06) and float(stated[2]) == pytest.approx(zs, abs=0.06)
    for dataset, acc in fig3["zeroshot"][0].items():
        assert f"{dataset} {acc:.1f} (chance {100 / CLASSES[dataset]:.1f})" in report.loc["zero_shot_above_chance",
                                                                                           "ours"]


@pytest.mark.e2e
@pytest.mark.findings
def test_fig3_has_the_papers_four_coop_variants_at_every_shot(default_run, fig3):
    """Fig. 3 of the paper: CoOp with the class token at the end or in the middle, unified or class-specific,
    at every shot count on every dataset; the run's report measures the CSC finding on them."""
    labels = [lb for lb, run in FEWSHOT["runs"].items() if run.startswith("coop/")]
    params = [CONFIG["methods"]["coop"][FEWSHOT["runs"][lb].split("/")[1]] for lb in labels]
    assert sorted((p["class_token_position"], bool(p.get("csc"))) for p in params) == [
        ("end", False), ("end", True), ("middle", False), ("middle", True)]
    assert {p["n_ctx"] for p in params} == {16}
    for label in labels:
        assert sorted(fig3[label]) == sorted(FEWSHOT["shots"])
        for shots in FEWSHOT["shots"]:
            _average(fig3, label, shots)  # every dataset there
    report = pd.read_csv(default_run / "results/tables/findings.csv", keep_default_na=False).set_index("finding")
    assert report.loc["csc_below_unified_few_shots", "verdict"] in ("holds", "does not hold")
    assert "class-specific" in report.loc["csc_below_unified_few_shots", "ours"]
