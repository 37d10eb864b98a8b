"""Few-shot curves laid out like Figure 3 of the CoOp paper (Agg backend, no pyplot state).

Legend names, line styles and legend order are the methods' declarations (`coop.report.declarations`):
a method unknown to this process is named by itself, drawn in the default style and listed last.
`fig3_fewshot` / `fig3_data` are Fig. 3's entries in the artefact registry (`coop.report.artefacts`). Where a
dataset and backbone are the paper's own (a real run), the paper's numbers that the package ships are drawn
on its panel as hollow markers in the colour of their curve (`coop.report.paper_points`), never beside a toy
stand-in.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from coop.io import atomic_path
from coop.report import declarations
from coop.report.tables import average_over_datasets

__all__ = ["ACCURACY_MIN_SPAN", "shots_to_x", "series_label", "series_style", "widen_accuracy_axis", "plot_fewshot",
           "fig3_data", "fig3_fewshot"]

# The least span (percentage points) of an accuracy axis: seed noise of a point or two must not fill the plot.
ACCURACY_MIN_SPAN = 20.0

_COLORS = [
    "tab:blue", "tab:red", "tab:green", "tab:orange", "tab:purple",
    "tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan",
]


def shots_to_x(shots) -> np.ndarray:
    """Evenly spaced log2 axis: 0 shots -> 0, K shots -> log2(K) + 1 (1 -> 1, 16 -> 5)."""
    shots = np.asarray(shots, dtype=float)
    return np.where(shots > 0, np.log2(np.maximum(shots, 1.0)) + 1.0, 0.0)


def series_label(method: str, variant: str) -> str:
    """Legend label: the method's display name, e.g. "CoOp (end_m16)"; the variant is left out when it is
    "default", unless the method declares show_variant (CoOp)."""
    name = declarations.display_name(method)
    if declarations.show_variant(method) or variant != "default":
        return f"{name} ({variant})"
    return name


def widen_accuracy_axis(ax, min_span: float = ACCURACY_MIN_SPAN) -> tuple[float, float]:
    """Give an accuracy axis (%) at least `min_span` points around what it shows, kept inside [0, 100] where
    the data are, so that a spread of a point or two reads as noise, not a trend. Returns the new limits."""
    lo, hi = ax.get_ylim()
    if hi - lo < min_span:
        mid = (lo + hi) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
        if lo < 0:
            lo, hi = 0.0, hi - lo
        elif hi > 100 and lo - (hi - 100) >= 0:
            lo, hi = lo - (hi - 100), 100.0
        ax.set_ylim(lo, hi)
    return lo, hi


def series_style(method: str) -> dict:
    """Line/marker style of a method, as it declares it (e.g. a star at 0 shots for zero-shot CLIP, CoOp
    solid, the linear probe dashed); the default style for a method unknown here."""
    return declarations.series_style(method)


def _series_keys(table: pd.DataFrame) -> list[tuple[str, str]]:
    keys = table[["method", "variant"]].drop_duplicates().itertuples(index=False, name=None)
    return sorted(keys, key=lambda mv: (declarations.legend_order(mv[0]), mv))


_PAPER_LEGEND = "Paper (hollow markers, 16 shots or zero-shot)"


def _plot_paper(ax, points: pd.DataFrame, colors: dict, handles: dict, shots: list[int]) -> None:
    """The paper's numbers on one panel: a hollow marker per point (gid "paper/<method>/<variant>"), a dashed
    line from it across the panel for a zero-shot number, in the colour of its curve."""
    for rec in points.to_dict("records"):
        key = (rec["method"], rec["variant"])
        if key not in colors or rec["shots"] not in (0, *shots):
            continue
        x = float(shots_to_x([rec["shots"]])[0])
        style = series_style(rec["method"])
        (mark,) = ax.plot([x], [rec["accuracy"]], linestyle="none", marker=style.get("marker", "o"),
                          markersize=max(9, style.get("markersize", 5) + 4), markerfacecolor="none",
                          markeredgecolor=colors[key], markeredgewidth=1.6, gid=f"paper/{key[0]}/{key[1]}")
        if rec["shots"] == 0:
            ax.axhline(rec["accuracy"], color=colors[key], linestyle="--", linewidth=0.8, alpha=0.6)
        if _PAPER_LEGEND not in handles:
            handles[_PAPER_LEGEND] = ax.plot([], [], linestyle="none", marker="o", markersize=9,
                                             markerfacecolor="none", markeredgecolor="black")[0]


def _plot_panel(ax, panel: pd.DataFrame, colors: dict, handles: dict) -> None:
    """Draw every (method, variant) series of one dataset panel."""
    for method, variant in _series_keys(panel):
        s = panel[(panel["method"] == method) & (panel["variant"] == variant)].sort_values("shots")
        x, y, std = shots_to_x(s["shots"]), s["acc_mean"].to_numpy(), s["acc_std"].to_numpy()
        label = series_label(method, variant)
        color = colors[(method, variant)]
        (line,) = ax.plot(x, y, color=color, label=label, **series_style(method))
        if len(s) > 1:
            ax.fill_between(x, y - std, y + std, color=color, alpha=0.15, linewidth=0)
        elif std[0] > 0:
            ax.errorbar(x, y, yerr=std, color=color, linestyle="none", capsize=3)
        handles.setdefault(label, line)


def plot_fewshot(
    table: pd.DataFrame,
    out_png: str | os.PathLike,
    out_pdf: str | os.PathLike | None = None,
    backbone: str | None = None,
    ncols: int = 4,
    paper: pd.DataFrame | None = None,
) -> Figure:
    """Plot accuracy vs. shots per dataset, "Average" panel first, like CoOp Fig. 3.

    `table` is a `fewshot_table` (rows with dataset "average" are ignored and recomputed). `paper`: the
    paper's points to draw on the dataset panels (`paper_points.fig3_paper_points`), if any.
    With several backbones and `backbone=None`, the first in sorted order is plotted.
    Writes a 150 dpi PNG (and `out_pdf`) atomically and returns the Figure.
    """
    table = table[table["dataset"] != "average"]
    if table.empty:
        raise ValueError("empty few-shot table: nothing to plot")
    backbones = sorted(table["backbone"].unique())
    if backbone is None:
        backbone = backbones[0]
        suptitle = backbone
        if len(backbones) > 1:
            suptitle = f"{backbone} (first of {len(backbones)} backbones: {', '.join(backbones)})"
    elif backbone not in backbones:
        raise ValueError(f"backbone {backbone!r} not in table (have {backbones})")
    else:
        suptitle = backbone
    table = table[table["backbone"] == backbone]

    datasets = sorted(table["dataset"].unique())
    plural = "s" if len(datasets) > 1 else ""
    panels = [(f"Average over {len(datasets)} dataset{plural}", average_over_datasets(table))]
    panels += [(d, table[table["dataset"] == d]) for d in datasets]
    colors = {k: _COLORS[i % len(_COLORS)] for i, k in enumerate(_series_keys(table))}
    shots = sorted(table["shots"].unique())

    ncols = max(1, min(ncols, len(panels)))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(3.4 * ncols, 2.9 * nrows + 0.9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(panels):]:
        fig.delaxes(ax)

    handles: dict = {}
    for i, (ax, (title, panel)) in enumerate(zip(axes, panels)):
        _plot_panel(ax, panel, colors, handles)
        if paper is not None and i > 0:
            mine = paper[(paper["dataset"] == title) & (paper["backbone"] == backbone)]
            _plot_paper(ax, mine, colors, handles, [int(k) for k in shots])
        ax.set_title(title, fontsize=10)
        if i + ncols >= len(panels):  # no panel below this one
            ax.set_xlabel("Number of labeled training examples per class", fontsize=8)
        ax.set_xticks(shots_to_x(shots), [str(k) for k in shots])
        ax.set_xlim(-0.4, float(shots_to_x([max(shots)])[0]) + 0.4)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
        widen_accuracy_axis(ax)

    fig.suptitle(suptitle)
    fig.supylabel("Accuracy (%)", fontsize=10)
    labels = [series_label(m, v) for m, v in _series_keys(table)]
    labels = [lb for lb in dict.fromkeys([*labels, _PAPER_LEGEND]) if lb in handles]
    fig.legend(
        [handles[lb] for lb in labels], labels,
        loc="outside lower center", ncols=min(len(labels), ncols), fontsize=9, frameon=False,
    )

    return save_figure(fig, out_png, out_pdf)


def save_figure(fig: Figure, out_png, out_pdf=None) -> Figure:
    """PNG at 150 dpi (and the PDF twin), each written atomically."""
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=150)
    if out_pdf is not None:
        with atomic_path(out_pdf) as tmp:
            fig.savefig(tmp, format="pdf")
    return fig


def fig3_data(fewshot: pd.DataFrame, exp: Mapping | None) -> pd.DataFrame:
    """Fig. 3's numbers: the rows of the few-shot table (`fewshot_table`) that belong to `exp` (its
    datasets, backbones and labels; all rows when `exp` is empty)."""
    from coop.report.collect import select_experiment

    return select_experiment(fewshot, dict(exp)) if exp else fewshot.reset_index(drop=True)


def fig3_fewshot(fewshot: pd.DataFrame, exp: Mapping | None, out_png, out_pdf=None) -> Figure:
    """Fig. 3 of an experiment: `plot_fewshot` of its rows of the few-shot table (first backbone), with the
    paper's numbers on the panels of the paper's own datasets."""
    from coop.report.paper_points import fig3_paper_points

    table = fig3_data(fewshot, exp)
    return plot_fewshot(table, out_png, out_pdf, paper=fig3_paper_points(table, exp))
