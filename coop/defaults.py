"""Defaults that several parts of the package share, written once (light: no torch)."""
from __future__ import annotations

CROP_MIN = 0.08  # the official RandomResizedCrop's smallest crop area (docs/PROTOCOL.md, "Training")
PRECISIONS = ("fp32", "amp", "fp16")  # fp16 is the official default; amp is bf16/fp16 autocast, context in fp32
