"""Datasets defined by config alone (`coop.data.dataset_config`): a split_json and an image_folder dataset
built in tmp_path, read through get_dataset + read_split, and every bad entry rejected with a message that
names the entry and the fix."""
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from coop.data.datasets import (
    DATASETS,
    DatasetError,
    DatasetSpec,
    Item,
    check_dataset_on_disk,
    dataset_from_config,
    get_dataset,
    image_root,
    read_split,
    register_dataset,
    register_datasets,
    split_path,
    unregister_dataset,
    zhou_split_file,
)


def _png(path: Path, color=(10, 200, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), color).save(path, format="PNG")


@pytest.fixture
def register():
    """register_datasets(block) that removes what it registered afterwards (the registry is global)."""
    names = []

    def _register(block):
        specs = register_datasets(block)
        names.extend(s.name for s in specs)
        return specs

    yield _register
    for name in names:
        unregister_dataset(name)
    assert sum(not s.toy for s in DATASETS.values()) == 15  # only the built-in real datasets are left


BIRDS = {
    "folder": "birds",
    "layout": "split_json",
    "split_file": "my_split.json",
    "image_dir": "images",
    "template": "a photo of a {}, a type of bird.",
    "classnames": "classnames.txt",
    "paper_name": "cub",
}


@pytest.fixture
def birds_root(tmp_path) -> Path:
    """data root with birds/{my_split.json, classnames.txt, images/...}: two classes, label 1 renamed."""
    root = tmp_path / "data"
    folder = root / "birds"
    for rel in ("sparrow/s1.png", "sparrow/s2.png", "jay/j1.png", "jay/j2.png", "sparrow/s3.png", "jay/j3.png"):
        _png(folder / "images" / rel)
    split = {
        "train": [["sparrow/s1.png", 0, "house_sparrow"], ["jay/j1.png", 1, "jay"]],
        "val": [["sparrow/s2.png", 0, "house_sparrow"], ["jay/j2.png", 1, "jay"]],
        "test": [["jay/j3.png", 1, "jay"], ["sparrow/s3.png", 0, "house_sparrow"]],
    }
    (folder / "my_split.json").write_text(json.dumps(split))
    (folder / "classnames.txt").write_text("1 blue jay\n\n")
    return root


def test_split_json_dataset_from_config(birds_root, register):
    (spec,) = register({"my_birds": BIRDS})
    assert get_dataset("my_birds") is spec
    assert (spec.name, spec.reader, spec.template, spec.paper_name) == (
        "my_birds", "split_json", "a photo of a {}, a type of bird.", "cub")
    assert spec.configured and not spec.toy and spec.source is None
    assert split_path(birds_root, spec) == birds_root / "birds" / "my_split.json"
    check_dataset_on_disk(birds_root, spec)
    split = read_split(birds_root, get_dataset("my_birds"))
    assert split.classnames == ["house sparrow", "blue jay"]
    assert split.train == [Item("sparrow/s1.png", 0, "house_sparrow"), Item("jay/j1.png", 1, "blue jay")]
    assert split.val == [Item("sparrow/s2.png", 0, "house_sparrow"), Item("jay/j2.png", 1, "blue jay")]
    assert split.test == [Item("jay/j3.png", 1, "blue jay"), Item("sparrow/s3.png", 0, "house_sparrow")]
    assert image_root(birds_root, spec) == birds_root / "birds" / "images"
    assert all((image_root(birds_root, spec) / it.path).is_file() for it in split.train + split.val + split.test)


def test_split_name_follows_the_zhou_rule_and_specs_pickle(tmp_path):
    spec = dataset_from_config("my_cub", {"folder": "cub", "layout": "split_json", "split_name": "CUB",
                                          "template": "a photo of a {}."})
    assert spec.split_file == zhou_split_file("CUB") == "split_zhou_CUB.json"
    assert spec.image_dir == "" and spec.classnames_file is None
    assert pickle.loads(pickle.dumps(spec)) == spec and hash(spec) == hash(pickle.loads(pickle.dumps(spec)))
    assert split_path(tmp_path, spec) == tmp_path / "cub" / "split_zhou_CUB.json"
    assert get_dataset("caltech101").split_file == zhou_split_file("Caltech101")


def _leaves(folder: Path, val: bool) -> None:
    for part, names in (("train", ("b.png", "a.png")), ("val", ("v.png",)), ("test", ("t.PNG",))):
        if part == "val" and not val:
            continue
        for cls in ("oak", "maple_red"):
            for n in names:
                _png(folder / part / cls / n)
    # hidden entries and non-images are skipped
    _png(folder / "train" / "oak" / ".hidden.png")
    (folder / "train" / "oak" / "notes.txt").write_text("not an image")
    _png(folder / "train" / ".cache" / "x.png")
    (folder / "train" / ".DS_Store").write_text("")


def test_image_folder_dataset_with_absolute_folder_and_no_val(tmp_path, register):
    folder = tmp_path / "elsewhere" / "leaves"  # not under the data root
    _leaves(folder, val=False)
    (folder / "names.txt").write_text("oak common oak\n")
    root = tmp_path / "data"
    (spec,) = register({"my_leaves": {"folder": str(folder), "layout": "image_folder",
                                      "template": "a photo of a {} leaf.", "classnames": "names.txt"}})
    assert get_dataset("my_leaves").reader == "image_folder"
    assert split_path(root, spec) == folder / "train" and image_root(root, spec) == folder
    check_dataset_on_disk(root, spec)
    split = read_split(root, spec)
    assert split.classnames == ["maple red", "common oak"]  # sorted folders: maple_red, oak
    assert split.train == [Item("train/maple_red/a.png", 0, "maple red"), Item("train/maple_red/b.png", 0, "maple red"),
                           Item("train/oak/a.png", 1, "common oak"), Item("train/oak/b.png", 1, "common oak")]
    assert split.val == []
    assert split.test == [Item("test/maple_red/t.PNG", 0, "maple red"),
                          Item("test/oak/t.PNG", 1, "common oak")]
    assert all((image_root(root, spec) / it.path).is_file() for it in split.train + split.test)

    from coop.data.fewshot import make_manifest

    manifest = make_manifest("my_leaves", split, 1, 1)  # val is drawn from the unused train images
    assert len(manifest["train"]) == 2 and manifest["classnames"] == ["maple red", "common oak"]


def test_image_folder_dataset_with_val_under_the_data_root(tmp_path, register):
    root = tmp_path / "data"
    _leaves(root / "leaves" / "pics", val=True)
    (spec,) = register({"my_leaves": {"folder": "leaves", "layout": "image_folder", "image_dir": "pics",
                                      "template": "a photo of a {} leaf."}})
    assert split_path(root, spec) == root / "leaves" / "pics" / "train"
    split = read_split(root, spec)
    assert split.classnames == ["maple red", "oak"]
    assert [(it.path, it.label) for it in split.val] == [("val/maple_red/v.png", 0), ("val/oak/v.png", 1)]
    assert len(split.train) == 4 and len(split.test) == 2


def test_registering_twice(birds_root, register):
    register({"my_birds": BIRDS})
    register_dataset(dataset_from_config("my_birds", BIRDS))  # the same definition again: fine
    with pytest.raises(DatasetError, match="already registered with a different definition"):
        register_dataset(dataset_from_config("my_birds", {**BIRDS, "template": "a {}."}))


def test_light_imports():
    code = ("import sys, coop.data.datasets, coop.data.dataset_config, coop.data.prepare; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_prepare_and_check_know_config_datasets(birds_root, register):
    from coop.data.prepare import check, prepare

    register({"my_birds": BIRDS, "my_gone": {**BIRDS, "folder": "gone"}})
    assert prepare("my_birds", birds_root, log=lambda s: None) == birds_root / "birds"  # valid: left alone
    with pytest.raises(DatasetError, match=r"defined in the config \(datasets.my_gone\).*fix datasets.my_gone.folder"):
        prepare("my_gone", birds_root, log=lambda s: None)
    status = {s.name: s for s in check(birds_root)}
    assert status["my_birds"].valid and "3 train" not in status["my_birds"].message
    assert status["my_birds"].message.startswith("2 train / 2 val / 2 test images, 2 classes")
    assert not status["my_gone"].present and "datasets.my_gone.folder" in status["my_gone"].message


# ---------------------------------------------------------------------------------------------
# bad entries

OK = {"folder": "birds", "layout": "split_json", "split_file": "s.json", "template": "a photo of a {}."}


@pytest.mark.badinput
@pytest.mark.parametrize("name, entry, phrases", [
    ("my_birds", {**OK, "templte": "x {}"}, ["unknown key 'templte'", "Valid keys: folder, layout, template"]),
    ("my_birds", {k: v for k, v in OK.items() if k != "template"}, ["'template' is missing", "Set 'template'"]),
    ("my_birds", {**OK, "template": "a photo of a bird."}, ["has no '{}'", "Set 'template'"]),
    ("my_birds", {**OK, "template": "a {} of {name}"}, ["has no '{}'", "'{{'"]),
    ("my_birds", {**OK, "layout": "csv"}, ["unknown layout 'csv'", "split_json, image_folder"]),
    ("my_birds", {k: v for k, v in OK.items() if k != "layout"}, ["'layout' is missing", "split_json, image_folder"]),
    ("my_birds", {k: v for k, v in OK.items() if k != "folder"}, ["'folder' is missing", "Set 'folder'"]),
    ("my_birds", {**OK, "folder": 3}, ["'folder' is 3, not a non-empty string", "Set 'folder'"]),
    ("dtd", OK, ["'dtd' is the name of a built-in dataset", "Rename the entry (e.g. to 'my_dtd')"]),
    ("toy_birds", OK, ["reserved for the generated toy datasets", "e.g. to 'my_birds'"]),
    ("my birds", OK, ["not usable as a dataset name", "e.g. 'my_birds'"]),
    ("my_birds", ["folder", "birds"], ["not a mapping", "keys folder, layout"]),
    ("my_birds", {k: v for k, v in OK.items() if k != "split_file"}, ["exactly one of 'split_file' and 'split_name'",
                                                                       "Set 'split_file'"]),
    ("my_birds", {**OK, "split_name": "Birds"}, ["(both are set)", "Set 'split_file'"]),
    ("my_birds", {**OK, "split_file": "../s.json"}, ["leaves the dataset folder", "relative to the dataset folder"]),
    ("my_birds", {**OK, "layout": "image_folder"}, ["'split_file' apply only to layout split_json", "Remove them"]),
])
def test_bad_entry(name, entry, phrases):
    with pytest.raises(DatasetError) as e:
        dataset_from_config(name, entry)
    msg = str(e.value)
    assert f"datasets.{name}" in msg, msg
    for p in phrases:
        assert p in msg, (p, msg)
    assert name not in DATASETS or name == "dtd"


@pytest.mark.badinput
def test_bad_block_registers_nothing():
    with pytest.raises(DatasetError, match="datasets.my_bad: unknown layout"):
        register_datasets({"my_fine": OK, "my_bad": {**OK, "layout": "zip"}})
    assert "my_fine" not in DATASETS
    with pytest.raises(DatasetError, match="must be a mapping of dataset name to entry"):
        register_datasets(["my_fine"])
    with pytest.raises(DatasetError, match="it is a built-in dataset"):
        register_dataset(DatasetSpec("dtd", "x", "x.json", "", "{}"))


@pytest.mark.badinput
def test_missing_folder_and_split_file_on_disk(tmp_path, register):
    root = tmp_path / "data"
    (spec,) = register({"my_birds": OK})
    with pytest.raises(DatasetError) as e:
        check_dataset_on_disk(root, spec)
    msg = str(e.value)
    assert "datasets.my_birds: dataset folder not found" in msg and str(root / "birds") in msg
    assert "set 'folder' to where it is" in msg
    with pytest.raises(DatasetError, match="fix datasets.my_birds.folder in the config"):
        read_split(root, spec)
    (root / "birds").mkdir(parents=True)
    with pytest.raises(DatasetError) as e:
        check_dataset_on_disk(root, spec)
    msg = str(e.value)
    assert "datasets.my_birds: split file not found" in msg and str(root / "birds" / "s.json") in msg
    assert "set 'split_file' to the right file" in msg
    with pytest.raises(DatasetError, match="Split file for 'my_birds' not found.*set datasets.my_birds.split_file"):
        read_split(root, spec)


@pytest.mark.badinput
def test_missing_image_folders_and_classnames_on_disk(tmp_path, register):
    folder = tmp_path / "leaves"
    (spec,) = register({"my_leaves": {"folder": str(folder), "layout": "image_folder", "template": "{}.",
                                      "classnames": "names.txt"}})
    (folder / "train").mkdir(parents=True)
    with pytest.raises(DatasetError, match=f"datasets.my_leaves: test folder not found: {folder / 'test'}"):
        check_dataset_on_disk(tmp_path / "data", spec)
    (folder / "test").mkdir()
    with pytest.raises(DatasetError, match="class-name file not found.*set 'classnames'"):
        check_dataset_on_disk(tmp_path / "data", spec)


@pytest.mark.badinput
def test_bad_image_folder_contents(tmp_path, register):
    folder = tmp_path / "leaves"
    _leaves(folder, val=False)
    (spec,) = register({"my_leaves": {"folder": str(folder), "layout": "image_folder", "template": "{}.",
                                      "classnames": "names.txt"}})
    (folder / "names.txt").write_text("birch silver birch\n")
    with pytest.raises(DatasetError, match=r"'birch' is not a class folder of 'my_leaves'.*remove datasets.my_leaves"):
        read_split(tmp_path, spec)
    (folder / "names.txt").write_text("oak\n")
    with pytest.raises(DatasetError, match="is not '<class folder> <class name>'"):
        read_split(tmp_path, spec)
    (folder / "names.txt").write_text("")
    _png(folder / "test" / "birch" / "x.png")
    with pytest.raises(DatasetError, match="class folders that .*train lacks: birch"):
        read_split(tmp_path, spec)
    (folder / "test" / "birch" / "x.png").unlink()
    (folder / "test" / "birch").rmdir()
    (folder / "train" / "birch").mkdir()  # an empty class folder
    with pytest.raises(DatasetError, match="holds no images.*Put images into it, or remove the folder"):
        read_split(tmp_path, spec)


def test_prepare_lays_out_a_config_dataset_at_an_absolute_folder(birds_root, tmp_path, register):
    """With a source, a config dataset is staged beside its (absolute) target and renamed into place."""
    import hashlib
    import zipfile

    from coop.data.prepare import prepare

    archive = tmp_path / "birds.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted((birds_root / "birds").rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(birds_root / "birds").as_posix())
    data = tmp_path / "other_root"
    (data / ".downloads").mkdir(parents=True)
    (data / ".downloads" / "birds.zip").write_bytes(archive.read_bytes())
    target = tmp_path / "elsewhere" / "birds"
    register({"my_abs_birds": {**BIRDS, "folder": str(target)}})
    sources = {"my_abs_birds": {"files": [{"url": "https://example.invalid/birds.zip", "filename": "birds.zip",
                                           "checksum": "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest()}]}}
    assert prepare("my_abs_birds", data, sources=sources, log=lambda s: None) == target
    assert read_split(data, get_dataset("my_abs_birds")).classnames == ["house sparrow", "blue jay"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["birds"]  # no temporary folder left
    assert sorted(p.name for p in data.iterdir()) == [".downloads"]


@pytest.mark.badinput
@pytest.mark.parametrize("names, shown", [
    (("zero_digit", "zero digit"), "labels 0 ('zero_digit') and 1 ('zero digit')"),  # equal once _ -> space
    (("jay", "jay"), "labels 0 ('jay') and 1 ('jay')"),                              # the same name
])
def test_labels_with_the_same_prompt_name_are_an_error_unless_allowed(tmp_path, register, names, shown):
    """Two labels that would get the same prompt are one class to the text encoder: a silent merge before."""
    root = tmp_path / "data"
    folder = root / "digits"
    split = {part: [[f"{i}.png", i, n] for i, n in enumerate(names)] for part in ("train", "val", "test")}
    for i in range(len(names)):
        _png(folder / f"{i}.png")
    (folder / "split.json").write_text(json.dumps(split))
    entry = {"folder": "digits", "layout": "split_json", "split_file": "split.json", "template": "a {}."}
    (spec,) = register({"my_digits": entry})
    with pytest.raises(DatasetError) as e:
        read_split(root, spec)
    msg = str(e.value)
    assert shown in msg and f"class name {names[1]!r}" in msg, msg
    assert "duplicate_classnames: true in datasets.my_digits" in msg, msg
    unregister_dataset("my_digits")
    (spec,) = register({"my_digits": {**entry, "duplicate_classnames": True}})
    assert read_split(root, spec).classnames == [n.replace("_", " ") for n in names]
    with pytest.raises(DatasetError, match="duplicate_classnames is 'yes', not true or false"):
        dataset_from_config("my_digits", {**entry, "duplicate_classnames": "yes"})


def test_builtin_datasets_declare_their_duplicate_names():
    """CLIP's ImageNet class names have 'missile' and 'sunglasses' twice: ImageNet and its variants allow it,
    every other built-in dataset does not."""
    allowed = sorted(s.name for s in DATASETS.values() if s.duplicate_classnames)
    assert allowed == ["imagenet", "imagenet_a", "imagenet_r", "imagenet_sketch", "imagenetv2"]
