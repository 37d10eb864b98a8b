"""Collect per-run metrics.json files into few-shot tables (mean, std and 95% CI over seeds)."""
from __future__ import annotations

import math
import os
from collections.abc import Iterable

import pandas as pd

from coop.io import atomic_path, write_text
from coop.metrics_check import read_record

__all__ = [
    "KEY_COLUMNS",
    "RUN_COLUMNS",
    "TABLE_COLUMNS",
    "t_quantile_975",
    "collect_runs",
    "run_row",
    "fewshot_table",
    "average_over_datasets",
    "read_table",
    "write_table",
    "to_markdown",
    "aggregate",
]

# One cell of the few-shot table; seeds are aggregated within a cell.
KEY_COLUMNS = ["dataset", "backbone", "method", "variant", "shots"]
RUN_COLUMNS = [*KEY_COLUMNS, "seed", "accuracy", "macro_f1", "n_test", "n_classes", "wall_seconds"]
TABLE_COLUMNS = [
    *KEY_COLUMNS,
    "acc_mean", "acc_std", "acc_ci95", "f1_mean", "f1_std", "n_seeds", "wall_seconds_mean",
]

_STR_KEYS = ("dataset", "backbone", "method", "variant")
_INT_KEYS = ("shots", "seed", "n_test", "n_classes")
_FLOAT_KEYS = ("accuracy", "macro_f1", "wall_seconds")

# Two-sided 95% Student t quantiles t_{0.975, df} for df = 1..30 (scipy is not a dependency).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)


def t_quantile_975(df: int) -> float:
    """t_{0.975} with `df` degrees of freedom (normal quantile 1.96 beyond df=30)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    return _T975[df - 1] if df <= len(_T975) else 1.96


def _ci95(std: float, n: int) -> float:
    """Half-width of the 95% t-interval of a mean over `n` samples (0.0 for n < 2)."""
    if n < 2:
        return 0.0
    return t_quantile_975(n - 1) * std / math.sqrt(n)


def run_row(record: dict) -> dict:
    """The RUN_COLUMNS of a checked metrics.json record (coop.metrics_check.read_record)."""
    row = {}
    for key in RUN_COLUMNS:
        value = record[key]
        row[key] = str(value) if key in _STR_KEYS else int(value) if key in _INT_KEYS else float(value)
    return row


def collect_runs(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """One row per metrics.json file, columns RUN_COLUMNS, in the order given; a bad file stops it with one
    line naming the file, what is wrong and the fix (coop.metrics_check)."""
    rows = [run_row(read_record(p)) for p in paths]
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def fewshot_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Aggregate runs over seeds per (dataset, backbone, method, variant, shots).

    std is the sample std (ddof=1), ci95 the half-width of the 95% t-interval of the mean;
    both are 0.0 for a single seed. Values are rounded to 2 decimals.
    """
    missing = [c for c in RUN_COLUMNS if c not in runs.columns]
    if missing:
        raise ValueError(f"runs lack columns {missing}")
    dup = runs.duplicated([*KEY_COLUMNS, "seed"], keep=False)
    if dup.any():
        first = runs.loc[dup, [*KEY_COLUMNS, "seed"]].iloc[0].to_dict()
        raise ValueError(f"{int(dup.sum())} duplicate runs (same cell and seed), e.g. {first}")
    if runs.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)

    grouped = runs.groupby(KEY_COLUMNS, sort=True)
    table = grouped.agg(
        acc_mean=("accuracy", "mean"),
        acc_std=("accuracy", "std"),
        f1_mean=("macro_f1", "mean"),
        f1_std=("macro_f1", "std"),
        n_seeds=("seed", "size"),
        wall_seconds_mean=("wall_seconds", "mean"),
    ).reset_index()
    # pandas gives NaN for the ddof=1 std of a single value.
    table[["acc_std", "f1_std"]] = table[["acc_std", "f1_std"]].fillna(0.0)
    table["acc_ci95"] = [_ci95(s, n) for s, n in zip(table["acc_std"], table["n_seeds"])]
    table = _finish(table)
    return table


def _finish(table: pd.DataFrame) -> pd.DataFrame:
    """Column order, dtypes, rounding and sorting shared by all tables."""
    table = table[TABLE_COLUMNS].copy()
    table["shots"] = table["shots"].astype(int)
    table["n_seeds"] = table["n_seeds"].astype(int)
    floats = ["acc_mean", "acc_std", "acc_ci95", "f1_mean", "f1_std", "wall_seconds_mean"]
    table[floats] = table[floats].astype(float).round(2)
    return table.sort_values(KEY_COLUMNS, kind="mergesort").reset_index(drop=True)


def average_over_datasets(table: pd.DataFrame) -> pd.DataFrame:
    """Average a few-shot table over datasets (the "average" panel of CoOp Fig. 3).

    Only cells (backbone, method, variant, shots) present on every dataset of `table` are kept.
    acc_mean/f1_mean/wall_seconds_mean are plain means over datasets; acc_std/f1_std are the
    std of a one-seed dataset average assuming independent datasets (sqrt(sum var) / D), and
    acc_ci95 is the matching t-interval with n = the smallest n_seeds of the cell.
    """
    table = table[table["dataset"] != "average"]
    if table.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    n_datasets = table["dataset"].nunique()
    cell = ["backbone", "method", "variant", "shots"]
    grouped = table.groupby(cell, sort=True)
    avg = grouped.agg(
        n_datasets=("dataset", "nunique"),
        acc_mean=("acc_mean", "mean"),
        acc_var=("acc_std", lambda s: (s**2).sum()),
        f1_mean=("f1_mean", "mean"),
        f1_var=("f1_std", lambda s: (s**2).sum()),
        n_seeds=("n_seeds", "min"),
        wall_seconds_mean=("wall_seconds_mean", "mean"),
    ).reset_index()
    avg = avg[avg["n_datasets"] == n_datasets].copy()
    avg["dataset"] = "average"
    avg["acc_std"] = avg["acc_var"] ** 0.5 / n_datasets
    avg["f1_std"] = avg["f1_var"] ** 0.5 / n_datasets
    avg["acc_ci95"] = [_ci95(s, n) for s, n in zip(avg["acc_std"], avg["n_seeds"])]
    return _finish(avg)


def _fmt_cell(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.2f}"
    return str(value).replace("|", r"\|")


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub pipe table (numeric columns right-aligned), without the tabulate package."""
    cols = list(df.columns)
    align = ["---:" if pd.api.types.is_numeric_dtype(df[c]) else "---" for c in cols]
    lines = [
        "| " + " | ".join(_fmt_cell(str(c)) for c in cols) + " |",
        "| " + " | ".join(align) + " |",
    ]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write_table(
    df: pd.DataFrame, csv_path: str | os.PathLike, md_path: str | os.PathLike | None = None
) -> None:
    """Write `df` as CSV (and as a Markdown table when `md_path` is given), atomically."""
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False)
    if md_path is not None:
        write_text(md_path, to_markdown(df))


def read_table(csv_path: str | os.PathLike) -> pd.DataFrame:
    """Read a table written by `write_table`; names like "None" or "NA" stay strings."""
    key_str = {c: str for c in _STR_KEYS}
    return pd.read_csv(csv_path, dtype=key_str, keep_default_na=False, na_values={
        c: ["", "nan", "NaN"] for c in TABLE_COLUMNS if c not in _STR_KEYS
    })


def aggregate(
    metrics_paths: Iterable[str | os.PathLike],
    out_csv: str | os.PathLike,
    out_md: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """collect_runs + fewshot_table + write_table; returns the table."""
    table = fewshot_table(collect_runs(metrics_paths))
    write_table(table, out_csv, out_md)
    return table
