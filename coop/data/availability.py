"""Before any job runs (the workflow's parse, a dry run too): can a real dataset that the config uses be had?

A real dataset's folder is made by its `prepare_<name>` job (coop.data.prepare), which downloads what may be
downloaded. Everything else (ImageNet by licence, CoOp's split files, hosted on Google Drive) is fetched by
hand; when it is neither on disk nor waiting in ROOT/.downloads/, the workflow stops at once with what to
fetch, instead of a job failing later.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from coop.data.specs import DatasetError, DatasetSpec, dataset_dir, split_path


def prepared(root: str | Path, spec: DatasetSpec) -> bool:
    """Its folder holds the file that defines its split (what the prepare job produces last)."""
    return split_path(root, spec).exists()


def check_obtainable(root: str | Path, spec: DatasetSpec, key: str,
                     sources: Mapping[str, Any] | None = None) -> None:
    """DatasetError, in one line, when real dataset `spec` is not prepared under `root` and its prepare job
    could not make it (files to fetch by hand are not in ROOT/.downloads/). `key`: the config key using it."""
    from coop.data.sources import DOWNLOADS, _source, instructions

    if spec.toy or spec.configured or prepared(root, spec):
        return
    src = _source(spec.name, sources)
    downloads = Path(root) / DOWNLOADS
    missing = [f for f in src.files if f.manual and not (downloads / f.filename).is_file()]
    if not src.manual and not missing:
        return  # its prepare job downloads the rest
    steps = " ".join(line.strip() for line in instructions(spec.name, root, sources=sources).splitlines())
    steps = steps.replace(f"Then rerun `coop data prepare {spec.name} --root {root}`", "Then rerun snakemake")
    raise DatasetError(f"{key}: dataset {spec.name!r} is not at {dataset_dir(root, spec)} and cannot be "
                       f"downloaded automatically. {steps}")
