"""CoOp: learn the prompt's context vectors with CLIP frozen (Zhou et al., IJCV 2022).

Everything about the method is declared here (`METHOD`); its modules are in coop.models.prompt. Torch is
imported inside the functions, so the workflow reads the declaration without it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coop.methods.base import MethodResult, RunContext
from coop.methods.checks import check_training
from coop.methods.registry import Cost, Method, MethodError, register
from coop.defaults import CROP_MIN, PRECISIONS

POSITIONS = ("end", "middle", "front")


@dataclass
class CoOpConfig:
    n_ctx: int = 16                    # context length M (ignored with word init: M = number of init tokens)
    csc: bool = False                  # class-specific context
    class_token_position: str = "end"  # end | middle | front
    init: str | None = None            # None = random N(0, 0.02); else words, e.g. "a photo of a"
    precision: str = "fp32"            # fp32 | amp | fp16 (the official default)
    epochs: int | None = None          # None = by shots (docs/PROTOCOL.md) x epoch_scale
    epoch_scale: float = 1.0           # shorten the official schedule (e.g. for the toy world)
    batch_size: int = 32
    lr: float = 0.002
    crop_min: float = CROP_MIN            # smallest crop area of the train augmentation (official 0.08)
    cut_text: bool = True              # run the text encoder only up to the longest EOT (exact)
    share_prefix: bool = True          # encode the positions all prompts share (SOS + unified context) once (exact)
    num_workers: int = 0

    def validate(self) -> None:
        if self.class_token_position not in POSITIONS:
            raise MethodError(f"class_token_position must be one of {POSITIONS}, got {self.class_token_position!r}")
        check_training(self, PRECISIONS, min_epochs=1)
        if self.n_ctx < 1:
            raise MethodError(f"n_ctx must be >= 1, got {self.n_ctx}")


def _train_config(ctx: RunContext, cfg: CoOpConfig):
    from coop.train import TrainConfig, resolve_epochs

    epochs = resolve_epochs(cfg.epochs, cfg.epoch_scale, ctx.shots, ctx.spec.name)
    return TrainConfig(epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr, precision=cfg.precision,
                       num_workers=cfg.num_workers)


def _result(ctx: RunContext, learner, text, epochs: int, history: list[float]) -> MethodResult:
    """Evaluation on the cached test features with the class text features computed once, and the artifacts."""
    from coop.evaluate import cosine_logits

    logits = cosine_logits(ctx.test.features, text.float().cpu().numpy(), float(ctx.clip.model.logit_scale.exp()))
    ctx_tensor = learner.ctx.detach().float().cpu().numpy()
    info = {"epochs": epochs, "n_ctx_effective": learner.n_ctx, "final_loss": history[-1] if history else None,
            "loss_history": [round(h, 5) for h in history]}
    return MethodResult(logits, info=info, artifacts={"prompt.safetensors": {"ctx": np.ascontiguousarray(ctx_tensor)}})


def train(ctxs: list[RunContext], cfg: CoOpConfig) -> list[MethodResult]:
    """The seeds of one cell trained together (`train_variants` with one variant; one seed is a list of one)."""
    return train_variants([(cfg, ctxs)])[0]


def variant_key(cfg: CoOpConfig) -> tuple:
    """What variants trained in one job share: the schedule, batch, optimiser, precision and text path (one
    `fit_seeds` loop and one text encoder). Context length, CSC, class position, initialisation and crop may
    differ: each learner has its own context and views."""
    return (cfg.epochs, cfg.epoch_scale, cfg.batch_size, cfg.lr, cfg.precision, cfg.cut_text, cfg.share_prefix,
            cfg.num_workers)


def train_variants(runs: list[tuple[CoOpConfig, list[RunContext]]]) -> list[list[MethodResult]]:
    """Every (variant, seed) of a cell trained together (`FusedCoOp`, `coop.train.fit_seeds`): each has its own
    few-shot subset, view cache (the image encoder is not run per step), batch order, initialisation
    (torch.manual_seed(seed) before building its prompt) and checkpoint, and ends where it would end alone;
    each step's text-encoder passes cover every learner at once. Evaluated on the cached test features."""
    import torch

    from coop.models.prompt import FusedCoOp
    from coop.train import SeedTraining, fit_seeds
    from coop.views import ViewData

    cfg0, ctxs0 = runs[0]
    if len({variant_key(cfg) for cfg, _ in runs}) > 1:
        raise MethodError("these CoOp variants cannot train in one job: they differ in epochs, batch_size, lr, "
                          "precision, cut_text, share_prefix or num_workers. Train them in separate jobs.")
    units = [(cfg, c) for cfg, ctxs in runs for c in ctxs]
    learners = []
    for cfg, c in units:
        torch.manual_seed(c.seed)
        learners.append(_learner(c, cfg).to(c.device))
    fused = FusedCoOp(ctxs0[0].clip.model, learners, cfg0.cut_text, cfg0.share_prefix).to(ctxs0[0].device)
    if cfg0.precision == "fp16":
        fused.half()
    train_cfg = _train_config(ctxs0[0], cfg0)
    views: dict[tuple, object] = {}  # a seed's views, read once for the variants of the same crop
    for cfg, c in units:
        if (c.seed, cfg.crop_min) not in views:
            views[c.seed, cfg.crop_min] = c.train_views(train_cfg.epochs, cfg.crop_min)
    seeds = [SeedTraining([lr.ctx], ViewData(views[c.seed, cfg.crop_min], [it.label for it in c.items("train")]),
                          torch.Generator().manual_seed(c.seed), c.checkpointing(lr), c.log)
             for (cfg, c), lr in zip(units, learners)]
    histories = fit_seeds(fused.losses, seeds, train_cfg, ctxs0[0].device)
    with torch.no_grad():
        texts = fused.text_features(list(range(len(units))))
    results = iter([_result(c, lr, t, train_cfg.epochs, h)
                    for (_, c), lr, t, h in zip(units, learners, texts, histories)])
    return [[next(results) for _ in ctxs] for _, ctxs in runs]


def _learner(ctx: RunContext, cfg: CoOpConfig):
    from coop.models.prompt import PromptLearner

    clip = ctx.clip
    return PromptLearner(clip.model, clip.tokenizer, ctx.classnames, cfg.n_ctx, cfg.csc, cfg.class_token_position,
                         cfg.init)


def classifier(ctx: RunContext, cfg: CoOpConfig, run_dir):
    """The learned prompts of a finished run (prompt.safetensors) as a classifier over its classes."""
    import torch
    from safetensors.torch import load_file

    from coop.evaluate import cosine_logits
    from coop.models.prompt import CoOpClassifier

    learner = _learner(ctx, cfg)
    with torch.no_grad():
        learner.ctx.copy_(load_file(str(Path(run_dir) / "prompt.safetensors"))["ctx"])
        text = CoOpClassifier(ctx.clip.model, learner, cfg.cut_text, share_prefix=cfg.share_prefix)
        text = text.text_features().float().cpu().numpy()
    scale = float(ctx.clip.model.logit_scale.exp())
    return lambda features: cosine_logits(features, text, scale)


METHOD = register(Method(
    name="coop", config=CoOpConfig, train=train, few_shot=True, needs_images=True,
    description="context optimisation: learned prompt vectors, CLIP frozen",
    display_name="CoOp", style={"marker": "o", "linestyle": "-", "markersize": 5}, order=2, show_variant=True,
    classifier=classifier, classifier_file="prompt.safetensors", classifier_keys=("ctx",), interpretable=True,
    train_variants=train_variants, variant_key=variant_key,
    # 16 shots: 138 min per seed, generous for ImageNet's 16,000 images x 50 epochs on one GPU.
    cost=Cost(step="text_encoder"),
))
