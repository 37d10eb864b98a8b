"""Datasets defined by config alone: one entry of a config's `datasets:` block -> a `DatasetSpec`.

    datasets:
      my_birds:
        folder: birds                 # a folder under the data root, or an absolute path
        layout: split_json            # a Zhou-style split JSON (CoOp's split_zhou_<Name>.json format)
        split_file: my_split.json     # the split JSON inside the folder; or split_name: Birds, which
                                      # means split_zhou_Birds.json (exactly one of the two)
        image_dir: images             # folder the split's paths are relative to ("" = the dataset folder)
        template: "a photo of a {}, a type of bird."
        classnames: classnames.txt    # optional: "<label> <class name>" lines renaming classes
        paper_name: cub               # optional: the paper dataset it stands for
        duplicate_classnames: false   # optional: true lets two labels share a prompt name (else an error)
      my_leaves:
        folder: /data/leaves
        layout: image_folder          # <folder>/<image_dir>/{train,val,test}/<class>/<image>; val optional
        template: "a photo of a {} leaf."
        classnames: names.txt         # optional: "<class folder> <class name>" lines

`dataset_from_config(name, entry)` validates the entry alone (no files are read) and returns the spec;
`coop.data.datasets.register_datasets(block)` registers a whole block, after which `get_dataset(name)` and
`read_split(root, spec)` treat these datasets like built-in ones. `check_dataset_on_disk(root, spec)` is the
cheap check, before any job runs, that the folder and the file defining the split are where the entry says.
Every error names the entry (`datasets.<name>`), what is wrong and how to fix it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

from coop.data.specs import (
    DatasetError,
    DatasetSpec,
    dataset_dir,
    expected_layout,
    image_root,
    split_path,
    zhou_split_file,
)

CONFIG_LAYOUTS = ("split_json", "image_folder")
CONFIG_KEYS = ("folder", "layout", "template", "split_file", "split_name", "image_dir", "classnames",
               "paper_name", "duplicate_classnames")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def _bad(name: str, problem: str, fix: str) -> DatasetError:
    return DatasetError(f"Config entry datasets.{name}: {problem}. {fix}")


def _string(name: str, entry: Mapping[str, Any], key: str, required: bool = False) -> str | None:
    value = entry.get(key)
    if value is None:
        if required:
            raise _bad(name, f"'{key}' is missing", _HELP[key])
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise _bad(name, f"'{key}' is {value!r}, not a{' non-empty' if required else ''} string", _HELP[key])
    return value


def _relative(name: str, key: str, value: str) -> str:
    """`value` must be a path inside the dataset folder (relative, no '..')."""
    posix = value.replace("\\", "/")
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix) or ".." in PurePosixPath(posix).parts:
        raise _bad(name, f"'{key}' is {value!r}, which is absolute or leaves the dataset folder ('..')",
                   f"Give it relative to the dataset folder (move the folder setting instead). {_HELP[key]}")
    return value


_HELP = {
    "folder": "Set 'folder' to the dataset's folder: an absolute path, or a folder under the data root.",
    "layout": f"Set 'layout' to one of: {', '.join(CONFIG_LAYOUTS)}.",
    "template": "Set 'template' to the zero-shot prompt with '{}' where the class name goes, e.g. "
                "\"a photo of a {}.\".",
    "split_file": "Set 'split_file' to the split JSON's file name inside the dataset folder.",
    "split_name": f"Set 'split_name' to <Name> of a {zhou_split_file('<Name>')} file inside the dataset folder.",
    "image_dir": "Set 'image_dir' to the folder (inside the dataset folder) that the image paths are relative "
                 "to, or leave it out for the dataset folder itself.",
    "classnames": "Set 'classnames' to a text file inside the dataset folder, or leave it out.",
    "paper_name": "Set 'paper_name' to the paper dataset's name, or leave it out.",
    "duplicate_classnames": "Set 'duplicate_classnames' to true (two labels may share a prompt name) or leave it "
                            "out.",
}


def dataset_from_config(name: str, entry: Mapping[str, Any]) -> DatasetSpec:
    """The `DatasetSpec` of config entry `datasets.<name>` (a plain dict, as read from YAML).

    Keys (CONFIG_KEYS): folder, layout and template are required; split_file or split_name (exactly one)
    for layout split_json; image_dir, classnames, paper_name and duplicate_classnames are optional. Raises
    DatasetError naming the entry, the problem and the fix. Nothing on disk is read (see check_dataset_on_disk).
    """
    from coop.data.datasets import BUILTIN_DATASETS

    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise DatasetError(
            f"Config entry datasets.{name}: the name {name!r} is not usable as a dataset name (it appears in "
            "result paths). Use letters, digits, '_' and '-', starting with a letter or digit, e.g. 'my_birds'."
        )
    if name in BUILTIN_DATASETS:
        raise _bad(name, f"{name!r} is the name of a built-in dataset",
                   f"Rename the entry (e.g. to 'my_{name}'); to use the built-in one, leave it out of 'datasets'.")
    if name.startswith("toy_"):
        raise _bad(name, "names starting with 'toy_' are reserved for the generated toy datasets",
                   f"Rename the entry, e.g. to 'my_{name[4:]}'.")
    if not isinstance(entry, Mapping):
        raise _bad(name, f"the entry is {type(entry).__name__} {entry!r}, not a mapping of settings",
                   f"Write it as a mapping with the keys {', '.join(CONFIG_KEYS)}.")
    unknown = sorted(str(k) for k in entry if k not in CONFIG_KEYS)
    if unknown:
        raise _bad(name, f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}",
                   f"Valid keys: {', '.join(CONFIG_KEYS)}. Fix the spelling or remove them.")
    folder = os.path.expanduser(_string(name, entry, "folder", required=True))
    layout = _string(name, entry, "layout", required=True)
    if layout not in CONFIG_LAYOUTS:
        raise _bad(name, f"unknown layout {layout!r}", _HELP["layout"])
    template = _string(name, entry, "template", required=True)
    try:
        ok = "{}" in template and template.format("x") is not None
    except (IndexError, KeyError, ValueError):
        ok = False
    if not ok:
        raise _bad(name, f"the template {template!r} has no '{{}}' for the class name (or has other braces: "
                         "write a literal brace as '{{' or '}}')", _HELP["template"])
    image_dir = _relative(name, "image_dir", _string(name, entry, "image_dir") or "")
    classnames = _string(name, entry, "classnames")
    if classnames is not None:
        classnames = _relative(name, "classnames", classnames)
    paper_name = _string(name, entry, "paper_name")
    split_file = _string(name, entry, "split_file")
    split_name = _string(name, entry, "split_name")
    if layout == "split_json":
        if (split_file is None) == (split_name is None):
            raise _bad(name, "layout split_json needs exactly one of 'split_file' and 'split_name'"
                       + (" (both are set)" if split_file is not None else ""),
                       f"{_HELP['split_file']} Or s{_HELP['split_name'][1:]}")
        split_file = _relative(name, "split_file" if split_file is not None else "split_name",
                               split_file if split_file is not None else zhou_split_file(split_name))
    else:
        given = [k for k in ("split_file", "split_name") if entry.get(k) is not None]
        if given:
            raise _bad(name, f"{' and '.join(map(repr, given))} apply only to layout split_json (layout "
                             "image_folder takes its split from the train/val/test folders)", "Remove them.")
        # the train folder stands for the split: it exists exactly when the dataset does
        split_file = str(PurePosixPath(image_dir.replace("\\", "/")) / "train") if image_dir else "train"
    duplicates = entry.get("duplicate_classnames", False)
    if not isinstance(duplicates, bool):
        raise _bad(name, f"duplicate_classnames is {duplicates!r}, not true or false", _HELP["duplicate_classnames"])
    return DatasetSpec(name, folder, split_file, image_dir, template, reader=layout, classnames_file=classnames,
                       paper_name=paper_name, configured=True, duplicate_classnames=duplicates)


def check_dataset_on_disk(root: str | Path, spec: DatasetSpec) -> None:
    """Raise DatasetError unless `spec`'s folder and the files that define its split exist (the dataset
    folder; the split JSON, or the train and test folders; the classnames file). Cheap: nothing is read,
    so the workflow can call it for every config dataset before any job runs; `read_split` checks the rest.
    """
    what = f"Config entry datasets.{spec.name}" if spec.configured else f"Dataset {spec.name!r}"
    folder = dataset_dir(root, spec)
    where = ("an absolute path" if Path(spec.folder).is_absolute()
             else f"{spec.folder!r} under the data root {root}")
    layout = f"Expected {expected_layout(spec)}."
    if not folder.is_dir():
        fix = (f"Put the dataset at {folder}, or set 'folder' to where it is (an absolute path, or a folder "
               "under the data root)." if spec.configured else
               f"Run `coop data prepare {spec.name} --root {root}` (or `coop data toy` for a toy dataset).")
        raise DatasetError(f"{what}: dataset folder not found: {folder} (folder is {where}). {fix} {layout}")
    needed = []
    if spec.reader == "image_folder":
        base = image_root(root, spec)
        needed += [("train folder", base / "train", "image_dir"), ("test folder", base / "test", "image_dir")]
    else:
        needed.append(("split file", split_path(root, spec), "split_file"))
        if spec.image_dir:
            needed.append(("image folder", image_root(root, spec), "image_dir"))
    if spec.classnames_file:
        needed.append(("class-name file", folder / spec.classnames_file, "classnames"))
    for kind, path, key in needed:
        exists = path.is_dir() if key == "image_dir" else path.is_file()
        if not exists:
            fix = (f"Put it there, or set '{key}' to the right {'folder' if key == 'image_dir' else 'file'} "
                   f"inside {folder}." if spec.configured else
                   f"Run `coop data prepare {spec.name} --root {root}` (or `coop data toy` for a toy dataset).")
            raise DatasetError(f"{what}: {kind} not found: {path}. {fix} {layout}")
