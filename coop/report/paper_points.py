"""The paper's own numbers as points of Fig. 3's few-shot curves, from the tables the package ships
(`coop/report/paper/*.csv`; the paper publishes Fig. 3 as a plot only, so no per-shot number is shipped).

`paper_points` gathers every (paper dataset, paper backbone, label) number that those tables give at a
point of a curve: Table 1's and Table 2's ImageNet column (four backbones), Table 5 (ImageNet, RN50) and
Fig. 1 (RN50, per dataset; its row at the dataset's hand-crafted prompt of Table 6 is zero-shot CLIP, the
label "zeroshot" of Tables 1 and 5). Labels are the tables' own (their experiment's run labels), as the
tables match them. Every one of those numbers is at 16 shots, or zero-shot.

`fig3_paper_points` places them on an experiment's curves: a label of the experiment whose name is a paper
label, on a dataset and backbone that are the paper's own (`paper_names.is_paper_own`: never beside a toy
stand-in), at 0 shots for a zero-shot method and at 16 for the others.
"""
from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from coop.report.declarations import is_zero_shot
from coop.report.paper_names import ANALYSIS_BACKBONE, is_paper_own, paper_backbone, paper_dataset, paper_names_of
from coop.report.selection import experiment_labels, load_paper_table, num

__all__ = ["PAPER_SHOTS", "paper_points", "fig3_paper_points"]

PAPER_SHOTS = 16  # the shot count of every trained number in the shipped tables
_POINT_COLUMNS = ["paper_dataset", "paper_backbone", "label", "accuracy", "source"]


def paper_points() -> pd.DataFrame:
    """Columns paper_dataset, paper_backbone, label, accuracy, source (the table it comes from); one row per
    (paper_dataset, paper_backbone, label), the first table listed above giving it."""
    rows = []
    t1 = load_paper_table("table1_domain_generalization")
    rows += [("ImageNet", r["backbone"], r["method"], num(r["imagenet"]), "Table 1") for _, r in t1.iterrows()]
    t2 = load_paper_table("table2_prompt_ensembling")
    rows += [("ImageNet", b, r["method"], num(r[b]), "Table 2") for _, r in t2.iterrows() for b in t2.columns
             if b != "method"]
    t5 = load_paper_table("table5_finetuning_methods")
    rows += [("ImageNet", ANALYSIS_BACKBONE, r["method"], num(r["imagenet_16shot_rn50"]), "Table 5")
             for _, r in t5.iterrows()]
    hand_crafted = {r["dataset"]: r["hand_crafted_prompt"] for _, r in load_paper_table("table6_datasets").iterrows()}
    for _, r in load_paper_table("fig1_prompt_engineering").iterrows():
        rows.append((r["dataset"], ANALYSIS_BACKBONE, r["prompt"], num(r["accuracy"]), "Fig. 1"))
        if hand_crafted.get(r["dataset"]) == r["prompt"]:
            rows.append((r["dataset"], ANALYSIS_BACKBONE, "zeroshot", num(r["accuracy"]), "Fig. 1 (Table 6's prompt)"))
    df = pd.DataFrame(rows, columns=_POINT_COLUMNS).dropna(subset=["accuracy"])
    return df.drop_duplicates(["paper_dataset", "paper_backbone", "label"]).reset_index(drop=True)


def fig3_paper_points(table: pd.DataFrame, exp: Mapping | None) -> pd.DataFrame:
    """The paper's points on the curves of `table` (a few-shot table's rows of `exp`): columns dataset,
    backbone, method, variant, shots, label, accuracy, source. Empty without an experiment's run labels."""
    cols = ["dataset", "backbone", "method", "variant", "shots", "label", "accuracy", "source"]
    if not exp or not exp.get("runs"):
        return pd.DataFrame(columns=cols)
    names = paper_names_of(exp, None)
    points = paper_points().set_index(["paper_dataset", "paper_backbone", "label"])
    curves = set(table[["dataset", "backbone", "method", "variant"]].itertuples(index=False, name=None))
    rows = []
    for dataset, backbone, method, variant in sorted(curves):
        if not is_paper_own(names, [dataset], [backbone]):
            continue
        key = (paper_dataset(dataset, names), paper_backbone(backbone, names))
        for label, m, v in experiment_labels(exp):
            if (m, v) != (method, variant) or (*key, label) not in points.index:
                continue
            p = points.loc[(*key, label)]
            shots = 0 if is_zero_shot(method) else PAPER_SHOTS
            rows.append((dataset, backbone, method, variant, shots, label, float(p["accuracy"]), p["source"]))
    return pd.DataFrame(rows, columns=cols)
