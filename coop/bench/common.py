"""What every part of `coop bench` shares: the configuration, the bench models, the timer."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

TEXT_MODEL = "RN50-quickgelu"
GIB = 1024 ** 3


@dataclass
class BenchConfig:
    step_classes: tuple[int, ...] = (10, 100, 1000)
    measured_classes: tuple[int, ...] = (10, 100, 1000)  # the others are scaled from the largest measured
    reps: int = 3
    official_reps: int = 3      # the official formulation's slow measurements (text encoder on 77 tokens)
    n_ctx: int = 16
    batch_size: int = 32
    eval_classes: int = 10
    n_test: int = 1000          # 10 test batches of 100
    test_batch: int = 100
    fused_seeds: int = 3
    fused_classes: int = 10
    fused_shots: int = 16
    fused_epochs: int = 10
    memory_classes: tuple[int, int] = (50, 100)  # measured; 1000 classes is extrapolated (linear in classes)
    memory_target: int = 1000
    model: str = TEXT_MODEL
    toy_model: str = "toy-rn"
    image_size: int | None = None   # None: the model's
    # the whole job (coop.bench.whole_job): every seed of a cell, ours vs official, on a toy dataset
    job_dataset: str = "toy_shapes"
    job_shots: int = 4
    job_epoch_scale: float = 1.0    # of the official schedule by shots (4 shots: 100 epochs)
    job_test_per_class: int = 40
    job_pretrained: str = "toyworld"
    job_processes: bool = True      # also as processes (coop run / python -m coop.bench.official)
    extra: dict[str, Any] = field(default_factory=dict)


QUICK = dict(measured_classes=(10, 100), reps=2, official_reps=1, fused_epochs=4, memory_classes=(5, 10),
             job_epoch_scale=0.25, job_test_per_class=10)


def class_names(n: int) -> list[str]:
    """n distinct class names of 2-3 tokens, like most real ones."""
    words = ["red", "small", "striped", "wild", "old", "round", "dark", "tall", "soft", "bright"]
    things = ["fox", "boat", "lamp", "shell", "bird", "chair", "leaf", "stone", "cup", "drum"]
    return [f"{words[i % 10]} {things[i // 10 % 10]} {i // 100}" if i >= 100 else f"{words[i % 10]} {things[i // 10]}"
            for i in range(n)]


def median_time(fn: Callable[[], Any], reps: int, warmup: int = 1) -> float:
    """Median wall time of `fn` over `reps` runs after `warmup` runs (seconds)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, reps)):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def frozen(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_bench_model(name: str) -> tuple[nn.Module, Any]:
    """An open_clip model with random weights (nothing is downloaded) and its tokenizer."""
    import logging

    import open_clip

    import coop.models.clip  # noqa: F401 - registers the toy configs

    logging.getLogger().setLevel(logging.ERROR)  # "no pretrained weights loaded": on purpose
    torch.manual_seed(0)
    return frozen(open_clip.create_model(name, pretrained=None)), open_clip.get_tokenizer(name)


def image_size(model: nn.Module) -> int:
    size = model.visual.image_size
    return size[0] if isinstance(size, (tuple, list)) else int(size)
