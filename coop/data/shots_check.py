"""Shots against class sizes before any job runs: the dry run (`snakemake -n`) and the workflow's parse stop
when a few-shot experiment asks more shots than a class of one of its datasets has training images, instead of
the job failing after its inputs were built.

What can be seen without reading images: a toy dataset has exactly `toy_world.n_train` training images per
class (the generator's setting, whether or not it is generated yet), and a split_json dataset whose split file
is on disk lists its training images. Other layouts (ImageNet's folders, FGVC's lists) are left to the job,
whose error says the same (`coop.data.fewshot.sample_fewshot`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from coop.data.sizes import data_shape, split_file_shape
from coop.data.specs import DatasetError, DatasetSpec, split_path


def smallest_class(root: str | Path, spec: DatasetSpec, toy_world: Mapping[str, Any]) -> tuple[str, int] | None:
    """(class name, training images) of the dataset's smallest class where it can be known cheaply (a toy
    dataset: "every class"), else None (coop.data.sizes)."""
    shape = data_shape(root, spec, toy_world) if spec.toy else split_file_shape(root, spec)
    return shape.smallest_class if shape else None


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
