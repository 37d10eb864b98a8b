"""The method registry: names, what each needs, and where it lives (imported lazily, so the workflow can read
this table without importing torch)."""
from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class MethodInfo:
    name: str
    target: str        # "module:function" that runs it
    config: str        # "module:Dataclass" of its parameters
    few_shot: bool     # trains on a few-shot subset (else shots = 0, seed = 0)
    needs_images: bool  # reads training images (else only cached features)
    description: str
    classifier: str | None = None  # "module:function" rebuilding a finished run's classifier (for transfer)
    classifier_file: str | None = None  # the file in the run folder that the classifier is rebuilt from
    fused: str | None = None  # "module:function" training several seeds together: run(ctxs, cfg) -> results


METHODS: dict[str, MethodInfo] = {
    m.name: m for m in [
        MethodInfo("zeroshot", "coop.methods.zeroshot:run_zeroshot", "coop.methods.zeroshot:ZeroShotConfig",
                   False, False, "zero-shot CLIP with the dataset's hand-crafted prompt",
                   "coop.methods.zeroshot:zeroshot_classifier"),
        MethodInfo("ensemble", "coop.methods.zeroshot:run_ensemble", "coop.methods.zeroshot:EnsembleConfig",
                   False, False, "zero-shot CLIP with an ensemble of prompt templates",
                   "coop.methods.zeroshot:ensemble_classifier"),
        MethodInfo("linear_probe", "coop.methods.linear_probe:run", "coop.methods.linear_probe:LinearProbeConfig",
                   True, False, "logistic regression on image features, C searched on the few-shot val set",
                   "coop.methods.linear_probe:classifier", "linear_probe.safetensors"),
        MethodInfo("coop", "coop.methods.coop:run", "coop.methods.coop:CoOpConfig",
                   True, True, "context optimisation: learned prompt vectors, CLIP frozen",
                   "coop.methods.coop:classifier", "prompt.safetensors", "coop.methods.coop:run_fused"),
        MethodInfo("text_bias", "coop.methods.baselines:run_text_bias", "coop.methods.baselines:TextBiasConfig",
                   True, True, "a learnable bias added to the zero-shot text features (Table 5)",
                   fused="coop.methods.baselines:run_text_bias_fused"),
        MethodInfo("text_transform", "coop.methods.baselines:run_text_transform",
                   "coop.methods.baselines:TextTransformConfig",
                   True, True, "a learnable linear layer on the text features, initialised to identity (Table 5)",
                   fused="coop.methods.baselines:run_text_transform_fused"),
        MethodInfo("finetune_image", "coop.methods.baselines:run_finetune_image",
                   "coop.methods.baselines:FinetuneImageConfig",
                   True, True, "fine-tune the image encoder under the fixed zero-shot classifier (Table 5)"),
    ]
}


class MethodError(ValueError):
    """An unknown method or bad method parameters."""


def get_method(name: str) -> MethodInfo:
    try:
        return METHODS[name]
    except KeyError:
        raise MethodError(
            f"Unknown method {name!r}. Known methods: {', '.join(METHODS)} (`coop list` describes them)."
        ) from None


def _load(target: str):
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def create_method(name: str):
    """The method's run function: run(ctx: RunContext, cfg) -> MethodResult."""
    return _load(get_method(name).target)


def fused_method(name: str):
    """The method's fused trainer of several seeds, run(ctxs, cfg) -> [MethodResult], or None."""
    info = get_method(name)
    return _load(info.fused) if info.fused else None


def method_config_class(name: str):
    return _load(get_method(name).config)


def method_classifier(name: str):
    """classifier(ctx, cfg, run_dir) -> (features -> logits over the run's classes), for transfer."""
    info = get_method(name)
    if info.classifier is None:
        raise MethodError(f"{name} cannot be evaluated on other datasets (no classifier to transfer).")
    return _load(info.classifier)
