"""Protocol switches: where we correct a flaw of the official code, a switch restores the official behaviour.

Defaults are the corrected behaviour where the official code has a flaw (a switch restores the flaw), and the
official behaviour where ours was merely another choice (a switch keeps ours: lp_c_rule). The CLI sets them per process (`coop --protocol key=value ...`), the
workflow from the config's `protocol:` section, and every metrics.json records the values in force.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


class ProtocolError(ValueError):
    """An unknown protocol switch or value."""


@dataclass
class Protocol:
    # ImageNet folders in sorted order; "os" = the unsorted os.listdir order of the official code, which
    # differs between machines, so its few-shot subsets cannot be reproduced elsewhere.
    imagenet_listing: str = "sorted"
    # Where the linear probe chooses C: the few-shot "val" set; "test" = the official code on ImageNet.
    lp_c_selection: str = "val"
    # The linear probe's training images: the "shared" few-shot subset of every method; "own" = drawn
    # again with numpy as the official probe does (so it trains on other images than CoOp).
    lp_subset: str = "shared"
    # Which C of the probe's search is kept: "last_step", the official one (the winner of the last bisection step,
    # lpclip's test_acc_step_list[:, -1]; docs/PROTOCOL.md); "best_seen" = the best val accuracy of the search.
    lp_c_rule: str = "last_step"


CHOICES = {"imagenet_listing": ("sorted", "os"), "lp_c_selection": ("val", "test"), "lp_subset": ("shared", "own"),
           "lp_c_rule": ("last_step", "best_seen")}
_current = Protocol()


def current() -> Protocol:
    return _current


def configure(values: dict[str, str]) -> Protocol:
    """Set the switches of this process; an unknown key or value is an error naming the choices."""
    global _current
    for key, value in values.items():
        if key not in CHOICES:
            raise ProtocolError(f"Unknown protocol switch {key!r}; known: {', '.join(CHOICES)}.")
        if value not in CHOICES[key]:
            raise ProtocolError(f"protocol {key}={value!r}: choose one of {', '.join(CHOICES[key])}.")
    _current = dataclasses.replace(Protocol(), **values)
    return _current


def as_dict() -> dict[str, str]:
    return dataclasses.asdict(_current)
