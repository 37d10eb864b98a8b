"""Readers of the official folder layouts of ImageNet, its evaluation-only variants and FGVC-Aircraft.

    "imagenet"          root/imagenet/{classnames.txt, images/train/<wnid>/*, images/val/<wnid>/*}
    "fgvc"              root/fgvc_aircraft/{variants.txt, images_variant_{train,val,test}.txt, images/<id>.jpg}
    "imagenet_variant"  evaluation-only renderings of ImageNet's classes (V2, Sketch, A, R), each folder
                        holding a copy of ImageNet's classnames.txt

`coop.data.readers.read_split` dispatches here by `spec.reader`.
"""
from __future__ import annotations

import re
from pathlib import Path

from coop.data.folders import _class_images, _few, _image_files, _read_lines, _subdirs
from coop.data.specs import DatasetError, DatasetSpec, Item, Split, expected_layout

_WNID = re.compile(r"n\d{8}")
# CoOp's copy of CLIP's ImageNet class names (DATASETS.md of KaiyangZhou/CoOp).
IMAGENET_CLASSNAMES_URL = "https://drive.google.com/file/d/1-61f_ol79pViBFDG_IDlUQSwoLcn2XXF/view?usp=sharing"


def read_classnames(path: str | Path, fix: str = "") -> dict[str, str]:
    """ImageNet's `classnames.txt`: {wnid: class name} in file order (= label order).

    Each line is "<wnid> <class name>"; the name may contain spaces. Names need not be unique (CLIP's
    list has "missile" and "sunglasses" twice); wnids must be.
    """
    path = Path(path)
    fix = fix or (f"Download classnames.txt again from {IMAGENET_CLASSNAMES_URL} (CoOp's copy of CLIP's "
                  "ImageNet class names).")
    out: dict[str, str] = {}
    line_of: dict[str, int] = {}
    for n, line in _read_lines(path, "Class-name file", fix):
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not _WNID.fullmatch(parts[0]):
            raise DatasetError(
                f"{path}, line {n}: {line!r} is not '<wnid> <class name>' (e.g. 'n01440764 tench'). Fix "
                f"that line. {fix}"
            )
        wnid, name = parts
        if wnid in out:
            raise DatasetError(f"{path}, line {n}: wnid {wnid} is listed twice (also line {line_of[wnid]}). {fix}")
        out[wnid] = name.strip()
        line_of[wnid] = n
    if not out:
        raise DatasetError(f"{path} lists no classes. {fix}")
    return out


def _read_imagenet(root: str | Path, spec: DatasetSpec, folder: Path) -> Split:
    """train = images/train, test = images/val, val = [] (few-shot val comes from unused train images).

    Labels follow classnames.txt; class folders and the images in them are read in sorted order, or in
    the unsorted os order of the official code with the protocol switch imagenet_listing=os.
    """
    from coop import protocol

    sort = protocol.current().imagenet_listing == "sorted"
    layout = expected_layout(spec)
    names = read_classnames(folder / "classnames.txt")
    label = {w: i for i, w in enumerate(names)}
    parts: dict[str, list[Item]] = {}
    for part in ("train", "val"):
        d = folder / spec.image_dir / part
        how = (f"Extract ILSVRC2012_img_{part}.tar (from https://image-net.org) there, one folder per class "
               "named by wnid. Expected layout: " + layout + ".")
        if not d.is_dir():
            raise DatasetError(f"ImageNet {part} images not found: {d}. {how}")
        present = _subdirs(d, sort)
        if not present and _image_files(d):
            raise DatasetError(
                f"{d} holds images but no class folders. The validation images must be sorted into "
                "images/val/<wnid>/ by the labels of the ILSVRC2012 devkit (e.g. with the widely used "
                f"valprep.sh script). {how}"
            )
        unknown = [w for w in present if w not in label]
        if unknown:
            raise DatasetError(
                f"{d} has {len(unknown)} class folders not listed in {folder / 'classnames.txt'}: "
                f"{_few(unknown)}. Remove them, or use the classnames.txt that matches these images."
            )
        missing = sorted(set(label) - set(present))
        if missing:
            raise DatasetError(
                f"{d} lacks the folders of {len(missing)} of the {len(label)} classes in "
                f"{folder / 'classnames.txt'}: {_few(missing)}. The extraction is incomplete. {how}"
            )
        items: list[Item] = []
        for w in present:
            items.extend(Item(f"{part}/{w}/{f}", label[w], names[w])
                         for f in _class_images(d / w, f"class {w}, {names[w]!r}", sort))
        parts[part] = items
    return Split(parts["train"], [], parts["val"], list(names.values()), class_ids=list(names))


def _read_fgvc(root: str | Path, spec: DatasetSpec, folder: Path) -> Split:
    """FGVC-Aircraft 2013b `data/` folder: variant classes in variants.txt order, splits from the
    images_variant_{train,val,test}.txt files ("<id> <variant>"), images at images/<id>.jpg."""
    fix = (f"Extract fgvc-aircraft-2013b.tar.gz again and keep its data/ folder as {folder} "
           f"(`coop data prepare {spec.name} --root {root}` does this). Expected layout: "
           f"{expected_layout(spec)}.")
    variants_path = folder / "variants.txt"
    classnames: list[str] = []
    label: dict[str, int] = {}
    for n, name in _read_lines(variants_path, "Variant list", fix):
        if name in label:
            raise DatasetError(f"{variants_path}, line {n}: variant {name!r} is listed twice. {fix}")
        label[name] = len(classnames)
        classnames.append(name)
    if not classnames:
        raise DatasetError(f"{variants_path} lists no variants. {fix}")
    image_dir = folder / spec.image_dir
    if not image_dir.is_dir():
        raise DatasetError(f"FGVC-Aircraft images not found: {image_dir}. {fix}")
    on_disk = set(_image_files(image_dir))
    parts: dict[str, list[Item]] = {}
    for part in ("train", "val", "test"):
        path = folder / f"images_variant_{part}.txt"
        items = []
        for n, line in _read_lines(path, f"FGVC-Aircraft {part} split file", fix):
            image_id, _, variant = line.partition(" ")
            variant = variant.strip()
            if not variant:
                raise DatasetError(
                    f"{path}, line {n}: {line!r} is not '<image id> <variant name>' (e.g. '1025794 707-320'). "
                    f"{fix}"
                )
            if variant not in label:
                raise DatasetError(
                    f"{path}, line {n}: variant {variant!r} is not listed in {variants_path}. {fix}"
                )
            items.append(Item(f"{image_id}.jpg", label[variant], variant))
        missing = [it.path for it in items if it.path not in on_disk]
        if missing:
            raise DatasetError(
                f"{len(missing)} images listed in {path} are missing from {image_dir}: {_few(missing)}. {fix}"
            )
        parts[part] = items
    return Split(parts["train"], parts["val"], parts["test"], classnames)


def _read_imagenet_variant(root: str | Path, spec: DatasetSpec, folder: Path) -> Split:
    """A test-only rendering of ImageNet's classes (train and val are empty).

    Class folders named by ImageNet label (ImageNet-V2: 0..999): label = that number, classnames = all of
    ImageNet's. Class folders named by wnid (Sketch, A, R): labels 0..n-1 in sorted wnid order of the
    folders present (ImageNet-A/-R hold 200 classes), named with ImageNet's class names.
    """
    layout = expected_layout(spec)
    classnames_path = folder / "classnames.txt"
    names = read_classnames(
        classnames_path,
        fix=(f"Copy imagenet/classnames.txt into {folder} (download it from {IMAGENET_CLASSNAMES_URL} if "
             "you have none). Expected layout: " + layout + "."),
    )
    wnids = list(names)
    image_dir = folder / spec.image_dir
    how = (f"Expected layout: {layout}. `coop data prepare {spec.name} --root {root}` says where to get "
           "the archive.")
    if not image_dir.is_dir():
        raise DatasetError(f"Images of {spec.name!r} not found: {image_dir}. {how}")
    classes = _subdirs(image_dir)
    if not classes:
        raise DatasetError(f"{image_dir} has no class folders. {how}")
    test: list[Item] = []
    if all(c.isdigit() for c in classes):
        for c in sorted(classes, key=int):
            lbl = int(c)
            if lbl >= len(wnids):
                raise DatasetError(
                    f"{image_dir / c}: label {lbl} is out of range, {classnames_path} lists {len(wnids)} "
                    f"classes (labels 0..{len(wnids) - 1}). Use the full ImageNet classnames.txt."
                )
            test.extend(Item(f"{c}/{f}", lbl, names[wnids[lbl]])
                        for f in _class_images(image_dir / c, f"label {lbl}, {names[wnids[lbl]]!r}"))
        return Split([], [], test, list(names.values()), class_ids=wnids)
    bad = [c for c in classes if not _WNID.fullmatch(c)]
    if bad:
        raise DatasetError(
            f"{image_dir} has folders that are neither wnids (e.g. n01440764) nor ImageNet labels: "
            f"{_few(bad)}. Class folders must all be wnids or all labels. {how}"
        )
    unknown = [c for c in classes if c not in names]
    if unknown:
        raise DatasetError(
            f"{image_dir} has {len(unknown)} class folders whose wnid is not in {classnames_path}: "
            f"{_few(unknown)}. Copy the full imagenet/classnames.txt into {folder}, or remove those folders."
        )
    for lbl, w in enumerate(classes):
        test.extend(Item(f"{w}/{f}", lbl, names[w]) for f in _class_images(image_dir / w, f"{names[w]!r}"))
    return Split([], [], test, [names[w] for w in classes], class_ids=classes)
