"""The paper's tables (and Fig. 1) rebuilt from our runs, each cell beside the paper's own number.

Inputs are the frames the workflow writes: `runs` (runs.csv, one row per run: dataset, backbone,
method, variant, shots, seed, accuracy, ...; extra columns such as `param_n_ctx` are ignored here),
`transfer` (transfer.csv, one row per run x target: source, target, backbone, method, variant,
shots, seed, accuracy, ...) and, for Table 4, the nearest-word records of the learned contexts.
`exp` is one experiment of the config: {"datasets", "backbones", "shots", "seeds", "runs"
(label -> "method/variant"), "targets" (Table 1 only)}. Zero-shot-like methods (zeroshot,
ensemble) are taken at shots 0 / seed 0 whatever the experiment's shots; every other method at the
experiment's largest shot count and its seeds. `paper_names` ({"datasets": {ours: real},
"backbones": {ours: real}}, identity where missing; taken from exp["paper_names"] when not given)
says which real dataset/backbone a toy one stands in for; the fixed tables below turn real keys
(imagenet, dtd, RN50-quickgelu, ...) into the names the paper CSVs use (ImageNet, DTD, RN50, ...).

Long format (the DataFrame each builder returns, written as CSV), one row per cell:

    <row keys...>, column, paper_column, ours, paper, diff, ours_mean, ours_std, n_seeds, <extras...>

* row keys: the table's row identity, every column before `column` (e.g. backbone,
  paper_backbone, label);
* column: our name of the table column (a dataset or a backbone key); paper_column: the paper's
  name of that column ("" when it has none);
* ours: "mean ± std" over seeds (plain "mean" for a single seed, "" when we have no run);
  ours_mean / ours_std (sample std, ddof=1; 0 for one seed) / n_seeds: the same as numbers;
* paper: the paper's number (NaN where the paper has no such cell); diff = ours_mean - paper
  (NaN unless both exist). Numbers are rounded to 2 decimals.
* extras: provenance (method, variant, shots, ...) and table-specific values (Table 5's
  ours_delta / paper_delta vs. the zero-shot row).

Table 4 (nearest words) follows the same layout with strings: ours/paper are "token (distance)",
with token, distance, paper_token, paper_distance as extras and no diff. Its CSC companion
(`table4_nearest_words_csc`) is a plain long table (one row per dataset x class x index).

Markdown (`paper_markdown`, written by `write_paper_table` beside the CSV) is the wide view: one
line per row key, and per column the sub-columns "<column> (<paper_column>) ours | paper | diff"
(plus Table 5's deltas vs. zero-shot); diffs and deltas are signed. A table without a `column`
column is rendered as it is.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from importlib import resources

import pandas as pd

from coop.io import write_text
from coop.report.tables import write_table

__all__ = [
    "ZERO_SHOT_METHODS",
    "PAPER_DATASETS",
    "PAPER_BACKBONES",
    "TABLE1_COLUMNS",
    "VALUE_COLUMNS",
    "paper_csv",
    "load_paper_table",
    "real_dataset",
    "real_backbone",
    "paper_dataset",
    "paper_backbone",
    "table1_column",
    "experiment_labels",
    "select_label_runs",
    "seed_average",
    "table1_domain_generalization",
    "table2_prompt_ensembling",
    "table3_initialization",
    "table4_nearest_words",
    "table4_nearest_words_csc",
    "table5_finetuning",
    "fig1_prompt_engineering",
    "paper_wide",
    "paper_markdown",
    "write_paper_table",
]

ZERO_SHOT_METHODS = ("zeroshot", "ensemble")

# Real dataset keys -> the dataset names of the paper CSVs.
PAPER_DATASETS = {
    "imagenet": "ImageNet",
    "caltech101": "Caltech101",
    "oxford_pets": "OxfordPets",
    "stanford_cars": "StanfordCars",
    "oxford_flowers": "Flowers102",
    "food101": "Food101",
    "fgvc_aircraft": "FGVCAircraft",
    "sun397": "SUN397",
    "dtd": "DTD",
    "eurosat": "EuroSAT",
    "ucf101": "UCF101",
    "imagenetv2": "ImageNetV2",
    "imagenet_sketch": "ImageNetSketch",
    "imagenet_a": "ImageNetA",
    "imagenet_r": "ImageNetR",
}
# Real dataset keys -> Table 1's column names.
TABLE1_COLUMNS = {
    "imagenet": "imagenet",
    "imagenetv2": "imagenet_v2",
    "imagenet_sketch": "imagenet_sketch",
    "imagenet_a": "imagenet_a",
    "imagenet_r": "imagenet_r",
}
# Real (open_clip) backbone keys -> the backbone names of the paper CSVs.
PAPER_BACKBONES = {
    "RN50-quickgelu": "RN50",
    "RN101-quickgelu": "RN101",
    "ViT-B-32-quickgelu": "ViT-B/32",
    "ViT-B-16-quickgelu": "ViT-B/16",
}
# The backbone of the paper's single-backbone analyses (Tables 3 and 5, Fig. 1).
_ANALYSIS_BACKBONE = "RN50"

VALUE_COLUMNS = ["ours", "paper", "diff", "ours_mean", "ours_std", "n_seeds"]
_RUN_KEYS = ["dataset", "backbone", "method", "variant", "shots", "seed"]
_TRANSFER_KEYS = ["source", "target", "backbone", "method", "variant", "shots", "seed"]
_MD_VALUES = {  # long-format column -> Markdown sub-column name
    "ours": "ours", "paper": "paper", "diff": "diff",
    "ours_delta": "ours Δ zero-shot", "paper_delta": "paper Δ zero-shot",
}
_SIGNED = ("diff", "ours_delta", "paper_delta")


# ----------------------------------------------------------------------------- paper numbers

def paper_csv(name: str):
    """The packaged paper CSV/README `name` (a Traversable; `coop/report/paper/<name>`)."""
    return resources.files("coop.report").joinpath("paper", name)


@lru_cache(maxsize=None)
def _load(name: str) -> pd.DataFrame:
    with paper_csv(name).open("r", encoding="utf-8") as f:
        # Keep "N/A" and other words as strings; only empty cells are missing.
        return pd.read_csv(f, keep_default_na=False, na_values=[""])


def load_paper_table(name: str) -> pd.DataFrame:
    """One of the paper's CSVs, e.g. "table1_domain_generalization" (".csv" optional); a copy."""
    if not name.endswith(".csv"):
        name += ".csv"
    return _load(name).copy()


def _num(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# ----------------------------------------------------------------------------- names

def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


_DATASET_ALIASES = {
    **{_norm(k): k for k in PAPER_DATASETS},
    **{_norm(v): k for k, v in PAPER_DATASETS.items()},
    **{_norm(v): k for k, v in TABLE1_COLUMNS.items()},
}
_BACKBONE_ALIASES = {
    **{_norm(k): v for k, v in PAPER_BACKBONES.items()},
    **{_norm(k.removesuffix("-quickgelu")): v for k, v in PAPER_BACKBONES.items()},
    **{_norm(v): v for v in PAPER_BACKBONES.values()},
}


def _paper_names(exp: Mapping | None, paper_names: Mapping | None) -> Mapping:
    if paper_names is not None:
        return paper_names
    return (exp or {}).get("paper_names") or {}


def real_dataset(dataset: str, paper_names: Mapping | None = None) -> str:
    """The real dataset key our `dataset` stands in for (itself when unmapped)."""
    return str(((paper_names or {}).get("datasets") or {}).get(dataset, dataset))


def real_backbone(backbone: str, paper_names: Mapping | None = None) -> str:
    """The real backbone key our `backbone` stands in for (itself when unmapped)."""
    return str(((paper_names or {}).get("backbones") or {}).get(backbone, backbone))


def _canonical_dataset(dataset: str, paper_names: Mapping | None) -> str | None:
    return _DATASET_ALIASES.get(_norm(real_dataset(dataset, paper_names)))


def paper_dataset(dataset: str, paper_names: Mapping | None = None) -> str:
    """The paper's name of our `dataset` ("ImageNet", "DTD", ...), "" when it has none."""
    key = _canonical_dataset(dataset, paper_names)
    return PAPER_DATASETS.get(key, "") if key else ""


def table1_column(dataset: str, paper_names: Mapping | None = None) -> str:
    """Table 1's column name of our `dataset` ("imagenet", "imagenet_v2", ...), "" when none."""
    key = _canonical_dataset(dataset, paper_names)
    return TABLE1_COLUMNS.get(key, "") if key else ""


def paper_backbone(backbone: str, paper_names: Mapping | None = None) -> str:
    """The paper's name of our `backbone` ("RN50", "ViT-B/16", ...), "" when it has none."""
    return _BACKBONE_ALIASES.get(_norm(real_backbone(backbone, paper_names)), "")


# ----------------------------------------------------------------------------- selecting runs

def _parse_run(run: str) -> tuple[str, str]:
    method, _, variant = str(run).partition("/")
    return method, variant or "default"


def experiment_labels(exp: Mapping) -> list[tuple[str, str, str]]:
    """(label, method, variant) of every run label of `exp`, in config order."""
    runs = exp.get("runs") or {}
    if not runs:
        raise ValueError("experiment has no 'runs' (label -> method/variant)")
    return [(str(label), *_parse_run(run)) for label, run in runs.items()]


def _is_zero_shot(method: str) -> bool:
    return method in ZERO_SHOT_METHODS


def _prepare(df: pd.DataFrame, keys: list[str], what: str) -> pd.DataFrame:
    missing = [c for c in [*keys, "accuracy"] if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}")
    df = df.copy()
    for c in keys:
        if c in ("shots", "seed"):
            df[c] = pd.to_numeric(df[c]).astype(int)
        else:
            df[c] = df[c].astype(str)
    df["accuracy"] = pd.to_numeric(df["accuracy"]).astype(float)
    dup = df.duplicated(keys, keep=False)
    if dup.any():
        first = df.loc[dup, keys].iloc[0].to_dict()
        raise ValueError(f"{what}: {int(dup.sum())} duplicate rows (same cell and seed), e.g. {first}")
    return df


def _largest_shots(exp: Mapping, rows: pd.DataFrame) -> int | None:
    if exp.get("shots"):
        return max(int(s) for s in exp["shots"])
    trained = rows.loc[rows["shots"] > 0, "shots"]
    return int(trained.max()) if len(trained) else None


def _filter_label(df: pd.DataFrame, exp: Mapping, method: str, variant: str) -> pd.DataFrame:
    """Rows of one label at the right shot count (0 for zero-shot methods) and seeds."""
    rows = df[(df["method"] == method) & (df["variant"] == variant)]
    if _is_zero_shot(method):
        return rows[rows["shots"] == 0]
    shots = _largest_shots(exp, rows)
    rows = rows[rows["shots"] == shots]
    if exp.get("seeds"):
        rows = rows[rows["seed"].isin([int(s) for s in exp["seeds"]])]
    return rows


def select_label_runs(runs: pd.DataFrame, exp: Mapping, label: str) -> pd.DataFrame:
    """The runs of one label of `exp` on its datasets and backbones (shots/seeds as documented)."""
    runs = _prepare(runs, _RUN_KEYS, "runs")
    labels = {lb: (m, v) for lb, m, v in experiment_labels(exp)}
    if label not in labels:
        raise KeyError(f"label {label!r} not in experiment runs {sorted(labels)}")
    return _select_runs(runs, exp, *labels[label])


def _select_runs(runs: pd.DataFrame, exp: Mapping, method: str, variant: str) -> pd.DataFrame:
    rows = _filter_label(runs, exp, method, variant)
    if exp.get("datasets"):
        rows = rows[rows["dataset"].isin(exp["datasets"])]
    if exp.get("backbones"):
        rows = rows[rows["backbone"].isin(exp["backbones"])]
    return rows


def _datasets(exp: Mapping, runs: pd.DataFrame) -> list[str]:
    return [str(d) for d in exp["datasets"]] if exp.get("datasets") else sorted(runs["dataset"].unique())


def _backbones(exp: Mapping, *frames: pd.DataFrame) -> list[str]:
    if exp.get("backbones"):
        return [str(b) for b in exp["backbones"]]
    return sorted(set().union(*(set(f["backbone"]) for f in frames)))


def seed_average(rows: pd.DataFrame, datasets: Sequence[str]) -> dict[int, float]:
    """seed -> mean accuracy over `datasets`, for the seeds that have every dataset."""
    rows = rows[rows["dataset"].isin(datasets)]
    out = {}
    for seed, group in rows.groupby("seed", sort=True):
        if set(group["dataset"]) >= set(datasets) and len(datasets):
            out[int(seed)] = float(group.set_index("dataset").loc[list(datasets), "accuracy"].mean())
    return out


# ----------------------------------------------------------------------------- cells

def _mean_std(values: Iterable[float]) -> tuple[float, float, int]:
    vals = [float(v) for v in values]
    n = len(vals)
    if n == 0:
        return math.nan, math.nan, 0
    mean = sum(vals) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else 0.0
    return mean, std, n


def _ours_text(mean: float, std: float, n: int) -> str:
    if n == 0:
        return ""
    return f"{mean:.2f}" if n == 1 else f"{mean:.2f} ± {std:.2f}"


def _r2(x: float) -> float:
    return round(x, 2) if not math.isnan(x) else math.nan


def _cell(values: Iterable[float], paper: float = math.nan) -> dict:
    mean, std, n = _mean_std(values)
    paper = _num(paper)
    return {
        "ours": _ours_text(mean, std, n),
        "paper": paper,
        "diff": _r2(mean - paper) if n and not math.isnan(paper) else math.nan,
        "ours_mean": _r2(mean),
        "ours_std": _r2(std),
        "n_seeds": n,
    }


def _frame(rows: list[dict], keys: list[str], extras: list[str]) -> pd.DataFrame:
    cols = [*keys, "column", "paper_column", *VALUE_COLUMNS, *extras]
    df = pd.DataFrame(rows, columns=cols)
    df["n_seeds"] = df["n_seeds"].astype(int)
    for c in ("paper", "diff", "ours_mean", "ours_std"):
        df[c] = df[c].astype(float)
    return df


# ----------------------------------------------------------------------------- Table 1

def _paper_table1() -> dict[tuple[str, str], dict[str, float]]:
    t = load_paper_table("table1_domain_generalization")
    cols = [c for c in t.columns if c not in ("backbone", "method")]
    return {(r["backbone"], r["method"]): {c: _num(r[c]) for c in cols} for _, r in t.iterrows()}


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
    names = _paper_names(exp, paper_names)
    runs = _prepare(runs, _RUN_KEYS, "runs")
    if transfer is None:
        transfer = pd.DataFrame(columns=[*_TRANSFER_KEYS, "accuracy"])
    transfer = _prepare(transfer, _TRANSFER_KEYS, "transfer")
    sources = _datasets(exp, runs)
    targets = [str(t) for t in exp["targets"]] if exp.get("targets") else sorted(
        set(transfer["target"]) - set(sources))
    paper = _paper_table1()
    rows = []
    for source in sources:
        from_imagenet = table1_column(source, names) == "imagenet"
        for backbone in _backbones(exp, runs, transfer):
            pb = paper_backbone(backbone, names)
            for label, method, variant in experiment_labels(exp):
                sel = _filter_label(runs[runs["backbone"] == backbone], exp, method, variant)
                tsel = _filter_label(transfer[transfer["backbone"] == backbone], exp, method, variant)
                for dataset in [source, *[t for t in targets if t != source]]:
                    if dataset == source:
                        acc = sel.loc[sel["dataset"] == source, "accuracy"]
                    else:
                        acc = _transfer_acc(tsel, sel, source, dataset, method)
                    pcol = table1_column(dataset, names)
                    pval = paper.get((pb, label), {}).get(pcol, math.nan) if from_imagenet and pcol else math.nan
                    shots = 0 if _is_zero_shot(method) else _largest_shots(exp, sel)
                    rows.append({
                        "source": source, "backbone": backbone, "paper_backbone": pb, "label": label,
                        "column": dataset, "paper_column": pcol, **_cell(acc, pval),
                        "role": "source" if dataset == source else "target",
                        "method": method, "variant": variant, "shots": shots,
                    })
    return _frame(rows, ["source", "backbone", "paper_backbone", "label"],
                  ["role", "method", "variant", "shots"])


def _transfer_acc(tsel: pd.DataFrame, sel: pd.DataFrame, source: str, target: str, method: str) -> pd.Series:
    rows = tsel[tsel["target"] == target]
    own = rows[rows["source"] == source]
    if len(own) or not _is_zero_shot(method):
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
    names = _paper_names(exp, paper_names)
    runs = _prepare(runs, _RUN_KEYS, "runs")
    t = load_paper_table("table2_prompt_ensembling")
    paper = {r["method"]: {c: _num(r[c]) for c in t.columns if c != "method"} for _, r in t.iterrows()}
    rows = []
    for dataset in _datasets(exp, runs):
        pd_name = paper_dataset(dataset, names)
        for label, method, variant in experiment_labels(exp):
            sel = _filter_label(runs[runs["dataset"] == dataset], exp, method, variant)
            for backbone in _backbones(exp, runs):
                pb = paper_backbone(backbone, names)
                pval = paper.get(label, {}).get(pb, math.nan) if pd_name == "ImageNet" else math.nan
                rows.append({
                    "dataset": dataset, "paper_dataset": pd_name, "label": label,
                    "column": backbone, "paper_column": pb,
                    **_cell(sel.loc[sel["backbone"] == backbone, "accuracy"], pval),
                    "method": method, "variant": variant,
                    "shots": 0 if _is_zero_shot(method) else _largest_shots(exp, sel),
                })
    return _frame(rows, ["dataset", "paper_dataset", "label"], ["method", "variant", "shots"])


# ----------------------------------------------------------------------------- Table 3

def table3_initialization(
    runs: pd.DataFrame, exp: Mapping, paper_names: Mapping | None = None
) -> pd.DataFrame:
    """Table 3: context initialisation, accuracy averaged over the experiment's datasets.

    Long format, row key label (the init, e.g. "random", "a photo of a"), column = backbone.
    ours is the mean ± std over seeds of the per-seed average over datasets (seeds lacking a
    dataset are left out); the paper's 11-dataset average (M=4, RN50) appears in the column of the
    backbone standing for RN50. Extras: n_datasets, paper_context_length, method, variant, shots.
    """
    names = _paper_names(exp, paper_names)
    runs = _prepare(runs, _RUN_KEYS, "runs")
    t = load_paper_table("table3_initialization")
    paper = {str(r["init"]): (_num(r["avg_accuracy_11_datasets"]), _num(r["context_length"]))
             for _, r in t.iterrows()}
    datasets = _datasets(exp, runs)
    rows = []
    for label, method, variant in experiment_labels(exp):
        sel = _filter_label(runs, exp, method, variant)
        for backbone in _backbones(exp, runs):
            pb = paper_backbone(backbone, names)
            pval, pctx = paper.get(label, (math.nan, math.nan))
            if pb != _ANALYSIS_BACKBONE:
                pval, pctx = math.nan, math.nan
            avg = seed_average(sel[sel["backbone"] == backbone], datasets)
            rows.append({
                "label": label, "column": backbone, "paper_column": pb, **_cell(avg.values(), pval),
                "n_datasets": len(datasets), "paper_context_length": pctx,
                "method": method, "variant": variant,
                "shots": 0 if _is_zero_shot(method) else _largest_shots(exp, sel),
            })
    return _frame(rows, ["label"], ["n_datasets", "paper_context_length", "method", "variant", "shots"])


# ----------------------------------------------------------------------------- Table 4

_T4_TOKEN = re.compile(r"^(.*) \(([0-9.]+)\)$")


def _paper_table4() -> dict[str, dict[int, tuple[str, str, float]]]:
    """paper dataset -> index -> (cell text, token, distance)."""
    t = load_paper_table("table4_nearest_words")
    out: dict[str, dict[int, tuple[str, str, float]]] = {}
    for col in t.columns:
        if col == "index":
            continue
        for idx, text in zip(t["index"], t[col]):
            text = "" if pd.isna(text) else str(text)
            m = _T4_TOKEN.match(text)
            token, dist = (m.group(1), float(m.group(2))) if m else (text, math.nan)
            out.setdefault(col, {})[int(idx)] = (text, token, dist)
    return out


def _word(token, distance) -> str:
    d = _num(distance)
    return f"{token} ({d:.4f})" if not math.isnan(d) else str(token)


def _records(records: Iterable[Mapping], exp: Mapping) -> list[tuple[str, Mapping]]:
    """(label, record) of the records that belong to `exp`, checked."""
    labels = {(m, v): lb for lb, m, v in experiment_labels(exp)} if exp.get("runs") else None
    shots = max(int(s) for s in exp["shots"]) if exp.get("shots") else None
    out = []
    for i, rec in enumerate(records):
        missing = [k for k in ("dataset", "backbone", "method", "variant", "seed", "nearest") if k not in rec]
        if missing:
            raise ValueError(f"nearest-word record {i} lacks keys {missing}")
        key = (str(rec["method"]), str(rec["variant"]))
        if labels is not None and key not in labels:
            continue
        if exp.get("datasets") and rec["dataset"] not in exp["datasets"]:
            continue
        if exp.get("backbones") and rec["backbone"] not in exp["backbones"]:
            continue
        if exp.get("seeds") and int(rec["seed"]) not in [int(s) for s in exp["seeds"]]:
            continue
        if shots is not None and "shots" in rec and int(rec["shots"]) != shots:
            continue
        for j, n in enumerate(rec["nearest"]):
            if not all(k in n for k in ("index", "token", "distance")):
                raise ValueError(f"nearest-word record {i} ({rec['dataset']}): entry {j} needs "
                                 f"index, token and distance, got {sorted(n)}")
        out.append((labels[key] if labels is not None else key[1], rec))
    return out


def _sort_key(exp: Mapping, preferred: Mapping[str, str], fields: list[str]):
    """Sort rows by `fields`, the ones in `preferred` in the experiment's order (others after)."""
    orders = {f: {str(v): i for i, v in enumerate(exp.get(key) or [])} for f, key in preferred.items()}

    def key(row: Mapping) -> tuple:
        out = []
        for f in fields:
            if f in orders:
                rank = orders[f].get(str(row[f]), len(orders[f]))
                out.append((rank, str(row[f])))
            else:
                out.append((0, row[f]))
        return tuple(out)

    return key


def table4_nearest_words(
    records: Iterable[Mapping], exp: Mapping, paper_names: Mapping | None = None
) -> pd.DataFrame:
    """Table 4: the nearest vocabulary word to each unified learned context vector.

    Long format, row keys (backbone, label, seed, index), column = dataset; ours and paper are
    "token (distance)" strings (distance to 4 decimals). The paper's word appears where the
    dataset stands for one of Table 4's datasets and our context has the paper's length (16).
    Extras: token, distance, paper_token, paper_distance, shots. CSC records are left to
    `table4_nearest_words_csc`.
    """
    names = _paper_names(exp, paper_names)
    paper = _paper_table4()
    unified = [(lb, r) for lb, r in _records(records, exp) if not bool(r.get("csc", False))]
    rows = []
    for label, rec in unified:
        dataset = str(rec["dataset"])
        pname = paper_dataset(dataset, names)
        pcol = pname if pname in paper else ""
        n_ctx = len({int(n["index"]) for n in rec["nearest"]})
        for n in rec["nearest"]:
            idx = int(n["index"])
            ptext, ptoken, pdist = paper[pcol].get(idx, ("", "", math.nan)) if pcol else ("", "", math.nan)
            if pcol and n_ctx != len(paper[pcol]):
                ptext, ptoken, pdist = "", "", math.nan
            rows.append({
                "backbone": str(rec["backbone"]), "label": label, "seed": int(rec["seed"]), "index": idx,
                "column": dataset, "paper_column": pcol,
                "ours": _word(n["token"], n["distance"]), "paper": ptext,
                "token": str(n["token"]), "distance": _num(n["distance"]),
                "paper_token": ptoken, "paper_distance": pdist, "shots": int(rec.get("shots", -1)),
            })
    cols = ["backbone", "label", "seed", "index", "column", "paper_column", "ours", "paper",
            "token", "distance", "paper_token", "paper_distance", "shots"]
    rows.sort(key=_sort_key(exp, {"backbone": "backbones", "label": "runs", "column": "datasets"},
                            ["backbone", "label", "seed", "index", "column"]))
    return pd.DataFrame(rows, columns=cols)


def table4_nearest_words_csc(
    records: Iterable[Mapping], exp: Mapping, paper_names: Mapping | None = None
) -> pd.DataFrame:
    """Table 4's class-specific companion: one row per (dataset, class, index) of CSC contexts.

    Columns: dataset, paper_dataset, backbone, label, seed, class, index, token, distance, shots
    (the paper prints no CSC words, so there is nothing beside them).
    """
    names = _paper_names(exp, paper_names)
    rows = []
    for label, rec in _records(records, exp):
        if not bool(rec.get("csc", False)):
            continue
        for n in rec["nearest"]:
            rows.append({
                "dataset": str(rec["dataset"]), "paper_dataset": paper_dataset(str(rec["dataset"]), names),
                "backbone": str(rec["backbone"]), "label": label, "seed": int(rec["seed"]),
                "class": "" if n.get("class") is None else str(n["class"]), "index": int(n["index"]),
                "token": str(n["token"]), "distance": _num(n["distance"]), "shots": int(rec.get("shots", -1)),
            })
    cols = ["dataset", "paper_dataset", "backbone", "label", "seed", "class", "index", "token", "distance", "shots"]
    rows.sort(key=_sort_key(exp, {"dataset": "datasets", "backbone": "backbones", "label": "runs"},
                            ["dataset", "backbone", "label", "seed"]))  # stable: classes keep their order
    return pd.DataFrame(rows, columns=cols)


# ----------------------------------------------------------------------------- Table 5

def table5_finetuning(
    runs: pd.DataFrame, exp: Mapping, paper_names: Mapping | None = None
) -> pd.DataFrame:
    """Table 5: CoOp vs. other ways to adapt CLIP, with each row's gain over zero-shot CLIP.

    Long format, row keys (backbone, paper_backbone, label), column = dataset. The paper's numbers
    (ImageNet, 16 shots, RN50) appear where the dataset stands for ImageNet and the backbone for
    RN50. Extras: ours_delta (ours_mean minus the zero-shot row's ours_mean, same dataset and
    backbone), paper_delta (the paper's delta_vs_zeroshot), method, variant, shots. The zero-shot
    row is the label "zeroshot", else the first label whose method is zeroshot.
    """
    names = _paper_names(exp, paper_names)
    runs = _prepare(runs, _RUN_KEYS, "runs")
    t = load_paper_table("table5_finetuning_methods")
    pcol_name = [c for c in t.columns if c not in ("method", "delta_vs_zeroshot")][0]
    paper = {str(r["method"]): (_num(r[pcol_name]), _num(r["delta_vs_zeroshot"])) for _, r in t.iterrows()}
    labels = experiment_labels(exp)
    zs_label = _zero_shot_label(labels)
    rows = []
    for backbone in _backbones(exp, runs):
        pb = paper_backbone(backbone, names)
        for dataset in _datasets(exp, runs):
            is_paper = pb == _ANALYSIS_BACKBONE and paper_dataset(dataset, names) == "ImageNet"
            pcol = pcol_name if paper_dataset(dataset, names) == "ImageNet" else ""
            cells = {}
            for label, method, variant in labels:
                sel = _filter_label(runs[(runs["backbone"] == backbone) & (runs["dataset"] == dataset)],
                                    exp, method, variant)
                pval, pdelta = paper.get(label, (math.nan, math.nan)) if is_paper else (math.nan, math.nan)
                cells[label] = {
                    "backbone": backbone, "paper_backbone": pb, "label": label,
                    "column": dataset, "paper_column": pcol, **_cell(sel["accuracy"], pval),
                    "paper_delta": pdelta, "method": method, "variant": variant,
                    "shots": 0 if _is_zero_shot(method) else _largest_shots(exp, sel),
                }
            zs = cells[zs_label]["ours_mean"] if zs_label else math.nan
            for cell in cells.values():
                cell["ours_delta"] = _r2(cell["ours_mean"] - zs)
                rows.append(cell)
    df = _frame(rows, ["backbone", "paper_backbone", "label"],
                ["ours_delta", "paper_delta", "method", "variant", "shots"])
    key = {lb: i for i, (lb, _, _) in enumerate(labels)}
    order = {b: i for i, b in enumerate(_backbones(exp, runs))}
    df = df.sort_values(["backbone", "label"], kind="mergesort",
                        key=lambda s: s.map(order if s.name == "backbone" else key))
    return df.reset_index(drop=True)


def _zero_shot_label(labels: list[tuple[str, str, str]]) -> str | None:
    for label, _, _ in labels:
        if label == "zeroshot":
            return label
    for label, method, _ in labels:
        if method == "zeroshot":
            return label
    return None


# ----------------------------------------------------------------------------- Fig. 1

def fig1_prompt_engineering(
    runs: pd.DataFrame, exp: Mapping, paper_names: Mapping | None = None
) -> pd.DataFrame:
    """Fig. 1: hand-written prompt variants (labels are the prompt strings) vs. CoOp, per dataset.

    Long format, row keys (backbone, paper_backbone, label), column = dataset, paper_column = the
    paper's dataset name. The paper's numbers (RN50; CoOp at 16 shots) appear where the backbone
    stands for RN50 and Fig. 1 has the (dataset, prompt) pair. Extras: method, variant, shots.
    """
    names = _paper_names(exp, paper_names)
    runs = _prepare(runs, _RUN_KEYS, "runs")
    t = load_paper_table("fig1_prompt_engineering")
    paper = {(str(r["dataset"]), str(r["prompt"])): _num(r["accuracy"]) for _, r in t.iterrows()}
    rows = []
    for backbone in _backbones(exp, runs):
        pb = paper_backbone(backbone, names)
        for label, method, variant in experiment_labels(exp):
            sel = _filter_label(runs[runs["backbone"] == backbone], exp, method, variant)
            for dataset in _datasets(exp, runs):
                pname = paper_dataset(dataset, names)
                pval = paper.get((pname, label), math.nan) if pb == _ANALYSIS_BACKBONE else math.nan
                rows.append({
                    "backbone": backbone, "paper_backbone": pb, "label": label,
                    "column": dataset, "paper_column": pname,
                    **_cell(sel.loc[sel["dataset"] == dataset, "accuracy"], pval),
                    "method": method, "variant": variant,
                    "shots": 0 if _is_zero_shot(method) else _largest_shots(exp, sel),
                })
    return _frame(rows, ["backbone", "paper_backbone", "label"], ["method", "variant", "shots"])


# ----------------------------------------------------------------------------- output

def _text(value, signed: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:+.2f}" if signed else f"{value:.2f}"
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return str(value)
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item"):  # numpy scalars
        return _text(value.item(), signed)
    return str(value)


def paper_wide(df: pd.DataFrame) -> pd.DataFrame:
    """The wide, all-string view of a long paper table (what `paper_markdown` prints).

    One row per distinct row key (the columns before "column"), in first-seen order; per value of
    "column" (first-seen order) the sub-columns "<column> (<paper_column>) ours", "... paper",
    "... diff" (and Table 5's deltas) that the table has. Without a "column" column, `df` is
    returned as strings.
    """
    if "column" not in df.columns:
        return pd.DataFrame({c: [_text(v) for v in df[c]] for c in df.columns}, columns=list(df.columns))
    cols = list(df.columns)
    keys = cols[: cols.index("column")]
    values = [c for c in _MD_VALUES if c in cols]
    groups: dict[str, str] = {}
    for col, pcol in zip(df["column"], df["paper_column"] if "paper_column" in cols else [""] * len(df)):
        col, pcol = _text(col), _text(pcol)
        if col not in groups or (pcol and not groups[col]):
            groups[col] = pcol
    headers = {g: (f"{g} ({p})" if p and p != g else g) for g, p in groups.items()}
    out_cols = [*keys, *[f"{headers[g]} {_MD_VALUES[v]}" for g in groups for v in values]]
    lines: dict[tuple, dict[str, str]] = {}
    for rec in df.to_dict("records"):
        k = tuple(_text(rec[c]) for c in keys)
        line = lines.setdefault(k, {c: v for c, v in zip(keys, k)})
        g = _text(rec["column"])
        for v in values:
            line[f"{headers[g]} {_MD_VALUES[v]}"] = _text(rec[v], signed=v in _SIGNED)
    return pd.DataFrame([[ln.get(c, "") for c in out_cols] for ln in lines.values()], columns=out_cols)


def _escape(text: str) -> str:
    return str(text).replace("|", r"\|").replace("\n", " ")


def paper_markdown(df: pd.DataFrame, title: str | None = None) -> str:
    """A GitHub pipe table of `paper_wide(df)`: keys left-aligned, values right-aligned."""
    wide = paper_wide(df)
    cols = list(wide.columns)
    if "column" in df.columns:
        n_keys = list(df.columns).index("column")
        right = [i >= n_keys for i in range(len(cols))]
    else:
        right = [pd.api.types.is_numeric_dtype(df[c]) for c in cols]
    lines = [] if title is None else [f"**{_escape(title)}**", ""]
    lines.append("| " + " | ".join(_escape(c) for c in cols) + " |")
    lines.append("| " + " | ".join("---:" if r else "---" for r in right) + " |")
    for row in wide.itertuples(index=False):
        lines.append("| " + " | ".join(_escape(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write_paper_table(
    df: pd.DataFrame,
    csv_path: str | os.PathLike,
    md_path: str | os.PathLike | None = None,
    title: str | None = None,
) -> None:
    """Write a paper table: the long DataFrame as CSV (`tables.write_table`), the wide view as
    Markdown (`paper_markdown`, with an optional bold `title` line), both atomically."""
    write_table(df, csv_path)
    if md_path is not None:
        write_text(md_path, paper_markdown(df, title))
