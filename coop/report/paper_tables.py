"""The paper's tables rebuilt from runs.csv (and transfer.csv): Tables 1, 2, 3 and 5, and Fig. 1 as a table.

Each builder takes the experiment `exp` (`coop.report.selection`) and returns a long DataFrame (the format is
described in `coop.report.paper`), one row per cell, ours beside the paper's number; the difference only
where the cell's datasets and backbone are the paper's own (`paper_names.is_paper_own`), never beside a
stand-in. Labels come from the
experiment's `runs` mapping; zero-shot-ness is the method's declaration (`coop.report.declarations`). Table 4
(nearest words) is in `coop.report.paper_table4`; the artefact registry (`coop.report.artefacts`) names them.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from coop.report.declarations import first_zero_shot, is_zero_shot
from coop.report.paper_names import (
    ANALYSIS_BACKBONE,
    FEWSHOT_DATASETS,
    is_paper_own,
    paper_backbone,
    paper_dataset,
    paper_names_of,
    table1_column,
)
from coop.report.selection import (
    RUN_KEYS,
    TRANSFER_KEYS,
    backbones_of,
    cell,
    datasets_of,
    experiment_labels,
    filter_label,
    label_shots,
    load_paper_table,
    long_frame,
    num,
    prepare,
    r2,
    seed_average,
)

__all__ = [
    "table1_domain_generalization",
    "table2_prompt_ensembling",
    "table3_initialization",
    "table5_finetuning",
    "fig1_prompt_engineering",
]


# ----------------------------------------------------------------------------- Table 1

def _paper_table1() -> dict[tuple[str, str], dict[str, float]]:
    t = load_paper_table("table1_domain_generalization")
    cols = [c for c in t.columns if c not in ("backbone", "method")]
    return {(r["backbone"], r["method"]): {c: num(r[c]) for c in cols} for _, r in t.iterrows()}


def table1_domain_generalization(
    transfer: pd.DataFrame | None, runs: pd.DataFrame, exp: Mapping, paper_names: Mapping | None = None
) -> pd.DataFrame:
    """Table 1: trained on the source (at the largest shot count), tested on shifted targets.

    Long format, row keys (source, backbone, paper_backbone, label), column = dataset (the source
    first, then the targets); the source column comes from `runs`, the targets from `transfer`.
    The paper's numbers appear where the source stands for ImageNet, the column for one of Table
    1's datasets and the backbone for one of its four backbones. Extras: role (source/target),
    method, variant, shots.
    """
    names = paper_names_of(exp, paper_names)
    runs = prepare(runs, RUN_KEYS, "runs")
    if transfer is None:
        transfer = pd.DataFrame(columns=[*TRANSFER_KEYS, "accuracy"])
    transfer = prepare(transfer, TRANSFER_KEYS, "transfer")
    sources = datasets_of(exp, runs)
    targets = [str(t) for t in exp["targets"]] if exp.get("targets") else sorted(
        set(transfer["target"]) - set(sources))
    paper = _paper_table1()
    rows = []
    for source in sources:
        from_imagenet = table1_column(source, names) == "imagenet"
        for backbone in backbones_of(exp, runs, transfer):
            pb = paper_backbone(backbone, names)
            for label, method, variant in experiment_labels(exp):
                sel = filter_label(runs[runs["backbone"] == backbone], exp, method, variant)
                tsel = filter_label(transfer[transfer["backbone"] == backbone], exp, method, variant)
                for dataset in [source, *[t for t in targets if t != source]]:
                    if dataset == source:
                        acc = sel.loc[sel["dataset"] == source, "accuracy"]
                    else:
                        acc = _transfer_acc(tsel, sel, source, dataset, method)
                    pcol = table1_column(dataset, names)
                    pval = paper.get((pb, label), {}).get(pcol, math.nan) if from_imagenet and pcol else math.nan
                    own = is_paper_own(names, [source, dataset], [backbone])
                    shots = label_shots(exp, method, sel)
                    rows.append({
                        "source": source, "backbone": backbone, "paper_backbone": pb, "label": label,
                        "column": dataset, "paper_column": pcol, **cell(acc, pval, own),
                        "role": "source" if dataset == source else "target",
                        "method": method, "variant": variant, "shots": shots,
                    })
    return long_frame(rows, ["source", "backbone", "paper_backbone", "label"],
                      ["role", "method", "variant", "shots"])


def _transfer_acc(tsel: pd.DataFrame, sel: pd.DataFrame, source: str, target: str, method: str) -> pd.Series:
    rows = tsel[tsel["target"] == target]
    own = rows[rows["source"] == source]
    if len(own) or not is_zero_shot(method, sel):
        return own["accuracy"]
    # A zero-shot classifier does not depend on the source: any source, or its run on the target.
    if len(rows):
        return rows.drop_duplicates("seed")["accuracy"]
    return sel.loc[sel["dataset"] == target, "accuracy"]


# ----------------------------------------------------------------------------- Table 2

def table2_prompt_ensembling(
    runs: pd.DataFrame, exp: Mapping, paper_names: Mapping | None = None
) -> pd.DataFrame:
    """Table 2: hand-crafted prompt vs. prompt ensemble vs. CoOp, one column per backbone.

    Long format, row keys (dataset, paper_dataset, label), column = backbone, paper_column = the
    paper's backbone name. The paper's numbers appear on the dataset standing for ImageNet.
    Extras: method, variant, shots.
    """
    names = paper_names_of(exp, paper_names)
    runs = prepare(runs, RUN_KEYS, "runs")
    t = load_paper_table("table2_prompt_ensembling")
    paper = {r["method"]: {c: num(r[c]) for c in t.columns if c != "method"} for _, r in t.iterrows()}
    rows = []
    for dataset in datasets_of(exp, runs):
        pd_name = paper_dataset(dataset, names)
        for label, method, variant in experiment_labels(exp):
            sel = filter_label(runs[runs["dataset"] == dataset], exp, method, variant)
            for backbone in backbones_of(exp, runs):
                pb = paper_backbone(backbone, names)
                pval = paper.get(label, {}).get(pb, math.nan) if pd_name == "ImageNet" else math.nan
                rows.append({
                    "dataset": dataset, "paper_dataset": pd_name, "label": label,
                    "column": backbone, "paper_column": pb,
                    **cell(sel.loc[sel["backbone"] == backbone, "accuracy"], pval,
                           is_paper_own(names, [dataset], [backbone])),
                    "method": method, "variant": variant,
                    "shots": label_shots(exp, method, sel),
                })
    return long_frame(rows, ["dataset", "paper_dataset", "label"], ["method", "variant", "shots"])


# ----------------------------------------------------------------------------- Table 3

def table3_initialization(
    runs: pd.DataFrame, exp: Mapping, paper_names: Mapping | None = None
) -> pd.DataFrame:
    """Table 3: context initialisation, accuracy averaged over the experiment's datasets.

    Long format, row key label (the init, e.g. "random", "a photo of a"), column = backbone.
    ours is the mean ± std over seeds of the per-seed average over datasets (seeds lacking a
    dataset are left out); the paper's 11-dataset average (M=4, RN50) appears in the column of the
    backbone standing for RN50; the difference only for an average over the paper's own 11 datasets on its
    own RN50. Extras: n_datasets, paper_context_length, method, variant, shots.
    """
    names = paper_names_of(exp, paper_names)
    runs = prepare(runs, RUN_KEYS, "runs")
    t = load_paper_table("table3_initialization")
    paper = {str(r["init"]): (num(r["avg_accuracy_11_datasets"]), num(r["context_length"]))
             for _, r in t.iterrows()}
    datasets = datasets_of(exp, runs)
    # The paper's number is the average over its 11 datasets: a difference only for an average over them.
    eleven = is_paper_own(names, datasets) and sorted(datasets) == sorted(FEWSHOT_DATASETS)
    rows = []
    for label, method, variant in experiment_labels(exp):
        sel = filter_label(runs, exp, method, variant)
        for backbone in backbones_of(exp, runs):
            pb = paper_backbone(backbone, names)
            pval, pctx = paper.get(label, (math.nan, math.nan))
            if pb != ANALYSIS_BACKBONE:
                pval, pctx = math.nan, math.nan
            avg = seed_average(sel[sel["backbone"] == backbone], datasets)
            rows.append({
                "label": label, "column": backbone, "paper_column": pb,
                **cell(avg.values(), pval, eleven and is_paper_own(names, backbones=[backbone])),
                "n_datasets": len(datasets), "paper_context_length": pctx,
                "method": method, "variant": variant,
                "shots": label_shots(exp, method, sel),
            })
    return long_frame(rows, ["label"], ["n_datasets", "paper_context_length", "method", "variant", "shots"])


# ----------------------------------------------------------------------------- Table 5

def table5_finetuning(
    runs: pd.DataFrame, exp: Mapping, paper_names: Mapping | None = None
) -> pd.DataFrame:
    """Table 5: CoOp vs. other ways to adapt CLIP, with each row's gain over zero-shot CLIP.

    Long format, row keys (backbone, paper_backbone, label), column = dataset. The paper's numbers
    (ImageNet, 16 shots, RN50) appear where the dataset stands for ImageNet and the backbone for
    RN50. Extras: ours_delta (ours_mean minus the zero-shot row's ours_mean, same dataset and
    backbone), paper_delta (the paper's delta_vs_zeroshot), method, variant, shots. The zero-shot
    row is the label "zeroshot", else `first_zero_shot` of the labels (zero-shot CLIP before ensembling).
    """
    names = paper_names_of(exp, paper_names)
    runs = prepare(runs, RUN_KEYS, "runs")
    t = load_paper_table("table5_finetuning_methods")
    pcol_name = [c for c in t.columns if c not in ("method", "delta_vs_zeroshot")][0]
    paper = {str(r["method"]): (num(r[pcol_name]), num(r["delta_vs_zeroshot"])) for _, r in t.iterrows()}
    labels = experiment_labels(exp)
    zs_label = _zero_shot_label(labels)
    rows = []
    for backbone in backbones_of(exp, runs):
        pb = paper_backbone(backbone, names)
        for dataset in datasets_of(exp, runs):
            is_paper = pb == ANALYSIS_BACKBONE and paper_dataset(dataset, names) == "ImageNet"
            pcol = pcol_name if paper_dataset(dataset, names) == "ImageNet" else ""
            cells = {}
            for label, method, variant in labels:
                sel = filter_label(runs[(runs["backbone"] == backbone) & (runs["dataset"] == dataset)],
                                   exp, method, variant)
                pval, pdelta = paper.get(label, (math.nan, math.nan)) if is_paper else (math.nan, math.nan)
                cells[label] = {
                    "backbone": backbone, "paper_backbone": pb, "label": label,
                    "column": dataset, "paper_column": pcol,
                    **cell(sel["accuracy"], pval, is_paper_own(names, [dataset], [backbone])),
                    "paper_delta": pdelta, "method": method, "variant": variant,
                    "shots": label_shots(exp, method, sel),
                }
            zs = cells[zs_label]["ours_mean"] if zs_label else math.nan
            for c in cells.values():
                c["ours_delta"] = r2(c["ours_mean"] - zs)
                rows.append(c)
    df = long_frame(rows, ["backbone", "paper_backbone", "label"],
                    ["ours_delta", "paper_delta", "method", "variant", "shots"])
    key = {lb: i for i, (lb, _, _) in enumerate(labels)}
    order = {b: i for i, b in enumerate(backbones_of(exp, runs))}
    df = df.sort_values(["backbone", "label"], kind="mergesort",
                        key=lambda s: s.map(order if s.name == "backbone" else key))
    return df.reset_index(drop=True)


def _zero_shot_label(labels: list[tuple[str, str, str]]) -> str | None:
    for label, _, _ in labels:
        if label == "zeroshot":
            return label
    return first_zero_shot([(lb, m) for lb, m, _ in labels])


# ----------------------------------------------------------------------------- Fig. 1

def fig1_prompt_engineering(
    runs: pd.DataFrame, exp: Mapping, paper_names: Mapping | None = None
) -> pd.DataFrame:
    """Fig. 1: hand-written prompt variants (labels are the prompt strings) vs. CoOp, per dataset.

    Long format, row keys (backbone, paper_backbone, label), column = dataset, paper_column = the
    paper's dataset name. The paper's numbers (RN50; CoOp at 16 shots) appear where the backbone
    stands for RN50 and Fig. 1 has the (dataset, prompt) pair. Extras: method, variant, shots.
    """
    names = paper_names_of(exp, paper_names)
    runs = prepare(runs, RUN_KEYS, "runs")
    t = load_paper_table("fig1_prompt_engineering")
    paper = {(str(r["dataset"]), str(r["prompt"])): num(r["accuracy"]) for _, r in t.iterrows()}
    rows = []
    for backbone in backbones_of(exp, runs):
        pb = paper_backbone(backbone, names)
        for label, method, variant in experiment_labels(exp):
            sel = filter_label(runs[runs["backbone"] == backbone], exp, method, variant)
            for dataset in datasets_of(exp, runs):
                pname = paper_dataset(dataset, names)
                pval = paper.get((pname, label), math.nan) if pb == ANALYSIS_BACKBONE else math.nan
                rows.append({
                    "backbone": backbone, "paper_backbone": pb, "label": label,
                    "column": dataset, "paper_column": pname,
                    **cell(sel.loc[sel["dataset"] == dataset, "accuracy"], pval,
                           is_paper_own(names, [dataset], [backbone])),
                    "method": method, "variant": variant,
                    "shots": label_shots(exp, method, sel),
                })
    return long_frame(rows, ["backbone", "paper_backbone", "label"], ["method", "variant", "shots"])


