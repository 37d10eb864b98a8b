"""The findings report (coop.report.findings, findings_paper) on hand-made runs whose verdicts are worked out by
hand from the rule: a comparison holds when the difference of the means exceeds the margin by more than
sqrt(std_a^2 / n_a + std_b^2 / n_b)."""
import math

import pandas as pd
import pytest

from coop.report.findings import Evidence, Stat, beats, evaluate, findings_markdown, paper_numbers

DATASETS = ["d1", "d2", "d3"]
FEWSHOT = {"datasets": DATASETS, "backbones": ["bb"], "shots": [1, 2, 16],
           "runs": {"zs": "zeroshot/default", "lp": "linear_probe/default", "coop": "coop/end"}}


def _runs(coop, lp, zs, classes=10, csc=False):
    """Runs of the fewshot experiment: coop[shots][dataset] and lp[shots][dataset] are per-seed accuracies,
    zs[dataset] one accuracy."""
    rows = []
    for method, variant, cells in (("coop", "end", coop), ("linear_probe", "default", lp)):
        for shots, by_dataset in cells.items():
            for d, accs in by_dataset.items():
                rows += [dict(dataset=d, backbone="bb", method=method, variant=variant, shots=shots, seed=s + 1,
                              accuracy=a, n_classes=classes, param_csc=csc, param_n_ctx=16.0)
                         for s, a in enumerate(accs)]
    rows += [dict(dataset=d, backbone="bb", method="zeroshot", variant="default", shots=0, seed=0, accuracy=a,
                  n_classes=classes) for d, a in zs.items()]
    return pd.DataFrame(rows)


def _same(accs):
    return {d: list(accs) for d in DATASETS}


def _verdicts(runs, experiments):
    table = evaluate(Evidence(runs, experiments))
    return dict(zip(table.finding, table.verdict)), table


def test_the_spread_rule_by_hand():
    a, b = Stat((60.0, 62.0, 64.0)), Stat((55.0,))
    se = math.sqrt(2.0 ** 2 / 3)  # b has no spread
    assert beats(a, b, 5.0) == (7 - 5 > se, False)  # 2 > 1.155: holds, clear of the spread
    wide = Stat((58.0, 62.0, 66.0))  # same mean, std 4: se 2.31 > 2
    assert beats(wide, b, 5.0) == (False, True)
    assert beats(b, a) == (False, False)  # 7 below: clearly not
    assert Stat((1.0, 2.0, 3.0)).text() == "2.0 ± 1.0" and Stat((58.25,)).text() == "58.2"


def test_fewshot_findings_by_hand():
    zs = {"d1": 40.0, "d2": 50.0, "d3": 60.0}            # chance 10: all clear of 2 x chance and chance + 15
    coop = {1: _same([45, 47, 49]), 2: _same([51, 53, 55]), 16: {"d1": [70, 71, 72], "d2": [65, 66, 67],
                                                                 "d3": [62, 63, 64]}}
    lp = {1: _same([20, 22, 24]), 2: _same([30, 31, 32]), 16: _same([58, 60, 62])}
    verdicts, table = _verdicts(_runs(coop, lp, zs), {"fewshot": FEWSHOT})
    # averages: zero-shot 50; CoOp 47 (1 shot), 53 (2), 66.67 (16: 71, 66, 63); the probe 22, 31, 60
    assert verdicts["zero_shot_above_chance"] == "holds"
    assert verdicts["coop_gain_16_shots"] == "holds"          # 66.67 - 50 - 5 = 11.7 > se 0.58
    assert verdicts["coop_from_two_shots"] == "holds"          # 3 > 1.15
    assert verdicts["coop_most_datasets_16"] == "holds"        # d1 +31, d2 +16, d3 +3 (> se 0.58)
    assert verdicts["probe_needs_shots"] == "holds"            # 50 vs 22
    assert verdicts["probe_catches_up_16"] == "holds"          # 60 vs 50
    assert verdicts["coop_above_probe"] == "holds"             # +25, +22, +6.3
    assert verdicts["gain_where_prompt_misses"] == "holds"     # gains 31, 16, 3 against zero-shot 40, 50, 60
    assert verdicts["csc_below_unified_few_shots"] == "not measured"
    assert verdicts["longer_context_better"] == "not measured"  # no context_length experiment
    ours = dict(zip(table.finding, table.ours))
    assert "66.7 ± 1.0 vs 50.0 (+16.7)" in ours["coop_gain_16_shots"]
    assert "rank correlation with zero-shot accuracy -1.00" in ours["gain_where_prompt_misses"]
    notes = dict(zip(table.finding, table.note))
    assert notes["longer_context_better"] == "the config has no experiment 'context_length'"


def test_a_gain_inside_the_seeds_spread_does_not_hold():
    zs = {"d1": 50.0, "d2": 50.0, "d3": 50.0}
    coop = {1: _same([40, 50, 60]), 2: _same([44, 52, 60]), 16: _same([50, 60, 70])}  # 2 shots: +2, se 4.6
    lp = {1: _same([20, 22, 24]), 2: _same([30, 31, 32]), 16: _same([58, 60, 62])}
    verdicts, table = _verdicts(_runs(coop, lp, zs), {"fewshot": FEWSHOT})
    assert verdicts["coop_from_two_shots"] == "does not hold"
    assert dict(zip(table.finding, table.note))["coop_from_two_shots"] == "within the seeds' spread"
    assert verdicts["coop_gain_16_shots"] == "does not hold"  # +10 - 5 = 5 < se 5.77
    assert verdicts["coop_most_datasets_16"] == "holds"  # +10 on each dataset: clear of its se 5.77
    assert verdicts["gain_where_prompt_misses"] == "not measured"  # zero-shot 50 everywhere: nothing to rank


def test_chance_uses_the_class_count():
    zs = {"d1": 30.0, "d2": 50.0, "d3": 60.0}  # 4 classes: chance 25; d1 needs 50 (2 x chance) and 40
    coop = {s: _same([60, 61, 62]) for s in (1, 2, 16)}
    lp = {s: _same([20, 21, 22]) for s in (1, 2, 16)}
    verdicts, table = _verdicts(_runs(coop, lp, zs, classes=4), {"fewshot": FEWSHOT})
    assert verdicts["zero_shot_above_chance"] == "does not hold"
    assert "d1 30.0 (chance 25.0)" in dict(zip(table.finding, table.ours))["zero_shot_above_chance"]


def test_labels_come_from_declarations_not_names():
    """The linear probe is whatever label's method declares paper_role linear_probe, whatever its name."""
    exp = {**FEWSHOT, "runs": {"hand": "zeroshot/default", "probe_x": "linear_probe/default", "mine": "coop/end"}}
    zs = {"d1": 40.0, "d2": 50.0, "d3": 60.0}
    coop = {s: _same([60, 61, 62]) for s in (1, 2, 16)}
    lp = {s: _same([20, 21, 22]) for s in (1, 2, 16)}
    _, table = _verdicts(_runs(coop, lp, zs), {"fewshot": exp})
    ours = dict(zip(table.finding, table.ours))
    assert ours["probe_needs_shots"].startswith("probe_x at 1 shot 21.0 ± 1.0 vs zero-shot 50.0")


def test_paper_numbers_only_where_a_diff_is_shown():
    t = pd.DataFrame([
        dict(label="coop", column="RN50", paper_column="RN50", ours_mean=62.0, ours_std=0.5, n_seeds=3, paper=62.95,
             diff=-0.95),
        dict(label="coop", column="RN101", paper_column="RN101", ours_mean=60.0, ours_std=1.5, n_seeds=3,
             paper=66.60, diff=-6.60),
        dict(label="coop", column="toy-rn", paper_column="RN50", ours_mean=54.0, ours_std=1.0, n_seeds=3,
             paper=62.95, diff=float("nan")),  # a toy stand-in: no diff shown, not compared
    ])
    numbers = paper_numbers({"table2_prompt_ensembling": t})
    assert list(numbers.column) == ["RN50", "RN101"] and list(numbers.within_tolerance) == [True, False]
    md = findings_markdown(evaluate(Evidence(pd.DataFrame(columns=["dataset"]), {}), []), numbers)
    assert "1 of 2 within 2 points" in md and "| table2_prompt_ensembling | coop | RN101 | 60.0 ± 1.5 | 66.60 |" in md
    assert "No dataset and backbone of the paper's own" in findings_markdown(
        evaluate(Evidence(pd.DataFrame(columns=["dataset"]), {}), []), paper_numbers({}))


@pytest.mark.parametrize("bad", ["linear", "probe"])
def test_a_bad_paper_role_is_refused(bad):
    from dataclasses import replace

    from coop.methods.registry import PluginError, _check, get_method

    with pytest.raises(PluginError, match="paper_role"):
        _check(replace(get_method("linear_probe"), paper_role=bad))
