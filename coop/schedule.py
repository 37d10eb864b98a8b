"""The official training schedule by shots (docs/PROTOCOL.md), without torch: the training loop (coop.train)
and the cluster requests (coop.resources) read it from here."""
from __future__ import annotations


def epochs_for_shots(shots: int, dataset: str = "") -> int:
    """The official schedule: 50 epochs at 1 shot, 100 at 2-4, 200 at 8-16; ImageNet 50 at every count."""
    if dataset == "imagenet" or shots <= 1:
        return 50
    return 100 if shots <= 4 else 200


def resolve_epochs(epochs: int | None, epoch_scale: float, shots: int, dataset: str = "") -> int:
    """An explicit `epochs` (0 included), else the official schedule by shots times `epoch_scale` (at least 1)."""
    if epochs is not None:
        return epochs
    return max(1, round(epochs_for_shots(shots, dataset) * epoch_scale))
