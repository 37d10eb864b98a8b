"""Tests for the procedural toy-world datasets (coop.data.toyworld)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coop.data import toyworld as tw
from coop.data.toyworld import canvas, disk, geometry

NAMES = sorted(tw.TOY_DATASETS)
DRAWN = [n for n in NAMES if not tw.TOY_DATASETS[n].parts]  # those with a renderer of their own
SHIFTED = {"toy_shapes_sketch", "toy_shapes_v2", "toy_shapes_cartoon", "toy_shapes_hard"}
COUNTS = {"train": 3, "val": 2, "test": 3}
SIZE = 32


def _gen(name: str, root: Path, seed: int = 0, **kw) -> Path:
    return tw.generate(name, root, n_train=COUNTS["train"], n_val=COUNTS["val"],
                       n_test=COUNTS["test"], image_size=SIZE, seed=seed, **kw)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("toy")
    return {name: _gen(name, root) for name in NAMES}


def _load(split_file: Path) -> dict:
    return json.loads(split_file.read_text())


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _mentions(text: str, phrase: str) -> bool:
    return re.search(rf"\b{re.escape(phrase)}\b", text) is not None


def test_registry():
    assert set(NAMES) >= {"toy_shapes", "toy_textures", "toy_flowers"} | SHIFTED
    for name, spec in tw.TOY_DATASETS.items():
        assert spec.name == name
        assert spec.split_file == f"split_zhou_{spec.split_name}.json"
        assert "{}" in spec.template
        assert len(set(spec.classnames)) == len(spec.classnames) >= 6
        if spec.parts:  # a union of other datasets' classes, drawn and captioned as they are
            assert spec.kind == "union" and spec.classnames == sum((tw.TOY_DATASETS[p].classnames
                                                                    for p in spec.parts), ())
        else:
            assert spec.kind in tw.RENDERERS and spec.kind in tw.CAPTION_TEMPLATES
    assert len({spec.split_name for spec in tw.TOY_DATASETS.values()}) == len(NAMES)
    assert tw.TOY_DATASETS["toy_shapes"].template == "a photo of a {}."
    assert tw.TOY_DATASETS["toy_textures"].template == "{} texture."
    assert tw.TOY_DATASETS["toy_flowers"].template == "a photo of a {}, a type of flower."
    assert len(tw.TOY_DATASETS["toy_shapes"].classnames) == 10


def test_a_union_draws_and_captions_each_class_as_its_own_dataset():
    spec = tw.TOY_DATASETS["toy_objects"]
    assert len(spec.classnames) == 26 and spec.template == "a photo of a {}."
    for label in (0, 12, 25):
        cls = spec.classnames[label]
        part = next(p for p in spec.parts if cls in tw.TOY_DATASETS[p].classnames)
        img, words = tw.sample_image("toy_objects", label, np.random.default_rng(label), 16)
        ref, ref_words = tw.sample_image(part, tw.TOY_DATASETS[part].classnames.index(cls),
                                         np.random.default_rng(label), 16)
        assert np.array_equal(img, ref) and words == ref_words and words["cls"] == cls
        caption = tw.make_caption("toy_objects", words, np.random.default_rng(1), noise=0.0)
        assert caption == tw.make_caption(part, words, np.random.default_rng(1), noise=0.0)


def test_sketch_shares_classes_with_shapes():
    shapes, sketch = tw.TOY_DATASETS["toy_shapes"], tw.TOY_DATASETS["toy_shapes_sketch"]
    assert sketch.classnames == shapes.classnames
    assert sketch.template == shapes.template
    assert sketch.split_name != shapes.split_name


def test_shifted_datasets_are_renderings_of_shapes():
    """Like ImageNet-V2/-Sketch/-A/-R: toy_shapes' class names (a subset, in the same order, with
    labels 0..n-1), its template, and `source` naming it; every other dataset has no source."""
    shapes = tw.TOY_DATASETS["toy_shapes"].classnames
    assert {n for n, s in tw.TOY_DATASETS.items() if s.source is not None} == SHIFTED
    for name in SHIFTED:
        spec = tw.TOY_DATASETS[name]
        assert spec.source == "toy_shapes" and spec.attribute == "shape"
        assert spec.template == "a photo of a {}."
        positions = [shapes.index(c) for c in spec.classnames]  # ValueError if not a toy_shapes class
        assert positions == sorted(set(positions))  # toy_shapes' relative order, no repeats
    assert tw.TOY_DATASETS["toy_shapes_v2"].classnames == shapes
    cartoon = tw.TOY_DATASETS["toy_shapes_cartoon"].classnames
    hard = tw.TOY_DATASETS["toy_shapes_hard"].classnames
    assert (len(cartoon), len(hard)) == (7, 6)  # subsets, like ImageNet-R's and -A's 200 classes
    assert set(cartoon) != set(hard)
    assert {s.split_name for n, s in tw.TOY_DATASETS.items() if n in SHIFTED} == {
        "ToyShapesSketch", "ToyShapesV2", "ToyShapesCartoon", "ToyShapesHard"}


def test_subset_labels_follow_the_subset(datasets):
    """Labels are positions in the subset; folders are named like toy_shapes' folders."""
    for name in ("toy_shapes_cartoon", "toy_shapes_hard"):
        spec = tw.TOY_DATASETS[name]
        items = _load(datasets[name])["test"]
        assert sorted({label for _, label, _ in items}) == list(range(len(spec.classnames)))
        assert {cls for _, _, cls in items} == set(spec.classnames)
        folders = {p.name for p in (datasets[name].parent / "images").iterdir()}
        assert folders == {tw.class_folder(c) for c in spec.classnames}


@pytest.mark.parametrize("name", NAMES)
def test_split_file_format(datasets, name):
    spec = tw.TOY_DATASETS[name]
    split_file = datasets[name]
    assert split_file == tw.split_path(name, split_file.parent.parent)
    assert split_file.name == spec.split_file
    split = _load(split_file)
    assert list(split) == ["train", "val", "test"]
    for part, items in split.items():
        assert len(items) == COUNTS[part] * len(spec.classnames)
        for item in items:
            assert isinstance(item, list) and len(item) == 3
            rel, label, cls = item
            assert isinstance(rel, str) and type(label) is int and isinstance(cls, str)
            assert spec.classnames[label] == cls
            assert rel.startswith(cls.replace(" ", "_") + "/") and rel.endswith(".png")
            assert " " not in rel
        per_class = Counter(label for _, label, _ in items)
        assert per_class == {k: COUNTS[part] for k in range(len(spec.classnames))}
    all_paths = [rel for items in split.values() for rel, _, _ in items]
    assert len(set(all_paths)) == len(all_paths)
    assert tw.is_complete(name, split_file.parent.parent)


@pytest.mark.parametrize("name", NAMES)
def test_images_exist_and_decode(datasets, name):
    folder = datasets[name].parent
    split = _load(datasets[name])
    listed = {rel for items in split.values() for rel, _, _ in items}
    on_disk = {str(p.relative_to(folder / "images")) for p in (folder / "images").rglob("*.png")}
    assert on_disk == listed
    for rel in listed:
        with Image.open(folder / "images" / rel) as im:
            assert im.format == "PNG"
            assert im.mode == "RGB"
            assert im.size == (SIZE, SIZE)
            im.load()


@pytest.mark.parametrize("name", NAMES)
def test_generation_is_byte_identical(datasets, tmp_path, name):
    again = _gen(name, tmp_path)
    assert _files(again.parent) == _files(datasets[name].parent)


def test_determinism_does_not_depend_on_hash_seed():
    """Seeds come from crc32, not the per-process salted hash() of a str."""
    code = ("import hashlib; from coop.data import toyworld as tw; import numpy as np;"
            "rng = np.random.default_rng(tw.item_seed(0, 'toy_flowers', 'val', 2, 1));"
            "print(hashlib.sha256(tw.sample_image('toy_flowers', 2, rng)[0].tobytes()).hexdigest())")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    rng = np.random.default_rng(tw.item_seed(0, "toy_flowers", "val", 2, 1))
    assert out == hashlib.sha256(tw.sample_image("toy_flowers", 2, rng)[0].tobytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# image kinds: every registered kind is exercised

KIND_NAMES = list(tw.KINDS)

# What each kind drew before the toy world became a package (commit 0101427, the last single-module
# version): every class of the first dataset (by name) of the kind from fixed seeds, with its caption
# words and a caption, hashed together. Like the shipped weights' fingerprint, exact on this numpy build.
PRE_SPLIT = {
    "cartoon": ("toy_icons", "75d1f935dd100c976332505c2122059edca36f65dcd5987272439f81b4b3d4e2"),
    "flowers": ("toy_flowers", "02cb3e4b3663c1902f1e2db616a7d8fc0e79330731adeef11a919fe0c5a1ef6d"),
    "hard": ("toy_shapes_hard", "1457c88c308f8a3df8421724e64a7fa343a79e735f7f43b89c898ff28b3613ac"),
    "shapes": ("toy_shapes", "bc9491d06f2bc445dd2c412eaa41c11001073ef67f5d5cb2dfc76fdfca54f868"),
    "sketch": ("toy_shapes_sketch", "0e907c92233715d95dc7bee2dbe09ec574e24d5d6ca37ca179f455046b876e72"),
    "textures": ("toy_textures", "c3decff69c1da4398118239c4cfef8e227c952cdbfaa90ce57c848ec0b01b95f"),
    "v2": ("toy_shapes_v2", "901ae0f1095629f52d9d137ebac861ed8c6b1699f820a34d2cdb6c4089c1933a"),
}


def _kind_digests(size: int = 16) -> dict[str, str]:
    """sha256 of every class of every registered kind drawn from fixed seeds, with its caption words."""
    out = {}
    for name, kind in tw.KINDS.items():
        h = hashlib.sha256()
        for i, cls in enumerate(kind.classes):
            img, words = tw.draw_image(kind, cls, np.random.default_rng([i, 5]), size)
            h.update(img.tobytes())
            h.update(json.dumps(sorted(words.items())).encode())
        out[name] = h.hexdigest()
    return out


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_every_registered_kind_renders_deterministically(kind):
    """Each class a kind can draw: the same seed gives the same pixels and words, another seed other pixels;
    the words fill every slot of the kind's templates with values of its vocabulary."""
    record = tw.KINDS[kind]
    assert record.name == kind and len(set(record.classes)) == len(record.classes) >= 6
    assert len(set(record.templates)) == len(record.templates) >= 15
    for i, cls in enumerate(record.classes):
        img, words = tw.draw_image(record, cls, np.random.default_rng([i, 5]), 16)
        again, words_again = tw.draw_image(record, cls, np.random.default_rng([i, 5]), 16)
        other, _ = tw.draw_image(record, cls, np.random.default_rng([i, 6]), 16)
        assert img.shape == (16, 16, 3) and img.dtype == np.uint8 and img.flags["C_CONTIGUOUS"]
        assert np.array_equal(img, again) and words == words_again
        assert not np.array_equal(img, other)
        assert words["cls"] == cls and set(words) == {"cls", *record.vocabulary}
        assert all(words[k] in record.vocabulary[k] for k in words if k != "cls")
        for template in record.templates:
            assert "{" not in tw.fill_template(template, words)


def test_every_kind_renders_the_same_in_a_fresh_process():
    """No state carried between draws (caches, salted hashes): a new process with another hash seed agrees."""
    code = "import json; import test_toyworld as t; print(json.dumps(t._kind_digests()))"
    env = {**os.environ, "PYTHONHASHSEED": "54321"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent).stdout
    assert json.loads(out) == _kind_digests() and set(json.loads(out)) == set(tw.KINDS)


@pytest.mark.parametrize("kind", sorted(PRE_SPLIT))
def test_kind_draws_what_it_drew_before_the_package(kind):
    name, digest = PRE_SPLIT[kind]
    spec = tw.TOY_DATASETS[name]
    assert spec.kind == kind
    h = hashlib.sha256()
    for label, cls in enumerate(spec.classnames):
        rng = np.random.default_rng([label, 2024])
        img, words = tw.sample_image(name, label, rng, 32)
        caption = tw.make_caption(name, words, rng, noise=0.5)
        h.update(img.tobytes())
        h.update(json.dumps([sorted(words.items()), caption]).encode())
        direct, direct_words = tw.draw_image(tw.KINDS[kind], cls, np.random.default_rng([label, 2024]), 32)
        assert np.array_equal(direct, img) and direct_words == words  # a dataset draws through its kind
    assert h.hexdigest() == digest


def test_each_dataset_has_a_registered_kind_that_draws_its_classes():
    for name, spec in tw.TOY_DATASETS.items():
        if spec.parts:
            continue
        assert set(spec.classnames) <= set(tw.KINDS[spec.kind].classes), name
    assert set(tw.RENDERERS) == set(tw.CAPTION_TEMPLATES) == set(tw.KINDS)  # the views follow the records
    assert all(tw.RENDERERS[k] is tw.KINDS[k].render for k in tw.KINDS)


def test_a_kind_is_one_consistent_record():
    shapes = tw.KINDS["shapes"]
    with pytest.raises(ValueError, match="already registered"):
        tw.register_kind(shapes)
    with pytest.raises(ValueError, match="slots"):  # a template slot without a vocabulary
        tw.ImageKind("broken", shapes.render, shapes.classes, 0.02, 0.08, ("a {shade} {cls}.",), {})
    with pytest.raises(ValueError, match="slots"):  # a vocabulary that no template uses
        tw.ImageKind("broken", shapes.render, shapes.classes, 0.02, 0.08, ("a {cls}.",), {"size": ("small",)})
    with pytest.raises(TypeError):
        shapes.vocabulary["size"] = ("tiny",)  # read-only
    assert "broken" not in tw.KINDS


@pytest.mark.parametrize("name", NAMES)
def test_different_seed_gives_different_images(datasets, tmp_path, name):
    other = _gen(name, tmp_path, seed=1)
    a, b = _files(datasets[name].parent / "images"), _files(other.parent / "images")
    assert a.keys() == b.keys()
    assert sum(a[k] != b[k] for k in a) == len(a)


@pytest.mark.parametrize("name", NAMES)
def test_no_image_repeats_across_splits(datasets, name):
    folder = datasets[name].parent / "images"
    split = _load(datasets[name])
    pixels = {part: {np.asarray(Image.open(folder / rel)).tobytes() for rel, _, _ in items}
              for part, items in split.items()}
    assert all(len(pixels[p]) == len(split[p]) for p in pixels)  # unique within a split too
    assert not pixels["train"] & pixels["test"]
    assert not pixels["train"] & pixels["val"]
    assert not pixels["val"] & pixels["test"]


@pytest.mark.parametrize("name", NAMES)
def test_captions(datasets, name):
    folder = datasets[name].parent
    captions = json.loads((folder / "captions.json").read_text())
    split = _load(datasets[name])
    items = [item for part in split.values() for item in part]
    assert set(captions) == {rel for rel, _, _ in items}
    assert all(isinstance(c, str) and c.endswith(".") and len(c.split()) >= 2 for c in captions.values())
    assert not any("{" in c or re.search(r"\ba [aeiou]", c) for c in captions.values())
    named = sum(_mentions(captions[rel], cls) for rel, _, cls in items)
    assert named >= 0.75 * len(items)  # only noisy captions may name another class
    assert len(set(captions.values())) > len(captions) // 2  # varied, not one fixed sentence


def _slots(template: str) -> set[str]:
    return set(re.findall(r"{(\w+)}", template))


@pytest.mark.parametrize("name", DRAWN)
def test_caption_words_are_valid(name):
    spec = tw.TOY_DATASETS[name]
    templates = tw.CAPTION_TEMPLATES[spec.kind]
    assert len(templates) >= 15 and len(set(templates)) == len(templates)
    vocab = tw.vocabulary(spec)
    for i in range(60):
        label = i % len(spec.classnames)
        _, words = tw.sample_image(name, label, np.random.default_rng(i), 8)
        assert words["cls"] == spec.classnames[label]
        assert set(words) == set(vocab) == set().union(*map(_slots, templates))
        assert all(words[k] in vocab[k] for k in words)


@pytest.mark.parametrize("name", DRAWN)
def test_caption_noise_changes_one_attribute(name):
    """Same random stream: the clean caption fills a template with the true attributes, the
    noisy one the same template with exactly one slot holding another value of its vocabulary."""
    spec = tw.TOY_DATASETS[name]
    templates, vocab = tw.CAPTION_TEMPLATES[spec.kind], tw.vocabulary(spec)
    for i in range(40):
        label = i % len(spec.classnames)
        _, words = tw.sample_image(name, label, np.random.default_rng(i), 8)
        clean, clean_flag = tw.make_caption(name, words, np.random.default_rng([i, 1]), noise=0.0)
        noisy, noisy_flag = tw.make_caption(name, words, np.random.default_rng([i, 1]), noise=1.0)
        assert (clean_flag, noisy_flag) == (False, True)
        assert _mentions(clean, spec.classnames[label])
        template = next(t for t in templates if tw.fill_template(t, words) == clean)
        variants = {tw.fill_template(template, {**words, slot: v})
                    for slot in _slots(template) for v in vocab[slot] if v != words[slot]}
        assert noisy in variants and noisy != clean


@pytest.mark.parametrize("name", DRAWN)
def test_caption_noise_rate(name):
    spec = tw.TOY_DATASETS[name]
    rng = np.random.default_rng(0)
    _, words = tw.sample_image(name, 0, np.random.default_rng(0), 8)
    results = [tw.make_caption(name, words, rng) for _ in range(3000)]
    rate = np.mean([noisy for _, noisy in results])
    assert 0.08 < rate < 0.12
    clean = [text for text, noisy in results if not noisy]
    assert all(_mentions(t, spec.classnames[0]) for t in clean)
    assert len(set(clean)) >= 15  # many different templates in use


def test_article_agrees_with_next_word():
    words = {"cls": "eight petal flower", "color": "orange", "center": "yellow", "bg": "blue sky",
             "size": "small"}
    rng = np.random.default_rng(0)
    texts = {tw.make_caption("toy_flowers", words, rng, noise=0.0)[0] for _ in range(300)}
    assert any("an eight petal flower" in t or "an orange" in t for t in texts)
    assert not any(re.search(r"\ba (eight|orange)\b", t) for t in texts)


def _class_means(folder: Path, split: dict, n_cls: int) -> np.ndarray:
    sums = np.zeros((n_cls, SIZE, SIZE, 3))
    for items in split.values():
        for rel, label, _ in items:
            sums[label] += np.asarray(Image.open(folder / "images" / rel), np.float64)
    return sums / sum(COUNTS.values())


@pytest.mark.parametrize("name", NAMES)
def test_classes_differ(datasets, name):
    spec = tw.TOY_DATASETS[name]
    means = _class_means(datasets[name].parent, _load(datasets[name]), len(spec.classnames))
    flat = means.reshape(len(means), -1)
    dist = np.sqrt(((flat[:, None] - flat[None]) ** 2).mean(-1))
    off_diag = dist[~np.eye(len(flat), dtype=bool)]
    assert off_diag.min() > 1.0  # no two classes have the same mean image


def test_same_random_stream_different_class_differs():
    for name, spec in tw.TOY_DATASETS.items():
        imgs = [tw.render_image(name, k, seed=7) for k in range(len(spec.classnames))]
        assert len({im.tobytes() for im in imgs}) == len(imgs)
        assert all(im.shape == (32, 32, 3) and im.dtype == np.uint8 for im in imgs)


def test_render_image_size_and_determinism():
    a = tw.render_image("toy_shapes", 3, seed=[1, 2], image_size=48)
    assert a.shape == (48, 48, 3) and a.dtype == np.uint8
    assert np.array_equal(a, tw.render_image("toy_shapes", 3, seed=[1, 2], image_size=48))
    assert not np.array_equal(a, tw.render_image("toy_shapes", 3, seed=[1, 3], image_size=48))


def _luma(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float64) @ [0.299, 0.587, 0.114]


def test_sketches_are_dark_outlines_on_light_paper():
    for k in range(40):
        img = _luma(tw.render_image("toy_shapes_sketch", k % 10, seed=k))
        assert np.median(img) > 180  # mostly paper
        assert img.min() < 150  # some ink
        assert (img < 150).mean() < 0.3  # outlines, not fills
        rgb = tw.render_image("toy_shapes_sketch", k % 10, seed=k).astype(int)
        assert np.abs(rgb - rgb.mean(-1, keepdims=True)).max() < 60  # no fill colour


def _image_stats(name: str, n: int = 60) -> dict[str, np.ndarray]:
    """Per-image statistics of n images of `name` (classes in turn), from fixed seeds."""
    spec = tw.TOY_DATASETS[name]
    stats = []
    for i in range(n):
        img = tw.render_image(name, i % len(spec.classnames), seed=[i, 11])
        rgb = img.astype(np.float64) / 255
        hi, lo = rgb.max(-1), rgb.min(-1)
        y = _luma(img)
        grad = np.abs(np.diff(y, axis=0))[:, :-1] + np.abs(np.diff(y, axis=1))[:-1]
        blocks = y.reshape(8, 4, 8, 4).mean((1, 3))  # 4x4 means: contrast of the scene, not the noise
        pairs = y.reshape(16, 2, 16, 2)
        stats.append({
            "saturation": ((hi - lo) / np.maximum(hi, 1e-6)).mean(),
            "edges": (grad > 40).mean(),  # strong luma steps: edges of shapes and clutter
            "contrast": blocks.std(),
            "noise": np.median(np.abs(pairs - pairs.mean((1, 3), keepdims=True))),  # robust to edges
            "black": (y < 50).mean(),  # near-black pixels
        })
    return {k: np.array([s[k] for s in stats]) for k in stats[0]}


@pytest.fixture(scope="module")
def shape_stats() -> dict[str, dict[str, np.ndarray]]:
    return {name: _image_stats(name) for name in ["toy_shapes", *sorted(SHIFTED - {"toy_shapes_sketch"})]}


def test_v2_is_a_mild_shift(shape_stats):
    """V2: the same kind of photos (similar colours and contrast) with busier backgrounds."""
    base, v2 = shape_stats["toy_shapes"], shape_stats["toy_shapes_v2"]
    assert abs(v2["saturation"].mean() - base["saturation"].mean()) < 0.05
    assert 0.8 < v2["contrast"].mean() / base["contrast"].mean() < 1.25
    assert v2["edges"].mean() > 1.3 * base["edges"].mean()  # more background clutter


def test_cartoons_have_black_outlines(shape_stats):
    base, cartoon = shape_stats["toy_shapes"], shape_stats["toy_shapes_cartoon"]
    assert np.median(base["black"]) < 0.005  # most photos have no black at all
    assert np.median(cartoon["black"]) > 0.02
    assert (cartoon["black"] > 0.003).mean() > 0.95  # nearly every rendition has its outline
    assert cartoon["black"].max() < 0.3  # outlines, not black fills or backgrounds
    assert cartoon["noise"].mean() < base["noise"].mean()  # flat fills, little texture


def test_hard_examples_are_faint_and_noisy(shape_stats):
    base, hard = shape_stats["toy_shapes"], shape_stats["toy_shapes_hard"]
    assert hard["contrast"].mean() < 0.8 * base["contrast"].mean()
    assert hard["noise"].mean() > 1.4 * base["noise"].mean()


def test_cartoon_pixel_art_is_blocky():
    """Large pixel-art shapes are drawn in 2x2 blocks of one colour (before noise and light)."""
    seen = 0
    for i in range(60):
        rng = np.random.default_rng(i)
        img, words = tw.KINDS["cartoon"].render("heart", rng, 64)  # supersampled: 4x4 blocks
        if words["style"] != "pixel art" or words["size"] != "large" or "gradient" in words["bg"]:
            continue
        blocks = img.reshape(3, 16, 4, 16, 4)
        assert np.abs(blocks - blocks[:, :, :1, :, :1]).max() < 1e-6
        seen += 1
    assert seen >= 2


def test_shifted_captions_name_the_style():
    """Renditions say which kind (cartoon, pixel art, embroidered); hard examples say what is wrong."""
    assert all("{style}" in t for t in tw.CAPTION_TEMPLATES["cartoon"])
    hard_words = r"\{flaw\}|hard to see|noisy|low contrast|grainy|barely|dark|difficult|washed out"
    assert all(re.search(hard_words, t) for t in tw.CAPTION_TEMPLATES["hard"])
    styles = Counter()
    for i in range(40):
        _, words = tw.sample_image("toy_shapes_cartoon", i % 7, np.random.default_rng(i), 8)
        caption, _ = tw.make_caption("toy_shapes_cartoon", words, np.random.default_rng(i), noise=0.0)
        assert _mentions(caption, words["style"])
        styles[words["style"]] += 1
    assert set(styles) == set(tw.CARTOON_STYLES)


def test_textures_have_strong_contrast():
    for k in range(40):
        img = _luma(tw.render_image("toy_textures", k % 8, seed=k))
        assert img.std() > 25
        assert np.percentile(img, 98) - np.percentile(img, 2) > 70


def test_window_covers_whole_shape():
    """Shapes are drawn only inside a window around them; nothing may fall outside it."""
    x, y = canvas.grid(64)
    for k in range(300):
        rng = np.random.default_rng(k)
        cls = tw.SHAPES[k % len(tw.SHAPES)]
        _, cx, cy, r, angle = geometry.layout(rng, cls)
        cover = canvas.coverage(tw.shape_sdf(cls, x, y, cx, cy, r, angle), 2 / 64)
        rows, cols = canvas.window(64, cx, cy, tw.SHAPE_EXTENT * r + 4 / 64)
        cover[rows, cols] = 0
        assert cover.max() == 0, cls


def test_overwrite_replaces_complete_dataset(tmp_path):
    first = _gen("toy_textures", tmp_path, seed=0)
    before = _files(first.parent)
    second = _gen("toy_textures", tmp_path, seed=5)
    assert second == first
    after = _files(second.parent)
    assert after.keys() == before.keys() and after != before
    assert json.loads((second.parent / "meta.json").read_text())["seed"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy_textures"]  # no temp leftovers


def test_our_folder_without_its_split_file_is_regenerated_with_the_new_settings(tmp_path):
    """Snakemake deletes the split file (the rule's output) before it reruns the job for a changed toy_world; the
    generator used to refuse the folder then ("not a complete toy dataset"), and reverting did not help."""
    first = _gen("toy_shapes", tmp_path, seed=0)
    first.unlink()
    second = _gen("toy_shapes", tmp_path, seed=5)
    meta = json.loads((second.parent / "meta.json").read_text())
    assert meta["seed"] == 5 and meta["generator"] == "coop.data.toyworld"
    assert _files(second.parent) == _files(_gen("toy_shapes", tmp_path / "fresh", seed=5).parent)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "toy_shapes"]  # no temp or old folders left
    (second.parent / "meta.json").write_text(json.dumps({**meta, "name": "toy_textures"}))  # another's meta
    second.unlink()
    with pytest.raises(FileExistsError, match="not a toy dataset"):
        _gen("toy_shapes", tmp_path)


def test_foreign_folder_is_never_replaced(tmp_path):
    (tmp_path / "toy_shapes").mkdir()
    (tmp_path / "toy_shapes" / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError):
        _gen("toy_shapes", tmp_path)
    assert (tmp_path / "toy_shapes" / "mine.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy_shapes"]


def test_our_folder_without_its_split_file_is_regenerated_with_new_settings(tmp_path):
    """Snakemake deletes the split file (the toy_dataset job's output) before regenerating with other settings:
    the folder left is ours (its meta.json) and is replaced by exactly what a clean generation writes."""
    old = _gen("toy_textures", tmp_path, seed=0)
    old.unlink()  # what Snakemake does before the job reruns
    new = tw.generate("toy_textures", tmp_path, n_train=5, n_val=1, n_test=2, image_size=SIZE, seed=0)
    clean = tw.generate("toy_textures", tmp_path / "clean", n_train=5, n_val=1, n_test=2, image_size=SIZE, seed=0)
    assert _files(new.parent) == _files(clean.parent)  # no image of the old dataset is left
    assert len(_load(new)["train"]) == 5 * len(tw.TEXTURES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean", "toy_textures"]  # no temp leftovers
    # and back to the first settings: the same bytes as the first generation
    new.unlink()
    again = _gen("toy_textures", tmp_path, seed=0)
    assert _files(again.parent) == _files(_gen("toy_textures", tmp_path / "first", seed=0).parent)


@pytest.mark.badinput
@pytest.mark.parametrize("meta", [None, "not json", {"generator": "someone.else", "name": "toy_shapes"},
                                  {"generator": tw.GENERATOR, "name": "toy_textures"}])
def test_a_folder_that_is_not_ours_is_never_replaced(tmp_path, meta):
    folder = tmp_path / "toy_shapes"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep")
    if meta is not None:
        (folder / "meta.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    before = _files(folder)
    with pytest.raises(tw.disk.ToyDatasetExistsError) as e:
        _gen("toy_shapes", tmp_path)
    assert str(folder) in str(e.value) and "Move it away" in str(e.value) and "\n" not in str(e.value)
    assert _files(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy_shapes"]


def test_crash_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = tw.sample_image

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 20:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(disk, "sample_image", flaky)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _gen("toy_flowers", tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert not tw.is_complete("toy_flowers", tmp_path)


def test_crash_keeps_previous_dataset(tmp_path, monkeypatch):
    good = _files(_gen("toy_flowers", tmp_path).parent)
    monkeypatch.setattr(disk, "sample_image", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        _gen("toy_flowers", tmp_path, seed=9)
    assert _files(tmp_path / "toy_flowers") == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy_flowers"]


def test_unknown_dataset_and_bad_counts(tmp_path):
    with pytest.raises(KeyError):
        tw.generate("toy_nothing", tmp_path)
    with pytest.raises(ValueError):
        tw.generate("toy_shapes", tmp_path, n_train=-1)


def test_throughput(tmp_path):
    n_per_class = 20
    total = 0
    start = time.perf_counter()
    for name in NAMES:
        tw.generate(name, tmp_path, n_train=n_per_class, n_val=0, n_test=0)
        total += n_per_class * len(tw.TOY_DATASETS[name].classnames)
    rate = total / (time.perf_counter() - start)
    print(f"\ntoyworld: {total} images in {total / rate:.2f}s = {rate:.0f} images/s")
    assert rate > 0
