"""CLIP loading (open_clip), image transforms and the text-encoder path used by prompts.

The names are imported on first use, so `coop.models.names` (model names, pretrained values, default weights)
stays light: importing it loads neither torch nor open_clip."""
from __future__ import annotations

import importlib

_WHERE = {
    "BackboneError": "coop.models.names", "parse_model": "coop.models.names",
    "parse_pretrained": "coop.models.names", "default_pretrained": "coop.models.names",
    "Clip": "coop.models.clip", "load_clip": "coop.models.clip",
    "TextEncoder": "coop.models.text", "encode_texts": "coop.models.text", "tokenize": "coop.models.text",
    "Preprocess": "coop.models.transforms", "test_transform": "coop.models.transforms",
    "train_transform": "coop.models.transforms",
}
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'coop.models' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
