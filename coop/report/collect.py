"""Gather per-run JSON files into flat tables: runs.csv (one row per run, method parameters as param_*
columns) and transfer.csv (one row per run x target)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import pandas as pd

from coop.metrics_check import read_record
from coop.report.tables import RUN_COLUMNS, run_row, write_table


def runs_table(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per metrics.json (checked: a bad one stops it naming the file, coop.metrics_check)."""
    records = [read_record(p) for p in paths]
    df = pd.DataFrame([run_row(r) for r in records], columns=RUN_COLUMNS)
    params = [{f"param_{k}": v for k, v in r["params"].items()} for r in records]
    return pd.concat([df.reset_index(drop=True), pd.DataFrame(params)], axis=1)


def transfer_table(paths: Iterable[str | Path]) -> pd.DataFrame:
    rows = []
    records = []
    for p in paths:
        data = json.loads(Path(p).read_text())
        records.extend(data if isinstance(data, list) else [data])
    for r in records:
        for target, m in r["targets"].items():
            rows.append({"source": r["dataset"], "target": target, "backbone": r["backbone"], "method": r["method"],
                         "variant": r["variant"], "shots": r["shots"], "seed": r["seed"],
                         "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "n_test": m["n_test"],
                         "source_accuracy": r["source_accuracy"]})
    columns = ["source", "target", "backbone", "method", "variant", "shots", "seed", "accuracy", "macro_f1",
               "n_test", "source_accuracy"]
    return pd.DataFrame(rows, columns=columns).sort_values(columns[:7]).reset_index(drop=True)


def write(df: pd.DataFrame, out_csv: str | Path) -> pd.DataFrame:
    write_table(df, out_csv)
    return df


def select_experiment(df: pd.DataFrame, exp: dict) -> pd.DataFrame:
    """Rows of an experiment: its datasets, backbones and method/variant runs (any shots)."""
    runs = {tuple(r.split("/")) for r in exp["runs"].values()}
    in_runs = pd.Series([(m, v) in runs for m, v in zip(df["method"], df["variant"])], index=df.index, dtype=bool)
    keep = df["dataset"].isin(exp["datasets"]) & df["backbone"].isin(exp["backbones"]) & in_runs
    return df[keep].reset_index(drop=True)
