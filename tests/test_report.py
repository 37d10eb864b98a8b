"""Tests for coop.report: few-shot tables, dataset averages, Markdown/CSV output and Fig. 3 plot."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from coop.report.tables import (
    KEY_COLUMNS,
    RUN_COLUMNS,
    TABLE_COLUMNS,
    aggregate,
    average_over_datasets,
    collect_runs,
    fewshot_table,
    read_table,
    t_quantile_975,
    to_markdown,
    write_table,
)

BACKBONE = "toy-rn"
BASE = {"alpha": 50.0, "beta": 40.0}
ZERO_SHOT = {("alpha", "zeroshot"): 40.0, ("alpha", "ensemble"): 42.0,
             ("beta", "zeroshot"): 30.0, ("beta", "ensemble"): 33.0}
TRAINED = {("linear_probe", "default"): -5.0, ("coop", "end_m16"): 0.0, ("coop", "end_m16_csc"): -2.0}
SEED_OFFSET = {1: -10.0, 2: 0.0, 3: 10.0}  # -> per-cell std of exactly 10 over 3 seeds


def trained_acc(dataset: str, method: str, variant: str, shots: int, seed: int) -> float:
    return BASE[dataset] + TRAINED[(method, variant)] + 5.0 * math.log2(shots) + SEED_OFFSET[seed]


def write_metrics(root: Path, backbone: str = BACKBONE, **m) -> Path:
    d = root / m["dataset"] / backbone / m["method"] / m["variant"] / f"shots{m['shots']}" / f"seed{m['seed']}"
    d.mkdir(parents=True, exist_ok=True)
    metrics = {"backbone": backbone, "macro_f1": m["accuracy"] - 2.0, "n_test": 400, "n_classes": 10,
               "params": {}, "wall_seconds": 10.0 * m["shots"] + m["seed"], **m}
    (d / "metrics.json").write_text(json.dumps(metrics))
    return d / "metrics.json"


def build_runs(root: Path) -> list[Path]:
    """2 datasets; zero-shot methods at 0 shots; 3 trained series at 1,2,4 shots x seeds 1-3.

    Holes on purpose: beta lacks coop/end_m16_csc at 4 shots, beta's linear probe at 1 shot has
    seed 1 only, and only alpha has coop/end_m16 at 16 shots.
    """
    paths = []
    for (dataset, method), acc in ZERO_SHOT.items():
        paths.append(write_metrics(root, dataset=dataset, method=method, variant="default",
                                   shots=0, seed=0, accuracy=acc))
    for dataset in BASE:
        for method, variant in TRAINED:
            for shots in (1, 2, 4, 16):
                for seed in (1, 2, 3):
                    if shots == 16 and (dataset, method, variant) != ("alpha", "coop", "end_m16"):
                        continue
                    if (dataset, variant, shots) == ("beta", "end_m16_csc", 4):
                        continue
                    if (dataset, method, shots) == ("beta", "linear_probe", 1) and seed != 1:
                        continue
                    acc = trained_acc(dataset, method, variant, shots, seed)
                    paths.append(write_metrics(root, dataset=dataset, method=method, variant=variant,
                                               shots=shots, seed=seed, accuracy=acc))
    return paths


@pytest.fixture
def paths(tmp_path) -> list[Path]:
    return build_runs(tmp_path / "runs")


@pytest.fixture
def table(paths) -> pd.DataFrame:
    return fewshot_table(collect_runs(paths))


def cell(df: pd.DataFrame, dataset: str, method: str, variant: str, shots: int) -> pd.Series:
    rows = df[(df["dataset"] == dataset) & (df["method"] == method)
              & (df["variant"] == variant) & (df["shots"] == shots)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_collect_runs(paths):
    runs = collect_runs(paths)
    assert list(runs.columns) == RUN_COLUMNS
    assert len(runs) == len(paths) == 4 + 30 + 22  # zero-shot + alpha + beta
    first = runs.iloc[0]
    assert (first["dataset"], first["method"], first["shots"], first["seed"]) == ("alpha", "zeroshot", 0, 0)
    assert first["accuracy"] == 40.0 and first["n_test"] == 400


def test_collect_runs_missing_key(tmp_path, paths):
    bad = tmp_path / "bad" / "metrics.json"
    bad.parent.mkdir()
    metrics = json.loads(paths[0].read_text())
    del metrics["macro_f1"]
    bad.write_text(json.dumps(metrics))
    with pytest.raises(ValueError, match=r"bad[/\\]metrics\.json.*macro_f1"):
        collect_runs([*paths, bad])


def test_fewshot_table_columns_and_sorting(table):
    assert list(table.columns) == TABLE_COLUMNS
    assert len(table) == 12 + 10
    expected = table.sort_values(KEY_COLUMNS).reset_index(drop=True)
    pd.testing.assert_frame_equal(table, expected)
    # shots sort numerically (16 after 4), not as strings
    assert list(table[(table["dataset"] == "alpha") & (table["variant"] == "end_m16")]["shots"]) == [1, 2, 4, 16]


def test_fewshot_table_numbers(table):
    row = cell(table, "alpha", "coop", "end_m16", 4)  # accuracies 50, 60, 70
    assert row["acc_mean"] == 60.0
    assert row["acc_std"] == 10.0
    assert row["acc_ci95"] == round(4.303 * 10 / math.sqrt(3), 2) == 24.84
    assert row["f1_mean"] == 58.0 and row["f1_std"] == 10.0
    assert row["n_seeds"] == 3
    assert row["wall_seconds_mean"] == 42.0

    row = cell(table, "beta", "coop", "end_m16_csc", 2)
    assert row["acc_mean"] == 40.0 - 2.0 + 5.0

    for dataset, method in ZERO_SHOT:
        row = cell(table, dataset, method, "default", 0)
        assert row["acc_mean"] == ZERO_SHOT[(dataset, method)]
        assert (row["acc_std"], row["acc_ci95"], row["n_seeds"]) == (0.0, 0.0, 1)

    row = cell(table, "beta", "linear_probe", "default", 1)  # one seed only
    assert (row["acc_mean"], row["acc_std"], row["acc_ci95"], row["n_seeds"]) == (25.0, 0.0, 0.0, 1)


def test_fewshot_table_rounds_to_two_decimals(tmp_path):
    paths = [write_metrics(tmp_path, dataset="d", method="coop", variant="v", shots=1, seed=s, accuracy=a)
             for s, a in [(1, 10.0), (2, 10.0), (3, 11.0)]]
    row = fewshot_table(collect_runs(paths)).iloc[0]
    assert row["acc_mean"] == 10.33 and row["acc_std"] == 0.58 and row["acc_ci95"] == 1.43


def test_fewshot_table_rejects_duplicate_seeds(paths):
    runs = collect_runs(paths)
    with pytest.raises(ValueError, match="duplicate"):
        fewshot_table(pd.concat([runs, runs.iloc[[5]]]))


def test_t_quantiles():
    assert t_quantile_975(1) == 12.706 and t_quantile_975(2) == 4.303 and t_quantile_975(31) == 1.96
    stats = pytest.importorskip("scipy.stats")
    for df in range(1, 31):
        assert t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-3)


def test_average_over_datasets(table):
    avg = average_over_datasets(table)
    assert list(avg.columns) == TABLE_COLUMNS
    assert set(avg["dataset"]) == {"average"}
    cells = set(avg[["method", "variant", "shots"]].itertuples(index=False, name=None))
    expected = {("zeroshot", "default", 0), ("ensemble", "default", 0)}
    expected |= {(m, v, k) for m, v in TRAINED for k in (1, 2, 4)}
    expected -= {("coop", "end_m16_csc", 4)}  # missing on beta; 16 shots exists on alpha only
    assert cells == expected

    for method, variant, shots in cells:
        a = cell(table, "alpha", method, variant, shots)
        b = cell(table, "beta", method, variant, shots)
        row = cell(avg, "average", method, variant, shots)
        assert row["acc_mean"] == round((a["acc_mean"] + b["acc_mean"]) / 2, 2)
        assert row["n_seeds"] == min(a["n_seeds"], b["n_seeds"])
    row = cell(avg, "average", "coop", "end_m16", 2)
    assert row["acc_mean"] == (55.0 + 45.0) / 2
    assert row["acc_std"] == round(math.sqrt(10**2 + 10**2) / 2, 2)


def test_write_table_roundtrip(tmp_path, table):
    csv, md = tmp_path / "out" / "fewshot.csv", tmp_path / "out" / "fewshot.md"
    write_table(table, csv, md)
    pd.testing.assert_frame_equal(pd.read_csv(csv), table)
    pd.testing.assert_frame_equal(read_table(csv), table)
    assert sorted(p.name for p in csv.parent.iterdir()) == ["fewshot.csv", "fewshot.md"]  # no temp files

    lines = md.read_text().splitlines()
    assert lines[0] == "| " + " | ".join(TABLE_COLUMNS) + " |"
    assert set(lines[1].replace("|", "").split()) <= {"---", "---:"}
    assert len(lines) == 2 + len(table)
    assert lines[2].startswith("| alpha | toy-rn | coop | end_m16 | 1 | ")
    assert all(line.count("|") == len(TABLE_COLUMNS) + 1 for line in lines)


def test_to_markdown_escapes_pipes():
    md = to_markdown(pd.DataFrame({"name": ["a|b"], "x": [1.5]}))
    assert md.splitlines()[2] == r"| a\|b | 1.50 |"


def test_aggregate(tmp_path, paths, table):
    out = aggregate(paths, tmp_path / "t.csv")
    pd.testing.assert_frame_equal(out, table)
    pd.testing.assert_frame_equal(read_table(tmp_path / "t.csv"), table)


def _line(ax, label: str):
    lines = [ln for ln in ax.get_lines() if ln.get_label() == label]
    assert len(lines) == 1, [ln.get_label() for ln in ax.get_lines()]
    return lines[0]


def test_plot_fewshot(tmp_path, table):
    from matplotlib.image import imread

    from coop.report.figures import plot_fewshot

    png, pdf = tmp_path / "fig" / "fewshot.png", tmp_path / "fig" / "fewshot.pdf"
    fig = plot_fewshot(table, png, pdf)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    height, width = imread(png).shape[:2]
    assert height > 200 and width > 200
    assert sorted(p.name for p in png.parent.iterdir()) == ["fewshot.pdf", "fewshot.png"]

    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2 + 1
    assert [ax.get_title() for ax in axes] == ["Average over 2 datasets", "alpha", "beta"]
    for ax in axes:
        zs = _line(ax, "Zero-shot CLIP")
        assert zs.get_marker() == "*" and list(zs.get_xdata()) == [0.0]
        assert _line(ax, "Prompt ensembling").get_marker() == "D"
        assert _line(ax, "Linear probe CLIP").get_linestyle() == "--"
        assert _line(ax, "CoOp (end_m16)").get_linestyle() == "-"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2", "4", "16"]
    # log2-like axis: 16 shots at x = 5; average panel has no 16-shot point
    assert list(_line(axes[1], "CoOp (end_m16)").get_xdata()) == [1.0, 2.0, 3.0, 5.0]
    assert list(_line(axes[0], "CoOp (end_m16)").get_ydata()) == [45.0, 50.0, 55.0]
    assert len(fig.legends) == 1
    assert len(fig.legends[0].get_texts()) == 5


def test_plot_fewshot_accuracy_axis_spans_20_points(tmp_path):
    """Curves within a few points (seed noise) are drawn on an axis of at least 20 points, bands kept."""
    from coop.report.figures import plot_fewshot

    table = pd.DataFrame({"dataset": "d", "backbone": "b", "method": ["zeroshot", "coop", "coop"],
                          "variant": ["default", "end_m16", "end_m16"], "shots": [0, 1, 16],
                          "acc_mean": [55.0, 56.0, 57.0], "acc_std": [0.0, 1.0, 1.0], "acc_ci95": 0.0,
                          "f1_mean": 0.0, "f1_std": 0.0, "n_seeds": [1, 3, 3], "wall_seconds_mean": 1.0})
    fig = plot_fewshot(table, tmp_path / "f.png")
    for ax in fig.axes:
        lo, hi = ax.get_ylim()
        assert hi - lo >= 20 and lo <= 54 and hi >= 58
        assert ax.collections  # the ±1 std band
    near_top = table.assign(acc_mean=[97.0, 98.0, 99.0])
    lo, hi = plot_fewshot(near_top, tmp_path / "g.png").axes[1].get_ylim()
    assert hi - lo >= 20 and hi <= 100.0 + 1e-9 and lo <= 96


def test_fig3_overlays_the_papers_numbers_on_its_own_datasets(tmp_path):
    """A real run (datasets named as the paper's, identity paper names) gets the paper's shipped numbers as
    hollow markers: ImageNet zero-shot 58.18 and linear probe 55.87 (Table 1), CoOp 62.95 (Table 2); DTD
    zero-shot 42.32 ("{} texture.", its Table 6 prompt, in Fig. 1) and CoOp 63.58 (Fig. 1). A toy stand-in for
    ImageNet gets none."""
    from coop.report.figures import fig3_fewshot

    rows = []
    for dataset in ("imagenet", "dtd", "toy_shapes"):
        rows.append(("zeroshot", "default", 0, 50.0))
        rows += [(m, v, k, 40.0 + k) for m, v in (("linear_probe", "default"), ("coop", "end_m16")) for k in (1, 16)]
        rows[-5:] = [(dataset, *r) for r in rows[-5:]]
    table = pd.DataFrame(rows, columns=["dataset", "method", "variant", "shots", "acc_mean"]).assign(
        backbone="RN50-quickgelu", acc_std=1.0, acc_ci95=0.0, f1_mean=0.0, f1_std=0.0, n_seeds=3,
        wall_seconds_mean=1.0)
    exp = {"datasets": ["imagenet", "dtd", "toy_shapes"], "backbones": ["RN50-quickgelu"], "shots": [1, 16],
           "runs": {"zeroshot": "zeroshot/default", "linear_probe": "linear_probe/default", "coop": "coop/end_m16"},
           "paper_names": {"datasets": {"toy_shapes": "imagenet"}}}
    fig = fig3_fewshot(table, exp, tmp_path / "f.png")
    axes = {ax.get_title(): ax for ax in fig.axes}

    def paper(ax):
        return {ln.get_gid(): (list(ln.get_xdata()), list(ln.get_ydata())) for ln in ax.get_lines()
                if str(ln.get_gid()).startswith("paper/")}

    assert paper(axes["imagenet"]) == {"paper/zeroshot/default": ([0.0], [58.18]),
                                       "paper/linear_probe/default": ([5.0], [55.87]),
                                       "paper/coop/end_m16": ([5.0], [62.95])}
    assert paper(axes["dtd"]) == {"paper/zeroshot/default": ([0.0], [42.32]), "paper/coop/end_m16": ([5.0], [63.58])}
    assert paper(axes["toy_shapes"]) == {} and paper(axes["Average over 3 datasets"]) == {}
    mark = next(ln for ln in axes["imagenet"].get_lines() if ln.get_gid() == "paper/coop/end_m16")
    assert mark.get_markerfacecolor() == "none"
    assert "Paper (hollow markers, 16 shots or zero-shot)" in [t.get_text() for t in fig.legends[0].get_texts()]
    # The same under toy names standing in for the paper's: no paper markers, no paper legend entry.
    toy = table.replace({"dataset": {"imagenet": "toy_a", "dtd": "toy_b"}})
    fig = fig3_fewshot(toy, {**exp, "datasets": ["toy_a", "toy_b"], "paper_names": {"datasets": {
        "toy_a": "imagenet", "toy_b": "dtd"}}}, tmp_path / "g.png")
    assert not any(paper(ax) for ax in fig.axes)
    assert not any("Paper" in t.get_text() for t in fig.legends[0].get_texts())


def test_plot_fewshot_edge_cases(tmp_path):
    """A zero-shot-only dataset, a method missing at some shots, one seed, a second backbone, an unknown method."""
    root = tmp_path / "runs"
    paths = [
        write_metrics(root, dataset="only_zs", method="zeroshot", variant="default", shots=0, seed=0, accuracy=30.0),
        write_metrics(root, dataset="full", method="zeroshot", variant="default", shots=0, seed=0, accuracy=35.0),
        write_metrics(root, dataset="full", method="coop", variant="end_m4", shots=2, seed=1, accuracy=50.0),
        write_metrics(root, dataset="full", method="text_bias", variant="default", shots=1, seed=1, accuracy=40.0),
        write_metrics(root, dataset="full", method="text_bias", variant="default", shots=8, seed=1, accuracy=45.0),
        # A method no declaration names here (e.g. a plugin that is not loaded): its name, the default style.
        write_metrics(root, dataset="full", method="unloaded_plugin", variant="default", shots=1, seed=1,
                      accuracy=41.0),
        write_metrics(root, dataset="full", method="unloaded_plugin", variant="default", shots=8, seed=1,
                      accuracy=44.0),
        write_metrics(root, "toy-vit", dataset="full", method="zeroshot", variant="default", shots=0, seed=0,
                      accuracy=60.0),
    ]
    table = fewshot_table(collect_runs(paths))
    fig = plot_fewshot_lazy(table, tmp_path / "edge.png")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 3
    assert "toy-rn" in fig.get_suptitle() and "toy-vit" in fig.get_suptitle()
    assert [ln.get_label() for ln in axes[0].get_lines()] == ["Zero-shot CLIP"]  # average: zero-shot only
    # Before the methods declared themselves text_bias fell back to its name and the dotted default style;
    # it now declares "Text bias", dash-dotted, and a method unknown here keeps that fallback.
    assert _line(axes[1], "Text bias").get_linestyle() == "-."
    assert _line(axes[1], "unloaded_plugin").get_linestyle() == ":"
    assert [ln.get_label() for ln in axes[1].get_lines()] == ["Zero-shot CLIP", "CoOp (end_m4)", "Text bias",
                                                              "unloaded_plugin"]  # declared order, unknown last
    assert [ln.get_label() for ln in axes[2].get_lines()] == ["Zero-shot CLIP"]

    fig = plot_fewshot_lazy(table, tmp_path / "vit.png", backbone="toy-vit")
    assert len(fig.axes) == 2 and fig.get_suptitle() == "toy-vit"
    with pytest.raises(ValueError, match="backbone"):
        plot_fewshot_lazy(table, tmp_path / "x.png", backbone="nope")


def plot_fewshot_lazy(*args, **kwargs):
    import coop.report

    return coop.report.plot_fewshot(*args, **kwargs)


def test_import_is_light():
    code = "import sys, coop.report; assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
