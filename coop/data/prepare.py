"""Download, verify and lay out the real datasets of the paper, and check what is on disk.

`prepare(name, root)` fetches the publicly downloadable files of one dataset into `root/.downloads/`
(resuming partial `*.part` files with HTTP Range requests), verifies their checksums, extracts the
archives into a hidden temporary folder beside the target, moves the extracted files into the layout
that `read_split` expects (docs/PROTOCOL.md, "Data"), checks it with `read_split`, and only then renames the
folder into place: a failure leaves no half-made dataset folder behind. Archive members whose paths
would land outside the extraction folder (absolute paths, `..`, links pointing outside, device files)
are refused before anything of them is written.

Files that cannot be fetched automatically (ImageNet and its variants by licence; everything hosted
only on Google Drive, which includes all of CoOp's `split_zhou_*.json` files) come with instructions:
`prepare` raises a DatasetError that says what to fetch, from where, and where to put each file.
Files put into `root/.downloads/` by hand are picked up (and verified) on the next run.

`check(root)` reports, for every real dataset, whether its folder is present and readable.

This module holds `prepare` and `check`; the source table is in `coop.data.sources`, downloading,
verification and extraction in `coop.data.fetch`. Their public names are re-exported here.
"""
from __future__ import annotations

import csv
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from coop.data.datasets import DATASETS, DatasetError, Split, dataset_dir, expected_layout, get_dataset, read_split
from coop.data.fetch import (  # noqa: F401  (re-exported: coop.data.prepare keeps its public names)
    CHUNK,
    USER_AGENT,
    UnsafeArchiveError,
    _inside,
    _move,
    archive_kind,
    download,
    extract,
    file_checksum,
    verify,
)
from coop.data.sources import (  # noqa: F401  (re-exported)
    DOWNLOADS,
    SOURCES,
    DatasetSource,
    SourceFile,
    _coerce_source,
    _source,
    instructions,
)


@dataclass(frozen=True)
class DatasetStatus:
    name: str
    present: bool                     # its folder exists under the data root
    valid: bool                       # read_split succeeds
    message: str                      # the error, or the counts of images and classes


# ---------------------------------------------------------------------------------------------
# prepare and check

def _summary(split: Split) -> str:
    val = f"{len(split.val)} val"
    if not split.val and split.train:
        val += " (few-shot val drawn from unused train images)"
    return (f"{len(split.train)} train / {val} / {len(split.test)} test images, "
            f"{len(split.classnames)} classes")


def prepare(name: str, root: str | Path, *, sources: Mapping[str, Any] | None = None,
            log: Callable[[str], None] = print, timeout: float = 60.0, retries: int = 3,
            keep_downloads: bool = True) -> Path:
    """Download, verify, extract and lay out dataset `name` under `root`; return its folder.

    `sources` adds to / overrides the built-in table SOURCES ({name: DatasetSource or dict}). An
    already valid dataset folder is left alone. Raises DatasetError with instructions for whatever
    must be fetched by hand, and on any failure leaves no dataset folder and no temporary folder.
    """
    spec = get_dataset(name)
    if spec.toy:
        raise DatasetError(f"{name!r} is a toy dataset: generate it with `coop data toy --dataset {name}`.")
    root = Path(root)
    # a config dataset (datasets.<name>) is read where it is, unless `sources` says how to fetch it
    src = None if spec.configured and name not in (sources or {}) else _source(name, sources)
    target = dataset_dir(root, spec)
    # An empty folder is absent: Snakemake makes the folder of a job's output before the job runs.
    if target.is_symlink() or (target.exists() and not (target.is_dir() and not any(target.iterdir()))):
        try:
            split = read_split(root, spec)
        except DatasetError as e:
            raise DatasetError(
                f"{target} exists but is not a valid {name} dataset: {e} Fix it, or move it away and rerun "
                f"`coop data prepare {name} --root {root}` to build it from scratch."
            ) from None
        log(f"{name}: already prepared at {target} ({_summary(split)})")
        return target
    if src is None:
        raise DatasetError(
            f"{name!r} is defined in the config (datasets.{name}) and coop has no download source for it: it "
            f"is read where it is. Put it at {target} (expected {expected_layout(spec)}), or fix "
            f"datasets.{name}.folder in the config."
        )
    if src.manual:
        raise DatasetError(instructions(name, root, sources=sources))
    downloads = root / DOWNLOADS
    missing = [f for f in src.files if f.manual and not (downloads / f.filename).is_file()]
    if missing:
        raise DatasetError(instructions(name, root, sources=sources))

    paths = []
    for f in src.files:
        path = downloads / f.filename
        if path.is_file():
            log(f"{name}: using {path}")
        else:
            log(f"{name}: downloading {f.url} -> {path}")
            download(f.url, path, timeout=timeout, retries=retries, log=log)
        verify(path, f.checksum, f.url, name, root)
        paths.append(path)

    # Built in, the dataset folder is root/<folder>; a config dataset's may be nested or absolute: the
    # temporary folder is made beside the target (one file system, so the final rename is atomic).
    parent, folder = target.parent, target.name
    staged = spec if spec.folder == folder else replace(spec, folder=folder)
    parent.mkdir(parents=True, exist_ok=True)
    stale = sorted(parent.glob(f".{folder}.*.partial"))
    if stale:
        log(f"{name}: note: {', '.join(map(str, stale))} left by an interrupted run; delete them to free space")
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder}.", suffix=".partial", dir=parent))
    try:
        staging = tmp / folder
        staging.mkdir()
        for i, (f, path) in enumerate(zip(src.files, paths)):
            kind = f.kind or archive_kind(f.filename)
            what = f"{name}: {f.filename}"
            if kind == "file":
                for s, dst in f.layout or (("", f.filename),):
                    if s or not dst or not _inside(staging.resolve(), dst):
                        raise DatasetError(f"{what}: a plain file's layout must be ('', <path in the dataset>).")
                    (staging / dst).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, staging / dst)
                continue
            log(f"{name}: extracting {path.name}")
            out = tmp / f"x{i}"
            extract(path, out, kind)
            if f.inner:
                inner = out / f.inner
                if not _inside(out.resolve(), f.inner) or not inner.is_file():
                    raise DatasetError(f"{what}: expected the archive {f.inner!r} inside it, found none.")
                log(f"{name}: extracting {f.inner}")
                out = tmp / f"x{i}_inner"
                extract(inner, out)
            for s, dst in f.layout or (("", ""),):
                if s and not _inside(out.resolve(), s):
                    raise DatasetError(f"{what}: layout source {s!r} leaves the archive.")
                if dst and not _inside(staging.resolve(), dst):
                    raise DatasetError(f"{what}: layout destination {dst!r} leaves the dataset folder.")
                _move(out / s if s else out, staging / dst if dst else staging, what)
        try:
            split = read_split(tmp, staged)
        except DatasetError as e:
            raise DatasetError(
                f"{name}: the downloaded files do not form a valid dataset, so nothing was installed: {e}"
            ) from None
        os.rename(staging, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not keep_downloads:
        for f, path in zip(src.files, paths):
            if not f.manual:
                path.unlink(missing_ok=True)
    log(f"{name}: prepared {target} ({_summary(split)})")
    return target


# Paper Table 6 names of the registered datasets (counts in coop/report/paper/table6_datasets.csv).


def _table6() -> dict[str, dict[str, str]]:
    path = Path(__file__).resolve().parent.parent / "report" / "paper" / "table6_datasets.csv"
    try:
        with open(path, newline="") as f:
            return {row["dataset"]: row for row in csv.DictReader(f)}
    except (OSError, KeyError, csv.Error):
        return {}


def _compare_table6(name: str, split: Split, table: dict[str, dict[str, str]]) -> str:
    from coop.report.paper_names import paper_dataset  # the one table of the paper's dataset names

    row = table.get(paper_dataset(name))
    if not row:
        return ""
    got = {"classes": len(split.classnames), "train": len(split.train), "val": len(split.val),
           "test": len(split.test)}
    diff = [f"{k} {got[k]} (paper {row[k]})" for k in got if row.get(k) and int(row[k]) != got[k]]
    return f"; differs from paper Table 6: {', '.join(diff)}" if diff else "; matches paper Table 6"


def check(root: str | Path) -> list[DatasetStatus]:
    """For every registered real dataset: is its folder present, and does `read_split` read it?"""
    root = Path(root)
    table = _table6()
    out = []
    for spec in DATASETS.values():
        if spec.toy or spec.name.startswith("toy_"):
            continue
        folder = dataset_dir(root, spec)
        if not folder.is_dir():
            fix = (f"datasets.{spec.name}.folder in the config: put the dataset there or fix the path"
                   if spec.configured else f"run `coop data prepare {spec.name} --root {root}`")
            out.append(DatasetStatus(spec.name, False, False, f"missing: {folder} ({fix})"))
            continue
        try:
            split = read_split(root, spec)
        except DatasetError as e:
            out.append(DatasetStatus(spec.name, True, False, str(e)))
            continue
        note = f"; evaluation only, classes of {spec.source}" if spec.source else ""
        message = _summary(split) + note + _compare_table6(spec.name, split, table)
        out.append(DatasetStatus(spec.name, True, True, message))
    return out


__all__ = [
    "SOURCES", "DatasetSource", "DatasetStatus", "SourceFile", "UnsafeArchiveError", "archive_kind", "check",
    "download", "extract", "file_checksum", "instructions", "prepare", "verify",
]
