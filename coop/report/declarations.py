"""What the reports read from the method declarations (`coop.methods.registry.Method`), with the fallback
for a method this process does not know (e.g. a plugin that is not loaded): its name as display name, the
declaration's default style, legend order last, not interpretable, and few-shot unless its runs say
otherwise (every run at 0 shots). The reports name no method: they ask these functions.
"""
from __future__ import annotations

import dataclasses
import math

from coop.methods.registry import Method, MethodError, get_method

__all__ = ["DEFAULT_STYLE", "declared", "display_name", "first_learned_context", "first_zero_shot", "is_interpretable",
           "is_zero_shot", "label_display", "labels_with_role", "learns_context", "legend_order", "paper_role",
           "series_style", "show_variant"]

# The style a method gets when it declares none (the declaration's own default).
DEFAULT_STYLE = dict(next(f for f in dataclasses.fields(Method) if f.name == "style").default_factory())


def declared(method: str) -> Method | None:
    """The declaration of `method`, None when no registered method has that name."""
    try:
        return get_method(str(method))
    except MethodError:
        return None


def is_zero_shot(method: str, rows=None) -> bool:
    """Whether `method` is zero-shot (declared not few-shot). An unknown method is zero-shot when `rows`
    (its runs, a frame with a "shots" column) are given, not empty and all at 0 shots."""
    m = declared(method)
    if m is not None:
        return not m.few_shot
    return rows is not None and len(rows) > 0 and bool((rows["shots"].astype(int) == 0).all())


def is_interpretable(method: str) -> bool:
    """Whether `method` learns a context of token embeddings (nearest words, context length)."""
    m = declared(method)
    return bool(m is not None and m.interpretable)


def learns_context(method: str) -> bool:
    """A few-shot method whose classifier is a learned prompt context (declared interpretable): CoOp and its
    kind, the methods of Fig. 4's gain and Fig. 5a's context length."""
    return is_interpretable(method) and not is_zero_shot(method)


def first_zero_shot(labels):
    """Of (label, method) pairs, the label of the zero-shot baseline: among the labels whose method is
    zero-shot, the one whose method comes first in the declared order (zero-shot CLIP, 0, before prompt
    ensembling, 1), the first in `labels` on a tie; None when no method is zero-shot."""
    zero_shot = [(legend_order(m), i, lb) for i, (lb, m) in enumerate(labels) if is_zero_shot(m)]
    return min(zero_shot)[2] if zero_shot else None


def first_learned_context(labels):
    """Of (label, method) pairs, the first label whose method `learns_context` (None: none does)."""
    return next((lb for lb, m in labels if learns_context(m)), None)


def paper_role(method: str) -> str | None:
    """The baseline of the paper's findings `method` declares itself to be (registry.PAPER_ROLES), or None."""
    m = declared(method)
    return m.paper_role if m is not None else None


def labels_with_role(labels, role: str) -> list:
    """Of (label, method) pairs, the labels whose method declares `paper_role` `role`, in order."""
    return [lb for lb, m in labels if paper_role(m) == role]


def display_name(method: str) -> str:
    m = declared(method)
    return m.display_name if m is not None else str(method)


def label_display(label: str, method: str) -> str:
    """How a figure names an experiment's run label: the method's display name where the label is just the
    method's name ("linear_probe" -> "Linear probe CLIP"), else the label (a config key) with its underscores
    as spaces ("prompt_engineering" -> "prompt engineering", "coop_m16" -> "coop m16")."""
    if str(label) == str(method):
        return display_name(method)
    return str(label).replace("_", " ")


def show_variant(method: str) -> bool:
    m = declared(method)
    return bool(m is not None and m.show_variant)


def series_style(method: str) -> dict:
    """matplotlib keyword arguments of `method`'s line (a copy)."""
    m = declared(method)
    return dict(m.style) if m is not None else dict(DEFAULT_STYLE)


def legend_order(method: str) -> float:
    m = declared(method)
    return m.order if m is not None else math.inf
