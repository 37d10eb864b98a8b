import json

import pytest

from coop.data.datasets import DATASETS, DatasetError, get_dataset, read_split, split_path


def test_reads_toy_split(toy_root):
    spec = get_dataset("toy_shapes")
    split = read_split(toy_root, spec)
    assert len(split.classnames) == 10
    assert len(split.train) == 40 and len(split.val) == 20 and len(split.test) == 30
    assert {it.label for it in split.test} == set(range(10))
    assert all((toy_root / spec.folder / spec.image_dir / it.path).is_file() for it in split.train)


def test_registry_has_real_layouts():
    assert get_dataset("caltech101").split_file == "split_zhou_Caltech101.json"
    assert get_dataset("dtd").template == "{} texture."
    assert {"toy_shapes", "toy_textures", "toy_flowers", "toy_shapes_sketch"} <= set(DATASETS)


@pytest.mark.badinput
def test_unknown_dataset_names_the_known_ones():
    with pytest.raises(DatasetError, match="Unknown dataset 'imagenett'.*caltech101"):
        get_dataset("imagenett")


@pytest.mark.badinput
def test_missing_folder_and_split_file(tmp_path):
    spec = get_dataset("dtd")
    with pytest.raises(DatasetError, match="Dataset folder for 'dtd' not found"):
        read_split(tmp_path, spec)
    (tmp_path / spec.folder).mkdir()
    with pytest.raises(DatasetError, match="split_zhou_DescribableTextures.json"):
        read_split(tmp_path, spec)


@pytest.mark.badinput
@pytest.mark.parametrize("content, message", [
    ("{not json", "Malformed split file"),
    (json.dumps({"train": [], "val": []}), "expected keys train, val, test"),
    (json.dumps({"train": [["a.jpg", "0", "x"]], "val": [], "test": []}), r"train\[0\].*label \(int"),
    (json.dumps({"train": [["a.jpg", 0, "x"], ["b.jpg", 0, "y"]], "val": [], "test": []}), "named both"),
    (json.dumps({"train": [["a.jpg", 1, "x"]], "val": [], "test": []}), "without gaps"),
])
def test_malformed_split_file(tmp_path, content, message):
    spec = get_dataset("dtd")
    path = split_path(tmp_path, spec)
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(DatasetError, match=message):
        read_split(tmp_path, spec)
