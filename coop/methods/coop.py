"""CoOp: learn the prompt's context vectors with CLIP frozen (Zhou et al., IJCV 2022)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from coop.evaluate import cosine_logits
from coop.methods.base import MethodResult, RunContext
from coop.methods.registry import MethodError
from coop.models.text import TextEncoder, tokenize
from coop.train import PRECISIONS, SeedTraining, TrainConfig, fit, fit_seeds, resolve_epochs
from coop.views import ViewData

POSITIONS = ("end", "middle", "front")


@dataclass
class CoOpConfig:
    n_ctx: int = 16                    # context length M (ignored with word init: M = number of init tokens)
    csc: bool = False                  # class-specific context
    class_token_position: str = "end"  # end | middle | front
    init: str | None = None            # None = random N(0, 0.02); else words, e.g. "a photo of a"
    precision: str = "fp32"            # fp32 | amp | fp16 (the official default)
    epochs: int | None = None          # None = by shots (PROTOCOL.md) x epoch_scale
    epoch_scale: float = 1.0           # shorten the official schedule (e.g. for the toy world)
    batch_size: int = 32
    lr: float = 0.002
    crop_min: float = 0.08             # smallest crop area of the train augmentation (official 0.08)
    cut_text: bool = True              # run the text encoder only up to the longest EOT (exact)
    share_prefix: bool = True          # encode the positions all prompts share (SOS + unified context) once (exact)
    num_workers: int = 0

    def validate(self) -> None:
        if self.class_token_position not in POSITIONS:
            raise MethodError(f"class_token_position must be one of {POSITIONS}, got {self.class_token_position!r}")
        if self.precision not in PRECISIONS:
            raise MethodError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.epoch_scale <= 0:
            raise MethodError(f"epoch_scale must be > 0, got {self.epoch_scale}")
        if not 0 < self.crop_min <= 1:
            raise MethodError(f"crop_min must be in (0, 1], got {self.crop_min}")
        if self.n_ctx < 1:
            raise MethodError(f"n_ctx must be >= 1, got {self.n_ctx}")


class PromptLearner(nn.Module):
    """Builds [SOS, ctx..., class tokens, ".", EOT] embeddings (or middle/front) for every class."""

    def __init__(self, clip_model: nn.Module, tokenizer, classnames: list[str], n_ctx: int = 16,
                 csc: bool = False, position: str = "end", init: str | None = None):
        super().__init__()
        embedding = clip_model.token_embedding
        dtype = clip_model.positional_embedding.dtype
        classnames = [c.replace("_", " ") for c in classnames]
        n_cls = len(classnames)
        if init:
            init = init.replace("_", " ")
            n_ctx = len(tokenizer.encode(init))
            with torch.no_grad():
                init_tokens = tokenize(tokenizer, [init]).to(embedding.weight.device)
                ctx = embedding(init_tokens)[0, 1:1 + n_ctx].to(dtype)
            if csc:
                ctx = ctx.unsqueeze(0).repeat(n_cls, 1, 1)
            prompt_prefix = init
        else:
            shape = (n_cls, n_ctx, embedding.embedding_dim) if csc else (n_ctx, embedding.embedding_dim)
            ctx = torch.empty(shape, dtype=dtype, device=embedding.weight.device).normal_(std=0.02)
            prompt_prefix = " ".join(["X"] * n_ctx)
        self.ctx = nn.Parameter(ctx)
        self.n_ctx, self.position, self.csc = n_ctx, position, csc
        self.prompts = [f"{prompt_prefix} {name}." for name in classnames]
        self.name_lens = [len(tokenizer.encode(name)) for name in classnames]
        tokens = tokenize(tokenizer, self.prompts).to(embedding.weight.device)
        with torch.no_grad():
            emb = embedding(tokens).to(dtype)
        self.register_buffer("tokens", tokens, persistent=False)
        self.register_buffer("prefix", emb[:, :1], persistent=False)          # SOS
        self.register_buffer("suffix", emb[:, 1 + n_ctx:], persistent=False)  # class, ".", EOT, padding

    @property
    def shared_prefix(self) -> int:
        """How many leading embeddings every class prompt shares: SOS and, for a unified context, the context
        before the class name (all of it at the end position, the first half in the middle)."""
        if self.csc or self.position == "front":
            return 1
        return 1 + (self.n_ctx if self.position == "end" else self.n_ctx // 2)

    @property
    def eot(self) -> torch.Tensor:
        return self.tokens.argmax(dim=-1)  # EOT has the largest id; its position is the same for all layouts

    def forward(self) -> torch.Tensor:
        n_cls = self.prefix.shape[0]
        ctx = self.ctx if self.csc else self.ctx.unsqueeze(0).expand(n_cls, -1, -1)
        if self.position == "end":
            return torch.cat([self.prefix, ctx, self.suffix], dim=1)
        half = self.n_ctx // 2
        prompts = []
        for i, n in enumerate(self.name_lens):
            name, rest = self.suffix[i:i + 1, :n], self.suffix[i:i + 1, n:]
            c = ctx[i:i + 1]
            if self.position == "middle":
                parts = [self.prefix[i:i + 1], c[:, :half], name, c[:, half:], rest]
            else:  # front
                parts = [self.prefix[i:i + 1], name, c, rest]
            prompts.append(torch.cat(parts, dim=1))
        return torch.cat(prompts, dim=0)


def scaled_cosine(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """CLIP's logits: exp(logit_scale) x cosine similarity of image and text features."""
    return logit_scale.exp() * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).t()


class CoOpClassifier(nn.Module):
    """Frozen CLIP image encoder + learned prompts -> cosine logits scaled by CLIP's logit scale.

    `visual=nn.Identity()` takes image features (the view cache) instead of images."""

    def __init__(self, clip_model: nn.Module, learner: PromptLearner, cut_text: bool = True,
                 visual: nn.Module | None = None, share_prefix: bool = True):
        super().__init__()
        self.visual = clip_model.visual if visual is None else visual
        self.learner = learner
        self.text_encoder = TextEncoder(clip_model, cut=cut_text, share_prefix=share_prefix)
        self.logit_scale = clip_model.logit_scale

    def text_features(self) -> torch.Tensor:
        return self.text_encoder(self.learner(), self.learner.eot, self.learner.shared_prefix)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            img = self.visual(images)
        return scaled_cosine(img, self.text_features(), self.logit_scale)

    def train(self, mode: bool = True):
        super().train(mode)
        self.visual.eval()  # frozen encoders stay in eval mode (BatchNorm statistics too)
        self.text_encoder.eval()
        return self


class FusedCoOp(nn.Module):
    """The prompt learners of several seeds (each its own context, stacked) over one frozen text encoder: one
    text-encoder pass over every active seed's prompts per step."""

    def __init__(self, clip_model: nn.Module, learners: list[PromptLearner], cut_text: bool = True,
                 share_prefix: bool = True):
        super().__init__()
        self.learners = nn.ModuleList(learners)
        self.text_encoder = TextEncoder(clip_model, cut=cut_text, share_prefix=share_prefix).eval()
        self.logit_scale = clip_model.logit_scale

    def text_features(self, seeds: list[int]) -> list[torch.Tensor]:
        """Unnormalised class text features (n_cls, D) of each of `seeds` (indices into the learners)."""
        learners = [self.learners[k] for k in seeds]
        prompts = torch.cat([lr() for lr in learners])
        eot = torch.cat([lr.eot for lr in learners])
        feats = self.text_encoder(prompts, eot, learners[0].shared_prefix, groups=len(learners))
        return list(feats.split([len(lr.eot) for lr in learners]))

    def losses(self, seeds: list[int], feats: list[torch.Tensor], labels: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each seed's mean cross-entropy on its batch of image features (`coop.train.fit_seeds`)."""
        txts = self.text_features(seeds)
        return [F.cross_entropy(scaled_cosine(x, t, self.logit_scale).float(), y)
                for x, t, y in zip(feats, txts, labels)]


def _train_config(ctx: RunContext, cfg: CoOpConfig) -> TrainConfig:
    epochs = resolve_epochs(cfg.epochs, cfg.epoch_scale, ctx.shots, ctx.spec.name)
    return TrainConfig(epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr, precision=cfg.precision,
                       num_workers=cfg.num_workers)


def _views(ctx: RunContext, epochs: int, crop_min: float) -> ViewData:
    return ViewData(ctx.train_views(epochs, crop_min), [it.label for it in ctx.items("train")])


def _result(ctx: RunContext, learner: PromptLearner, text: torch.Tensor, epochs: int,
            history: list[float]) -> MethodResult:
    """Evaluation on the cached test features with the class text features computed once, and the artifacts."""
    logits = cosine_logits(ctx.test.features, text.float().cpu().numpy(), float(ctx.clip.model.logit_scale.exp()))
    ctx_tensor = learner.ctx.detach().float().cpu().numpy()
    info = {"epochs": epochs, "n_ctx_effective": learner.n_ctx, "final_loss": history[-1] if history else None,
            "loss_history": [round(h, 5) for h in history]}
    return MethodResult(logits, info=info, artifacts={"prompt.safetensors": {"ctx": np.ascontiguousarray(ctx_tensor)}})


def run(ctx: RunContext, cfg: CoOpConfig) -> MethodResult:
    """One seed alone: train on the seed's view cache (the image encoder is not run per step), evaluate."""
    torch.manual_seed(ctx.seed)
    model = ctx.clip.model
    learner = _learner(ctx, cfg)
    classifier = CoOpClassifier(model, learner, cfg.cut_text, nn.Identity(), cfg.share_prefix).to(ctx.device)
    if cfg.precision == "fp16":
        classifier.half()
    train_cfg = _train_config(ctx, cfg)
    data = _views(ctx, train_cfg.epochs, cfg.crop_min)
    classifier.train()
    history = fit(classifier, [learner.ctx], data, train_cfg, ctx.device,
                  torch.Generator().manual_seed(ctx.seed), log=ctx.log, checkpoint=ctx.checkpointing(learner))
    classifier.eval()
    with torch.no_grad():
        text = classifier.text_features()
    return _result(ctx, learner, text, train_cfg.epochs, history)


def run_fused(ctxs: list[RunContext], cfg: CoOpConfig) -> list[MethodResult]:
    """Several seeds of one cell trained together (`FusedCoOp`, `coop.train.fit_seeds`): each seed has its own
    few-shot subset, views, batch order, initialisation (torch.manual_seed(seed) before building its prompt,
    as `run`) and checkpoint, and ends where `run` of that seed alone ends."""
    model = ctxs[0].clip.model
    learners = []
    for c in ctxs:
        torch.manual_seed(c.seed)
        learners.append(_learner(c, cfg).to(c.device))
    fused = FusedCoOp(model, learners, cfg.cut_text, cfg.share_prefix).to(ctxs[0].device)
    if cfg.precision == "fp16":
        fused.half()
    train_cfg = _train_config(ctxs[0], cfg)
    seeds = [SeedTraining([lr.ctx], _views(c, train_cfg.epochs, cfg.crop_min), torch.Generator().manual_seed(c.seed),
                          c.checkpointing(lr), c.log) for c, lr in zip(ctxs, learners)]
    histories = fit_seeds(fused.losses, seeds, train_cfg, ctxs[0].device)
    with torch.no_grad():
        texts = fused.text_features(list(range(len(ctxs))))
    return [_result(c, lr, t, train_cfg.epochs, h) for c, lr, t, h in zip(ctxs, learners, texts, histories)]


def _learner(ctx: RunContext, cfg: CoOpConfig) -> PromptLearner:
    clip = ctx.clip
    return PromptLearner(clip.model, clip.tokenizer, ctx.classnames, cfg.n_ctx, cfg.csc, cfg.class_token_position,
                         cfg.init)


def classifier(ctx: RunContext, cfg: CoOpConfig, run_dir):
    """The learned prompts of a finished run (prompt.safetensors) as a classifier over its classes."""
    from safetensors.torch import load_file

    learner = _learner(ctx, cfg)
    with torch.no_grad():
        learner.ctx.copy_(load_file(str(Path(run_dir) / "prompt.safetensors"))["ctx"])
        text = CoOpClassifier(ctx.clip.model, learner, cfg.cut_text, share_prefix=cfg.share_prefix)
        text = text.text_features().float().cpu().numpy()
    scale = float(ctx.clip.model.logit_scale.exp())
    return lambda features: cosine_logits(features, text, scale)
