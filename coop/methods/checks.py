"""Checks of the training fields that several methods' parameter dataclasses share (CoOp and the Table 5
baselines: precision, epochs, epoch_scale, batch_size, lr, crop_min, num_workers), written once. They run in the
dataclass's `validate()`, i.e. when the config or `--set` values are built (`coop.config.build_config`), before
any data or CLIP is loaded, so a bad value is one line and no wait."""
from __future__ import annotations

from coop.methods.registry import MethodError


def check_training(cfg, precisions: tuple[str, ...], min_epochs: int = 1) -> None:
    """A MethodError naming the first bad field of `cfg` (a dataclass with the shared training fields)."""
    if cfg.precision not in precisions:
        raise MethodError(f"precision must be one of {precisions}, got {cfg.precision!r}")
    if cfg.epochs is not None and cfg.epochs < min_epochs:
        raise MethodError(f"epochs must be >= {min_epochs} (or none for the official schedule by shots), "
                          f"got {cfg.epochs}")
    if cfg.epoch_scale <= 0:
        raise MethodError(f"epoch_scale must be > 0, got {cfg.epoch_scale}")
    if cfg.batch_size < 1:
        raise MethodError(f"batch_size must be >= 1, got {cfg.batch_size}")
    if not cfg.lr > 0:  # also refuses nan
        raise MethodError(f"lr must be > 0, got {cfg.lr}")
    if not 0 < cfg.crop_min <= 1:
        raise MethodError(f"crop_min must be in (0, 1], got {cfg.crop_min}")
    if cfg.num_workers < 0:
        raise MethodError(f"num_workers must be >= 0, got {cfg.num_workers}")
