"""Image kinds: one `ImageKind` record per way of drawing and captioning images, and the registry of them.

A kind holds everything about itself: its renderer, the classes it can draw, its pixel noise and
lighting, and its caption templates with the words each slot can take. Each renderer module defines
and registers its kinds (`register_kind`); a toy dataset names its kind (`ToySpec.kind`). Adding a
kind is one record. The registry is complete once `coop.data.toyworld.renderers` is imported, which the
package's `__init__` does first.
"""
from __future__ import annotations

import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable

import numpy as np

# (classname, rng, supersampled size S) -> (float image (3, S, S), caption words {slot: value})
Renderer = Callable[[str, np.random.Generator, int], tuple[np.ndarray, dict[str, str]]]


def template_slots(template: str) -> set[str]:
    """The slot names of a caption template ("a {color} {cls}." -> {"color", "cls"})."""
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


@dataclass(frozen=True, eq=False)
class ImageKind:
    """Everything about one kind of image; `sampling.draw_image` and `captions` read only this."""

    name: str  # what ToySpec.kind says
    render: Renderer  # draws at SUPERSAMPLE times the image size, before light and noise
    classes: tuple[str, ...]  # the class names `render` can draw
    pixel_noise: float  # std of the Gaussian noise added to each pixel, after downsampling
    lighting: float  # amplitude of the low-frequency uneven light (or paper) over the image
    templates: tuple[str, ...]  # caption templates; slots are "cls" and the keys of `vocabulary`
    vocabulary: Mapping[str, tuple[str, ...]]  # every value each slot but "cls" can take (for wrong words)

    def __post_init__(self) -> None:
        object.__setattr__(self, "vocabulary", MappingProxyType(dict(self.vocabulary)))
        if "cls" in self.vocabulary:
            raise ValueError(f"image kind {self.name!r}: the 'cls' slot takes a dataset's classes, not a vocabulary")
        slots = set().union(*map(template_slots, self.templates))
        if slots != {"cls", *self.vocabulary}:
            raise ValueError(f"image kind {self.name!r}: its templates' slots {sorted(slots)} are not 'cls' and "
                             f"its vocabulary {sorted(self.vocabulary)}")


_KINDS: dict[str, ImageKind] = {}
KINDS: Mapping[str, ImageKind] = MappingProxyType(_KINDS)  # by name, in registration order


def register_kind(kind: ImageKind) -> ImageKind:
    """Add `kind` to KINDS (where it is defined); returns it."""
    if kind.name in _KINDS or kind.name == "union":
        raise ValueError(f"image kind {kind.name!r} is already registered (or reserved)")
    _KINDS[kind.name] = kind
    return kind


class _Column(Mapping):
    """One field of every registered kind, by kind name: a read-only view in the shape of the old per-kind
    dicts (RENDERERS, CAPTION_TEMPLATES), which the records replace."""

    def __init__(self, field: str) -> None:
        self._field = field

    def __getitem__(self, name: str) -> Any:
        return getattr(_KINDS[name], self._field)

    def __iter__(self) -> Iterator[str]:
        return iter(_KINDS)

    def __len__(self) -> int:
        return len(_KINDS)

    def __repr__(self) -> str:
        return f"<ImageKind.{self._field} of {list(_KINDS)}>"


RENDERERS: Mapping[str, Renderer] = _Column("render")
CAPTION_TEMPLATES: Mapping[str, tuple[str, ...]] = _Column("templates")
