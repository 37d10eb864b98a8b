"""Selecting runs and turning them into table cells: what every paper table and figure shares.

* the packaged paper numbers (`paper_csv`, `load_paper_table`, `coop/report/paper/*.csv`);
* run selection by experiment label (`experiment_labels`, `filter_label`, `select_label_runs`): a zero-shot
  method (declared not few-shot, `coop.report.declarations`) is taken at shots 0 / seed 0 whatever the
  experiment's shots, every other method at the experiment's largest shot count and its seeds;
* statistics: `seed_average` (per seed, the mean over datasets), `mean_std` (sample std, ddof=1; 0 for one
  seed) and `cell` / `long_frame`, the value columns of the long format (`coop.report.paper`); `cell` is
  where the difference to the paper is computed, for the paper's own datasets and backbones only.

`exp` is one experiment of the config: {"datasets", "backbones", "shots", "seeds", "runs" (label ->
"method/variant"), "targets" (Table 1 only), "paper_names"}.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from importlib import resources

import pandas as pd

from coop.report.artefacts import VALUE_COLUMNS as _VALUE_COLUMNS
from coop.report.declarations import is_zero_shot

__all__ = [
    "VALUE_COLUMNS",
    "RUN_KEYS",
    "TRANSFER_KEYS",
    "paper_csv",
    "load_paper_table",
    "num",
    "experiment_labels",
    "prepare",
    "largest_shots",
    "label_shots",
    "filter_label",
    "select_label_runs",
    "datasets_of",
    "backbones_of",
    "seed_average",
    "mean_std",
    "r2",
    "cell",
    "long_frame",
]

VALUE_COLUMNS = list(_VALUE_COLUMNS)
RUN_KEYS = ["dataset", "backbone", "method", "variant", "shots", "seed"]
TRANSFER_KEYS = ["source", "target", "backbone", "method", "variant", "shots", "seed"]


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


def num(value) -> float:
    """`value` as a float, NaN when it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


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


def prepare(df: pd.DataFrame, keys: list[str], what: str) -> pd.DataFrame:
    """A checked copy of `df`: the key columns typed, accuracy a float, no duplicate (cell, seed)."""
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


def largest_shots(exp: Mapping, rows: pd.DataFrame) -> int | None:
    if exp.get("shots"):
        return max(int(s) for s in exp["shots"])
    trained = rows.loc[rows["shots"] > 0, "shots"]
    return int(trained.max()) if len(trained) else None


def label_shots(exp: Mapping, method: str, rows: pd.DataFrame) -> int | None:
    """The shot count a label is reported at: 0 for a zero-shot method, else the largest."""
    return 0 if is_zero_shot(method, rows) else largest_shots(exp, rows)


def filter_label(df: pd.DataFrame, exp: Mapping, method: str, variant: str) -> pd.DataFrame:
    """Rows of one label at the right shot count (0 for zero-shot methods) and seeds."""
    rows = df[(df["method"] == method) & (df["variant"] == variant)]
    if is_zero_shot(method, rows):
        return rows[rows["shots"] == 0]
    shots = largest_shots(exp, rows)
    rows = rows[rows["shots"] == shots]
    if exp.get("seeds"):
        rows = rows[rows["seed"].isin([int(s) for s in exp["seeds"]])]
    return rows


def select_label_runs(runs: pd.DataFrame, exp: Mapping, label: str) -> pd.DataFrame:
    """The runs of one label of `exp` on its datasets and backbones (shots/seeds as documented)."""
    runs = prepare(runs, RUN_KEYS, "runs")
    labels = {lb: (m, v) for lb, m, v in experiment_labels(exp)}
    if label not in labels:
        raise KeyError(f"label {label!r} not in experiment runs {sorted(labels)}")
    rows = filter_label(runs, exp, *labels[label])
    if exp.get("datasets"):
        rows = rows[rows["dataset"].isin(exp["datasets"])]
    if exp.get("backbones"):
        rows = rows[rows["backbone"].isin(exp["backbones"])]
    return rows


def datasets_of(exp: Mapping, runs: pd.DataFrame) -> list[str]:
    """The experiment's datasets, else every dataset of `runs` (sorted)."""
    return [str(d) for d in exp["datasets"]] if exp.get("datasets") else sorted(runs["dataset"].unique())


def backbones_of(exp: Mapping, *frames: pd.DataFrame) -> list[str]:
    """The experiment's backbones, else every backbone of `frames` (sorted)."""
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

def mean_std(values: Iterable[float]) -> tuple[float, float, int]:
    """(mean, sample std (0 for one value), n); NaNs and 0 for no values."""
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


def r2(x: float) -> float:
    """Rounded to 2 decimals (NaN stays NaN)."""
    return round(x, 2) if not math.isnan(x) else math.nan


def cell(values: Iterable[float], paper: float = math.nan, own: bool = False) -> dict:
    """The value columns of one cell: our mean ± std over `values` (seeds) beside the paper's number. The
    difference is computed only for a cell that is the paper's `own` (its datasets and backbone are the
    paper's, `paper_names.is_paper_own`): beside a stand-in, the paper's number is a role, not a target."""
    mean, std, n = mean_std(values)
    paper = num(paper)
    return {
        "ours": _ours_text(mean, std, n),
        "paper": paper,
        "diff": r2(mean - paper) if own and n and not math.isnan(paper) else math.nan,
        "ours_mean": r2(mean),
        "ours_std": r2(std),
        "n_seeds": n,
    }


def long_frame(rows: list[dict], keys: list[str], extras: list[str]) -> pd.DataFrame:
    """A long paper table: row keys, column, paper_column, the value columns, extras (typed)."""
    cols = [*keys, "column", "paper_column", *VALUE_COLUMNS, *extras]
    df = pd.DataFrame(rows, columns=cols)
    df["n_seeds"] = df["n_seeds"].astype(int)
    for c in ("paper", "diff", "ours_mean", "ours_std"):
        df[c] = df[c].astype(float)
    return df
