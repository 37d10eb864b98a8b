"""Activation memory of one CoOp step: the tensors saved for backward, 77 tokens against the cut sequence."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from coop.bench.common import GIB, BenchConfig, class_names
from coop.models.prompt import CoOpClassifier, PromptLearner


def activation_bytes(model: nn.Module, tokenizer, n_cls: int, ours: bool, n_ctx: int = 16,
                     batch: int = 32) -> dict[str, int]:
    """Bytes of the tensors one CoOp training step saves for backward (autograd saved-tensor hooks; unique
    storages, CLIP's frozen weights excluded): as run in fp32, and as they would be in fp16."""
    torch.manual_seed(0)
    learner = PromptLearner(model, tokenizer, class_names(n_cls), n_ctx=n_ctx)
    clf = CoOpClassifier(model, learner, cut_text=ours, visual=nn.Identity(), share_prefix=ours).train()
    weights = {t.untyped_storage().data_ptr() for t in list(model.parameters()) + list(model.buffers())}
    seen: dict[int, tuple[int, bool]] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in weights and ptr not in seen:
            seen[ptr] = (storage.nbytes(), t.dtype == torch.float32)
        return t

    x = torch.randn(batch, model.text_projection.shape[-1])
    y = torch.randint(0, n_cls, (batch,))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = F.cross_entropy(clf(x), y)
    loss.backward()
    fp32 = sum(b for b, _ in seen.values())
    fp16 = sum(b // 2 if is_float else b for b, is_float in seen.values())
    return {"fp32": fp32, "fp16": fp16}


def activation_memory(model: nn.Module, tokenizer, cfg: BenchConfig) -> dict[str, Any]:
    """Activation memory of one CoOp step at `cfg.memory_target` classes (M = cfg.n_ctx), full 77 tokens vs
    cut. Measured at the two `cfg.memory_classes` counts and extrapolated linearly: every class prompt is its own
    row through the text encoder, so the saved tensors grow exactly linearly with the classes."""
    a, b = cfg.memory_classes
    out: dict[str, Any] = {"classes": cfg.memory_target, "n_ctx": cfg.n_ctx, "measured_at": [a, b],
                           "model": cfg.model}
    for ours in (False, True):
        ma, mb = (activation_bytes(model, tokenizer, n, ours, cfg.n_ctx, cfg.batch_size) for n in (a, b))
        for dtype in ("fp32", "fp16"):
            slope = (mb[dtype] - ma[dtype]) / (b - a)
            total = ma[dtype] + slope * (cfg.memory_target - a)
            name = f"{'ours' if ours else 'full77'}_{dtype}"
            out[f"{name}_bytes"] = int(total)
            out[f"{name}_gib"] = round(total / GIB, 3)
    weights = sum(p.numel() for p in model.parameters())
    out["weights_fp16_gib"] = round(weights * 2 / GIB, 3)
    out["weights_fp32_gib"] = round(weights * 4 / GIB, 3)
    return out
