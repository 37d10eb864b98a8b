"""Readers of the real datasets' folder layouts (ImageNet, FGVC-Aircraft, ImageNet-V2/-Sketch/-A/-R),
on miniature copies of each layout built in tmp_path."""
import os
import random
from pathlib import Path

import pytest
from PIL import Image

from coop.data.datasets import (
    DATASETS,
    DatasetError,
    Split,
    get_dataset,
    image_root,
    read_split,
    split_path,
)
from coop.data.fewshot import make_manifest, sample_fewshot

WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361", "n01494475"]
NAMES = ["tench", "goldfish", "great white shark", "tiger shark", "hammerhead shark"]


def _image(path: Path, color=(200, 30, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    Image.new("RGB", (4, 4), color).save(path, format=fmt)


def _classnames(folder: Path, wnids=WNIDS, names=NAMES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "classnames.txt"
    path.write_text("".join(f"{w} {n}\n" for w, n in zip(wnids, names)))
    return path


def _imagenet(root: Path, n_train=(3, 4, 2), n_val=2, wnids=WNIDS[:3], names=NAMES[:3]) -> Path:
    folder = root / "imagenet"
    _classnames(folder, wnids, names)
    for w, n in zip(wnids, n_train):
        for i in reversed(range(n)):  # created in reverse: the reader must sort
            _image(folder / "images" / "train" / w / f"{w}_{i}.JPEG")
        for i in reversed(range(n_val)):
            _image(folder / "images" / "val" / w / f"ILSVRC2012_val_{w}_{i}.JPEG")
    return folder


# ---------------------------------------------------------------------------------------------
# registry


def test_registry_has_every_dataset_of_the_paper():
    expected = {
        "imagenet": ("imagenet", "imagenet", None),
        "fgvc_aircraft": ("fgvc_aircraft", "fgvc", None),
        "imagenetv2": ("imagenetv2", "imagenet_variant", "imagenet"),
        "imagenet_sketch": ("imagenet-sketch", "imagenet_variant", "imagenet"),
        "imagenet_a": ("imagenet-adversarial", "imagenet_variant", "imagenet"),
        "imagenet_r": ("imagenet-rendition", "imagenet_variant", "imagenet"),
    }
    for name, (folder, reader, source) in expected.items():
        spec = get_dataset(name)
        assert (spec.folder, spec.reader, spec.source, spec.toy) == (folder, reader, source, False)
    assert get_dataset("fgvc_aircraft").template == "a photo of a {}, a type of aircraft."
    for name in ("imagenet", "imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r"):
        assert get_dataset(name).template == "a photo of a {}."
    assert get_dataset("dtd").reader == "split_json" and get_dataset("dtd").source is None
    # toy renderings carry their source through to the registry
    assert get_dataset("toy_shapes_sketch").source == "toy_shapes"
    assert sum(not s.toy for s in DATASETS.values()) == 15


def test_unknown_reader_is_rejected():
    from coop.data.datasets import DatasetSpec

    with pytest.raises(ValueError, match="reader 'csv'"):
        DatasetSpec("x", "x", "x.json", "", "{}", reader="csv")


# ---------------------------------------------------------------------------------------------
# ImageNet


def test_imagenet_reads_sorted_folders_with_classnames_labels(tmp_path):
    folder = _imagenet(tmp_path)
    (folder / "images" / "train" / WNIDS[0] / ".hidden.JPEG").write_bytes(b"x")  # hidden: skipped
    (folder / "images" / "train" / WNIDS[0] / "notes.txt").write_text("x")      # not an image: skipped
    spec = get_dataset("imagenet")
    split = read_split(tmp_path, spec)
    assert split.classnames == ["tench", "goldfish", "great white shark"]
    assert split.class_ids == WNIDS[:3]
    assert split.val == []  # no separate val split: the few-shot sampler draws val from train
    assert len(split.train) == 9 and len(split.test) == 6
    assert [it.path for it in split.train[:3]] == [f"train/{WNIDS[0]}/{WNIDS[0]}_{i}.JPEG" for i in range(3)]
    assert split.train == sorted(split.train, key=lambda it: it.path)
    assert {(it.label, it.classname) for it in split.test} == {(0, "tench"), (1, "goldfish"),
                                                               (2, "great white shark")}
    assert all(it.path.startswith("val/") for it in split.test)
    assert all((image_root(tmp_path, spec) / it.path).is_file() for it in split.train + split.test)
    assert split_path(tmp_path, spec) == folder / "classnames.txt"
    assert read_split(tmp_path, spec) == split  # deterministic


def test_imagenet_labels_follow_classnames_txt_order(tmp_path):
    # classnames.txt in a non-sorted order: labels follow the file, folders are still read sorted
    order = [WNIDS[2], WNIDS[0], WNIDS[1]]
    _imagenet(tmp_path, wnids=order, names=[NAMES[2], NAMES[0], NAMES[1]])
    split = read_split(tmp_path, get_dataset("imagenet"))
    assert split.classnames == ["great white shark", "tench", "goldfish"]
    assert [it.label for it in split.test] == [1, 1, 2, 2, 0, 0]  # sorted wnid folders
    assert split.test[0].classname == "tench"


def test_imagenet_fewshot_val_comes_from_unused_train_images(tmp_path):
    _imagenet(tmp_path, n_train=(6, 7, 5))
    split = read_split(tmp_path, get_dataset("imagenet"))
    for k in (1, 2, 4):
        train, val = sample_fewshot(split, k, seed=1)
        assert len(train) == 3 * k
        assert not {it.path for it in train} & {it.path for it in val}
        assert {it.path for it in val} <= {it.path for it in split.train}
        per_class = {c: sum(it.label == c for it in val) for c in range(3)}
        assert per_class == {c: min(k, 4, n - k) for c, n in enumerate((6, 7, 5))}
        # docs/PROTOCOL.md's stream: random.seed(S); train per label; then val from the rest, same stream
        rng = random.Random(1)
        groups = {}
        for it in split.train:
            groups.setdefault(it.label, []).append(it)
        ref_train = [x for g in groups.values() for x in rng.sample(g, k)]
        rest = {}
        for it in split.train:
            if it not in ref_train:
                rest.setdefault(it.label, []).append(it)
        ref_val = [x for g in rest.values() for x in (rng.sample(g, min(k, 4)) if len(g) >= min(k, 4) else g)]
        assert (train, val) == (ref_train, ref_val)
    m = make_manifest("imagenet", split, 2, 3)
    assert m["val_from_train"] is True and len(m["val"]) == 6
    assert m == make_manifest("imagenet", split, 2, 3)


def test_datasets_with_val_split_do_not_mark_val_from_train():
    from coop.data.datasets import Item

    items = [Item(f"{c}/{i}.png", c, f"c{c}") for c in range(2) for i in range(3)]
    split = Split(items, items[:2] + items[3:5], [], ["c0", "c1"])
    assert "val_from_train" not in make_manifest("x", split, 1, 1)


@pytest.mark.badinput
def test_fewshot_on_an_evaluation_only_dataset_is_an_error(tmp_path):
    _classnames(tmp_path / "imagenet-sketch")
    _image(tmp_path / "imagenet-sketch" / "images" / WNIDS[0] / "sketch_0.JPEG")
    split = read_split(tmp_path, get_dataset("imagenet_sketch"))
    with pytest.raises(DatasetError, match="no training images.*source"):
        make_manifest("imagenet_sketch", split, 1, 1)


# ---------------------------------------------------------------------------------------------
# FGVC-Aircraft

VARIANTS = ["707-320", "Boeing 717", "F/A-18"]


def _fgvc(root: Path) -> Path:
    folder = root / "fgvc_aircraft"
    folder.mkdir()
    (folder / "variants.txt").write_text("\n".join(VARIANTS) + "\n")
    ids = {"train": ["1025794", "0034309", "1340192"], "val": ["0056978", "1234567"], "test": ["2222222"]}
    labels = {"train": [0, 1, 2], "val": [2, 1], "test": [1]}
    for part in ids:
        lines = [f"{i} {VARIANTS[lbl]}" for i, lbl in zip(ids[part], labels[part])]
        (folder / f"images_variant_{part}.txt").write_text("\n".join(lines) + "\n")
        for i in ids[part]:
            _image(folder / "images" / f"{i}.jpg")
    return folder


def test_fgvc_aircraft(tmp_path):
    _fgvc(tmp_path)
    spec = get_dataset("fgvc_aircraft")
    split = read_split(tmp_path, spec)
    assert split.classnames == VARIANTS
    assert [(it.path, it.label, it.classname) for it in split.train] == [
        ("1025794.jpg", 0, "707-320"), ("0034309.jpg", 1, "Boeing 717"), ("1340192.jpg", 2, "F/A-18")]
    assert [it.label for it in split.val] == [2, 1] and [it.classname for it in split.test] == ["Boeing 717"]
    assert all((image_root(tmp_path, spec) / it.path).is_file() for it in split.train + split.val + split.test)
    assert split_path(tmp_path, spec).name == "variants.txt"


# ---------------------------------------------------------------------------------------------
# ImageNet variants


def test_imagenetv2_labels_are_the_folder_numbers(tmp_path):
    folder = tmp_path / "imagenetv2"
    wnids = [f"n0{i:07d}" for i in range(12)]
    _classnames(folder, wnids, [f"class {i}" for i in range(12)])
    img = folder / "imagenetv2-matched-frequency-format-val"
    for lbl in (0, 2, 10, 11):
        for j in range(2):
            _image(img / str(lbl) / f"{j}abc.jpeg")
    split = read_split(tmp_path, get_dataset("imagenetv2"))
    assert split.train == [] and split.val == []
    assert len(split.classnames) == 12 and split.class_ids == wnids  # all of ImageNet's classes
    assert [it.label for it in split.test] == [0, 0, 2, 2, 10, 10, 11, 11]  # numeric folder order
    assert split.test[4].path == "10/0abc.jpeg" and split.test[4].classname == "class 10"


def test_imagenet_sketch(tmp_path):
    folder = tmp_path / "imagenet-sketch"
    _classnames(folder, WNIDS[:3], NAMES[:3])
    for w in reversed(WNIDS[:3]):
        for j in (1, 0):
            _image(folder / "images" / w / f"sketch_{j}.JPEG")
    split = read_split(tmp_path, get_dataset("imagenet_sketch"))
    assert split.classnames == NAMES[:3] and split.class_ids == WNIDS[:3]
    assert [(it.path, it.label) for it in split.test[:2]] == [(f"{WNIDS[0]}/sketch_0.JPEG", 0),
                                                              (f"{WNIDS[0]}/sketch_1.JPEG", 0)]
    assert len(split.test) == 6 and split.train == split.val == []


@pytest.mark.parametrize("name, folder, sub", [
    ("imagenet_a", "imagenet-adversarial", "imagenet-a"),
    ("imagenet_r", "imagenet-rendition", "imagenet-r"),
])
def test_imagenet_a_and_r_use_sorted_wnids_of_the_folders_present(tmp_path, name, folder, sub):
    # the full classnames.txt (5 classes, not in sorted order) but only 3 class folders, like 200 of 1000
    order = [4, 1, 3, 0, 2]
    _classnames(tmp_path / folder, [WNIDS[i] for i in order], [NAMES[i] for i in order])
    present = [WNIDS[3], WNIDS[0], WNIDS[4]]
    for w in present:
        for j in range(2):
            _image(tmp_path / folder / sub / w / f"{j}.jpg")
    (tmp_path / folder / sub / "README.txt").write_text("ImageNet-A/R ship a README here")
    split = read_split(tmp_path, get_dataset(name))
    assert split.class_ids == [WNIDS[0], WNIDS[3], WNIDS[4]]  # sorted wnids, labels 0..2
    assert split.classnames == ["tench", "tiger shark", "hammerhead shark"]  # ImageNet's names
    assert [it.label for it in split.test] == [0, 0, 1, 1, 2, 2]
    assert split.test[2].path == f"{WNIDS[3]}/0.jpg" and split.test[2].classname == "tiger shark"
    assert split.train == [] and split.val == []


# ---------------------------------------------------------------------------------------------
# broken layouts


@pytest.mark.badinput
@pytest.mark.parametrize("name", ["imagenet", "fgvc_aircraft", "imagenetv2", "imagenet_sketch", "imagenet_a",
                                  "imagenet_r"])
def test_missing_folder_names_the_layout_and_the_fix(tmp_path, name):
    spec = get_dataset(name)
    with pytest.raises(DatasetError, match=f"Dataset folder for '{name}' not found") as e:
        read_split(tmp_path, spec)
    assert "Expected" in str(e.value) and f"coop data prepare {name}" in str(e.value)
    assert spec.split_file in str(e.value)


@pytest.mark.badinput
@pytest.mark.parametrize("content, message", [
    ("n01440764 tench\nn01443537\n", r"classnames.txt, line 2: 'n01443537' is not '<wnid> <class name>'"),
    ("n01440764 tench\ntench n01443537\n", r"line 2: 'tench n01443537' is not"),
    ("n01440764 tench\n\nn01440764 goldfish\n", r"line 3: wnid n01440764 is listed twice \(also line 1\)"),
    ("\n\n", "lists no classes"),
])
def test_malformed_classnames_txt(tmp_path, content, message):
    _imagenet(tmp_path)
    (tmp_path / "imagenet" / "classnames.txt").write_text(content)
    with pytest.raises(DatasetError, match=message):
        read_split(tmp_path, get_dataset("imagenet"))


@pytest.mark.badinput
def test_imagenet_broken_layouts(tmp_path):
    spec = get_dataset("imagenet")
    folder = _imagenet(tmp_path)
    (folder / "classnames.txt").unlink()
    with pytest.raises(DatasetError, match=r"Class-name file not found: .*classnames.txt.*drive.google.com"):
        read_split(tmp_path, spec)
    _classnames(folder, WNIDS[:3], NAMES[:3])

    empty = folder / "images" / "train" / WNIDS[1]
    for f in empty.iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match=rf"Class folder .*{WNIDS[1]}.*'goldfish'.*holds no images"):
        read_split(tmp_path, spec)
    empty.rmdir()
    with pytest.raises(DatasetError, match=rf"lacks the folders of 1 of the 3 classes.*{WNIDS[1]}"):
        read_split(tmp_path, spec)
    _image(empty / "a.JPEG")

    _image(folder / "images" / "train" / "n09999999" / "x.JPEG")
    with pytest.raises(DatasetError, match="class folders not listed in .*classnames.txt: n09999999"):
        read_split(tmp_path, spec)


@pytest.mark.badinput
def test_imagenet_flat_val_folder(tmp_path):
    folder = _imagenet(tmp_path)
    val = folder / "images" / "val"
    for w in WNIDS[:3]:
        for f in (val / w).iterdir():
            f.rename(val / f.name)
        (val / w).rmdir()
    with pytest.raises(DatasetError, match="holds images but no class folders.*images/val/<wnid>"):
        read_split(tmp_path, get_dataset("imagenet"))
    import shutil
    shutil.rmtree(val)
    with pytest.raises(DatasetError, match="ImageNet val images not found.*ILSVRC2012_img_val.tar"):
        read_split(tmp_path, get_dataset("imagenet"))


@pytest.mark.badinput
@pytest.mark.parametrize("file, content, message", [
    ("images_variant_val.txt", "0056978 Boeing 737\n", r"images_variant_val.txt, line 1: variant 'Boeing 737' is "
                                                        r"not listed in .*variants.txt"),
    ("images_variant_train.txt", "1025794 707-320\n0034309\n", r"images_variant_train.txt, line 2: '0034309' is "
                                                                r"not '<image id> <variant name>'"),
    ("images_variant_test.txt", "9999999 F/A-18\n", r"1 images listed in .*images_variant_test.txt are missing"
                                                     r".*9999999.jpg"),
    ("variants.txt", "707-320\nBoeing 717\n707-320\n", r"variants.txt, line 3: variant '707-320' is listed twice"),
])
def test_fgvc_broken_files(tmp_path, file, content, message):
    folder = _fgvc(tmp_path)
    (folder / file).write_text(content)
    with pytest.raises(DatasetError, match=message):
        read_split(tmp_path, get_dataset("fgvc_aircraft"))


@pytest.mark.badinput
def test_fgvc_missing_split_file(tmp_path):
    folder = _fgvc(tmp_path)
    (folder / "images_variant_test.txt").unlink()
    with pytest.raises(DatasetError, match=r"test split file not found: .*images_variant_test.txt.*data/ folder"):
        read_split(tmp_path, get_dataset("fgvc_aircraft"))


@pytest.mark.badinput
def test_variant_broken_layouts(tmp_path):
    spec = get_dataset("imagenet_a")
    folder = tmp_path / "imagenet-adversarial"
    _image(folder / "imagenet-a" / WNIDS[0] / "0.jpg")
    with pytest.raises(DatasetError, match=r"Class-name file not found.*Copy imagenet/classnames.txt into"):
        read_split(tmp_path, spec)
    _classnames(folder, WNIDS[:2], NAMES[:2])
    assert len(read_split(tmp_path, spec).test) == 1

    _image(folder / "imagenet-a" / WNIDS[3] / "0.jpg")  # a wnid that classnames.txt lacks
    with pytest.raises(DatasetError, match=rf"1 class folders whose wnid is not in .*classnames.txt: {WNIDS[3]}"):
        read_split(tmp_path, spec)
    (folder / "imagenet-a" / WNIDS[3] / "0.jpg").unlink()
    (folder / "imagenet-a" / WNIDS[3]).rmdir()
    (folder / "imagenet-a" / WNIDS[1]).mkdir()  # a known class with an empty folder
    with pytest.raises(DatasetError, match=rf"Class folder .*{WNIDS[1]} .*'goldfish'.*holds no images"):
        read_split(tmp_path, spec)
    (folder / "imagenet-a" / WNIDS[1]).rmdir()

    _image(folder / "imagenet-a" / "7" / "0.jpg")  # mixed naming
    with pytest.raises(DatasetError, match="neither wnids .* nor ImageNet labels: 7"):
        read_split(tmp_path, spec)


@pytest.mark.badinput
def test_imagenetv2_label_out_of_range(tmp_path):
    folder = tmp_path / "imagenetv2"
    _classnames(folder, WNIDS[:3], NAMES[:3])
    _image(folder / "imagenetv2-matched-frequency-format-val" / "3" / "0.jpeg")
    with pytest.raises(DatasetError, match=r"label 3 is out of range, .*classnames.txt lists 3 classes"):
        read_split(tmp_path, get_dataset("imagenetv2"))
    import shutil
    shutil.rmtree(folder / "imagenetv2-matched-frequency-format-val")
    with pytest.raises(DatasetError, match=r"Images of 'imagenetv2' not found.*<ImageNet label 0..999>"):
        read_split(tmp_path, get_dataset("imagenetv2"))


def test_imagenet_official_listing_switch(tmp_path, monkeypatch):
    """imagenet_listing=os restores the official unsorted os.listdir order (here a reversed listing)."""
    import coop.data.datasets as datasets
    from coop import protocol

    _imagenet(tmp_path)
    spec = get_dataset("imagenet")
    sorted_paths = [it.path for it in read_split(tmp_path, spec).train]
    real_scandir = os.scandir

    class Reversed:
        def __init__(self, path):
            self.entries = list(reversed(sorted(real_scandir(path), key=lambda e: e.name)))

        def __enter__(self):
            return iter(self.entries)

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(datasets.os, "scandir", Reversed)
    assert [it.path for it in read_split(tmp_path, spec).train] == sorted_paths  # sorted whatever os says
    try:
        protocol.configure({"imagenet_listing": "os"})
        official = [it.path for it in read_split(tmp_path, spec).train]
    finally:
        protocol.configure({})
    assert official == list(reversed(sorted_paths)) and official != sorted_paths
