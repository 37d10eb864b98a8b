"""Captions: a random template of the image's kind filled with its words, sometimes with one wrong word.

A union dataset captions each class as the dataset it comes from does.
"""
from __future__ import annotations

import re

import numpy as np

from coop.data.toyworld import renderers as _renderers  # noqa: F401  (registers the kinds read below)
from coop.data.toyworld.kinds import KINDS, template_slots
from coop.data.toyworld.palette import pick
from coop.data.toyworld.registry import TOY_DATASETS, ToySpec, part_of

CAPTION_NOISE = 0.1  # fraction of captions with one wrong attribute


def vocabulary(spec: ToySpec) -> dict[str, tuple[str, ...]]:
    """Every value each caption slot of dataset `spec` can take, for drawing a wrong one."""
    return {"cls": spec.classnames, **KINDS[spec.kind].vocabulary}


def make_caption(name: str, words: dict[str, str], rng: np.random.Generator,
                 noise: float = CAPTION_NOISE) -> tuple[str, bool]:
    """A caption from a random template; with probability `noise` one slot gets a wrong value.

    Returns (caption, noisy)."""
    spec = TOY_DATASETS[name]
    if spec.parts:  # the caption of the dataset the class comes from
        return make_caption(part_of(spec, words["cls"]), words, rng, noise)
    template = pick(rng, KINDS[spec.kind].templates)
    words = dict(words)
    noisy = bool(rng.random() < noise)
    if noisy:
        slots = sorted(template_slots(template))
        slot = pick(rng, slots)
        words[slot] = pick(rng, tuple(v for v in vocabulary(spec)[slot] if v != words[slot]))
    return fill_template(template, words), noisy


def fill_template(template: str, words: dict[str, str]) -> str:
    """Fill a caption template and fix the articles ("a orange" -> "an orange")."""
    return re.sub(r"\b([Aa]) (?=[aeiou])", r"\1n ", template.format(**words))
