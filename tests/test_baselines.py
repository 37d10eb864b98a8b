"""The Table 5 baselines: text bias, text linear transform, image-encoder fine-tuning."""
import numpy as np
import pytest
import torch

from coop.config import build_config, parse_sets
from coop.evaluate import cosine_logits
from coop.methods import finetune_image, text_heads
from coop.methods.finetune_image import FinetuneImageConfig
from coop.methods.registry import MethodError
from coop.methods.text_heads import TextBiasConfig, TextTransformConfig
from coop.models.heads import FinetuneImageClassifier, TextBias, TextHeadClassifier, TextTransform


def _one(train):
    """A method's train() for one seed: ctx -> its MethodResult."""
    return lambda ctx, cfg: train([ctx], cfg)[0]


run_text_bias, run_text_transform = _one(text_heads.train_text_bias), _one(text_heads.train_text_transform)
run_finetune_image = _one(finetune_image.train)


@pytest.fixture(scope="module")
def world(toy_root, clip):
    """toy_shapes: its split, a 2-shot manifest, and the test features of the (random) toy CLIP."""
    from coop.data.datasets import get_dataset, image_root, read_split
    from coop.data.fewshot import make_manifest
    from coop.features import extract_features

    spec = get_dataset("toy_shapes")
    split = read_split(toy_root, spec)
    root = image_root(toy_root, spec)
    feats = extract_features(clip, split.test, root).numpy()
    return spec, split, root, make_manifest("toy_shapes", split, 2, 1), feats


def _ctx(world, clip, test_features=None):
    from coop.features import Features
    from coop.methods.base import RunContext

    spec, split, root, manifest, feats = world
    feats = feats if test_features is None else test_features
    labels = np.array([it.label for it in split.test], dtype=np.int64)
    test = Features(feats, labels, [it.path for it in split.test], {})
    return RunContext(spec=spec, classnames=split.classnames, image_root=root, shots=2, seed=1, manifest=manifest,
                      test=test, load_clip=lambda: clip, load_fewshot=lambda: None, log=lambda s: None)


def _zeroshot_logits(ctx):
    from coop.methods.zeroshot import ZeroShotConfig, train

    return train([ctx], ZeroShotConfig())[0].logits


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------------- text heads
def test_heads_start_as_zeroshot(clip):
    text = torch.nn.functional.normalize(torch.randn(5, 128), dim=-1)
    for head in (TextBias(5, 128), TextBias(5, 128, shared=True), TextTransform(128)):
        assert torch.equal(head(text), text)  # zero bias / identity layer: exactly the zero-shot features
        clf = TextHeadClassifier(clip.model.visual, text, head, clip.model.logit_scale)
        torch.testing.assert_close(clf.text_features(), text, rtol=0, atol=1e-6)
    assert TextBias(5, 128).bias.shape == (5, 128) and TextBias(5, 128, shared=True).bias.shape == (128,)


@pytest.mark.parametrize("run, cfg", [(run_text_bias, TextBiasConfig(epochs=0)),
                                      (run_text_transform, TextTransformConfig(epochs=0))])
def test_untrained_text_heads_give_zeroshot_logits(world, clip, run, cfg):
    ctx = _ctx(world, clip)
    res = run(ctx, cfg)
    np.testing.assert_allclose(res.logits, _zeroshot_logits(ctx), rtol=1e-5, atol=1e-5)
    assert res.info["loss_history"] == [] and res.info["final_loss"] is None


@pytest.mark.parametrize("run, cfg, name", [
    (run_text_bias, TextBiasConfig(epochs=2, lr=0.05), "text_bias.safetensors"),
    (run_text_bias, TextBiasConfig(epochs=2, lr=0.05, shared=True), "text_bias.safetensors"),
    (run_text_transform, TextTransformConfig(epochs=2, lr=0.05), "text_transform.safetensors"),
])
def test_text_head_runs_and_only_learns_its_tensors(world, clip, run, cfg, name):
    ctx = _ctx(world, clip)
    before = _state(clip.model)
    res = run(ctx, cfg)
    assert _same(before, clip.model.state_dict()) and not clip.model.visual.training
    assert res.logits.shape == (30, 10) and np.isfinite(res.logits).all()
    assert list(res.artifacts) == [name]
    assert res.info["epochs"] == 2 and len(res.info["loss_history"]) == 2
    tensors = res.artifacts[name]
    if "weight" in tensors:
        assert tensors["weight"].shape == (128, 128) and not np.array_equal(tensors["weight"], np.eye(128))
    else:
        assert tensors["bias"].shape == ((128,) if cfg.shared else (10, 128))
    assert np.abs(tensors["bias"]).max() > 0
    assert not np.allclose(res.logits, _zeroshot_logits(ctx))


class _LabelVisual(torch.nn.Module):
    """An image tower stand-in: pixel (0, 0, 0) holds the class; it maps to a fixed random embedding + noise."""

    def __init__(self, n_cls, dim):
        super().__init__()
        self.register_buffer("protos", torch.randn(n_cls, dim, generator=torch.Generator().manual_seed(0)))

    def forward(self, x):
        return self.protos[x[:, 0, 0, 0].round().long()] + 0.1 * torch.randn(len(x), self.protos.shape[1])


def _label_data(n_cls=3, n=48):
    data = [(torch.full((3, 4, 4), float(i % n_cls)), i % n_cls) for i in range(n)]
    return data, torch.stack([d[0] for d in data]), torch.tensor([d[1] for d in data])


def _accuracy(model, x, y):
    with torch.no_grad():
        return float((model.eval()(x).argmax(1) == y).float().mean())


@pytest.mark.parametrize("make_head", [lambda: TextBias(3, 128), lambda: TextTransform(128)])
def test_text_heads_learn(clip, make_head):
    from coop.train import TrainConfig, fit

    torch.manual_seed(1)  # not 0: _LabelVisual's prototypes are drawn from seed 0
    text = torch.nn.functional.normalize(torch.randn(3, 128), dim=-1)
    head = make_head()
    clf = TextHeadClassifier(_LabelVisual(3, 128), text, head, clip.model.logit_scale)
    data, x, y = _label_data()
    before = _accuracy(clf, x, y)
    hist = fit(clf.train(), list(head.parameters()), data, TrainConfig(epochs=30, lr=0.5, batch_size=16), log=None)
    assert hist[-1] < hist[0] * 0.5
    assert _accuracy(clf, x, y) == 1.0 and before < 1.0


def test_epochs_follow_the_official_schedule_times_scale(world, clip):
    res = run_text_bias(_ctx(world, clip), TextBiasConfig(epoch_scale=0.01))  # 2 shots: 100 epochs x 0.01
    assert res.info["epochs"] == 1 and len(res.info["loss_history"]) == 1


# ------------------------------------------------------------------------------------------ finetune_image
def test_finetune_evaluation_reencodes_test_images(world, clip):
    """The cached test features are garbage here: an untrained run must still give the zero-shot logits of
    the real images, so its evaluation encodes the test images itself."""
    garbage = np.random.default_rng(0).standard_normal(world[4].shape).astype(np.float32)
    res = run_finetune_image(_ctx(world, clip, garbage), FinetuneImageConfig(epochs=0))
    np.testing.assert_allclose(res.logits, _zeroshot_logits(_ctx(world, clip)), rtol=1e-4, atol=1e-4)
    assert res.artifacts == {}  # weights are not saved by default


def test_finetune_trains_a_copy_of_the_visual_tower(world, clip):
    import copy

    from coop.features import extract_features
    from coop.methods.zeroshot import class_text_features

    ctx = _ctx(world, clip)
    before = _state(clip.model)
    res = run_finetune_image(ctx, FinetuneImageConfig(epochs=2, lr=0.05, save_weights=True))
    assert _same(before, clip.model.state_dict())  # CLIP itself, its visual tower included, is untouched
    assert res.logits.shape == (30, 10) and np.isfinite(res.logits).all()
    assert len(res.info["loss_history"]) == 2 and res.info["trained_parameters"] > 0
    weights = res.artifacts["visual.safetensors"]
    float_keys = [k for k, v in before.items() if k.startswith("visual.") and v.is_floating_point()]
    changed = [k for k in float_keys if not np.array_equal(weights[k[len("visual."):]], before[k].numpy())]
    assert changed and "visual.conv1.weight" in changed
    # BatchNorm statistics are kept by default (only affine weights train)
    assert all(np.array_equal(weights[k[7:]], before[k].numpy()) for k in before if "running_" in k)
    # the logits come from test images re-encoded by the fine-tuned tower, not from the cached features
    tuned = copy.deepcopy(clip)
    tuned.model.visual.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    text = class_text_features(ctx, [ctx.spec.template])
    scale = float(clip.model.logit_scale.exp())
    expected = cosine_logits(extract_features(tuned, world[1].test, world[2]).numpy(), text, scale)
    np.testing.assert_allclose(res.logits, expected, rtol=1e-4, atol=1e-4)
    assert not np.allclose(res.logits, cosine_logits(ctx.test.features, text, scale), atol=1e-3)


@pytest.mark.parametrize("bn_train", [False, True])
def test_finetune_batchnorm_mode(clip, bn_train):
    import copy

    visual = copy.deepcopy(clip.model.visual).requires_grad_(True)
    clf = FinetuneImageClassifier(visual, torch.eye(10, 128), clip.model.logit_scale, bn_train).train()
    bns = [m for m in visual.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.training == bn_train for m in bns) and visual.training
    stats = bns[0].running_mean.clone()
    clf(torch.randn(4, 3, 32, 32))
    assert torch.equal(stats, bns[0].running_mean) != bn_train
    assert clf.eval() and not any(m.training for m in visual.modules())


def test_finetune_learns(clip):
    from coop.train import TrainConfig, fit

    torch.manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(3, 128), dim=-1)

    class Tower(torch.nn.Module):  # a trainable stand-in: an embedding of the class held in pixel (0, 0, 0)
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(3, 128)

        def forward(self, x):
            return self.embed(x[:, 0, 0, 0].round().long())

    tower = Tower()
    clf = FinetuneImageClassifier(tower, text, clip.model.logit_scale)
    data, x, y = _label_data()
    before = _accuracy(clf, x, y)
    hist = fit(clf.train(), list(tower.parameters()), data, TrainConfig(epochs=30, lr=0.5, batch_size=16),
               log=None)
    assert hist[-1] < hist[0] * 0.5
    assert _accuracy(clf, x, y) == 1.0 and before < 1.0


# --------------------------------------------------------------------------------------------------- configs
@pytest.mark.badinput
@pytest.mark.parametrize("cls", [TextBiasConfig, TextTransformConfig, FinetuneImageConfig])
@pytest.mark.parametrize("sets, message", [
    (["precision=fp8"], "precision must be one of"),
    (["precision=fp16"], "precision must be one of"),
    (["epochs=-1"], "epochs must be >= 0"),
    (["lr=-0.1"], "lr must be > 0"),
    (["lr=0"], "lr must be > 0"),
    (["batch_size=0"], "batch_size must be >= 1"),
    (["epoch_scale=0"], "epoch_scale must be > 0"),
])
def test_bad_parameters_are_rejected(cls, sets, message):
    with pytest.raises(MethodError, match=message):
        build_config(cls, parse_sets(sets))


def test_parameters_are_typed():
    assert build_config(TextBiasConfig, parse_sets(["shared=true", "precision=amp"])).shared is True
    cfg = build_config(FinetuneImageConfig, parse_sets(["bn_train=true", "save_weights=yes", "epochs=none"]))
    assert (cfg.bn_train, cfg.save_weights, cfg.epochs, cfg.lr, cfg.batch_size) == (True, True, None, 0.002, 32)
