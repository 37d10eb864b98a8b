import numpy as np
import pytest
import torch

from coop.data.datasets import Item, get_dataset, image_root, read_split
from coop.features import CacheError, extract_features, load_features, save_features


def test_roundtrip_and_keys(tmp_path):
    items = [Item("a.png", 0, "x"), Item("b.png", 1, "y")]
    feats = np.arange(8, dtype=np.float32).reshape(2, 4)
    path = tmp_path / "f.safetensors"
    save_features(path, feats, items, {"dataset": "d", "part": "test", "backbone": "toy-rn"})
    f = load_features(path, dataset="d", part="test", backbone="toy-rn")
    assert np.array_equal(f.features, feats) and f.labels.tolist() == [0, 1] and f.paths == ["a.png", "b.png"]
    x, y = f.select([items[1]])
    assert np.array_equal(x, feats[1:]) and y.tolist() == [1]
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.badinput
def test_mismatched_cache_is_refused(tmp_path):
    path = tmp_path / "f.safetensors"
    save_features(path, np.zeros((1, 4), np.float32), [Item("a.png", 0, "x")], {"part": "test", "backbone": "toy-rn"})
    with pytest.raises(CacheError, match="backbone='toy-rn', expected 'toy-vit'"):
        load_features(path, part="test", backbone="toy-vit")
    with pytest.raises(CacheError, match="part='test', expected 'fewshot'"):
        load_features(path, part="fewshot")
    path.write_bytes(b"garbage")
    with pytest.raises(CacheError, match="Unreadable feature cache"):
        load_features(path)


def test_extracted_features_match_direct_encoding(toy_root, clip):
    from PIL import Image

    from coop.models.transforms import test_transform

    spec = get_dataset("toy_shapes")
    items = read_split(toy_root, spec).test[:5]
    feats = extract_features(clip, items, image_root(toy_root, spec), batch_size=2)
    tf = test_transform(clip.image_size)
    x = torch.stack([tf(Image.open(image_root(toy_root, spec) / it.path).convert("RGB")) for it in items])
    with torch.no_grad():
        ref = clip.model.encode_image(x)
    torch.testing.assert_close(feats, ref, atol=1e-5, rtol=1e-5)
    assert feats.shape == (5, 128)


def _straight_loop(clip, items, root, batch_size):
    """The plain loop extract_features replaces: decode, transform and encode the items in order, in batches."""
    from PIL import Image

    from coop.models.transforms import test_transform

    tf, out = test_transform(clip.preprocess), []
    with torch.no_grad():
        for s in range(0, len(items), batch_size):
            x = torch.stack([tf(Image.open(root / it.path).convert("RGB")) for it in items[s:s + batch_size]])
            out.append(clip.model.encode_image(x).float())
    return torch.cat(out)


def test_loader_workers_give_the_plain_loops_features_in_item_order(toy_root, clip):
    spec = get_dataset("toy_shapes")
    root = image_root(toy_root, spec)
    items = read_split(toy_root, spec).test[::-1][:11]  # an order of its own: rows must follow it
    ref = _straight_loop(clip, items, root, batch_size=4)
    for workers in (0, 2):
        feats = extract_features(clip, items, root, batch_size=4, num_workers=workers, precision="amp",
                                 log=lambda s: None)  # amp autocasts on CUDA only: fp32 here
        assert feats.dtype == torch.float32 and torch.equal(feats, ref), workers


def test_feature_extraction_logs_progress(toy_root, clip, monkeypatch):
    spec = get_dataset("toy_shapes")
    items = read_split(toy_root, spec).test[:7]
    lines = []
    monkeypatch.setenv("COOP_PROGRESS_SECONDS", "0")
    extract_features(clip, items, image_root(toy_root, spec), batch_size=3, num_workers=0, log=lines.append)
    counts = [line.split(": ")[1].split(" ")[0] for line in lines]
    assert all(line.startswith("feature extraction: ") for line in lines)
    assert counts == ["3/7", "6/7", "7/7"]  # each batch but the last, then the final line
    assert "ETA" in lines[0] and "images/s" in lines[-1]


def test_precision_and_workers_follow_the_job():
    from coop.features import feature_precision, loader_workers

    assert [feature_precision(p, "cpu") for p in ("fp32", "amp", "fp16")] == ["fp32"] * 3
    assert feature_precision("fp32", "cuda") == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        feature_precision("half", "cpu")
    assert loader_workers(1) == 0 and loader_workers(4) == 4


def test_coop_features_takes_a_precision():
    from coop.cli import build_parser

    p = build_parser()
    assert p.parse_args(["features", "--dataset", "d", "--out", "o"]).precision == "fp32"
    assert p.parse_args(["features", "--dataset", "d", "--out", "o", "--precision", "amp"]).precision == "amp"
    with pytest.raises(SystemExit):
        p.parse_args(["features", "--dataset", "d", "--out", "o", "--precision", "half"])
