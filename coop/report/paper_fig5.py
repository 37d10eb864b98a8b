"""Fig. 5 of the CoOp paper from runs.csv (Agg backend, no pyplot state): context length and backbones.

* `plot_context_length` (Fig. 5a): accuracy averaged over datasets vs. context length M (the
  `n_ctx` / `param_n_ctx` column, else an "m<M>" in the label or variant), one line per
  (class_token_position, csc) of the CoOp labels.
* `plot_backbones` (Fig. 5b): grouped bars, one group per backbone, one bar per label, the average
  over datasets at the largest shot count with the std over seeds of that average as error bars.

Selection, shots and seeds as in `coop.report.paper_figures` (Fig. 4), whose colours, markers and names these
share. The y axis says "Accuracy on <dataset>" for one dataset, else the average over n; an accuracy axis
spans at least `figures.ACCURACY_MIN_SPAN` points (seed noise must not look like a trend); error bars are the
std over seeds. Each plot has a `*_data` twin returning the numbers drawn.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from coop.report.declarations import is_zero_shot, label_display, learns_context
from coop.report.figures import save_figure, widen_accuracy_axis
from coop.report.paper_figures import _COLORS, _MARKERS, _accuracy_label, _named
from coop.report.paper_names import paper_backbone, paper_names_of
from coop.report.selection import (
    RUN_KEYS,
    backbones_of,
    datasets_of,
    experiment_labels,
    filter_label,
    label_shots,
    mean_std,
    prepare,
    seed_average,
)

__all__ = ["context_length_data", "plot_context_length", "backbone_data", "plot_backbones"]


# ----------------------------------------------------------------------------- Fig. 5a

def _param(rows: pd.DataFrame, name: str):
    """The single non-missing value of column `name` or `param_<name>` in rows, else None."""
    for col in (name, f"param_{name}"):
        if col in rows.columns:
            vals = rows[col].dropna()
            vals = vals[vals.astype(str).str.strip() != ""]
            if len(vals):
                uniq = vals.astype(str).unique()
                if len(uniq) > 1:
                    raise ValueError(f"rows of one label disagree on {col}: {sorted(uniq)}")
                return vals.iloc[0]
    return None


def _as_bool(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "1.0")
    return bool(value)


def _tokens(*names: str) -> list[str]:
    return [t for n in names for t in re.split(r"[^A-Za-z0-9]+", str(n).lower()) if t]


def context_length_data(runs: pd.DataFrame, exp: Mapping) -> pd.DataFrame:
    """Fig. 5a's numbers: per backbone and CoOp label, the dataset-average accuracy and its M.

    Columns: backbone, label, method, variant, n_ctx, class_token_position, csc, series, shots,
    acc_mean, acc_std, n_seeds, n_datasets. CoOp labels: those whose method learns a context (declared
    few-shot and interpretable); n_ctx, class_token_position and csc come from the `<name>` or `param_<name>`
    columns of runs, else from the label/variant ("m16", "middle"/"front", "csc"; defaults end, unified).
    acc_mean / acc_std are the mean and std over seeds of the per-seed average over datasets.
    Zero-shot labels get rows too (n_ctx NaN, series "zero-shot: <label>").
    """
    runs = prepare(runs, RUN_KEYS, "runs")
    datasets = datasets_of(exp, runs)
    rows = []
    for backbone in backbones_of(exp, runs):
        for label, method, variant in experiment_labels(exp):
            if not learns_context(method) and not is_zero_shot(method):
                continue
            sel = filter_label(runs[runs["backbone"] == backbone], exp, method, variant)
            sel = sel[sel["dataset"].isin(datasets)]
            mean, std, n = mean_std(seed_average(sel, datasets).values())
            rec = {"backbone": backbone, "label": label, "method": method, "variant": variant,
                   "shots": label_shots(exp, method, sel),
                   "acc_mean": mean, "acc_std": std, "n_seeds": n, "n_datasets": len(datasets)}
            if is_zero_shot(method, sel):
                rec.update(n_ctx=math.nan, class_token_position="", csc=False, series=f"zero-shot: {label}")
            else:
                tokens = _tokens(label, variant)
                n_ctx = _param(sel, "n_ctx")
                if n_ctx is None:
                    found = [int(t[1:]) for t in tokens if re.fullmatch(r"m\d+", t)]
                    if not found:
                        raise ValueError(f"label {label!r} ({method}/{variant}): no n_ctx column in runs and "
                                         "no 'm<M>' in the label or variant")
                    n_ctx = found[0]
                pos = _param(sel, "class_token_position")
                if pos is None:
                    pos = next((t for t in tokens if t in ("middle", "front", "end")), "end")
                csc = _param(sel, "csc")
                csc = _as_bool(csc) if csc is not None else "csc" in tokens
                rec.update(n_ctx=int(float(n_ctx)), class_token_position=str(pos), csc=csc,
                           series=f"{pos}, {'class-specific' if csc else 'unified'}")
            rows.append(rec)
    cols = ["backbone", "label", "method", "variant", "n_ctx", "class_token_position", "csc", "series",
            "shots", "acc_mean", "acc_std", "n_seeds", "n_datasets"]
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values(["backbone", "series", "n_ctx"], kind="mergesort").reset_index(drop=True)


def plot_context_length(
    runs: pd.DataFrame,
    exp: Mapping,
    out_png: str | os.PathLike,
    out_pdf: str | os.PathLike | None = None,
    paper_names: Mapping | None = None,
) -> Figure:
    """Fig. 5a: dataset-average accuracy vs. context length, one panel per backbone.

    One line per (class_token_position, csc) with its points at x = n_ctx (the line's gid is its
    series name, e.g. "end, unified"), error bars = std over seeds of the dataset average;
    zero-shot labels are dashed horizontal lines.
    """
    names = paper_names_of(exp, paper_names)
    data = context_length_data(runs, exp)
    coop = data[data["n_ctx"].notna() & (data["n_seeds"] > 0)]
    if coop.empty:
        raise ValueError("no CoOp results to plot against context length")
    backbones = list(dict.fromkeys(data["backbone"]))
    fig = Figure(figsize=(4.6 * len(backbones), 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(backbones), squeeze=False).ravel()
    series = list(dict.fromkeys(coop["series"]))
    style = {s: (_COLORS[i % len(_COLORS)], _MARKERS[i % len(_MARKERS)]) for i, s in enumerate(series)}
    for ax, backbone in zip(axes, backbones):
        block = coop[coop["backbone"] == backbone]
        for s in series:
            line = block[block["series"] == s].sort_values("n_ctx")
            if line.empty:
                continue
            x = line["n_ctx"].to_numpy(dtype=float)
            y, err = line["acc_mean"].to_numpy(dtype=float), line["acc_std"].to_numpy(dtype=float)
            color, marker = style[s]
            ax.plot(x, y, marker=marker, color=color, label=s, gid=s)
            ax.errorbar(x, y, yerr=err, fmt="none", ecolor=color, capsize=3, alpha=0.7)
        zs = data[(data["backbone"] == backbone) & data["n_ctx"].isna() & (data["n_seeds"] > 0)]
        for i, rec in enumerate(zs.to_dict("records")):
            ax.axhline(rec["acc_mean"], color="gray", linestyle=["--", ":", "-."][i % 3], linewidth=1,
                       label=label_display(rec["label"], rec["method"]), gid=rec["series"])
        xs = sorted(int(v) for v in block["n_ctx"].unique())
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [str(v) for v in xs])
        ax.minorticks_off()
        ax.set_xlabel("Context length (M)", fontsize=9)
        ax.set_ylabel(_accuracy_label(datasets_of(exp, runs), names), fontsize=9)
        ax.set_title(_named(backbone, paper_backbone(backbone, names)), fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
        widen_accuracy_axis(ax)
        ax.legend(fontsize=8, frameon=False)
    shots = int(coop["shots"].max())
    fig.suptitle(f"Context length ({shots} shots)")
    return save_figure(fig, out_png, out_pdf)


# ----------------------------------------------------------------------------- Fig. 5b

def backbone_data(runs: pd.DataFrame, exp: Mapping, paper_names: Mapping | None = None) -> pd.DataFrame:
    """Fig. 5b's numbers: per backbone and label, the average over datasets at the largest shots.

    Columns: backbone, paper_backbone, label, method, variant, shots, acc_mean, acc_std, n_seeds,
    n_datasets (mean / std over seeds of the per-seed dataset average; NaN without runs).
    """
    names = paper_names_of(exp, paper_names)
    runs = prepare(runs, RUN_KEYS, "runs")
    datasets = datasets_of(exp, runs)
    rows = []
    for backbone in backbones_of(exp, runs):
        for label, method, variant in experiment_labels(exp):
            sel = filter_label(runs[runs["backbone"] == backbone], exp, method, variant)
            mean, std, n = mean_std(seed_average(sel, datasets).values())
            rows.append({"backbone": backbone, "paper_backbone": paper_backbone(backbone, names),
                         "label": label, "method": method, "variant": variant,
                         "shots": label_shots(exp, method, sel),
                         "acc_mean": mean, "acc_std": std, "n_seeds": n, "n_datasets": len(datasets)})
    cols = ["backbone", "paper_backbone", "label", "method", "variant", "shots",
            "acc_mean", "acc_std", "n_seeds", "n_datasets"]
    return pd.DataFrame(rows, columns=cols)


def plot_backbones(
    runs: pd.DataFrame,
    exp: Mapping,
    out_png: str | os.PathLike,
    out_pdf: str | os.PathLike | None = None,
    paper_names: Mapping | None = None,
) -> Figure:
    """Fig. 5b: grouped bars, one group per backbone, one bar per label (config order).

    Heights are the dataset-average accuracy, error bars the std over seeds of that average; a
    missing result is a bar of height 0 with no label. Every bar's gid is "<backbone>/<label>".
    """
    names = paper_names_of(exp, paper_names)
    data = backbone_data(runs, exp, names)
    if data["n_seeds"].sum() == 0:
        raise ValueError("no results to plot for any backbone")
    backbones = list(dict.fromkeys(data["backbone"]))
    labels = list(dict.fromkeys(data["label"]))
    methods = dict(zip(data["label"], data["method"]))
    width = 0.8 / len(labels)
    fig = Figure(figsize=(max(4.5, 1.1 * len(backbones) * len(labels) * 0.6 + 2.0), 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    x0 = np.arange(len(backbones))
    for j, label in enumerate(labels):
        sub = data[data["label"] == label].set_index("backbone").reindex(backbones)
        heights = sub["acc_mean"].to_numpy(dtype=float)
        errs = np.where(sub["n_seeds"].fillna(0).to_numpy() > 1, sub["acc_std"].to_numpy(dtype=float), 0.0)
        errs = np.nan_to_num(errs)
        x = x0 + (j - (len(labels) - 1) / 2) * width
        bars = ax.bar(x, np.nan_to_num(heights), width * 0.92, color=_COLORS[j % len(_COLORS)],
                      label=label_display(label, methods[label]))
        has_err = errs > 0
        if has_err.any():
            ax.errorbar(x[has_err], heights[has_err], yerr=errs[has_err], fmt="none", ecolor="black",
                        elinewidth=1, capsize=3)
        for bar, backbone, h, e in zip(bars, backbones, heights, errs):
            bar.set_gid(f"{backbone}/{label}")
            if not math.isnan(h):
                ax.annotate(f"{h:.1f}", (bar.get_x() + bar.get_width() / 2, h + e), xytext=(0, 2),
                            textcoords="offset points", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x0, [_named(b, paper_backbone(b, names)) for b in backbones], fontsize=9)
    ax.set_ylabel(_accuracy_label(datasets_of(exp, runs), names), fontsize=9)
    shots = [int(s) for s in data["shots"].dropna() if s]
    ax.set_title(f"Backbones ({max(shots)} shots)" if shots else "Backbones", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(fontsize=8, frameon=False, ncols=min(len(labels), 4), loc="upper left")
    top = np.nanmax((data["acc_mean"] + data["acc_std"].fillna(0)).to_numpy(dtype=float))
    ax.set_ylim(0, top * 1.18 if top > 0 else 1)
    return save_figure(fig, out_png, out_pdf)
