"""The paper's Table 5 text heads over frozen CLIP (docs/PROTOCOL.md "Baselines"): `text_bias`, a learnable bias added
to the zero-shot text features, and `text_transform`, a learnable linear layer on them, initialised to the
identity. Both read the subset's cached augmented views (coop.views, the same views as CoOp) and train with
CoOp's optimiser and schedule; the seeds of a cell train together (coop.train.fit_seeds), the zero-shot text
features encoded once. Their modules: coop.models.heads."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from coop.methods.base import MethodResult, RunContext
from coop.methods.baselines import TRAINED_COST, TrainedConfig, train_config, train_info, zeroshot_text
from coop.methods.registry import Method, register


@dataclass
class TextBiasConfig(TrainedConfig):
    """A bias added to the normalised zero-shot text features, initialised to zero.

    Shape: per class, (n_cls, D), by default: every class's text feature gets its own offset, which is the
    reading of "a bias added to the text features" that can move each class independently. `shared=True` learns
    one (D,) vector added to every class instead. Weight decay (5e-4, as CoOp) pulls the bias towards zero,
    i.e. towards zero-shot CLIP.
    """

    shared: bool = False


@dataclass
class TextTransformConfig(TrainedConfig):
    """A linear layer `text @ weight.T + bias` on the normalised zero-shot text features, initialised to the
    identity (bias 0). Same optimiser as CoOp: its weight decay pulls the weight towards 0, not the identity;
    since the output is re-normalised, a uniform shrink changes nothing, and at lr 0.002 x wd 5e-4 it is tiny."""


def _train_heads(ctxs: list[RunContext], cfg: TrainedConfig, make_head: Callable) -> list[MethodResult]:
    """Every seed's head (torch.manual_seed(seed) before building it), subset, views, batch order and checkpoint
    are its own, and each seed ends where it would end alone; evaluated on the cached test features."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from coop.evaluate import cosine_logits
    from coop.models.heads import TextHeadClassifier
    from coop.train import SeedTraining, fit_seeds
    from coop.views import ViewData

    model = ctxs[0].clip.model
    text = zeroshot_text(ctxs[0])
    heads, classifiers = [], []
    for c in ctxs:
        torch.manual_seed(c.seed)
        heads.append(make_head(*text.shape).to(c.device))
        classifiers.append(TextHeadClassifier(nn.Identity(), text, heads[-1], model.logit_scale).train())
    tcfg = train_config(ctxs[0], cfg)
    seeds = [SeedTraining(list(h.parameters()), ViewData(c.train_views(tcfg.epochs, cfg.crop_min),
                                                         [it.label for it in c.items("train")]),
                          torch.Generator().manual_seed(c.seed), c.checkpointing(h), c.log)
             for c, h in zip(ctxs, heads)]

    def losses(active: list[int], xs: list, ys: list) -> list:
        return [F.cross_entropy(classifiers[k](x).float(), y) for k, x, y in zip(active, xs, ys)]

    histories = fit_seeds(losses, seeds, tcfg, ctxs[0].device)
    results = []
    scale = float(model.logit_scale.exp())
    for c, clf, head, history in zip(ctxs, classifiers, heads, histories):
        clf.eval()
        with torch.no_grad():
            learned = clf.text_features().float().cpu().numpy()
        results.append(MethodResult(cosine_logits(c.test.features, learned, scale),
                                    info=train_info(tcfg.epochs, history), artifacts={head.artifact: head.tensors()}))
    return results


def train_text_bias(ctxs: list[RunContext], cfg: TextBiasConfig) -> list[MethodResult]:
    """Learn a bias on the zero-shot text features (per class, or one shared vector)."""
    results = _train_heads(ctxs, cfg, lambda n_cls, dim: _bias(cfg, n_cls, dim))
    for r in results:
        r.info["bias_shape"] = list(r.artifacts["text_bias.safetensors"]["bias"].shape)
    return results


def train_text_transform(ctxs: list[RunContext], cfg: TextTransformConfig) -> list[MethodResult]:
    """Learn a linear layer (identity init) on the zero-shot text features."""
    return _train_heads(ctxs, cfg, lambda n_cls, dim: _transform(cfg, n_cls, dim))


def _head_classifier(make_head, artifact: str):
    """classifier(ctx, cfg, run_dir): the zero-shot text features through the run's learned head (its file)."""

    def classifier(ctx: RunContext, cfg: TrainedConfig, run_dir):
        import torch
        from safetensors.torch import load_file

        from coop.evaluate import cosine_logits
        from coop.models.heads import TextHeadClassifier

        text = zeroshot_text(ctx)
        head = make_head(cfg, *text.shape).to(ctx.device)
        head.load_tensors(load_file(str(Path(run_dir) / artifact)))
        with torch.no_grad():
            learned = TextHeadClassifier(torch.nn.Identity(), text, head, ctx.clip.model.logit_scale)
            learned = learned.text_features().float().cpu().numpy()
        scale = float(ctx.clip.model.logit_scale.exp())
        return lambda features: cosine_logits(features, learned, scale)

    return classifier


def _bias(cfg, n_cls, dim):
    from coop.models.heads import TextBias

    return TextBias(n_cls, dim, cfg.shared)


def _transform(cfg, n_cls, dim):
    from coop.models.heads import TextTransform

    return TextTransform(dim)


TEXT_BIAS = register(Method(
    name="text_bias", config=TextBiasConfig, train=train_text_bias, few_shot=True, needs_images=True,
    description="a learnable bias added to the zero-shot text features (Table 5)", display_name="Text bias",
    style={"marker": "v", "linestyle": "-.", "markersize": 5}, order=5, cost=TRAINED_COST,
    classifier=_head_classifier(_bias, "text_bias.safetensors"), classifier_file="text_bias.safetensors",
    classifier_keys=("bias",),
))
TEXT_TRANSFORM = register(Method(
    name="text_transform", config=TextTransformConfig, train=train_text_transform, few_shot=True,
    needs_images=True, description="a learnable linear layer on the text features, initialised to identity (Table 5)",
    display_name="Text transformation layer", style={"marker": "<", "linestyle": "-.", "markersize": 5}, order=6,
    cost=TRAINED_COST, classifier=_head_classifier(_transform, "text_transform.safetensors"),
    classifier_file="text_transform.safetensors", classifier_keys=("weight", "bias"),
))
