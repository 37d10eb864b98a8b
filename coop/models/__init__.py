"""CLIP loading (open_clip), image transforms and the text-encoder path used by prompts."""
from coop.models.clip import BackboneError, Clip, load_clip
from coop.models.text import TextEncoder, encode_texts, tokenize
from coop.models.transforms import test_transform, train_transform

__all__ = [
    "BackboneError", "Clip", "load_clip", "TextEncoder", "encode_texts", "tokenize",
    "test_transform", "train_transform",
]
