"""The training loop shared by every method that learns a few parameters on top of frozen CLIP.

SGD with momentum, one constant warm-up epoch, then cosine annealing stepped once per epoch (docs/PROTOCOL.md).
Training saves a checkpoint every few epochs and continues from it when restarted (time limit, preemption,
a crash); the continued run is identical to an uninterrupted one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from coop.features import rebuilt
from coop.io import atomic_path, torch_load_reason
from coop.progress import Progress
from coop.schedule import epochs_for_shots, resolve_epochs  # noqa: F401 - the schedule, read here

from coop.defaults import PRECISIONS  # noqa: E402


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite (typically pure fp16 overflowing)."""


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used. `why`: what is wrong with it (no fix); `crafted`: it is a pickle
    that refers to code (not a truncated or garbled checkpoint but a file made to run something): refused, kept."""

    def __init__(self, message: str, why: str = "", crafted: bool = False):
        super().__init__(message)
        self.why, self.crafted = why or message, crafted


@dataclass
class TrainConfig:
    epochs: int
    batch_size: int = 32
    lr: float = 0.002
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: int = 1
    warmup_lr: float = 1e-5
    precision: str = "fp32"     # fp32 | amp (bf16 autocast where supported, else fp16 + loss scaling) | fp16 (pure)
    num_workers: int = 0


@dataclass
class Checkpointing:
    """Where and what `fit` checkpoints: `module`'s state (the learned prompt, head or image tower) plus the
    optimizer, loss scaler and random generators, so that a continued run equals an uninterrupted one."""
    path: Path
    module: nn.Module
    key: str            # identity of the run (config, seed, data); a checkpoint of another run is not used
    every: int = 0      # epochs between saves; 0: a tenth of the run


CHECKPOINT_FORMAT = 1


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Atomic torch.save: a crash while writing leaves the previous checkpoint intact."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True`: tensors and plain containers only, never arbitrary objects."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling refusal or corruption means: not a usable checkpoint
        why = f"not a valid training checkpoint ({torch_load_reason(e)})"
        raise CheckpointError(f"{path} is {why}; it is loaded weights-only and never unpickled. Delete it to train "
                              "from scratch.", why, crafted=torch_load_reason(e).startswith("a pickle that holds")
                              ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        why = f"not a coop training checkpoint (format {CHECKPOINT_FORMAT})"
        raise CheckpointError(f"{path} is {why}. Delete it to train from scratch.", why)
    return state


_STATE_KEYS = {"key": str, "epoch": int, "history": list, "module": dict, "optimizer": dict, "scaler": dict,
               "rng": torch.Tensor, "generator": torch.Tensor}


def _check_state(state: dict[str, Any]) -> None:
    """A CheckpointError unless `state` has every entry `_resume` restores, of the right kind."""
    bad = [k for k, kind in _STATE_KEYS.items() if not isinstance(state.get(k), kind)]
    if bad:
        raise CheckpointError(f"checkpoint lacks or has malformed {bad}", f"it lacks or has malformed {bad}")


def lr_at_epoch(epoch: int, cfg: TrainConfig) -> float:
    """Constant warm-up for the first epochs, then lr/2 * (1 + cos(pi * e / T)) with e counted after warm-up."""
    if epoch < cfg.warmup_epochs:
        return cfg.warmup_lr
    e = epoch - cfg.warmup_epochs
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * e / cfg.epochs))


def n_batches(n: int, batch_size: int) -> int:
    """How many batches `_batches` makes of `n` items (the same drop_last rule)."""
    return n // batch_size if n >= batch_size else (1 if n else 0)


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    # The official loader drops the last incomplete batch only when there is at least one full batch.
    drop_last = n >= batch_size
    stop = (n // batch_size) * batch_size if drop_last else n
    return [order[i:i + batch_size] for i in range(0, stop, batch_size)]


def autocast_dtype(device_type: str) -> torch.dtype:
    """The autocast dtype of precision=amp: bf16 on the CPU and on GPUs that support it, else fp16 (which then
    needs loss scaling)."""
    if device_type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def effective_precision(precision: str, device: str | torch.device) -> str:
    """What `precision` means on `device`, for metrics.json: fp32, amp-bf16, amp-fp16 or fp16."""
    if precision != "amp":
        return precision
    return "amp-bf16" if autocast_dtype(torch.device(device).type) == torch.bfloat16 else "amp-fp16"


def _get_batch(dataset, idx: torch.Tensor, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) of the rows `idx`: one gather for cached views (`dataset.batch`), else item by item."""
    if hasattr(dataset, "batch"):
        x, y = dataset.batch(idx)
        return x.to(device, dtype), y.to(device)
    samples = [dataset[int(i)] for i in idx]
    x = torch.stack([s[0] for s in samples]).to(device, dtype)
    return x, torch.tensor([s[1] for s in samples], device=device)


def fit(model: nn.Module, params: list[nn.Parameter], dataset: torch.utils.data.Dataset, cfg: TrainConfig,
        device: str | torch.device = "cpu", generator: torch.Generator | None = None,
        log=print, checkpoint: Checkpointing | None = None) -> list[float]:
    """Train `params` of `model` (model(images) -> logits) with cross-entropy; return the mean loss per epoch.

    `dataset` yields (image tensor, label); its random augmentation draws from torch's global RNG, so seed
    that (and `generator`, which orders the batches) for a reproducible run. A dataset with `set_epoch` (the
    view cache, coop.views.ViewData) is told the epoch before each one, and one with `batch` gives whole batches. With `checkpoint`, the state is
    saved every few epochs and after the last one, and a matching checkpoint found at the start is continued.
    """
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {cfg.precision!r}")
    generator = generator or torch.Generator().manual_seed(0)
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    device_type = torch.device(device).type
    use_amp = cfg.precision == "amp"
    amp_dtype = autocast_dtype(device_type)
    scaler = torch.amp.GradScaler(device_type, enabled=use_amp and amp_dtype == torch.float16)
    input_dtype = torch.float16 if cfg.precision == "fp16" else torch.float32
    history: list[float] = []
    start = _resume(checkpoint, cfg, optimizer, scaler, generator, history, log) if checkpoint else 0
    every = (checkpoint.every or max(1, cfg.epochs // 10)) if checkpoint else 0
    per_epoch = n_batches(len(dataset), cfg.batch_size)
    progress = _progress(per_epoch * (cfg.epochs - start), log)
    for epoch in range(start, cfg.epochs):
        for group in optimizer.param_groups:
            group["lr"] = lr_at_epoch(epoch, cfg)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        total, count = 0.0, 0
        for idx in _batches(len(dataset), cfg.batch_size, generator):
            x, y = _get_batch(dataset, idx, device, input_dtype)
            with torch.autocast(device_type, dtype=amp_dtype, enabled=use_amp):
                loss = F.cross_entropy(model(x).float(), y)
            _check_finite(loss, epoch, cfg)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total += loss.item() * len(idx)
            count += len(idx)
            if progress:
                progress.update(1, extra=f"epoch {epoch + 1}/{cfg.epochs}, batch loss {loss.item():.4f}")
        history.append(total / max(count, 1))
        _end_epoch(epoch, cfg, history, log, checkpoint, every, optimizer, scaler, generator)
    if progress and start < cfg.epochs:
        progress.done(extra=f"final loss {history[-1]:.4f}")
    return history


def _progress(total_steps: int, log) -> Progress | None:
    """Rate and ETA of a training loop in optimizer steps (steady in time however long an epoch is); None
    without a log."""
    return Progress("training", total=total_steps, unit="steps", log=log) if log else None


def _check_finite(loss: torch.Tensor, epoch: int, cfg: TrainConfig) -> None:
    if not torch.isfinite(loss):
        raise NonFiniteLossError(
            f"Loss is {loss.item()} at epoch {epoch} (precision={cfg.precision}). Pure fp16 overflowed or "
            "the learning rate is too high: use precision=amp or fp32, or lower lr."
        )


def _end_epoch(epoch: int, cfg: TrainConfig, history: list[float], log, checkpoint: Checkpointing | None,
               every: int, optimizer, scaler, generator: torch.Generator) -> None:
    """Log the epoch's loss now and then; checkpoint every `every` epochs and after the last."""
    if log and (epoch == 0 or (epoch + 1) % max(1, cfg.epochs // 10) == 0 or epoch + 1 == cfg.epochs):
        log(f"epoch {epoch + 1}/{cfg.epochs} lr {lr_at_epoch(epoch, cfg):.2e} loss {history[-1]:.4f}")
    if checkpoint and ((epoch + 1) % every == 0 or epoch + 1 == cfg.epochs):
        save_checkpoint(checkpoint.path, _state(checkpoint, epoch + 1, optimizer, scaler, generator, history))


@dataclass
class SeedTraining:
    """One seed of a fused training (`fit_seeds`): its parameters, data, batch order and checkpoint."""
    params: list[nn.Parameter]
    dataset: Any                   # with set_epoch / batch, e.g. coop.views.ViewData
    generator: torch.Generator     # orders this seed's batches, as `fit`'s generator
    checkpoint: Checkpointing | None = None
    log: Any = print


def fit_seeds(losses: Callable[[list[int], list[torch.Tensor], list[torch.Tensor]], list[torch.Tensor]],
              seeds: list[SeedTraining], cfg: TrainConfig, device: str | torch.device = "cpu") -> list[list[float]]:
    """Train several seeds in one loop: at each step, `losses(active, xs, ys)` returns the mean cross-entropy
    of each active seed on its own batch, computed together (e.g. one text-encoder pass over every seed's
    prompts). Their SUM is backpropagated; a seed's parameters appear only in its own loss, so each seed gets
    exactly its own gradient, and its own optimizer (SGD momentum and weight decay are per element), schedule,
    batch order and checkpoint: each seed follows `fit` of that seed alone. A seed with fewer batches in an
    epoch, or resumed from a later checkpoint, sits out the steps it does not have. Returns the histories."""
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {cfg.precision!r}")
    device_type = torch.device(device).type
    use_amp = cfg.precision == "amp"
    amp_dtype = autocast_dtype(device_type)
    input_dtype = torch.float16 if cfg.precision == "fp16" else torch.float32
    optimizers = [torch.optim.SGD(s.params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
                  for s in seeds]
    # One scaler for the summed loss (fp16 autocast only); a seed's overflow then skips every seed's step.
    scaler = torch.amp.GradScaler(device_type, enabled=use_amp and amp_dtype == torch.float16)
    histories: list[list[float]] = [[] for _ in seeds]
    starts = [_resume(s.checkpoint, cfg, opt, scaler, s.generator, h, s.log) if s.checkpoint else 0
              for s, opt, h in zip(seeds, optimizers, histories)]
    every = [(s.checkpoint.every or max(1, cfg.epochs // 10)) if s.checkpoint else 0 for s in seeds]
    first = min(starts, default=cfg.epochs)
    # one line for the fused loop (its seeds share the job's log): a step trains every seed that has a batch
    sizes = [n_batches(len(s.dataset), cfg.batch_size) for s in seeds]
    steps = sum(max((sizes[k] for k in range(len(seeds)) if starts[k] <= e), default=0)
                for e in range(first, cfg.epochs))
    progress = _progress(steps, seeds[0].log if seeds else None)
    for epoch in range(first, cfg.epochs):
        active = [k for k in range(len(seeds)) if starts[k] <= epoch]
        orders = {}
        for k in active:
            for group in optimizers[k].param_groups:
                group["lr"] = lr_at_epoch(epoch, cfg)
            seeds[k].dataset.set_epoch(epoch)
            orders[k] = _batches(len(seeds[k].dataset), cfg.batch_size, seeds[k].generator)
        totals, counts = dict.fromkeys(active, 0.0), dict.fromkeys(active, 0)
        for step in range(max((len(o) for o in orders.values()), default=0)):
            now = [k for k in active if step < len(orders[k])]
            batches = [_get_batch(seeds[k].dataset, orders[k][step], device, input_dtype) for k in now]
            with torch.autocast(device_type, dtype=amp_dtype, enabled=use_amp):
                step_losses = losses(now, [b[0] for b in batches], [b[1] for b in batches])
            for loss in step_losses:
                _check_finite(loss, epoch, cfg)
            for k in now:
                optimizers[k].zero_grad(set_to_none=True)
            scaler.scale(torch.stack(step_losses).sum()).backward()
            for k in now:
                scaler.step(optimizers[k])
            scaler.update()
            for k, loss, b in zip(now, step_losses, batches):
                totals[k] += loss.item() * len(b[1])
                counts[k] += len(b[1])
            if progress:
                mean = sum(loss.item() for loss in step_losses) / len(step_losses)
                progress.update(1, extra=f"epoch {epoch + 1}/{cfg.epochs}, {len(now)} seeds, "
                                f"mean batch loss {mean:.4f}")
        for k in active:
            histories[k].append(totals[k] / max(counts[k], 1))
            _end_epoch(epoch, cfg, histories[k], seeds[k].log, seeds[k].checkpoint, every[k], optimizers[k],
                       scaler, seeds[k].generator)
    if progress and steps:
        progress.done(extra=f"{len(seeds)} seeds")
    return histories


def _state(ck: Checkpointing, epoch: int, optimizer, scaler, generator: torch.Generator,
           history: list[float]) -> dict[str, Any]:
    state = {
        "format": CHECKPOINT_FORMAT, "key": ck.key, "epoch": epoch, "history": list(history),
        "module": {k: v.detach().cpu().clone() for k, v in ck.module.state_dict().items()},
        "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
        "rng": torch.get_rng_state(), "generator": generator.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def _resume(ck: Checkpointing, cfg: TrainConfig, optimizer, scaler, generator: torch.Generator,
            history: list[float], log) -> int:
    """Restore a matching checkpoint; return the epoch to continue from (0 when there is none)."""
    if not Path(ck.path).exists():
        return 0
    try:
        state = load_checkpoint(ck.path)
        _check_state(state)
    except CheckpointError as e:
        if e.crafted:  # made to run code when unpickled: reported, kept for inspection, never overwritten
            raise
        # Truncated (a full disk, a killed copy) or garbled: training starts again and ends where a clean run
        # does (seeded), writing a new checkpoint in its place.
        if log:
            log(rebuilt(ck.path, f"{e.why}; training from scratch"))
        return 0
    if state["key"] != ck.key or state["epoch"] > cfg.epochs:
        if log:
            log(f"ignoring {ck.path}: it belongs to another run (config, seed or data changed); training from scratch")
        return 0
    ck.module.load_state_dict(state["module"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"])
    generator.set_state(state["generator"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    history.extend(state["history"])
    if log:
        log(f"resumed from {ck.path} at epoch {state['epoch']}/{cfg.epochs}")
    return int(state["epoch"])
