"""Fig. 4 of the CoOp paper from runs.csv (Agg backend, no pyplot state), and what the paper's figures from
runs.csv share (colours, markers, names of datasets and backbones, the accuracy axis label; Fig. 5 is in
`coop.report.paper_fig5`).

* `plot_gain_over_zeroshot` (Fig. 4): per dataset, CoOp at the largest shot count minus zero-shot
  CLIP, horizontal bars sorted by gain (green >= 0, red < 0), plus the average over datasets.

Labels are named as `declarations.label_display` says (a method's display name where the label is just the
method). Label selection, shots and seeds follow `coop.report.selection` (declared zero-shot methods at shots 0,
the rest at the experiment's largest shot count and its seeds). Each plot has a `*_data` twin returning the
numbers drawn. One panel per backbone where a figure is per backbone; each writes a 150 dpi PNG
(and a PDF) atomically and returns the Figure.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from coop.report.declarations import first_learned_context, first_zero_shot, label_display
from coop.report.figures import save_figure
from coop.report.paper_names import paper_backbone, paper_dataset, paper_names_of
from coop.report.selection import (
    RUN_KEYS,
    backbones_of,
    datasets_of,
    experiment_labels,
    filter_label,
    label_shots,
    mean_std,
    prepare,
)

__all__ = [
    "POSITIVE_COLOR",
    "NEGATIVE_COLOR",
    "gain_over_zeroshot",
    "plot_gain_over_zeroshot",
]

POSITIVE_COLOR = "tab:green"
NEGATIVE_COLOR = "tab:red"
_COLORS = [
    "tab:blue", "tab:red", "tab:green", "tab:orange", "tab:purple",
    "tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan",
]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def _named(name: str, paper: str) -> str:
    return f"{name} ({paper})" if paper and paper != name else name


def _accuracy_label(datasets: list[str], names: Mapping) -> str:
    """The y label of an accuracy over `datasets`: "Accuracy on <dataset> (%)" for one, else the average."""
    if len(datasets) == 1:
        return f"Accuracy on {_named(datasets[0], paper_dataset(datasets[0], names))} (%)"
    return f"Average accuracy over {len(datasets)} datasets (%)"


def _pick_label(labels, wanted: str | None, default: str, fits, what: str) -> tuple:
    """(label, method, variant) of `wanted`, else of label `default`, else of `fits`'s pick of the labels."""
    by_label = {lb: (lb, m, v) for lb, m, v in labels}
    if wanted is not None:
        if wanted not in by_label:
            raise ValueError(f"{what} label {wanted!r} not in experiment runs {sorted(by_label)}")
        return by_label[wanted]
    if default in by_label:
        return by_label[default]
    found = fits([(lb, m) for lb, m, _ in labels])
    if found is not None:
        return by_label[found]
    raise ValueError(f"experiment has no {what} label (runs: {sorted(by_label)})")


# ----------------------------------------------------------------------------- Fig. 4

def gain_over_zeroshot(
    runs: pd.DataFrame,
    exp: Mapping,
    paper_names: Mapping | None = None,
    coop_label: str | None = None,
    zeroshot_label: str | None = None,
) -> pd.DataFrame:
    """CoOp minus zero-shot CLIP per backbone and dataset, plus a dataset "average" row each.

    Columns: backbone, paper_backbone, dataset, paper_dataset, coop_label, shots, coop_mean,
    coop_std, n_seeds, zeroshot_mean, gain. The CoOp label is `coop_label`, else "coop", else the
    first label whose method learns a context (declared few-shot and interpretable); the zero-shot one
    likewise ("zeroshot", else `declarations.first_zero_shot`: zero-shot CLIP first). Rows sorted by
    backbone (experiment order) then gain, descending; the average (mean of the per-dataset gains,
    over the datasets with both numbers) comes last; datasets lacking a number are left out.
    """
    names = paper_names_of(exp, paper_names)
    runs = prepare(runs, RUN_KEYS, "runs")
    labels = experiment_labels(exp)
    c_label, c_method, c_variant = _pick_label(labels, coop_label, "coop", first_learned_context, "CoOp")
    _, z_method, z_variant = _pick_label(labels, zeroshot_label, "zeroshot", first_zero_shot, "zero-shot")
    coop = filter_label(runs, exp, c_method, c_variant)
    zs = filter_label(runs, exp, z_method, z_variant)
    shots = label_shots(exp, c_method, coop)
    rows = []
    for backbone in backbones_of(exp, runs):
        pb = paper_backbone(backbone, names)
        block = []
        for dataset in datasets_of(exp, runs):
            c = coop[(coop["backbone"] == backbone) & (coop["dataset"] == dataset)]["accuracy"]
            z = zs[(zs["backbone"] == backbone) & (zs["dataset"] == dataset)]["accuracy"]
            c_mean, c_std, n = mean_std(c)
            z_mean, _, zn = mean_std(z)
            if n == 0 or zn == 0:
                continue
            block.append({
                "backbone": backbone, "paper_backbone": pb, "dataset": dataset,
                "paper_dataset": paper_dataset(dataset, names), "coop_label": c_label, "shots": shots,
                "coop_mean": c_mean, "coop_std": c_std, "n_seeds": n, "zeroshot_mean": z_mean,
                "gain": c_mean - z_mean,
            })
        block.sort(key=lambda r: -r["gain"])
        if block:
            mean = lambda key: float(np.mean([r[key] for r in block]))  # noqa: E731
            block.append({
                "backbone": backbone, "paper_backbone": pb, "dataset": "average", "paper_dataset": "",
                "coop_label": c_label, "shots": shots, "coop_mean": mean("coop_mean"), "coop_std": math.nan,
                "n_seeds": min(r["n_seeds"] for r in block), "zeroshot_mean": mean("zeroshot_mean"),
                "gain": mean("gain"),
            })
        rows += block
    cols = ["backbone", "paper_backbone", "dataset", "paper_dataset", "coop_label", "shots",
            "coop_mean", "coop_std", "n_seeds", "zeroshot_mean", "gain"]
    return pd.DataFrame(rows, columns=cols)


def plot_gain_over_zeroshot(
    runs: pd.DataFrame,
    exp: Mapping,
    out_png: str | os.PathLike,
    out_pdf: str | os.PathLike | None = None,
    paper_names: Mapping | None = None,
    coop_label: str | None = None,
) -> Figure:
    """Fig. 4: horizontal bars of CoOp's gain over zero-shot CLIP, one panel per backbone.

    Datasets sorted by gain (largest on top), the average (hatched) at the bottom; bars green for
    a gain >= 0 and red below 0, each annotated with its signed value. Every bar's gid is its
    dataset ("average" for the average).
    """
    names = paper_names_of(exp, paper_names)
    data = gain_over_zeroshot(runs, exp, names, coop_label)
    if data.empty:
        raise ValueError("no dataset has both a CoOp and a zero-shot result: nothing to plot")
    backbones = list(dict.fromkeys(data["backbone"]))
    n_max = max(int((data["backbone"] == b).sum()) for b in backbones)
    fig = Figure(figsize=(5.2 * len(backbones), 0.42 * n_max + 1.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(backbones), squeeze=False).ravel()
    for ax, backbone in zip(axes, backbones):
        block = data[data["backbone"] == backbone]
        n = len(block)
        y = np.arange(n)[::-1]  # first row (largest gain) on top, the average at the bottom
        gains = block["gain"].to_numpy(dtype=float)
        colors = [POSITIVE_COLOR if g >= 0 else NEGATIVE_COLOR for g in gains]
        bars = ax.barh(y, gains, color=colors, height=0.7)
        ticks = []
        for bar, rec in zip(bars, block.to_dict("records")):
            bar.set_gid(rec["dataset"])
            if rec["dataset"] == "average":
                bar.set_hatch("//")
                bar.set_edgecolor("black")
                ticks.append("Average")
            else:
                ticks.append(_named(rec["dataset"], rec["paper_dataset"]))
        span = max(float(np.abs(gains).max()), 1e-6)
        for yi, g in zip(y, gains):
            ax.text(g + (0.02 * span if g >= 0 else -0.02 * span), yi, f"{g:+.2f}",
                    va="center", ha="left" if g >= 0 else "right", fontsize=8)
        ax.set_yticks(y, ticks, fontsize=8)
        ax.axvline(0.0, color="black", linewidth=0.8)
        lo, hi = min(0.0, float(gains.min())), max(0.0, float(gains.max()))
        pad = 0.25 * span
        ax.set_xlim(lo - (pad if lo < 0 else 0.05 * span), hi + (pad if hi > 0 else 0.05 * span))
        ax.set_xlabel("Absolute improvement over zero-shot CLIP (%)", fontsize=9)
        ax.set_title(_named(backbone, block["paper_backbone"].iloc[0]), fontsize=10)
        ax.grid(True, axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=8)
    labels = experiment_labels(exp)
    methods = {lb: m for lb, m, _ in labels}
    label, shots = data["coop_label"].iloc[0], int(data["shots"].iloc[0])
    z_label = _pick_label(labels, None, "zeroshot", first_zero_shot, "zero-shot")[0]
    fig.suptitle(f"{label_display(label, methods[label])} ({shots} shots) vs. "
                 f"{label_display(z_label, methods[z_label])}")
    return save_figure(fig, out_png, out_pdf)
