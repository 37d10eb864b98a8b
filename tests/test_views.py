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
    from coop.experiment import run_experiment

    seen = {}
    real = views.view_blocks

    def spy(clip, images_of, n, subset, epochs, *a, **kw):
        seen.setdefault("calls", []).append(list(epochs))
        return real(clip, images_of, n, subset, epochs, *a, **kw)

    monkeypatch.setattr(views, "view_blocks", spy)
    kw = dict(dataset="toy_shapes", shots=2, seed=1, backbone="toy-rn", data_root=toy_root, cache_dir=tmp_path,
              params={"epochs": 3}, log=lambda s: None)
    run_experiment(method="coop", out=tmp_path / "coop", **kw)
    (cache,) = (tmp_path / "features/toy_shapes/toy-rn/views").glob("shots2_seed1_*.safetensors")
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


def _definition_seed(subset, epoch, index):
    """sha256(f"{subset}:{epoch}:{index}"), its first 8 bytes little-endian, top bit cleared."""
    import hashlib

    digest = hashlib.sha256(f"{subset}:{epoch}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _reference_views(clip, root, items, subset, epochs, crop_min, batch_size=None):
    """The views by their definition, written out: image i's view at epoch e is the train transform drawn right
    after torch.manual_seed(_definition_seed(subset, e, i)). With `batch_size`: encoded as the in-memory
    algorithm did (epoch by epoch, `batch_size` images at a time, only views whose pixels were not encoded
    before in this call, in the order they first appear), so the floats are the same bit for bit; without:
    each view encoded on its own."""
    t = train_transform(clip.preprocess, crop_min)
    out = torch.zeros(len(epochs), len(items), clip.model.text_projection.shape[-1])
    images = _images(root, items)
    state = torch.get_rng_state()
    step = batch_size or 1
    seen = {}
    with torch.no_grad():
        for k, e in enumerate(epochs):
            for s in range(0, len(images), step):
                x = []
                for i in range(s, min(len(images), s + step)):
                    torch.manual_seed(_definition_seed(subset, e, i))
                    x.append(t(images[i]))
                pixels = [v.numpy().tobytes() for v in x]
                new = []
                for j, p in enumerate(pixels):
                    if p not in seen and p not in [pixels[m] for m in new]:
                        new.append(j)
                if new:
                    feats = clip.model.encode_image(torch.stack([x[j] for j in new])).float()
                    seen.update((pixels[j], f) for j, f in zip(new, feats))
                for j, p in enumerate(pixels):
                    out[k, s + j] = seen[p]
    torch.set_rng_state(state)
    return out


@pytest.mark.parametrize("crop_min", [1.0, 0.08])
def test_streamed_cache_is_bit_identical_to_the_views_definition(subset, clip, tmp_path, crop_min):
    """Built in blocks of 5 images (not a divisor of N), 3 epochs then extended to 5: the file holds exactly
    the features of each view encoded on its own, and is a plain safetensors file."""
    from safetensors import safe_open

    from coop.views import EpochViews, build_views

    manifest, items, root = subset
    path = tmp_path / "v.safetensors"
    keys = view_keys(items, manifest["hash"], "toy-rn", "toy-rn", "random", clip.preprocess, crop_min)
    assert build_views(clip, items, root, manifest["hash"], 3, path, keys, log=lambda s: None, crop_min=crop_min,
                       batch_size=5) == 3
    assert build_views(clip, items, root, manifest["hash"], 5, path, keys, log=lambda s: None, crop_min=crop_min,
                       batch_size=5) == 2
    assert build_views(clip, items, root, manifest["hash"], 4, path, keys, log=lambda s: None) == 0  # enough
    h = manifest["hash"]
    ref = torch.cat([_reference_views(clip, root, items, h, range(3), crop_min, batch_size=5),
                     _reference_views(clip, root, items, h, range(3, 5), crop_min, batch_size=5)])
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["epochs"] == "5" and f.metadata()["subset"] == manifest["hash"]
        whole = f.get_tensor("features")
    assert whole.dtype == torch.float32 and torch.equal(whole, ref)
    # Encoded one view at a time the floats differ in the last bits only (batched kernels sum in another order)
    alone = _reference_views(clip, root, items, h, range(5), crop_min)
    torch.testing.assert_close(whole, alone, rtol=1e-5, atol=1e-6)
    lazy = EpochViews(path, 5)
    assert all(torch.equal(lazy[e], ref[e]) for e in range(5))
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_killed_build_leaves_the_old_cache_and_no_complete_looking_file(subset, clip, tmp_path, monkeypatch):
    from coop import views

    manifest, items, root = subset
    path = tmp_path / "v.safetensors"
    keys = view_keys(items, manifest["hash"], "toy-rn", "toy-rn", "random", clip.preprocess)
    views.build_views(clip, items, root, manifest["hash"], 2, path, keys, log=lambda s: None, batch_size=4)
    before = path.read_bytes()
    calls = []
    real = clip.model.encode_image

    def dies(x):
        calls.append(len(x))
        if len(calls) == 3:
            raise KeyboardInterrupt  # a job killed mid-build
        return real(x)

    monkeypatch.setattr(clip.model, "encode_image", dies)
    with pytest.raises(KeyboardInterrupt):
        views.build_views(clip, items, root, manifest["hash"], 6, path, keys, log=lambda s: None, batch_size=4)
    assert path.read_bytes() == before and not list(tmp_path.glob(".*.tmp"))
    assert views.check_views(path, keys) == 2


def test_view_encoding_logs_progress_and_reuse_stays_bounded(subset, clip, tmp_path, monkeypatch):
    """Progress lines count views; the reuse table holds at most SEEN_PER_IMAGE features per image of a block,
    whatever the number of epochs."""
    from coop import views

    manifest, items, root = subset
    sizes = []
    real_add = views._Seen.add

    def add(self, image, key, feat):
        real_add(self, image, key, feat)
        sizes.append(len(self.feats))

    monkeypatch.setattr(views._Seen, "add", add)
    monkeypatch.setenv("COOP_PROGRESS_SECONDS", "0")
    lines = []
    path = tmp_path / "v.safetensors"
    keys = view_keys(items, manifest["hash"], "toy-rn", "toy-rn", "random", clip.preprocess, 0.08)
    views.build_views(clip, items, root, manifest["hash"], 7, path, keys, log=lines.append, crop_min=0.08,
                      batch_size=8)
    n = len(items)
    assert lines[0] == f"encoding {n} x 7 augmented views into {path}"
    progress = [line for line in lines if line.startswith("view encoding: ")]
    assert progress[0].startswith(f"view encoding: 8/{7 * n} views") and progress[-1].startswith(
        f"view encoding: {7 * n}/{7 * n} views (100%)")
    assert max(sizes) <= views.SEEN_PER_IMAGE * 8 and len(sizes) == 7 * n  # every cropped view is new


def test_epoch_views_read_the_file_they_opened(subset, clip, tmp_path):
    """A job reading epoch by epoch is not disturbed by another job replacing the file (atomic rename)."""
    from coop.views import EpochViews, save_views

    manifest, items, root = subset
    path = tmp_path / "v.safetensors"
    keys = {"subset": manifest["hash"]}
    first = torch.randn(3, len(items), 8)
    save_views(path, first, keys)
    lazy = EpochViews(path, 2)
    save_views(path, torch.zeros(4, len(items), 8), keys)  # replaced meanwhile
    assert lazy.shape == (2, len(items), 8) and torch.equal(lazy[1], first[1])
    with pytest.raises(IndexError):
        lazy[2]
    with pytest.raises(CacheError, match="holds 4 epochs, 5 needed"):
        EpochViews(path, 5)


@pytest.mark.resume
def test_a_stale_or_truncated_cache_is_rebuilt_and_the_log_says_why(subset, clip, tmp_path):
    """A new few-shot subset (an edited split file, regenerated data) or a truncated file used to stop every
    training job with "Delete it and rerun": now the build replaces it, equal to views computed afresh."""
    manifest, items, root = subset
    path = tmp_path / "views.safetensors"
    keys = view_keys(items, manifest["hash"], "toy-rn", "toy-rn", "random", clip.image_size)
    fresh = train_views(clip, items, root, manifest["hash"], 2)  # not cached: the reference
    other = items[:-1]  # another subset of the same dataset, written first to the same path
    train_views(clip, other, root, "another-subset", 2, path=path,
                keys=view_keys(other, "another-subset", "toy-rn", "toy-rn", "random", clip.image_size))
    said = []
    got = train_views(clip, items, root, manifest["hash"], 2, path=path, keys=keys, log=said.append)
    assert torch.equal(got, fresh)
    assert said[0].startswith(f"{path} rebuilt: it has subset='another-subset'"), said
    assert load_views(path, keys)[1] == 2

    path.write_bytes(path.read_bytes()[:-100])  # truncated, as by a full disk or a killed copy
    said.clear()
    got = train_views(clip, items, root, manifest["hash"], 2, path=path, keys=keys, log=said.append)
    assert torch.equal(got, fresh)
    assert said[0].startswith(f"{path} rebuilt: unreadable ("), said
    said.clear()
    train_views(clip, items, root, manifest["hash"], 2, path=path, keys=keys, log=said.append)
    assert said == []  # a good cache is read, not rebuilt


@pytest.mark.parametrize("crop_min", [0.08, 1.0])
def test_drawn_views_render_as_the_transform_does(subset, crop_min):
    """A view drawn without rendering (its crop and flip) and rendered later has the pixels of torchvision's
    train transform applied under the same RNG state (the reference: the transform itself, in one call)."""
    from coop.models.transforms import render_view, view_params

    manifest, items, root = subset
    t = train_transform(32, crop_min)
    for k, img in enumerate(_images(root, items)):
        torch.manual_seed(1000 + k)
        reference, state = t(img), torch.get_rng_state()
        torch.manual_seed(1000 + k)
        params = view_params(t, img)
        assert torch.equal(torch.get_rng_state(), state)  # the same draws, no more, no fewer
        assert torch.equal(render_view(t, img, params), reference)


def test_cache_holds_the_features_of_each_seeded_view(subset, clip):
    """Every (epoch, image) row of the views equals the encoder on torchvision's transform of that image under
    torch.manual_seed of its definition seed, one view at a time (the reference path, independent of the
    de-duplication and the batching)."""
    from coop import views

    manifest, items, root = subset
    images, h = _images(root, items), manifest["hash"]
    for crop_min in (0.08, 1.0):
        t = train_transform(32, crop_min)
        feats = views.encode_views(clip, images, h, range(3), crop_min=crop_min)
        for e in range(3):
            for i, img in enumerate(images):
                torch.manual_seed(_definition_seed(h, e, i))
                ref = clip.model.encode_image(t(img)[None])[0]
                assert torch.allclose(feats[e, i], ref, atol=1e-5), (crop_min, e, i)
