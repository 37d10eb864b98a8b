"""Backbones by name or by config alone: names and pretrained values parsed in one place (coop.models.names), a
backbone's default weights, preprocessing from the model's open_clip preprocess config, a model-config JSON of
one's own, local-dir: folders, hf-hub: offline, and clear errors for configs open_clip would reject."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from coop.models import BackboneError, load_clip
from coop.models.names import (CONFIG_DIR, SHIPPED_DIR, canonical_pretrained, default_pretrained, parse_model,
                               parse_pretrained)
from coop.models import transforms
from coop.models.transforms import Preprocess

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def _toy_cfg(**vision) -> dict:
    cfg = json.loads((CONFIG_DIR / "toy-rn.json").read_text())
    cfg["vision_cfg"].update(vision)
    return cfg


def _write(path: Path, cfg) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg) if not isinstance(cfg, str) else cfg)
    return path


def test_names_module_is_light():
    code = ("import sys, coop.models.names as n; n.parse_pretrained('random', 'toy-rn'); "
            "n.parse_pretrained(None, 'toy-vit'); n.parse_model('local-dir:/x'); n.parse_model('hf-hub:a/b'); "
            "assert 'torch' not in sys.modules and 'open_clip' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_model_names_are_parsed_once():
    toy = parse_model("toy-rn")
    assert (toy.kind, toy.value, toy.canonical, toy.toy) == ("builtin", "toy-rn", "toy-rn", True)
    assert parse_model("RN50-quickgelu").kind == "builtin" and not parse_model("RN50-quickgelu").toy
    for spec in ("/cfg/my-clip.json", "config:/cfg/my-clip.json"):
        ref = parse_model(spec)
        assert (ref.kind, ref.value, ref.canonical, ref.file) == ("config", "/cfg/my-clip.json", "/cfg/my-clip.json",
                                                                  "/cfg/my-clip.json")
    ref = parse_model("local-dir:/models/mine")
    assert (ref.kind, ref.value, ref.canonical, ref.file) == ("local-dir", "/models/mine", "local-dir:/models/mine",
                                                              "/models/mine/open_clip_config.json")
    ref = parse_model("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K")
    assert (ref.kind, ref.value, ref.file) == ("hf-hub", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K", None)


def test_pretrained_values_and_their_canonical_strings():
    for spelling in ("random", "none", ""):
        assert parse_pretrained(spelling, "toy-rn") == parse_pretrained("random", "RN50-quickgelu")
        assert canonical_pretrained(spelling, "toy-rn") == "random"  # today's cache keys
    w = parse_pretrained("toyworld", "toy-vit")
    assert (w.kind, w.file, w.canonical) == ("toyworld", str(SHIPPED_DIR / "toy-vit.safetensors"), "toyworld")
    w = parse_pretrained("openai", "RN50-quickgelu")
    assert (w.kind, w.value, w.file, w.canonical) == ("tag", "openai", None, "openai")
    w = parse_pretrained("results/pretrained/toy-rn.safetensors", "toy-rn")  # may not exist yet (a workflow output)
    assert (w.kind, w.file, w.canonical) == ("checkpoint",) + ("results/pretrained/toy-rn.safetensors",) * 2
    w = parse_pretrained(None, "local-dir:/nowhere")
    assert (w.kind, w.canonical, w.file) == ("bundled", "bundled", None)


def test_default_weights_come_from_one_place():
    assert default_pretrained("toy-rn") == default_pretrained("toy-vit") == "toyworld"
    assert default_pretrained("RN50-quickgelu") == default_pretrained("ViT-B-16-quickgelu") == "openai"
    assert default_pretrained("local-dir:/x") == default_pretrained("hf-hub:a/b") == "bundled"
    assert parse_pretrained(None, "toy-rn").canonical == "toyworld"
    with pytest.raises(BackboneError, match="no default weights.*--pretrained.*webli"):
        default_pretrained("ViT-SO400M-14-SigLIP")
    with pytest.raises(BackboneError, match="model config of your own\\) has no default weights"):
        default_pretrained("/cfg/mine.json")
    clip = load_clip("toy-rn")  # no pretrained: the toy world's weights, not random ones
    assert clip.pretrained == "toyworld"
    ref = load_clip("toy-rn", "toyworld").model.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in clip.model.state_dict().items())


def test_toy_and_openai_preprocessing_is_unchanged(clip):
    pp = clip.preprocess
    assert (pp.size, pp.mean, pp.std, pp.interpolation, pp.resize_mode) == (32, OPENAI_MEAN, OPENAI_STD, "bicubic",
                                                                            "shortest")
    assert Preprocess.default(224) == Preprocess(224, OPENAI_MEAN, OPENAI_STD)  # open_clip's defaults (openai tag)


def test_a_model_config_json_alone_makes_a_backbone(tmp_path):
    # named like the built-in on purpose: a user's file never shadows it
    path = _write(tmp_path / "toy-rn.json", _toy_cfg(width=8))
    mine = load_clip(str(path), "random")
    assert mine.name == str(path) and mine.pretrained == "random"
    assert mine.model.visual.conv1.weight.shape[0] == 4  # width 8: stem conv of width // 2
    assert load_clip("toy-rn", "random").model.visual.conv1.weight.shape[0] == 8  # the built-in: width 16
    with torch.no_grad():
        assert mine.model.encode_image(torch.zeros(1, 3, 32, 32)).shape == (1, 128)
    assert load_clip(f"config:{path}", "random").name == str(path)
    # its own checkpoint loads through the same path
    ckpt = tmp_path / "weights" / "mine.pt"
    ckpt.parent.mkdir()
    torch.save(load_clip(str(path), "random", init_seed=5).model.state_dict(), ckpt)
    loaded = load_clip(str(path), str(ckpt))
    ref = load_clip(str(path), "random", init_seed=5).model.state_dict()
    assert loaded.pretrained == str(ckpt) and all(torch.equal(v, ref[k]) for k, v in loaded.model.state_dict().items())


@pytest.mark.parametrize("layout", ["beside", "open_clip_config"])
def test_preprocess_config_of_a_model_json_reaches_the_transforms(tmp_path, layout):
    pp = {"mean": [0.5, 0.25, 0.125], "std": [0.2, 0.3, 0.4], "interpolation": "bilinear"}
    cfg = {**_toy_cfg(), "preprocess_cfg": pp} if layout == "beside" else {"model_cfg": _toy_cfg(),
                                                                          "preprocess_cfg": pp}
    clip = load_clip(str(_write(tmp_path / "mine.json", cfg)), "random")
    assert clip.preprocess.mean == (0.5, 0.25, 0.125) and clip.preprocess.std == (0.2, 0.3, 0.4)
    assert clip.preprocess.interpolation == "bilinear" and clip.image_size == 32
    for tf in (transforms.test_transform(clip.preprocess), transforms.train_transform(clip.preprocess)):
        norm = tf.transforms[-1]
        assert tuple(norm.mean) == (0.5, 0.25, 0.125) and tuple(norm.std) == (0.2, 0.3, 0.4)
        assert tf.transforms[0].interpolation.value == "bilinear"
    img = __import__("PIL.Image", fromlist=["Image"]).new("RGB", (40, 32), (128, 64, 32))
    x = transforms.test_transform(clip.preprocess)(img)
    assert x.shape == (3, 32, 32)
    torch.testing.assert_close(x[:, 0, 0], torch.tensor([(128 / 255 - 0.5) / 0.2, (64 / 255 - 0.25) / 0.3,
                                                         (32 / 255 - 0.125) / 0.4]))


def test_squash_resize_mode(tmp_path):
    cfg = {**_toy_cfg(), "preprocess_cfg": {"resize_mode": "squash"}}
    clip = load_clip(str(_write(tmp_path / "sq.json", cfg)), "random")
    assert clip.preprocess.resize_mode == "squash" and clip.preprocess.mean == OPENAI_MEAN
    assert transforms.test_transform(clip.preprocess).transforms[0].size == (32, 32)


def _local_dir(tmp_path: Path, seed: int = 3, weights: bool = True) -> Path:
    from safetensors.torch import save_file

    folder = tmp_path / "my-clip"
    _write(folder / "open_clip_config.json", {"model_cfg": _toy_cfg(), "preprocess_cfg": {"mean": [0.5] * 3,
                                                                                          "std": [0.5] * 3}})
    if weights:
        state = load_clip("toy-rn", "random", init_seed=seed).model.state_dict()
        save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "open_clip_model.safetensors"))
    return folder


def test_local_dir_folder_loads_its_weights_and_preprocessing(tmp_path):
    folder = _local_dir(tmp_path)
    clip = load_clip(f"local-dir:{folder}")
    ref = load_clip("toy-rn", "random", init_seed=3).model.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in clip.model.state_dict().items())
    assert (clip.name, clip.pretrained) == (f"local-dir:{folder}", "bundled")
    assert clip.preprocess.mean == (0.5, 0.5, 0.5) and clip.preprocess.std == (0.5, 0.5, 0.5)
    assert parse_pretrained(None, f"local-dir:{folder}").file == str(folder / "open_clip_model.safetensors")
    rand = load_clip(f"local-dir:{folder}", "random")  # the folder's architecture, seeded weights
    assert rand.pretrained == "random" and not torch.equal(rand.model.text_projection, clip.model.text_projection)
    assert clip.tokenizer(["a photo"]).shape == (1, 77)


@pytest.mark.badinput
def test_local_dir_mistakes_are_clear(tmp_path):
    folder = _local_dir(tmp_path, weights=False)
    with pytest.raises(BackboneError, match="No weights in .*open_clip_model.safetensors.*--pretrained random"):
        load_clip(f"local-dir:{folder}")
    with pytest.raises(BackboneError, match="carries its own weights.*'openai' does not apply"):
        load_clip(f"local-dir:{folder}", "openai")
    with pytest.raises(BackboneError, match="Backbone folder not found: .*nowhere"):
        load_clip(f"local-dir:{tmp_path / 'nowhere'}", "random")
    _write(folder / "open_clip_config.json", _toy_cfg())
    with pytest.raises(BackboneError, match="has no 'model_cfg'.*model_cfg"):
        load_clip(f"local-dir:{folder}", "random")


@pytest.mark.badinput
def test_hf_hub_offline_fails_fast_with_the_cache_and_the_alternatives(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.time()
    with pytest.raises(BackboneError) as e:
        load_clip("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", cache_dir=str(tmp_path / "hub"))
    assert time.time() - start < 10
    msg = str(e.value)
    assert "HF_HUB_OFFLINE" in msg and str(tmp_path / "hub") in msg and "local-dir:" in msg and "--pretrained" in msg


@pytest.mark.badinput
@pytest.mark.parametrize("model, tag", [("RN50-quickgelu", "openai"), ("ViT-B-16", "openai")])
def test_pretrained_tag_offline_fails_fast_with_the_cache_and_the_alternatives(tmp_path, monkeypatch, model, tag):
    """`pretrained: openai` without network used to fail after ~54 s of download retries and ~110 lines of
    tracebacks: now one error, naming the cache folder and the local-checkpoint alternative."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneError) as e:
        load_clip(model, tag, cache_dir=str(tmp_path / "cache"))
    msg = str(e.value)
    assert f"Pretrained weights {tag!r} of {model!r} are not in the cache ({tmp_path / 'cache'})" in msg, msg
    assert "HF_HUB_OFFLINE is set" in msg and "--pretrained /path/to/weights.pt" in msg, msg


def test_pretrained_tag_from_the_cache_is_not_probed(tmp_path, monkeypatch):
    """Weights already in open_clip's Hub cache load offline without a probe (here: the cache entry exists,
    so the error is about its content, not about the network)."""
    import open_clip

    repo, _ = open_clip.get_pretrained_cfg("RN50-quickgelu", "openai")["hf_hub"].rstrip("/"), None
    snapshot = tmp_path / "cache" / f"models--{repo.replace('/', '--')}" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"not weights")
    _write(tmp_path / "cache" / f"models--{repo.replace('/', '--')}" / "refs" / "main", "0" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(Exception) as e:
        load_clip("RN50-quickgelu", "openai", cache_dir=str(tmp_path / "cache"))
    assert "are not in the cache" not in str(e.value)


def test_hf_hub_model_loads_offline_from_the_cache(tmp_path, monkeypatch):
    """The Hub cache's layout (models--org--repo/snapshots/REV + refs/main), filled by hand from a local-dir."""
    folder = _local_dir(tmp_path)
    repo = tmp_path / "hub" / "models--someone--toy-clip"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for f in folder.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    _write(repo / "refs" / "main", "0" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    clip = load_clip("hf-hub:someone/toy-clip", cache_dir=str(tmp_path / "hub"))
    ref = load_clip(f"local-dir:{folder}").model.state_dict()
    assert (clip.name, clip.pretrained, clip.preprocess.mean) == ("hf-hub:someone/toy-clip", "bundled", (0.5,) * 3)
    assert all(torch.equal(v, ref[k]) for k, v in clip.model.state_dict().items())


@pytest.mark.badinput
@pytest.mark.parametrize("cfg, problem, fix", [
    ({k: v for k, v in _toy_cfg().items() if k != "embed_dim"}, "missing 'embed_dim'", "needs embed_dim"),
    ({**_toy_cfg(), "vision_cfg": [2, 2, 2, 2]}, "'vision_cfg' is a list, not an object", "Write vision_cfg as"),
    ({**_toy_cfg(), "embed_dim": "128"}, "'embed_dim' is '128', not a positive integer", "e.g. 128"),
    (_toy_cfg(widht=16), "unknown vision_cfg key 'widht' \\(did you mean 'width'\\?\\)", "open_clip's names"),
    ({**_toy_cfg(), "quick_gelu": True, "embeddim": 3}, "unknown key 'embeddim'", "open_clip's names"),
    ({**_toy_cfg(), "preprocess_cfg": {"std": [0.5, 0, 0.5]}}, "preprocess_cfg.std", "must be > 0"),
    ({**_toy_cfg(), "preprocess_cfg": {"mean": [0.5, 0.5]}}, "preprocess_cfg.mean", "three numbers"),
    ({**_toy_cfg(), "preprocess_cfg": {"resize_mode": "crop"}}, "preprocess_cfg.resize_mode is 'crop'", "shortest"),
    ('{"embed_dim": 128,', "not valid JSON", "Fix the JSON syntax"),
    ([1, 2], "holds a list", "toy-rn.json"),
])
def test_config_that_open_clip_rejects_is_named_before_weights_load(tmp_path, monkeypatch, cfg, problem, fix):
    import open_clip

    path = _write(tmp_path / "bad.json", cfg)
    monkeypatch.setattr(open_clip, "create_model", lambda *a, **k: pytest.fail("weights loaded before the check"))
    for pretrained in ("random", str(tmp_path / "missing.pt")):
        with pytest.raises(BackboneError, match=f"Model config {path}: {problem}.*{fix}"):
            load_clip(str(path), pretrained)


@pytest.mark.badinput
def test_config_and_name_mistakes(tmp_path):
    with pytest.raises(BackboneError, match="Model config .*nope.json: file not found"):
        load_clip(str(tmp_path / "nope.json"), "random")
    with pytest.raises(BackboneError, match="open_clip's tags belong to its built-in model names"):
        load_clip(str(_write(tmp_path / "ok.json", _toy_cfg())), "openai")
    with pytest.raises(BackboneError, match="Unknown backbone 'RN5O'.*similar: RN50.*local-dir:"):
        parse_model("RN5O")
    with pytest.raises(BackboneError, match="Unknown pretrained tag 'opneai' for 'RN50-quickgelu'"):
        load_clip("RN50-quickgelu", "opneai")


def test_cli_run_without_pretrained_gets_the_backbones_default(coop_bin, toy_root, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([coop_bin, "--threads", "1", "run", "--dataset", "toy_shapes", "--method", "zeroshot",
                           "--data-root", str(toy_root), "--cache-dir", str(tmp_path / "cache"), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["pretrained"] == "toyworld"
    from coop.features import load_features

    feats = tmp_path / "cache" / "features" / "toy_shapes" / "toy-rn" / "test.safetensors"
    assert load_features(feats, pretrained="toyworld").meta["pretrained"] == "toyworld"


def test_no_random_init_warning_when_weights_are_loaded(caplog):
    """open_clip warns "Model initialized randomly" for every model built without a tag, also when the toy
    world's weights are written over it at once: that line is dropped (the run records its weights); a
    warning of another kind still gets through."""
    import logging

    with caplog.at_level(logging.WARNING):
        clip = load_clip("toy-rn", "toyworld")
        logging.warning("another warning")
    assert clip.pretrained == "toyworld"
    messages = [r.getMessage() for r in caplog.records]
    assert not any("initialized randomly" in m for m in messages), messages
    assert "another warning" in messages
