"""Contrastive pretraining of the toy world's tiny CLIPs on generated image-caption pairs.

open_clip's CLIP model and contrastive loss, AdamW with a linear warm-up then cosine decay, deterministic from
a seed: the same config, torch build and thread count give the same weights bit for bit on the CPU. Every batch
is drawn fresh from the toy world's renderers (their own random stream, not the datasets' images) with captions
from many templates, some with a wrong attribute. The text encoder runs only up to the longest end-of-text token
of the batch (exact: the mask is causal). The result is a compact .safetensors file (see
`coop.models.checkpoint`) that `load_clip` reads like any local checkpoint.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from coop.data.toyworld import TOY_DATASETS, make_caption, sample_image
from coop.models.checkpoint import compact_metadata, save_compact, seeded_model, state_fingerprint
from coop.models.transforms import Preprocess, as_preprocess
from coop.progress import Progress

# The pretraining pool: which toy renderings the captions describe, and how often.
DEFAULT_MIX = {"toy_shapes": 0.45, "toy_textures": 0.2, "toy_flowers": 0.2, "toy_shapes_sketch": 0.1,
               "toy_shapes_cartoon": 0.05}
STREAM = 0x5EED  # keeps the pretraining images apart from every dataset's (see toyworld.item_seed)
FINGERPRINT_STEP = 20  # the weights' hash after this many steps is stored, so a short rerun can check them
# Another CPU kind (other vector units, other BLAS kernels) rounds float32 otherwise: the hash differs, but the
# first steps' losses stay within this of the recorded ones (measured: forcing torch's AVX2 or scalar kernels on
# an AVX-512 machine moves them by at most 4.3e-4 for toy-rn, 2.1e-7 for toy-vit; another seed by >1e-2).
LOSS_RTOL = 2e-3


@dataclass
class PretrainConfig:
    model: str = "toy-rn"
    steps: int = 1600
    batch_size: int = 128
    lr_image: float = 5e-3
    lr_text: float = 2e-3
    weight_decay: float = 0.1
    warmup_steps: int = 50
    seed: int = 0
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))


def lr_factor(step: int, cfg: PretrainConfig) -> float:
    """Linear warm-up to 1, then cosine decay to 0 at the last step."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * t))


def draw_batch(step: int, cfg: PretrainConfig, pp: Preprocess | int) -> tuple[torch.Tensor, list[str]]:
    """Batch `step` of image-caption pairs: images (B, 3, H, W) normalised with the model's preprocess config
    (an int: that size, open_clip's default mean/std), and their captions."""
    pp = as_preprocess(pp)
    image_size = pp.hw[0]
    names = sorted(cfg.mix)
    weights = np.array([cfg.mix[n] for n in names], dtype=np.float64)
    rng = np.random.default_rng([cfg.seed, STREAM, step])
    images, captions = [], []
    for name in rng.choice(names, size=cfg.batch_size, p=weights / weights.sum()):
        label = int(rng.integers(len(TOY_DATASETS[name].classnames)))
        img, words = sample_image(name, label, rng, image_size)
        images.append(img)
        captions.append(make_caption(name, words, rng)[0])
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255)
    mean, std = torch.tensor(pp.mean).view(1, 3, 1, 1), torch.tensor(pp.std).view(1, 3, 1, 1)
    return (x - mean) / std, captions


def _param_groups(model: torch.nn.Module, cfg: PretrainConfig) -> list[dict]:
    """Image tower at lr_image, the rest at lr_text. No weight decay on gains, biases, the temperature and the
    token table: rows of tokens that no caption uses then stay exactly at their seeded initial values."""
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        visual = name.startswith("visual.")
        decay = p.ndim >= 2 and "token_embedding" not in name and "positional_embedding" not in name
        groups.setdefault((visual, decay), []).append(p)
    return [{"params": ps, "lr": cfg.lr_image if visual else cfg.lr_text, "base_lr": cfg.lr_image if visual
             else cfg.lr_text, "weight_decay": cfg.weight_decay if decay else 0.0}
            for (visual, decay), ps in sorted(groups.items())]


def pretrain(cfg: PretrainConfig, log: Callable[[str], None] = print,
             until: int | None = None) -> tuple[torch.nn.Module, list[float], str]:
    """Train `cfg.model` from its seeded initialisation contrastively. Return the model (eval mode), the loss
    per step, and the fingerprint of the weights after FINGERPRINT_STEP steps. `until` stops early (the
    schedule is still that of `cfg.steps`), e.g. to check a fingerprint."""
    from open_clip.loss import ClipLoss

    from coop.models.clip import get_tokenizer
    from coop.models.text import TextEncoder

    unknown = sorted(set(cfg.mix) - set(TOY_DATASETS))
    if unknown:
        raise ValueError(f"mix names unknown toy datasets {unknown}; known: {sorted(TOY_DATASETS)}")
    model = seeded_model(cfg.model, cfg.seed)
    tokenizer = get_tokenizer(cfg.model)
    text_encoder = TextEncoder(model, cut=True)
    pp = Preprocess.from_open_clip(model.visual.preprocess_cfg)
    optimizer = torch.optim.AdamW(_param_groups(model, cfg), betas=(0.9, 0.98), eps=1e-6)
    loss_fn = ClipLoss()
    torch.manual_seed(cfg.seed)  # the toy CLIPs have no random layers (no dropout); seeded all the same
    model.train()
    losses, fingerprint = [], ""
    stop = cfg.steps if until is None else min(until, cfg.steps)
    progress = Progress(f"pretraining {cfg.model}", total=stop, unit="steps", log=log)
    for step in range(stop):
        for g in optimizer.param_groups:
            g["lr"] = g["base_lr"] * lr_factor(step, cfg)
        images, captions = draw_batch(step, cfg, pp)
        tokens = tokenizer(captions)
        image_features = F.normalize(model.encode_image(images), dim=-1)
        text_features = F.normalize(text_encoder(model.token_embedding(tokens), tokens.argmax(dim=-1)), dim=-1)
        loss = loss_fn(image_features, text_features, model.logit_scale.exp())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():  # CLIP's clamp of the learned temperature (logit scale at most 100)
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(float(loss.detach()))
        if step + 1 == FINGERPRINT_STEP:
            fingerprint = state_fingerprint(model.state_dict())
        if step + 1 < stop:
            progress.update(1, extra=f"loss {losses[-1]:.4f}")
    if stop:
        progress.count = stop
        progress.done(extra=f"step {stop}/{cfg.steps}, final loss {losses[-1]:.4f}")
    return model.eval(), losses, fingerprint


def save_pretrained(model: torch.nn.Module, path: str | Path, cfg: PretrainConfig, losses: list[float],
                    fingerprint: str) -> None:
    """The weights as a compact .safetensors file (atomic), with the config, the thread count, the
    fingerprint, the first steps' losses and the final loss in its metadata (no time stamps: a rerun writes the same bytes)."""
    meta = {"generator": "coop.pretrain", "model": cfg.model, "init_seed": str(cfg.seed),
            "config": json.dumps(asdict(cfg), sort_keys=True), "threads": str(torch.get_num_threads()),
            "torch": torch.__version__, f"fingerprint_step{FINGERPRINT_STEP}": fingerprint,
            f"losses_to_step{FINGERPRINT_STEP}": json.dumps(losses[:FINGERPRINT_STEP]),
            "final_loss": f"{losses[-1]:.6f}" if losses else ""}
    save_compact(model.state_dict(), path, meta)


def config_of(path: str | Path) -> PretrainConfig:
    """The pretraining config recorded in a compact checkpoint written by `save_pretrained`."""
    meta = compact_metadata(path)
    if meta is None or meta.get("generator") != "coop.pretrain":
        raise ValueError(f"{path} is not a checkpoint written by coop pretrain")
    return PretrainConfig(**json.loads(meta["config"]))


def check_fingerprint(path: str | Path, log: Callable[[str], None] = print) -> tuple[str, str]:
    """Rerun the first FINGERPRINT_STEP steps of the pretraining that wrote `path` (same config and thread
    count): ("bit for bit", detail) when the weights' fingerprint equals the recorded one; ("within rounding",
    detail) when it does not but every step's loss is within LOSS_RTOL of the recorded one (another CPU kind);
    ("DIFFER", detail) otherwise."""
    meta = compact_metadata(path) or {}
    cfg = config_of(path)
    threads = torch.get_num_threads()
    torch.set_num_threads(int(meta.get("threads", threads)))
    try:
        _, losses, fingerprint = pretrain(cfg, log=log, until=FINGERPRINT_STEP)
    finally:
        torch.set_num_threads(threads)
    recorded = meta.get(f"fingerprint_step{FINGERPRINT_STEP}", "")
    if fingerprint == recorded:
        return "bit for bit", f"fingerprint {fingerprint[:16]}"
    detail = f"fingerprint {fingerprint[:16]}, recorded {recorded[:16]}"
    curve = json.loads(meta.get(f"losses_to_step{FINGERPRINT_STEP}", "[]"))
    if len(curve) != len(losses):
        return "DIFFER", detail + "; no recorded losses to compare within rounding"
    worst = max(abs(a - b) / abs(b) for a, b in zip(losses, curve))
    detail += f"; losses within {worst:.1e} of the recorded ones (tolerance {LOSS_RTOL:g})"
    return ("within rounding" if worst <= LOSS_RTOL else "DIFFER"), detail
