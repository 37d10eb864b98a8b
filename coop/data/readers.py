"""`read_split(root, spec) -> Split`: reads any dataset's train/val/test items, whatever its layout.

Dispatches on `spec.reader`:

    "split_json"        <folder>/<split file>, a Zhou-style split JSON (CoOp's split_zhou_<Name>.json):
                        {"train"|"val"|"test": [[path, label, classname], ...]} (toy datasets, nine real
                        ones, and config datasets with layout split_json)
    "image_folder"      <folder>/<image_dir>/{train,val,test}/<class>/<image>, one folder per class; val is
                        optional (config datasets with layout image_folder)
    "imagenet", "fgvc", "imagenet_variant"   the official layouts, in coop.data.official_layouts

A config dataset may rename its classes with a `classnames_file` ("<label or folder> <class name>" lines).
Error messages say what is wrong and how to fix it: for built-in datasets `coop data prepare`/`coop data
toy`, for config datasets the `datasets.<name>` entry.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from coop.data.folders import _class_images, _few, _read_lines, _subdirs
from coop.data.official_layouts import _read_fgvc, _read_imagenet, _read_imagenet_variant
from coop.data.specs import DatasetError, DatasetSpec, Item, Split, dataset_dir, expected_layout, image_root


def read_split(root: str | Path, spec: DatasetSpec) -> Split:
    """Read dataset `spec` under data root `root` into train/val/test items, whatever its layout."""
    folder = dataset_dir(root, spec)
    if not folder.is_dir():
        raise DatasetError(
            f"Dataset folder for {spec.name!r} not found: {folder}. Expected {expected_layout(spec)}. "
            f"{_fix_hint(root, spec)}"
        )
    readers = {"imagenet": _read_imagenet, "fgvc": _read_fgvc, "imagenet_variant": _read_imagenet_variant,
               "image_folder": _read_image_folder}
    split = readers.get(spec.reader, _read_split_json)(root, spec, folder)
    if not spec.duplicate_classnames:
        check_unique_classnames(split, spec)
    return split


def check_unique_classnames(split: Split, spec: DatasetSpec) -> None:
    """Two labels whose prompt names are equal (the same name, or names equal once underscores become spaces,
    e.g. 'zero_digit' and 'zero digit') would be one class to CLIP's text encoder: a DatasetError naming them."""
    raw = {it.label: it.classname for it in split.train}
    labels: dict[str, list[int]] = {}
    for label, name in enumerate(split.classnames):
        labels.setdefault(name, []).append(label)
    same = {name: ls for name, ls in labels.items() if len(ls) > 1}
    if not same:
        return
    name, ls = next(iter(same.items()))
    shown = " and ".join(f"{label} ({raw.get(label, name)!r})" for label in ls)
    fix = (f"set duplicate_classnames: true in datasets.{spec.name} of the config" if spec.configured
           else "pass a spec with duplicate_classnames=True")
    raise DatasetError(
        f"Dataset {spec.name!r}: labels {shown} have the same class name {name!r} in prompts (underscores become "
        f"spaces){f', and {len(same) - 1} more such names' if len(same) > 1 else ''}, so the text encoder could "
        f"not tell them apart. Rename one of them in the split (or class-name file), or, if the dataset truly "
        f"has such classes, {fix}."
    )


def _entry(spec: DatasetSpec) -> str:
    return f"datasets.{spec.name}"


def _fix_hint(root: str | Path, spec: DatasetSpec) -> str:
    if spec.configured:
        return (f"Put the dataset there, or fix {_entry(spec)}.folder in the config (an absolute path, or a "
                f"folder under the data root {root}).")
    if spec.toy:
        return f"Generate it with `coop data toy --dataset {spec.name} --root {root}` (or run the workflow)."
    return (f"Run `coop data prepare {spec.name} --root {root}`: it downloads what can be downloaded and "
            "says where to put what must be fetched by hand (or set data_root to where the data is).")


def _split_fix(root: str | Path, spec: DatasetSpec, path: Path) -> str:
    """How to replace a missing or malformed split file of `spec` (nothing else under the root is touched)."""
    if spec.configured:
        return (f"Fix {path}, or point {_entry(spec)}.split_file in the config at the right split JSON "
                f"inside {path.parent}.")
    if spec.toy:
        return (f"Regenerate the dataset: move {path.parent} away (or delete it if nothing in it is needed), "
                f"then run `coop data toy --dataset {spec.name} --root {root}` (or the workflow).")
    return (f"Download {spec.split_file} again and replace {path} with it (`coop data prepare {spec.name} "
            f"--root {root}` says where to get it).")


def _parse_items(raw: object, where: str, fix: str = "") -> list[Item]:
    if not isinstance(raw, list):
        raise DatasetError(
            f"{where}: expected a list of [path, label, classname], got {type(raw).__name__}. {fix}".rstrip()
        )
    items = []
    for i, entry in enumerate(raw):
        ok = (
            isinstance(entry, (list, tuple)) and len(entry) == 3 and isinstance(entry[0], str)
            and isinstance(entry[1], int) and not isinstance(entry[1], bool) and entry[1] >= 0
            and isinstance(entry[2], str)
        )
        if not ok:
            raise DatasetError(
                f"{where}[{i}] is {entry!r}; each entry must be [relative_path (str), label (int >= 0), "
                f"classname (str)]. Fix that entry, or replace the split file. {fix}".rstrip()
            )
        rel = entry[0].replace("\\", "/")
        if not rel or rel.startswith("/") or re.match(r"^[A-Za-z]:", rel) or ".." in rel.split("/"):
            raise DatasetError(
                f"{where}[{i}] has the image path {entry[0]!r}, which is empty, absolute or leaves the dataset's "
                f"image folder ('..'); paths must be relative to it. Fix that entry, or replace the split file. "
                f"{fix}".rstrip()
            )
        items.append(Item(entry[0], entry[1], entry[2]))
    return items


def _classnames(items: list[Item], where: str, fix: str = "") -> list[str]:
    names: dict[int, str] = {}
    for it in items:
        if names.setdefault(it.label, it.classname) != it.classname:
            raise DatasetError(
                f"{where}: label {it.label} is named both {names[it.label]!r} and {it.classname!r}; each label "
                f"must have one class name. {fix}".rstrip()
            )
    labels = sorted(names)
    if labels != list(range(len(labels))):
        missing = sorted(set(range(max(labels) + 1)) - set(labels)) if labels else []
        raise DatasetError(
            f"{where}: labels must be 0..n-1 without gaps for n classes, but the {len(labels)} classes use labels "
            f"up to {max(labels)} (label out of range?); missing {missing[:10]}. {fix}".rstrip()
        )
    return [names[i].replace("_", " ") for i in labels]


def _read_split_json(root: str | Path, spec: DatasetSpec, folder: Path) -> Split:
    """A Zhou-style split JSON: {"train"|"val"|"test": [[path, label, classname], ...]}."""
    path = folder / spec.split_file
    fix = _split_fix(root, spec, path)
    if not path.is_file():
        if spec.configured:
            where = (f"Put the split JSON there, or set {_entry(spec)}.split_file in the config to its name "
                     f"inside {folder}.")
        else:
            where = ("" if spec.toy else f"Download {spec.split_file} from the CoOp dataset instructions into "
                     f"{folder}. {_fix_hint(root, spec)}")
        raise DatasetError(
            f"Split file for {spec.name!r} not found: {path}. " + (where or fix)
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"Malformed split file {path}: it is not JSON ({e}). {fix}") from None
    if not isinstance(raw, dict) or not {"train", "val", "test"} <= set(raw):
        keys = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise DatasetError(
            f"Malformed split file {path}: expected keys train, val, test (each a list); found {keys}. {fix}"
        )
    parts = {k: _parse_items(raw[k], f"{path}:{k}", fix) for k in ("train", "val", "test")}
    classnames = _classnames(parts["train"] + parts["val"] + parts["test"], str(path), fix)
    if spec.classnames_file:
        renames = _read_renames(root, spec, folder, {str(i): i for i in range(len(classnames))}, "label")
        classnames = [renames.get(i, name) for i, name in enumerate(classnames)]
        parts = {k: [Item(it.path, it.label, classnames[it.label]) if it.label in renames else it
                     for it in items] for k, items in parts.items()}
    return Split(parts["train"], parts["val"], parts["test"], classnames)


def _read_renames(root: str | Path, spec: DatasetSpec, folder: Path, keys: dict[str, int], what: str) -> dict[int, str]:
    """{label: new class name} from the spec's classnames file ("<key> <class name>" lines); `keys` maps
    each valid key (a label number, or a class folder's name) to its label."""
    path = folder / spec.classnames_file
    fix = (f"Fix {path} (one '<{what}> <class name>' line per class to rename), or remove "
           f"{_entry(spec)}.classnames from the config.")
    out: dict[int, str] = {}
    line_of: dict[str, int] = {}
    for n, line in _read_lines(path, f"Class-name file of {spec.name!r}", fix):
        key, _, name = line.partition(" ")
        key, name = key.strip(), name.strip()
        if not name:
            raise DatasetError(f"{path}, line {n}: {line!r} is not '<{what}> <class name>'. {fix}")
        if key not in keys:
            raise DatasetError(
                f"{path}, line {n}: {key!r} is not a {what} of {spec.name!r} (its {what}s: {_few(sorted(keys))}). "
                f"{fix}"
            )
        if key in line_of:
            raise DatasetError(f"{path}, line {n}: {what} {key!r} is listed twice (also line {line_of[key]}). {fix}")
        line_of[key] = n
        out[keys[key]] = name
    return out


def _read_image_folder(root: str | Path, spec: DatasetSpec, folder: Path) -> Split:
    """<image_dir>/{train,val,test}/<class>/<image>: classes are train's class folders in sorted order
    (labels 0..n-1), named after the folder ("_" read as a space) unless the classnames file renames them;
    val and test may hold fewer classes than train but none that train lacks. No val folder: val = [] (the
    few-shot sampler then draws val from the unused train images, as for ImageNet)."""
    base = image_root(root, spec)
    how = f"Expected layout: {expected_layout(spec)}. {_fix_hint(root, spec)}"
    fix = f"Put images into it, or remove the folder. {how}"
    label: dict[str, int] = {}
    names: list[str] = []
    parts: dict[str, list[Item]] = {}
    for part in ("train", "val", "test"):
        d = base / part
        if not d.is_dir():
            if part == "val":
                parts[part] = []
                continue
            raise DatasetError(f"{part.capitalize()} images of {spec.name!r} not found: {d}. {how}")
        classes = _subdirs(d)
        if not classes:
            raise DatasetError(f"{d} has no class folders (one folder of images per class). {how}")
        if part == "train":
            label = {c: i for i, c in enumerate(classes)}
            names = [c.replace("_", " ") for c in classes]
            if spec.classnames_file:
                for i, name in _read_renames(root, spec, folder, label, "class folder").items():
                    names[i] = name
        unknown = [c for c in classes if c not in label]
        if unknown:
            raise DatasetError(
                f"{d} has {len(unknown)} class folders that {base / 'train'} lacks: {_few(unknown)}. Every "
                f"class needs training images: add them under train/, or remove those folders."
            )
        parts[part] = [Item(f"{part}/{c}/{f}", label[c], names[label[c]])
                       for c in classes for f in _class_images(d / c, f"class {names[label[c]]!r}", fix=fix)]
    return Split(parts["train"], parts["val"], parts["test"], names)
