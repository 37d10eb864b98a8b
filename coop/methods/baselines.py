"""The paper's Table 5 baselines (no official code exists; PROTOCOL.md "Baselines"):

* `text_bias`: a learnable bias added to the zero-shot text features, initialised to zero.
* `text_transform`: a learnable linear layer (D x D weight + bias) on the zero-shot text features, initialised
  to the identity.
* `finetune_image`: the whole image encoder fine-tuned under the fixed zero-shot text classifier.

The zero-shot text features are those of the dataset's hand-crafted prompt (`ctx.spec.template`), L2-normalised
(`zeroshot.class_text_features`, exactly what zero-shot CLIP uses). All three train with CoOp's optimiser,
schedule, epochs and augmentation (`coop.train.fit`), and everything of CLIP not named above stays frozen. The
two text heads, whose image encoder is frozen, read their augmented training views from the subset's view
cache (coop.views, the same views as CoOp); `finetune_image` augments on the fly.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from coop.data.datasets import Item
from coop.data.images import ImageDataset
from coop.evaluate import cosine_logits
from coop.features import extract_features
from coop.methods.base import MethodResult, RunContext
from coop.methods.registry import MethodError
from coop.methods.zeroshot import class_text_features
from coop.models.transforms import train_transform
from coop.train import SeedTraining, TrainConfig, fit, fit_seeds, resolve_epochs
from coop.views import ViewData

# Pure fp16 (CoOp's official mode) is left out: these baselines have no official code to be faithful to, and
# fine-tuning a whole encoder in pure fp16 without loss scaling is not a sound default.
BASELINE_PRECISIONS = ("fp32", "amp")


# --------------------------------------------------------------------------------------------- configs
@dataclass
class _TrainedConfig:
    """Fields shared by the three baselines (CoOp's optimiser and schedule: coop.train)."""

    precision: str = "fp32"        # fp32 | amp
    epochs: int | None = None      # None = by shots (PROTOCOL.md) x epoch_scale; 0 = no training (the initialisation)
    epoch_scale: float = 1.0       # shorten the official schedule (e.g. for the toy world), as CoOpConfig
    batch_size: int = 32
    lr: float = 0.002
    crop_min: float = 0.08         # smallest crop area of the train augmentation (official 0.08), as CoOpConfig
    num_workers: int = 0

    def validate(self) -> None:
        if self.precision not in BASELINE_PRECISIONS:
            raise MethodError(f"precision must be one of {BASELINE_PRECISIONS}, got {self.precision!r}")
        if self.epochs is not None and self.epochs < 0:
            raise MethodError(f"epochs must be >= 0 (or none for the official schedule), got {self.epochs}")
        if self.epoch_scale <= 0:
            raise MethodError(f"epoch_scale must be > 0, got {self.epoch_scale}")
        if self.batch_size < 1:
            raise MethodError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr < 0:
            raise MethodError(f"lr must be >= 0, got {self.lr}")
        if not 0 < self.crop_min <= 1:
            raise MethodError(f"crop_min must be in (0, 1], got {self.crop_min}")


@dataclass
class TextBiasConfig(_TrainedConfig):
    """A bias added to the normalised zero-shot text features, initialised to zero.

    Shape: per class, (n_cls, D), by default: every class's text feature gets its own offset, which is the
    reading of "a bias added to the text features" that can move each class independently. `shared=True` learns
    one (D,) vector added to every class instead. Weight decay (5e-4, as CoOp) pulls the bias towards zero,
    i.e. towards zero-shot CLIP.
    """

    shared: bool = False


@dataclass
class TextTransformConfig(_TrainedConfig):
    """A linear layer `text @ weight.T + bias` on the normalised zero-shot text features, initialised to the
    identity (bias 0). Same optimiser as CoOp: its weight decay pulls the weight towards 0, not the identity;
    since the output is re-normalised, a uniform shrink changes nothing, and at lr 0.002 x wd 5e-4 it is tiny."""


@dataclass
class FinetuneImageConfig(_TrainedConfig):
    """Fine-tune the image encoder (`clip.model.visual`, all its parameters) under the frozen, normalised
    zero-shot text classifier; the text encoder and logit scale stay frozen.

    BatchNorm (ResNet towers): by default its layers stay in eval mode, i.e. the pretrained running statistics
    are used and kept, while their affine weights are trained. With batches of 32 few-shot images, updating
    the statistics replaces CLIP's large-scale statistics by noisy few-shot ones (one plausible cause of the
    collapse the paper reports, 18% on ImageNet; the paper does not say). `bn_train=True` updates them, as a
    plain `model.train()` would. The rest of the tower is in train mode either way; ViT towers have no
    BatchNorm, so the flag changes nothing there.

    The tower is trained on a copy: the loaded CLIP is never modified. Its weights are large, so they are saved
    (`visual.safetensors`, the tower's state dict) only with `save_weights=True`.
    """

    bn_train: bool = False
    save_weights: bool = False


# ---------------------------------------------------------------------------------------- text heads
class TextBias(nn.Module):
    """text + bias; bias (n_cls, D) per class, or (D,) shared by all classes; zero at init."""

    artifact = "text_bias.safetensors"

    def __init__(self, n_cls: int, dim: int, shared: bool = False):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(dim if shared else (n_cls, dim)))

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return text + self.bias

    def tensors(self) -> dict[str, np.ndarray]:
        return {"bias": _numpy(self.bias)}


class TextTransform(nn.Module):
    """text @ weight.T + bias, a D x D linear layer initialised to the identity (bias 0)."""

    artifact = "text_transform.safetensors"

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        with torch.no_grad():
            self.linear.weight.copy_(torch.eye(dim))
            self.linear.bias.zero_()

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return self.linear(text)

    def tensors(self) -> dict[str, np.ndarray]:
        return {"weight": _numpy(self.linear.weight), "bias": _numpy(self.linear.bias)}


class TextHeadClassifier(nn.Module):
    """Frozen image encoder + (zero-shot text features -> learned head) -> CLIP's scaled cosine logits."""

    def __init__(self, visual: nn.Module, text: torch.Tensor, head: nn.Module, logit_scale: torch.Tensor):
        super().__init__()
        self.visual = visual
        self.head = head
        self.register_buffer("text", text, persistent=False)  # (n_cls, D) normalised zero-shot features
        self.logit_scale = logit_scale

    def text_features(self) -> torch.Tensor:
        # Normalised AFTER the bias / linear layer: the classifier stays a cosine classifier.
        return F.normalize(self.head(self.text), dim=-1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            img = F.normalize(self.visual(images), dim=-1)
        return self.logit_scale.exp() * img @ self.text_features().t().to(img.dtype)

    def train(self, mode: bool = True):
        super().train(mode)
        self.visual.eval()  # the frozen encoder stays in eval mode (BatchNorm statistics too)
        return self


# ------------------------------------------------------------------------------------ image fine-tuning
class FinetuneImageClassifier(nn.Module):
    """Trainable image encoder + fixed normalised zero-shot text classifier -> scaled cosine logits."""

    def __init__(self, visual: nn.Module, text: torch.Tensor, logit_scale: torch.Tensor, bn_train: bool = False):
        super().__init__()
        self.visual = visual
        self.register_buffer("text", text, persistent=False)
        self.logit_scale = logit_scale
        self.bn_train = bn_train

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        img = F.normalize(self.visual(images), dim=-1)
        return self.logit_scale.exp() * img @ self.text.t().to(img.dtype)

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.bn_train:  # keep the pretrained running statistics (FinetuneImageConfig)
            for m in self.visual.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self


class _ImageEncoder(nn.Module):
    """Just enough of a CLIP model for `extract_features`: `encode_image` with a given image tower."""

    def __init__(self, visual: nn.Module, embed_dim: int):
        super().__init__()
        self.visual = visual
        self.register_buffer("text_projection", torch.empty(0, embed_dim), persistent=False)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.visual(images)


# ------------------------------------------------------------------------------------------- helpers
def _numpy(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().float().cpu().numpy())


def _state_arrays(module: nn.Module) -> dict[str, np.ndarray]:
    """A module's state dict as contiguous numpy arrays (floats as float32), for safetensors."""
    return {k: _numpy(v) if v.is_floating_point() else np.ascontiguousarray(v.cpu().numpy())
            for k, v in module.state_dict().items()}


def zeroshot_text(ctx: RunContext) -> torch.Tensor:
    """Normalised text features of the dataset's hand-crafted prompt, (n_cls, D), on CLIP's device."""
    return torch.from_numpy(class_text_features(ctx, [ctx.spec.template])).to(ctx.device)


def _train_config(ctx: RunContext, cfg: _TrainedConfig) -> TrainConfig:
    epochs = 0 if cfg.epochs == 0 else resolve_epochs(cfg.epochs, cfg.epoch_scale, ctx.shots, ctx.spec.name)
    return TrainConfig(epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr, precision=cfg.precision,
                       num_workers=cfg.num_workers)


def _info(epochs: int, history: list[float]) -> dict:
    return {"epochs": epochs, "final_loss": history[-1] if history else None,
            "loss_history": [round(h, 5) for h in history]}


def _train(ctx: RunContext, cfg: _TrainedConfig, model: nn.Module, learned: nn.Module, views: bool = False) -> dict:
    """CoOp's training (fit) of `learned`, a part of `model`, on the few-shot train images with train
    augmentation (with `views`: the subset's cached view features, `model` then takes features); returns the
    info fields."""
    train_cfg = _train_config(ctx, cfg)
    epochs = train_cfg.epochs
    items = ctx.items("train")
    if views:
        data = ViewData(ctx.train_views(epochs, cfg.crop_min), [it.label for it in items])
    else:
        data = ImageDataset(ctx.image_root, items, train_transform(ctx.clip.preprocess, cfg.crop_min), preload=len(items) <= 5000)
    model.train()
    history = fit(model, list(learned.parameters()), data, train_cfg, ctx.device,
                  torch.Generator().manual_seed(ctx.seed), log=ctx.log, checkpoint=ctx.checkpointing(learned))
    model.eval()
    return _info(epochs, history)


def _run_text_head(ctx: RunContext, cfg: _TrainedConfig, make_head: Callable[[int, int], nn.Module]) -> MethodResult:
    """Shared run of text_bias / text_transform: train the head, evaluate on the cached test features."""
    torch.manual_seed(ctx.seed)
    model = ctx.clip.model
    text = zeroshot_text(ctx)
    head = make_head(*text.shape).to(ctx.device)
    classifier = TextHeadClassifier(nn.Identity(), text, head, model.logit_scale)  # takes cached view features
    info = _train(ctx, cfg, classifier, head, views=True)
    with torch.no_grad():
        learned = classifier.text_features().float().cpu().numpy()
    logits = cosine_logits(ctx.test.features, learned, float(model.logit_scale.exp()))
    return MethodResult(logits, info=info, artifacts={head.artifact: head.tensors()})


def _run_text_heads_fused(ctxs: list[RunContext], cfg: _TrainedConfig,
                          make_head: Callable[[int, int], nn.Module]) -> list[MethodResult]:
    """Several seeds of text_bias / text_transform in one loop (coop.train.fit_seeds): the zero-shot text
    features are encoded once; each seed's head, subset, views, batch order and checkpoint are its own, and
    each seed ends where `_run_text_head` of that seed alone ends."""
    model = ctxs[0].clip.model
    text = zeroshot_text(ctxs[0])
    heads, classifiers = [], []
    for c in ctxs:
        torch.manual_seed(c.seed)
        heads.append(make_head(*text.shape).to(c.device))
        classifiers.append(TextHeadClassifier(nn.Identity(), text, heads[-1], model.logit_scale).train())
    train_cfg = _train_config(ctxs[0], cfg)
    seeds = [SeedTraining(list(h.parameters()), ViewData(c.train_views(train_cfg.epochs, cfg.crop_min),
                                                         [it.label for it in c.items("train")]),
                          torch.Generator().manual_seed(c.seed), c.checkpointing(h), c.log)
             for c, h in zip(ctxs, heads)]

    def losses(active: list[int], xs: list[torch.Tensor], ys: list[torch.Tensor]) -> list[torch.Tensor]:
        return [F.cross_entropy(classifiers[k](x).float(), y) for k, x, y in zip(active, xs, ys)]

    histories = fit_seeds(losses, seeds, train_cfg, ctxs[0].device)
    results = []
    scale = float(model.logit_scale.exp())
    for c, clf, head, history in zip(ctxs, classifiers, heads, histories):
        clf.eval()
        with torch.no_grad():
            learned = clf.text_features().float().cpu().numpy()
        results.append(MethodResult(cosine_logits(c.test.features, learned, scale),
                                    info=_info(train_cfg.epochs, history), artifacts={head.artifact: head.tensors()}))
    return results


# ------------------------------------------------------------------------------------------- methods
def _bias_shape(result: MethodResult) -> MethodResult:
    result.info["bias_shape"] = list(result.artifacts[TextBias.artifact]["bias"].shape)
    return result


def run_text_bias(ctx: RunContext, cfg: TextBiasConfig) -> MethodResult:
    """Learn a bias on the zero-shot text features (per class, or one shared vector)."""
    return _bias_shape(_run_text_head(ctx, cfg, lambda n_cls, dim: TextBias(n_cls, dim, cfg.shared)))


def run_text_bias_fused(ctxs: list[RunContext], cfg: TextBiasConfig) -> list[MethodResult]:
    """run_text_bias of several seeds, trained together."""
    return [_bias_shape(r) for r in _run_text_heads_fused(ctxs, cfg, lambda n, d: TextBias(n, d, cfg.shared))]


def run_text_transform(ctx: RunContext, cfg: TextTransformConfig) -> MethodResult:
    """Learn a linear layer (identity init) on the zero-shot text features."""
    return _run_text_head(ctx, cfg, lambda n_cls, dim: TextTransform(dim))


def run_text_transform_fused(ctxs: list[RunContext], cfg: TextTransformConfig) -> list[MethodResult]:
    """run_text_transform of several seeds, trained together."""
    return _run_text_heads_fused(ctxs, cfg, lambda n_cls, dim: TextTransform(dim))


def encode_test(ctx: RunContext, visual: nn.Module) -> np.ndarray:
    """Test-set image features re-encoded with `visual` (test transform, eval mode): (n_test, D)."""
    items = [Item(p, int(y), ctx.classnames[int(y)]) for p, y in zip(ctx.test.paths, ctx.test.labels)]
    encoder = _ImageEncoder(visual, ctx.clip.model.text_projection.shape[-1])
    clip = dataclasses.replace(ctx.clip, model=encoder)
    return extract_features(clip, items, ctx.image_root, device=ctx.device, num_workers=0).numpy()


def run_finetune_image(ctx: RunContext, cfg: FinetuneImageConfig) -> MethodResult:
    """Fine-tune a copy of the image encoder under the frozen zero-shot classifier; evaluate by re-encoding
    the test images with it (the cached test features belong to the original encoder)."""
    torch.manual_seed(ctx.seed)
    model = ctx.clip.model
    text = zeroshot_text(ctx)
    visual = copy.deepcopy(model.visual).requires_grad_(True)  # CLIP itself is never modified
    classifier = FinetuneImageClassifier(visual, text, model.logit_scale, cfg.bn_train)
    info = _train(ctx, cfg, classifier, visual)
    logits = cosine_logits(encode_test(ctx, visual), text.cpu().numpy(), float(model.logit_scale.exp()))
    info["trained_parameters"] = sum(p.numel() for p in visual.parameters())
    artifacts = {"visual.safetensors": _state_arrays(visual)} if cfg.save_weights else {}
    return MethodResult(logits, info=info, artifacts=artifacts)
