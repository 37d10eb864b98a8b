"""Zero-shot CLIP: one hand-crafted prompt per dataset (`zeroshot`), or an ensemble of prompt templates
(`ensemble`, the paper's Table 2)."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from coop.methods.base import MethodResult, RunContext
from coop.methods.registry import Cost, Method, register

# The paper's ensemble for ImageNet (Table 2); other datasets add their own template.
ENSEMBLE_TEMPLATES = (
    "itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.",
    "a {} in a video game.", "art of the {}.", "a photo of the small {}.",
)


@dataclass
class ZeroShotConfig:
    template: str | None = None   # None = the dataset's hand-crafted prompt
    cut_text: bool = True


@dataclass
class EnsembleConfig:
    add_dataset_template: bool = True  # the paper adds the dataset's own prompt except on ImageNet
    cut_text: bool = True


def class_text_features(ctx: RunContext, templates: list[str], cut: bool = True) -> np.ndarray:
    """Mean of L2-normalised features over templates, re-normalised: (n_classes, D)."""
    import torch

    from coop.models.text import encode_texts

    clip = ctx.clip
    feats = []
    for t in templates:
        f = encode_texts(clip.model, clip.tokenizer, [t.format(c) for c in ctx.classnames], cut=cut)
        feats.append(torch.nn.functional.normalize(f.float(), dim=-1))
    mean = torch.stack(feats).mean(0)
    return torch.nn.functional.normalize(mean, dim=-1).cpu().numpy()


def _templates(ctx: RunContext, cfg: ZeroShotConfig | EnsembleConfig) -> list[str]:
    if isinstance(cfg, ZeroShotConfig):
        return [cfg.template or ctx.spec.template]
    templates = list(ENSEMBLE_TEMPLATES)
    if cfg.add_dataset_template and ctx.spec.name != "imagenet" and ctx.spec.template not in templates:
        templates.append(ctx.spec.template)
    return templates


def classifier(ctx: RunContext, cfg: ZeroShotConfig | EnsembleConfig, run_dir=None):
    """features -> cosine logits against the class text features of the prompt template(s)."""
    from coop.evaluate import cosine_logits

    text = class_text_features(ctx, _templates(ctx, cfg), cfg.cut_text)
    scale = float(ctx.clip.model.logit_scale.exp())
    return lambda features: cosine_logits(features, text, scale)


def train(ctxs: list[RunContext], cfg: ZeroShotConfig | EnsembleConfig) -> list[MethodResult]:
    """Nothing to train: the test features scored against the prompts' text features."""
    return [MethodResult(classifier(c, cfg)(c.test.features), info={"templates": _templates(c, cfg)}) for c in ctxs]


_ZERO_SHOT = dict(train=train, few_shot=False, needs_images=False, classifier=classifier)
_COST = Cost(step="none", views=False, group="zeroshot")
ZEROSHOT = register(Method(
    name="zeroshot", config=ZeroShotConfig, description="zero-shot CLIP with the dataset's hand-crafted prompt",
    display_name="Zero-shot CLIP", style={"marker": "*", "linestyle": "none", "markersize": 13}, order=0,
    cost=_COST, **_ZERO_SHOT))
ENSEMBLE = register(Method(
    name="ensemble", config=EnsembleConfig, description="zero-shot CLIP with an ensemble of prompt templates",
    display_name="Prompt ensembling", paper_role="prompt_ensemble",
    style={"marker": "D", "linestyle": "none", "markersize": 7}, order=1,
    cost=replace(_COST, prompts_per_class=len(ENSEMBLE_TEMPLATES) + 1), **_ZERO_SHOT))
