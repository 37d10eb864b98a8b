"""How big a dataset is (classes, train / val / test images), known without reading its images, for the
checks and cluster requests made when the workflow is parsed (coop.data.shots_check, coop.resources).

In order: a toy dataset's sizes follow from its classes and the `toy_world` settings (whether or not it is
generated yet); a split_json dataset of the config's `datasets:` (on disk before any job) is counted from its
split file; a paper dataset takes the paper's Table 6 counts (coop/report/paper/table6_datasets.csv), whether or
not it is on disk, so that the driver and every cluster job size it alike; anything else is unknown (None).
"""
from __future__ import annotations

import csv
import inspect
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from coop.data.specs import DatasetSpec, split_path

TABLE6 = Path(__file__).resolve().parent.parent / "report" / "paper" / "table6_datasets.csv"


@dataclass(frozen=True)
class DataShape:
    classes: int
    train: int
    val: int
    test: int
    smallest_class: tuple[str, int] | None = None  # (class name, training images), where known
    source: str = ""                                 # where the counts come from


def toy_counts(toy_world: Mapping[str, Any]) -> dict[str, int]:
    """Images per class of each split of a toy dataset: the config's `toy_world`, else the generator's defaults
    (its signature is the one home of those defaults)."""
    from coop.data.toyworld.disk import generate

    params = inspect.signature(generate).parameters
    return {part: int(toy_world.get(f"n_{part}", params[f"n_{part}"].default)) for part in ("train", "val", "test")}


def _from_split_file(path: Path) -> DataShape | None:
    try:
        split = json.loads(path.read_text())
        counts = Counter(str(entry[2]) for entry in split.get("train", []))
        parts = {k: len(split.get(k, [])) for k in ("train", "val", "test")}
    except (ValueError, AttributeError, IndexError, TypeError, OSError):
        return None  # a broken split file: reading it in the job gives the precise error
    if not counts:
        return None
    name, n = min(counts.items(), key=lambda kv: (kv[1], kv[0]))
    return DataShape(len(counts), parts["train"], parts["val"], parts["test"], (name, n), str(path))


def _table6(spec: DatasetSpec) -> DataShape | None:
    from coop.report.paper_names import paper_dataset

    name = spec.paper_name or paper_dataset(spec.name)
    try:
        with open(TABLE6, newline="") as f:
            row = next((r for r in csv.DictReader(f) if r["dataset"] == name), None)
    except (OSError, KeyError, csv.Error):
        return None
    if row is None:
        return None
    n = {k: int(row[k]) if row.get(k) else 0 for k in ("classes", "train", "val", "test")}
    return DataShape(n["classes"], n["train"], n["val"], n["test"], None, f"paper Table 6 ({name})")


def data_shape(root: str | Path, spec: DatasetSpec, toy_world: Mapping[str, Any]) -> DataShape | None:
    """The sizes of `spec` under data root `root`, or None where they cannot be known cheaply."""
    if spec.toy:
        from coop.data.toyworld import TOY_DATASETS

        classes = len(TOY_DATASETS[spec.name].classnames)
        n = toy_counts(toy_world)
        return DataShape(classes, classes * n["train"], classes * n["val"], classes * n["test"],
                         ("every class", n["train"]), "toy_world")
    if spec.configured and spec.reader == "split_json":  # on disk before any job (checked at parse)
        return split_file_shape(root, spec)
    return _table6(spec) or split_file_shape(root, spec)


def split_file_shape(root: str | Path, spec: DatasetSpec) -> DataShape | None:
    """The sizes counted from a split_json dataset's split file, when it is on disk."""
    if spec.reader != "split_json":
        return None
    path = split_path(root, spec)
    return _from_split_file(path) if path.is_file() else None
