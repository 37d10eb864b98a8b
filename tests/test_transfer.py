"""Transfer of finished runs to other datasets (Table 1) and nearest words of learned context (Table 4)."""
import pytest

from coop.data.datasets import DatasetError
from coop.experiment import run_experiment
from coop.interpret import nearest_words
from coop.transfer import class_subset, transfer_run


def _run(toy_root, tmp_path, method, **kw):
    out = tmp_path / method
    record = run_experiment(dataset="toy_shapes", method=method, backbone="toy-rn", out=out, data_root=toy_root,
                            cache_dir=tmp_path / "cache", log=lambda s: None, **kw)
    return out, record


@pytest.mark.parametrize("method, kw", [
    ("zeroshot", {"shots": 0, "seed": 0}),
    ("ensemble", {"shots": 0, "seed": 0}),
    ("linear_probe", {"shots": 2, "seed": 1}),
    ("coop", {"shots": 2, "seed": 1, "params": {"epochs": 1, "n_ctx": 4, "csc": True}}),
])
def test_transfer_to_the_source_reproduces_the_run(toy_root, tmp_path, method, kw):
    out, record = _run(toy_root, tmp_path, method, **kw)
    result = transfer_run(out, ["toy_shapes", "toy_shapes_sketch", "toy_shapes_hard"], data_root=toy_root,
                          cache_dir=tmp_path / "cache", log=lambda s: None)
    same = result["targets"]["toy_shapes"]
    assert same["accuracy"] == record["accuracy"] and same["macro_f1"] == record["macro_f1"]
    hard = result["targets"]["toy_shapes_hard"]
    assert hard["n_classes"] < 10 and hard["n_test"] == hard["n_classes"] * 3
    assert result["targets"]["toy_shapes_sketch"]["n_classes"] == 10


def test_class_subset_by_name():
    assert class_subset(["a", "b", "c"], ["c", "a"], "t") == [2, 0]
    with pytest.raises(DatasetError, match="1 classes the source does not know"):
        class_subset(["a", "b"], ["a", "z"], "t")


def test_nearest_words_of_word_initialised_context(toy_root, tmp_path):
    # one epoch at the warm-up lr barely moves the context: its nearest tokens are the init words
    out, _ = _run(toy_root, tmp_path, "coop", shots=1, seed=1,
                  params={"epochs": 1, "init": "a photo of a", "lr": 1e-9})
    record = nearest_words(out, data_root=toy_root)
    assert [r["token"] for r in record["nearest"]] == ["a", "photo", "of", "a"]
    assert all(r["distance"] < 1e-3 for r in record["nearest"]) and record["csc"] is False
    assert [r["index"] for r in record["nearest"]] == [1, 2, 3, 4]
