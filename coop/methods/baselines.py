"""What the paper's Table 5 baselines share (the methods: coop.methods.text_heads, coop.methods.finetune_image) (no official code exists; docs/PROTOCOL.md "Baselines"):

* `text_bias`: a learnable bias added to the zero-shot text features, initialised to zero.
* `text_transform`: a learnable linear layer (D x D weight + bias) on the zero-shot text features, initialised
  to the identity.
* `finetune_image`: the whole image encoder fine-tuned under the fixed zero-shot text classifier.

The zero-shot text features are those of the dataset's hand-crafted prompt (`ctx.spec.template`), L2-normalised
(`zeroshot.class_text_features`, exactly what zero-shot CLIP uses). All three train with CoOp's optimiser,
schedule, epochs and augmentation (coop.train), and everything of CLIP not named above stays frozen. The
two text heads, whose image encoder is frozen, read their augmented training views from the subset's view
cache (coop.views, the same views as CoOp); `finetune_image` augments on the fly.
"""
from __future__ import annotations

from dataclasses import dataclass

from coop.defaults import CROP_MIN
from coop.methods.base import RunContext
from coop.methods.checks import check_training
from coop.methods.registry import Cost

# Pure fp16 (CoOp's official mode) is left out: these baselines have no official code to be faithful to, and
# fine-tuning a whole encoder in pure fp16 without loss scaling is not a sound default.
BASELINE_PRECISIONS = ("fp32", "amp")
# The text heads read the view cache and train a small head per step (coop.resources models the rest).
TRAINED_COST = Cost(step="head")


@dataclass
class TrainedConfig:
    """Fields shared by the three baselines (CoOp's optimiser and schedule: coop.train)."""

    precision: str = "fp32"        # fp32 | amp
    epochs: int | None = None      # None = by shots (docs/PROTOCOL.md) x epoch_scale; 0 = no training (the initialisation)
    epoch_scale: float = 1.0       # shorten the official schedule (e.g. for the toy world), as CoOpConfig
    batch_size: int = 32
    lr: float = 0.002
    crop_min: float = CROP_MIN        # smallest crop area of the train augmentation (official 0.08), as CoOpConfig
    num_workers: int = 0

    def validate(self) -> None:
        check_training(self, BASELINE_PRECISIONS, min_epochs=0)


def zeroshot_text(ctx: RunContext):
    """Normalised text features of the dataset's hand-crafted prompt, (n_cls, D), on CLIP's device."""
    import torch

    from coop.methods.zeroshot import class_text_features

    return torch.from_numpy(class_text_features(ctx, [ctx.spec.template])).to(ctx.device)


def train_config(ctx: RunContext, cfg: TrainedConfig):
    from coop.train import TrainConfig, resolve_epochs

    epochs = resolve_epochs(cfg.epochs, cfg.epoch_scale, ctx.shots, ctx.spec.name)
    return TrainConfig(epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr, precision=cfg.precision,
                       num_workers=cfg.num_workers)


def train_info(epochs: int, history: list[float]) -> dict:
    return {"epochs": epochs, "final_loss": history[-1] if history else None,
            "loss_history": [round(h, 5) for h in history]}
