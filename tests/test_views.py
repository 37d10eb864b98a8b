"""The augmented-view cache (coop.views): one seeded view per (subset, epoch, image), shared by the methods."""
import pytest
import torch
from PIL import Image

from coop.data.datasets import get_dataset, image_root, read_split
from coop.data.fewshot import make_manifest, manifest_items
from coop.features import CacheError
from coop.views import augment, load_views, train_views, view_keys
from coop.models.transforms import train_transform


@pytest.fixture(scope="module")
def subset(toy_root):
    spec = get_dataset("toy_shapes")
    manifest = make_manifest("toy_shapes", read_split(toy_root, spec), 2, 1)
    return manifest, manifest_items(manifest, "train"), image_root(toy_root, spec)


def _images(root, items):
    return [Image.open(root / it.path).convert("RGB") for it in items]


def test_a_view_depends_on_subset_epoch_and_index_only(subset):
    manifest, items, root = subset
    images, t, h = _images(root, items), train_transform(32), manifest["hash"]
    state = torch.get_rng_state()
    whole = augment(images, t, h, epoch=3)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is untouched
    torch.manual_seed(123)  # whatever ran before
    part = augment(images[5:9], t, h, epoch=3, start=5)
    assert torch.equal(part, whole[5:9])  # computed in another chunk, in another order: the same views
    assert not torch.equal(augment(images, t, h, epoch=4), whole)  # a fresh view per epoch
    assert not torch.equal(augment(images, t, "another subset", epoch=3), whole)


def test_cache_is_written_reused_and_extended(subset, clip, tmp_path):
    manifest, items, root = subset
    path = tmp_path / "views" / "shots2_seed1.safetensors"
    keys = view_keys(items, manifest["hash"], "toy-rn", "toy-rn", "random", clip.image_size)
    two = train_views(clip, items, root, manifest["hash"], 2, path=path, keys=keys)
    assert two.shape == (2, len(items), clip.model.text_projection.shape[-1]) and path.exists()
    assert load_views(path, keys)[1] == 2
    four = train_views(clip, items, root, manifest["hash"], 4, path=path, keys=keys)  # extended
    assert load_views(path, keys)[1] == 4 and torch.equal(four[:2], two)
    assert torch.equal(four, train_views(clip, items, root, manifest["hash"], 4))  # the same as computed afresh
    assert not torch.equal(four[0], four[1])
    with pytest.raises(CacheError, match="backbone"):
        load_views(path, {**keys, "backbone": "toy-vit"})
    path.write_bytes(b"\x80\x04 not a safetensors file")
    with pytest.raises(CacheError, match="never unpickled"):
        load_views(path, keys)


def test_uncropped_views_encode_each_distinct_image_once(subset, clip, monkeypatch):
    """With crop_min=1 a view is the image or its mirror: 8 epochs encode at most 2 images per training image,
    and each view's features equal those of that view encoded on its own."""
    from coop import views

    manifest, items, root = subset
    seen = []
    real = clip.model.encode_image
    monkeypatch.setattr(clip.model, "encode_image", lambda x: (seen.append(len(x)), real(x))[1])
    feats = views.encode_views(clip, _images(root, items), manifest["hash"], range(8), crop_min=1.0)
    assert feats.shape[:2] == (8, len(items)) and len(items) < sum(seen) <= 2 * len(items)
    one = views.augment(_images(root, items)[:1], train_transform(32, 1.0), manifest["hash"], epoch=5)
    assert torch.allclose(feats[5, 0], real(one)[0], atol=1e-5)
    flipped = sum(not torch.equal(feats[0, i], feats[e, i]) for e in range(8) for i in range(len(items)))
    assert flipped > 0  # the mirror images are views of their own


def test_methods_on_one_subset_read_the_same_views(toy_root, tmp_path, monkeypatch):
    """CoOp and the text bias baseline train on the same cached views: the second method encodes nothing."""
    import coop.views as views
    from coop.experiment import run_experiment, views_path

    seen = {}
    real = views.view_blocks

    def spy(clip, images_of, n, subset, epochs, *a, **kw):
        seen.setdefault("calls", []).append(list(epochs))
        return real(clip, images_of, n, subset, epochs, *a, **kw)

    monkeypatch.setattr(views, "view_blocks", spy)
    kw = dict(dataset="toy_shapes", shots=2, seed=1, backbone="toy-rn", data_root=toy_root, cache_dir=tmp_path,
              params={"epochs": 3}, log=lambda s: None)
    run_experiment(method="coop", out=tmp_path / "coop", **kw)
    cache = views_path(tmp_path, "toy_shapes", "toy-rn", 2, 1)
    before = cache.read_bytes()
    run_experiment(method="text_bias", out=tmp_path / "bias", **kw)
    assert seen["calls"] == [[0, 1, 2]]  # encoded once, by the first method
    assert cache.read_bytes() == before
    run_experiment(method="text_transform", out=tmp_path / "tt", **{**kw, "params": {"epochs": 5}})
    assert seen["calls"] == [[0, 1, 2], [3, 4]]  # a longer schedule extends the cache


def test_views_are_read_one_epoch_at_a_time(subset, clip, tmp_path):
    from coop.views import EpochViews, ViewData, open_views

    manifest, items, root = subset
    path = tmp_path / "v.safetensors"
    keys = view_keys(items, manifest["hash"], "toy-rn", "toy-rn", "random", clip.image_size)
    lazy = open_views(clip, items, root, manifest["hash"], 3, path, keys)
    assert isinstance(lazy, EpochViews) and lazy.shape[:2] == (3, len(items))
    full = train_views(clip, items, root, manifest["hash"], 3, path=path, keys=keys)
    data = ViewData(lazy, [it.label for it in items])
    for e in range(3):
        data.set_epoch(e)
        assert torch.equal(data.batch(torch.tensor([2, 0]))[0], full[e, [2, 0]])
    with pytest.raises(ValueError, match="3 epochs"):
        data.set_epoch(3)
