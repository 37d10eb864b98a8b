"""`finetune_image`, a Table 5 baseline (docs/PROTOCOL.md "Baselines"): the whole image encoder fine-tuned under the
fixed zero-shot text classifier, with CoOp's optimiser, schedule and augmentation (images augmented on the fly:
the tower changes, so no view cache). Seeds train one after another (each its own copy of the tower)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from coop.data.datasets import Item
from coop.methods.base import MethodResult, RunContext
from coop.methods.baselines import TrainedConfig, train_config, train_info, zeroshot_text
from coop.methods.registry import Cost, Method, register


@dataclass
class FinetuneImageConfig(TrainedConfig):
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


def _state_arrays(module) -> dict[str, np.ndarray]:
    """A module's state dict as contiguous numpy arrays (floats as float32), for safetensors."""
    from coop.models.heads import to_numpy

    return {k: to_numpy(v) if v.is_floating_point() else np.ascontiguousarray(v.cpu().numpy())
            for k, v in module.state_dict().items()}


def encode_test(ctx: RunContext, visual) -> np.ndarray:
    """Test-set image features re-encoded with `visual` (test transform, eval mode): (n_test, D)."""
    from coop.features import extract_features
    from coop.models.heads import ImageEncoder

    items = [Item(p, int(y), ctx.classnames[int(y)]) for p, y in zip(ctx.test.paths, ctx.test.labels)]
    encoder = ImageEncoder(visual, ctx.clip.model.text_projection.shape[-1])
    clip = dataclasses.replace(ctx.clip, model=encoder)
    return extract_features(clip, items, ctx.image_root, device=ctx.device, num_workers=0).numpy()


def _finetune(ctx: RunContext, cfg: FinetuneImageConfig) -> MethodResult:
    """Fine-tune a copy of the image encoder under the frozen zero-shot classifier; evaluate by re-encoding
    the test images with it (the cached test features belong to the original encoder)."""
    import copy

    import torch

    from coop.data.images import ImageDataset
    from coop.evaluate import cosine_logits
    from coop.models.heads import FinetuneImageClassifier
    from coop.models.transforms import train_transform
    from coop.train import fit

    torch.manual_seed(ctx.seed)
    model = ctx.clip.model
    text = zeroshot_text(ctx)
    visual = copy.deepcopy(model.visual).requires_grad_(True)  # CLIP itself is never modified
    classifier = FinetuneImageClassifier(visual, text, model.logit_scale, cfg.bn_train)
    tcfg = train_config(ctx, cfg)
    items = ctx.items("train")
    data = ImageDataset(ctx.image_root, items, train_transform(ctx.clip.preprocess, cfg.crop_min),
                        preload=len(items) <= 5000)
    classifier.train()
    history = fit(classifier, list(visual.parameters()), data, tcfg, ctx.device,
                  torch.Generator().manual_seed(ctx.seed), log=ctx.log, checkpoint=ctx.checkpointing(visual))
    classifier.eval()
    info = train_info(tcfg.epochs, history)
    logits = cosine_logits(encode_test(ctx, visual), text.cpu().numpy(), float(model.logit_scale.exp()))
    info["trained_parameters"] = sum(p.numel() for p in visual.parameters())
    artifacts = {"visual.safetensors": _state_arrays(visual)} if cfg.save_weights else {}
    return MethodResult(logits, info=info, artifacts=artifacts)


def train(ctxs: list[RunContext], cfg: FinetuneImageConfig) -> list[MethodResult]:
    return [_finetune(c, cfg) for c in ctxs]


METHOD = register(Method(
    name="finetune_image", config=FinetuneImageConfig, train=train, few_shot=True, needs_images=True,
    description="fine-tune the image encoder under the fixed zero-shot classifier (Table 5)",
    display_name="Fine-tuning CLIP's image encoder", paper_role="image_finetune",
    style={"marker": ">", "linestyle": ":", "markersize": 5},
    order=4, cost=Cost(step="image_encoder", views=False),  # augments on the fly: no view cache
))
