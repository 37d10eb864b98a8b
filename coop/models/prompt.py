"""CoOp's modules: the prompt learner ([SOS, context, class, ".", EOT] embeddings), the classifier over a frozen
CLIP, and several seeds' learners over one text encoder (fused seeds). The method itself: coop.methods.coop."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from coop.models.text import TextEncoder, tokenize


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
    """The prompt learners of several seeds, or of several variants x seeds (each its own context) over one
    frozen text encoder: per step, one text-encoder pass over the prompts of every active learner that shares
    the same number of leading embeddings (all of them when they are seeds of one variant)."""

    def __init__(self, clip_model: nn.Module, learners: list[PromptLearner], cut_text: bool = True,
                 share_prefix: bool = True):
        super().__init__()
        self.learners = nn.ModuleList(learners)
        self.text_encoder = TextEncoder(clip_model, cut=cut_text, share_prefix=share_prefix).eval()
        self.logit_scale = clip_model.logit_scale

    def text_features(self, seeds: list[int]) -> list[torch.Tensor]:
        """Unnormalised class text features (n_cls, D) of each of `seeds` (indices into the learners)."""
        passes: dict[int, list[int]] = {}  # shared prefix -> positions in `seeds` (one pass each)
        for i, k in enumerate(seeds):
            passes.setdefault(self.learners[k].shared_prefix, []).append(i)
        out: list[torch.Tensor] = [None] * len(seeds)  # type: ignore[list-item]
        for prefix, where in passes.items():
            learners = [self.learners[seeds[i]] for i in where]
            prompts = torch.cat([lr() for lr in learners])
            eot = torch.cat([lr.eot for lr in learners])
            feats = self.text_encoder(prompts, eot, prefix, groups=len(learners))
            for i, f in zip(where, feats.split([len(lr.eot) for lr in learners])):
                out[i] = f
        return out

    def losses(self, seeds: list[int], feats: list[torch.Tensor], labels: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each seed's mean cross-entropy on its batch of image features (`coop.train.fit_seeds`)."""
        txts = self.text_features(seeds)
        return [F.cross_entropy(scaled_cosine(x, t, self.logit_scale).float(), y)
                for x, t, y in zip(feats, txts, labels)]
