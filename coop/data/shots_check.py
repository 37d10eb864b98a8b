"""Shots against class sizes before any job runs: the dry run (`snakemake -n`) and the workflow's parse stop
when a few-shot experiment asks more shots than a class of one of its datasets has training images, instead of
the job failing after its inputs were built.

What can be seen without reading images: a toy dataset has exactly `toy_world.n_train` training images per
class (the generator's setting, whether or not it is generated yet), and a split_json dataset whose split file
is on disk lists its training images. Other layouts (ImageNet's folders, FGVC's lists) are left to the job,
whose error says the same (`coop.data.fewshot.sample_fewshot`).
"""
from __future__ import annotations

import inspect
import json
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

from coop.data.specs import DatasetError, DatasetSpec, split_path


def toy_train_per_class(toy_world: Mapping[str, Any]) -> int:
    """Training images per class of a toy dataset: the config's `toy_world.n_train`, else the generator's
    default (its signature is the one home of that default)."""
    from coop.data.toyworld.disk import generate

    return int(toy_world.get("n_train", inspect.signature(generate).parameters["n_train"].default))


def smallest_class(root: str | Path, spec: DatasetSpec, toy_world: Mapping[str, Any]) -> tuple[str, int] | None:
    """(class name, training images) of the dataset's smallest class, where it can be known cheaply; None
    where it cannot (not on disk yet, or a layout whose split is not a file)."""
    if spec.toy:
        return "every class", toy_train_per_class(toy_world)
    if spec.reader != "split_json":
        return None
    path = split_path(root, spec)
    if not path.is_file():
        return None
    try:
        train = json.loads(path.read_text()).get("train", [])
        counts = Counter(str(entry[2]) for entry in train)
    except (ValueError, AttributeError, IndexError, TypeError, OSError):
        return None  # a broken split file: reading it in the job gives the precise error
    if not counts:
        return None
    name, n = min(counts.items(), key=lambda kv: (kv[1], kv[0]))
    return name, n


def check_shots(root: str | Path, spec: DatasetSpec, shots: int, toy_world: Mapping[str, Any], where: str) -> None:
    """A DatasetError when `shots` exceeds what the smallest class of `spec` has; `where` names the config key."""
    smallest = smallest_class(root, spec, toy_world)
    if smallest is None or shots <= smallest[1]:
        return
    name, n = smallest
    if spec.toy:
        fix = (f"Lower the shots to at most {n}, or raise toy_world.n_train to at least {shots} (the toy "
               "datasets are then regenerated)")
        what = f"the toy dataset {spec.name!r} has {n} training images per class (toy_world.n_train)"
    else:
        fix = f"Lower the shots to at most {n}"
        what = f"class {name!r} of {spec.name!r} has {n} training images ({split_path(root, spec)})"
    raise DatasetError(f"{where}: {shots} shots asked, but {what}, so a {shots}-shot subset cannot be drawn. "
                       f"{fix}.")
