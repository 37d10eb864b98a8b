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
