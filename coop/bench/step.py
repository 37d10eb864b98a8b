"""One CoOp training step and one evaluation, ours against the official formulation (RN50-size text encoder)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from coop.bench.common import class_names
from coop.models.prompt import CoOpClassifier, PromptLearner


def coop_step(model: nn.Module, tokenizer, n_cls: int, ours: bool, n_ctx: int = 16,
              batch: int = 32) -> Callable[[], None]:
    """One CoOp training step on `batch` image features: prompts -> text encoder (ours: cut at the last EOT, the
    shared prefix once; official: all 77 tokens of every prompt) -> logits -> cross-entropy -> backward -> SGD
    step. The official step adds the image encoder (`image_step`)."""
    torch.manual_seed(0)
    learner = PromptLearner(model, tokenizer, class_names(n_cls), n_ctx=n_ctx)
    clf = CoOpClassifier(model, learner, cut_text=ours, visual=nn.Identity(), share_prefix=ours).train()
    opt = torch.optim.SGD([learner.ctx], lr=0.002, momentum=0.9, weight_decay=5e-4)
    dim = model.text_projection.shape[-1]
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(batch, dim, generator=g), torch.randint(0, n_cls, (batch,), generator=g)

    def step() -> None:
        loss = F.cross_entropy(clf(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def image_step(model: nn.Module, n_images: int, size: int) -> Callable[[], None]:
    """The image encoder (frozen, no grad) on `n_images` images, as the official step runs it."""
    x = torch.randn(n_images, 3, size, size, generator=torch.Generator().manual_seed(0))

    def run() -> None:
        with torch.no_grad():
            model.encode_image(x)

    return run


def text_eval(model: nn.Module, tokenizer, n_cls: int, ours: bool, n_ctx: int = 16) -> Callable[[], torch.Tensor]:
    """The class text features of a learned prompt, no grad (what evaluation needs)."""
    torch.manual_seed(0)
    learner = PromptLearner(model, tokenizer, class_names(n_cls), n_ctx=n_ctx)
    clf = CoOpClassifier(model, learner, cut_text=ours, visual=nn.Identity(), share_prefix=ours).eval()

    def run() -> torch.Tensor:
        with torch.no_grad():
            return clf.text_features()

    return run


def cached_eval(model: nn.Module, tokenizer, n_cls: int, n_test: int, folder: Path,
                n_ctx: int = 16) -> Callable[[], float]:
    """Our evaluation of one run: read the cached test features (safetensors), encode the classes once (cut),
    cosine logits, accuracy."""
    from coop.data.datasets import Item
    from coop.evaluate import cosine_logits
    from coop.features import load_features, save_features

    dim = model.text_projection.shape[-1]
    rng = np.random.default_rng(0)
    items = [Item(f"img{i}.png", int(i % n_cls), "x") for i in range(n_test)]
    path = folder / "test.safetensors"
    save_features(path, rng.standard_normal((n_test, dim)).astype(np.float32), items, {"part": "test"})
    text = text_eval(model, tokenizer, n_cls, ours=True, n_ctx=n_ctx)
    scale = float(model.logit_scale.exp())

    def run() -> float:
        test = load_features(path, part="test")
        logits = cosine_logits(test.features, text().numpy(), scale)
        return float((logits.argmax(1) == test.labels).mean())

    return run
