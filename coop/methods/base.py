"""What a method receives (RunContext) and returns (MethodResult)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from coop.data.datasets import DatasetSpec, Item, Split
from coop.data.fewshot import manifest_items
from coop.defaults import CROP_MIN
from coop.features import Features


@dataclass
class RunContext:
    spec: DatasetSpec
    classnames: list[str]
    image_root: Path           # split paths are relative to this folder
    shots: int
    seed: int
    manifest: dict | None      # the few-shot subset (None for zero-shot methods)
    test: Features             # cached test features of this backbone
    load_clip: Callable[[], Any]          # -> coop.models.Clip, loaded on first use
    load_fewshot: Callable[[], Features]  # -> cached features of the few-shot images
    log: Callable[[str], None] = print
    split: Split | None = None  # the whole dataset split (for methods that sample on their own)
    checkpoint: Path | None = None  # where training checkpoints go (None: no checkpoints)
    run_key: str = ""               # identity of the run, stamped into its checkpoints
    load_views: Callable[[int], Any] | None = None  # epochs -> views (E, N, D) from the cache; None: computed
    _clip: Any = field(default=None, repr=False)
    _fewshot: Features | None = field(default=None, repr=False)

    @property
    def clip(self):
        if self._clip is None:
            self._clip = self.load_clip()
        return self._clip

    @property
    def device(self) -> str:
        """The device CLIP was loaded on (loads it)."""
        return str(self.clip.model.logit_scale.device)

    @property
    def fewshot(self) -> Features:
        if self._fewshot is None:
            self._fewshot = self.load_fewshot()
        return self._fewshot

    def checkpointing(self, module):
        """The training checkpoint of this run for `module` (the part that learns), or None."""
        if self.checkpoint is None:
            return None
        from coop.train import Checkpointing

        return Checkpointing(self.checkpoint, module, self.run_key)

    def train_views(self, epochs: int, crop_min: float = CROP_MIN):
        """Training-augmented features of the few-shot train images, one view per image per epoch (coop.views):
        from the run's view cache when there is one, else computed here and not kept. `crop_min`: the smallest
        crop area of the augmentation (the official 0.08)."""
        if self.load_views is not None:
            return self.load_views(epochs, crop_min)
        from coop.views import train_views

        return train_views(self.clip, self.items("train"), self.image_root, self.manifest["hash"], epochs,
                           self.device, crop_min=crop_min)

    def items(self, part: str) -> list[Item]:
        if self.manifest is None:
            raise ValueError("this method needs a few-shot manifest (shots >= 1)")
        return manifest_items(self.manifest, part)


@dataclass
class MethodResult:
    logits: np.ndarray                                          # (n_test, n_classes)
    info: dict[str, Any] = field(default_factory=dict)          # extra fields for metrics.json
    artifacts: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # file name -> tensors
