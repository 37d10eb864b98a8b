"""`coop bench`: our CoOp formulation against the official one, side by side in one process, on the CPU.

Official formulation (the CoOp code): the text encoder runs on all 77 tokens of every class prompt at every
training step, the image encoder on the step's 32 augmented images, the class text features are recomputed for
every test batch (of 100) next to the test images' features, everything in fp32, and each seed is its own run.
Ours: the text encoder stops at the longest end-of-text token and encodes the positions every prompt shares
(SOS + the unified context) once (both exact), training reads the augmented-view cache
(no image encoder in the step), evaluation reads the cached test features and encodes the classes once, and the
seeds of a cell train fused. Step and evaluation timings use an RN50-size text encoder (open_clip
`RN50-quickgelu`, random weights); fused seeds use the toy backbone, whose small size makes it overhead-bound
like a small dataset on a GPU. Times are medians of repetitions after warm-up, measured with perf_counter.
"""
from __future__ import annotations

import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from coop.io import write_json
from coop.models.prompt import CoOpClassifier, FusedCoOp, PromptLearner
from coop.train import SeedTraining, TrainConfig, fit, fit_seeds
from coop.views import ViewData

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
    extra: dict[str, Any] = field(default_factory=dict)


QUICK = dict(measured_classes=(10, 100), reps=2, official_reps=1, fused_epochs=4, memory_classes=(5, 10))


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


# ------------------------------------------------------------------------------------------- a CoOp step
def coop_step(model: nn.Module, tokenizer, n_cls: int, ours: bool, n_ctx: int = 16,
              batch: int = 32) -> Callable[[], None]:
    """One CoOp training step on `batch` image features: prompts -> text encoder (ours: cut at the last EOT, the
    shared prefix once; official: all 77 tokens of every prompt) -> logits -> cross-entropy -> backward -> SGD
    step. The official step adds the image encoder (`image_step`)."""
    torch.manual_seed(0)
    learner = PromptLearner(model, tokenizer, class_names(n_cls), n_ctx=n_ctx)
    clf = CoOpClassifier(model, learner, cut_text=ours, visual=nn.Identity(), share_prefix=ours).train()
    opt = torch.optim.SGD([learner.ctx], lr=0.002, momentum=0.9, weight_decay=5e-4)
    dim = model.text_projection.shape[-1]
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(batch, dim, generator=g), torch.randint(0, n_cls, (batch,), generator=g)

    def step() -> None:
        loss = F.cross_entropy(clf(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def image_step(model: nn.Module, n_images: int, size: int) -> Callable[[], None]:
    """The image encoder (frozen, no grad) on `n_images` images, as the official step runs it."""
    x = torch.randn(n_images, 3, size, size, generator=torch.Generator().manual_seed(0))

    def run() -> None:
        with torch.no_grad():
            model.encode_image(x)

    return run


def text_eval(model: nn.Module, tokenizer, n_cls: int, ours: bool, n_ctx: int = 16) -> Callable[[], torch.Tensor]:
    """The class text features of a learned prompt, no grad (what evaluation needs)."""
    torch.manual_seed(0)
    learner = PromptLearner(model, tokenizer, class_names(n_cls), n_ctx=n_ctx)
    clf = CoOpClassifier(model, learner, cut_text=ours, visual=nn.Identity(), share_prefix=ours).eval()

    def run() -> torch.Tensor:
        with torch.no_grad():
            return clf.text_features()

    return run


def cached_eval(model: nn.Module, tokenizer, n_cls: int, n_test: int, folder: Path,
                n_ctx: int = 16) -> Callable[[], float]:
    """Our evaluation of one run: read the cached test features (safetensors), encode the classes once (cut),
    cosine logits, accuracy."""
    from coop.data.datasets import Item
    from coop.evaluate import cosine_logits
    from coop.features import load_features, save_features

    dim = model.text_projection.shape[-1]
    rng = np.random.default_rng(0)
    items = [Item(f"img{i}.png", int(i % n_cls), "x") for i in range(n_test)]
    path = folder / "test.safetensors"
    save_features(path, rng.standard_normal((n_test, dim)).astype(np.float32), items, {"part": "test"})
    text = text_eval(model, tokenizer, n_cls, ours=True, n_ctx=n_ctx)
    scale = float(model.logit_scale.exp())

    def run() -> float:
        test = load_features(path, part="test")
        logits = cosine_logits(test.features, text().numpy(), scale)
        return float((logits.argmax(1) == test.labels).mean())

    return run


# -------------------------------------------------------------------------------------------- fused seeds
def fused_vs_separate_runs(cfg: BenchConfig, folder: Path) -> dict[str, float]:
    """Three seeds as three separate `coop run` processes (the official way: one run per seed) vs one
    `coop run --seed 1 2 3` process (fused), on a generated toy dataset (toy_shapes, 10 classes) with the
    caches built beforehand, so both read the same manifests, test features and views. Also the same runs
    inside this process (no start-up): each seed's run loads CLIP and its caches, trains, evaluates and writes."""
    import subprocess
    import sys

    from coop.data.toyworld import generate
    from coop.experiment import run_seeds

    generate("toy_shapes", folder / "data", n_train=cfg.fused_shots, n_val=4, n_test=10, seed=0)
    seeds = list(range(1, cfg.fused_seeds + 1))
    params = {"epochs": cfg.fused_epochs, "n_ctx": cfg.n_ctx, "batch_size": cfg.batch_size}
    kw = dict(dataset="toy_shapes", method="coop", shots=cfg.fused_shots, backbone=cfg.toy_model,
              data_root=folder / "data", cache_dir=folder / "cache", device="cpu", log=lambda s: None, params=params)
    out = str(folder / "runs" / "seed{seed}")
    run_seeds(seeds, out, **kw)  # warm-up; builds the manifests, test features and view caches

    def cli(run_seeds_: list[int]) -> None:
        cmd = [sys.executable, "-m", "coop.cli", "--threads", str(torch.get_num_threads()), "run",
               "--dataset", "toy_shapes", "--method", "coop", "--shots", str(cfg.fused_shots),
               "--seed", *map(str, run_seeds_), "--backbone", cfg.toy_model, "--pretrained", "random",
               "--device", "cpu", "--data-root", str(folder / "data"), "--cache-dir", str(folder / "cache"),
               "--out", out,
               *[a for k, v in params.items() for a in ("--set", f"{k}={v}")]]
        subprocess.run(cmd, check=True, capture_output=True)

    t_sep = median_time(lambda: [cli([s]) for s in seeds], 1, warmup=0)
    t_fused = median_time(lambda: cli(seeds), 1, warmup=0)
    t_sep_in = median_time(lambda: [run_seeds([s], out, **kw) for s in seeds], cfg.official_reps, warmup=0)
    t_fused_in = median_time(lambda: run_seeds(seeds, out, **kw), cfg.official_reps, warmup=0)
    return {"separate_runs_s": t_sep, "fused_run_s": t_fused, "speedup": t_sep / t_fused,
            "in_process_separate_runs_s": t_sep_in, "in_process_fused_run_s": t_fused_in,
            "in_process_speedup": t_sep_in / t_fused_in}


def fused_vs_separate(model: nn.Module, tokenizer, cfg: BenchConfig) -> dict[str, float]:
    """The training loops alone: three seeds (each its own features, init and batch order) trained fused vs
    one after another, in this process."""
    names = class_names(cfg.fused_classes)
    n = cfg.fused_classes * cfg.fused_shots
    dim = model.text_projection.shape[-1]
    seeds = list(range(1, cfg.fused_seeds + 1))
    tcfg = TrainConfig(epochs=cfg.fused_epochs, batch_size=cfg.batch_size)

    def data(seed: int) -> ViewData:
        g = torch.Generator().manual_seed(seed)
        return ViewData(torch.randn(cfg.fused_epochs, n, dim, generator=g), torch.arange(n) % cfg.fused_classes)

    views = {s: data(s) for s in seeds}

    def learner(seed: int) -> PromptLearner:
        torch.manual_seed(seed)
        return PromptLearner(model, tokenizer, names, n_ctx=cfg.n_ctx)

    def separate() -> None:
        for s in seeds:
            lr = learner(s)
            clf = CoOpClassifier(model, lr, visual=nn.Identity()).train()
            fit(clf, [lr.ctx], views[s], tcfg, generator=torch.Generator().manual_seed(s), log=None)

    def fused() -> None:
        learners = [learner(s) for s in seeds]
        f = FusedCoOp(model, learners)
        fit_seeds(f.losses, [SeedTraining([lr.ctx], views[s], torch.Generator().manual_seed(s), None, None)
                             for s, lr in zip(seeds, learners)], tcfg)

    t_sep = median_time(separate, cfg.reps)
    t_fused = median_time(fused, cfg.reps)
    return {"separate_s": t_sep, "fused_s": t_fused, "speedup": t_sep / t_fused}


# ------------------------------------------------------------------------------------------------ memory
def activation_bytes(model: nn.Module, tokenizer, n_cls: int, ours: bool, n_ctx: int = 16,
                     batch: int = 32) -> dict[str, int]:
    """Bytes of the tensors one CoOp training step saves for backward (autograd saved-tensor hooks; unique
    storages, CLIP's frozen weights excluded): as run in fp32, and as they would be in fp16."""
    torch.manual_seed(0)
    learner = PromptLearner(model, tokenizer, class_names(n_cls), n_ctx=n_ctx)
    clf = CoOpClassifier(model, learner, cut_text=ours, visual=nn.Identity(), share_prefix=ours).train()
    weights = {t.untyped_storage().data_ptr() for t in list(model.parameters()) + list(model.buffers())}
    seen: dict[int, tuple[int, bool]] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in weights and ptr not in seen:
            seen[ptr] = (storage.nbytes(), t.dtype == torch.float32)
        return t

    x = torch.randn(batch, model.text_projection.shape[-1])
    y = torch.randint(0, n_cls, (batch,))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = F.cross_entropy(clf(x), y)
    loss.backward()
    fp32 = sum(b for b, _ in seen.values())
    fp16 = sum(b // 2 if is_float else b for b, is_float in seen.values())
    return {"fp32": fp32, "fp16": fp16}


def activation_memory(model: nn.Module, tokenizer, cfg: BenchConfig) -> dict[str, Any]:
    """Activation memory of one CoOp step at `cfg.memory_target` classes (M = cfg.n_ctx), full 77 tokens vs
    cut. Measured at the two `cfg.memory_classes` counts and extrapolated linearly: every class prompt is its own
    row through the text encoder, so the saved tensors grow exactly linearly with the classes."""
    a, b = cfg.memory_classes
    out: dict[str, Any] = {"classes": cfg.memory_target, "n_ctx": cfg.n_ctx, "measured_at": [a, b],
                           "model": cfg.model}
    for ours in (False, True):
        ma, mb = (activation_bytes(model, tokenizer, n, ours, cfg.n_ctx, cfg.batch_size) for n in (a, b))
        for dtype in ("fp32", "fp16"):
            slope = (mb[dtype] - ma[dtype]) / (b - a)
            total = ma[dtype] + slope * (cfg.memory_target - a)
            name = f"{'ours' if ours else 'full77'}_{dtype}"
            out[f"{name}_bytes"] = int(total)
            out[f"{name}_gib"] = round(total / GIB, 3)
    weights = sum(p.numel() for p in model.parameters())
    out["weights_fp16_gib"] = round(weights * 2 / GIB, 3)
    out["weights_fp32_gib"] = round(weights * 4 / GIB, 3)
    return out


# ---------------------------------------------------------------------------------------------- the bench
def run_bench(cfg: BenchConfig, out: str | Path | None = None, log=print) -> dict[str, Any]:
    """Measure everything; print the table; write the JSON to `out` (when given); return the record."""
    from coop.provenance import device_name, peak_memory_mb

    start = time.perf_counter()
    model, tok = load_bench_model(cfg.model)
    size = cfg.image_size or _image_size(model)
    measured = [n for n in cfg.step_classes if n in cfg.measured_classes]
    # Warm-up: the first call of each path pays one-off costs (allocations, thread pools); small sizes will do
    image_step(model, 2, size)()
    for ours in (True, False):
        median_time(coop_step(model, tok, 2, ours, cfg.n_ctx, cfg.batch_size), 1, warmup=1)
    image32 = median_time(image_step(model, cfg.batch_size, size), cfg.official_reps, warmup=0)
    steps: dict[int, dict[str, Any]] = {}
    for n in measured:
        ours = median_time(coop_step(model, tok, n, True, cfg.n_ctx, cfg.batch_size), cfg.reps, warmup=1)
        text77 = median_time(coop_step(model, tok, n, False, cfg.n_ctx, cfg.batch_size), cfg.official_reps,
                             warmup=0)
        steps[n] = {"classes": n, "official_text_s": text77, "official_image_s": image32,
                    "official_s": text77 + image32, "ours_s": ours, "measured": True}
    top = max(measured)
    for n in cfg.step_classes:
        if n not in steps:  # linear in the classes beyond the measured count: each prompt is its own row
            k = n / top
            text77, ours = steps[top]["official_text_s"] * k, steps[top]["ours_s"] * k
            steps[n] = {"classes": n, "official_text_s": text77, "official_image_s": image32,
                        "official_s": text77 + image32, "ours_s": ours, "measured": False}
    for s in steps.values():
        s["speedup"] = s["official_s"] / s["ours_s"]
        s["speedup_incl_view_encoding"] = s["official_s"] / (s["ours_s"] + image32)
    log(f"step timings done ({time.perf_counter() - start:.0f} s)")

    # Evaluation of one run: n_test images in batches of test_batch
    n_batches = -(-cfg.n_test // cfg.test_batch)
    text77_eval = median_time(text_eval(model, tok, cfg.eval_classes, False, cfg.n_ctx), cfg.official_reps)
    image_batch = image32 * cfg.test_batch / cfg.batch_size
    official_eval = n_batches * (text77_eval + image_batch)
    with tempfile.TemporaryDirectory() as tmp:
        ours_eval = median_time(cached_eval(model, tok, cfg.eval_classes, cfg.n_test, Path(tmp), cfg.n_ctx),
                                cfg.reps)
    evaluation = {"classes": cfg.eval_classes, "n_test": cfg.n_test, "test_batch": cfg.test_batch,
                  "official_text_per_batch_s": text77_eval, "official_image_per_batch_s": image_batch,
                  "official_s": official_eval, "official_text_only_s": n_batches * text77_eval,
                  "ours_s": ours_eval, "speedup": official_eval / ours_eval,
                  "speedup_text_only": n_batches * text77_eval / ours_eval}
    log(f"evaluation timings done ({time.perf_counter() - start:.0f} s)")

    toy, toy_tok = load_bench_model(cfg.toy_model)
    loops = fused_vs_separate(toy, toy_tok, cfg)
    with tempfile.TemporaryDirectory() as tmp:
        runs = fused_vs_separate_runs(cfg, Path(tmp))
    fused = {"classes": cfg.fused_classes, "seeds": cfg.fused_seeds, "shots": cfg.fused_shots,
             "epochs": cfg.fused_epochs, "model": cfg.toy_model, **runs,
             "loop_separate_s": loops["separate_s"], "loop_fused_s": loops["fused_s"],
             "loop_speedup": loops["speedup"]}
    log(f"fused seeds done ({time.perf_counter() - start:.0f} s)")
    memory = activation_memory(model, tok, cfg)
    record = {
        "coop_step_speedup_10cls": steps[10]["speedup"] if 10 in steps else None,
        "coop_step_speedup_100cls": steps[100]["speedup"] if 100 in steps else steps[top]["speedup"],
        "coop_step_speedup_1000cls": steps[1000]["speedup"] if 1000 in steps else None,
        "eval_speedup": evaluation["speedup"],
        "fused_seeds_speedup": fused["speedup"],
        "fused_training_loop_speedup": fused["loop_speedup"],
        "steps": [steps[n] for n in cfg.step_classes], "evaluation": evaluation, "fused_seeds": fused,
        "activation_memory": memory,
        "peak_memory": peak_memory_mb(), "device": "cpu", "device_name": device_name("cpu"),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
        "model": cfg.model, "n_ctx": cfg.n_ctx, "batch_size": cfg.batch_size, "reps": cfg.reps,
        "official_reps": cfg.official_reps,
        "config": {k: v for k, v in cfg.__dict__.items()},
    }
    record["wall_seconds"] = round(time.perf_counter() - start, 1)
    log(format_table(record))
    if out:
        write_json(out, record)
        log(f"wrote {out}")
    return record


def _image_size(model: nn.Module) -> int:
    size = model.visual.image_size
    return size[0] if isinstance(size, (tuple, list)) else int(size)


def format_table(r: dict[str, Any]) -> str:
    """The bench record as a Markdown table (what `coop bench` prints and the README shows)."""
    lines = ["| measurement | official | ours | speedup |", "|---|---:|---:|---:|"]
    for s in r["steps"]:
        note = "" if s["measured"] else " (scaled from the largest measured count)"
        lines.append(f"| CoOp step, {s['classes']} classes{note} | {s['official_s']:.3f} s "
                     f"(text {s['official_text_s']:.3f} + image {s['official_image_s']:.3f}) | {s['ours_s']:.3f} s "
                     f"| {s['speedup']:.1f}x |")
    e = r["evaluation"]
    lines.append(f"| evaluation, {e['classes']} classes, {e['n_test']} test images | {e['official_s']:.2f} s "
                 f"(text only: {e['official_text_only_s']:.2f} s) | {e['ours_s']:.3f} s | {e['speedup']:.0f}x "
                 f"(text only: {e['speedup_text_only']:.0f}x) |")
    f = r["fused_seeds"]
    lines.append(f"| {f['seeds']} seeds, 10 classes x {f['shots']} shots, {f['epochs']} epochs ({f['model']}): "
                 f"`coop run` processes | {f['separate_runs_s']:.2f} s (one per seed) | {f['fused_run_s']:.2f} s "
                 f"(one, fused) | {f['speedup']:.1f}x |")
    lines.append(f"| the same runs inside one process | {f['in_process_separate_runs_s']:.3f} s (one after "
                 f"another) | {f['in_process_fused_run_s']:.3f} s (fused) | {f['in_process_speedup']:.1f}x |")
    lines.append(f"| the same, training loops only ({f['classes']} classes) | {f['loop_separate_s']:.3f} s (one after another) | "
                 f"{f['loop_fused_s']:.3f} s (fused) | {f['loop_speedup']:.1f}x |")
    m = r["activation_memory"]
    lines.append(f"| activations, {m['classes']} classes, M={m['n_ctx']} (fp32 / fp16) | {m['full77_fp32_gib']:.2f}"
                 f" / {m['full77_fp16_gib']:.2f} GiB (77 tokens) | {m['ours_fp32_gib']:.2f} / {m['ours_fp16_gib']:.2f}"
                 f" GiB (cut, shared prefix) | {m['full77_fp32_gib'] / m['ours_fp32_gib']:.1f}x |")
    lines.append(f"\n{r['model']} text encoder (random weights), {r['threads']} CPU thread(s), torch {r['torch']}, "
                 f"{r['device_name']}; medians of {r['reps']} (ours) and {r['official_reps']} (official) runs after warm-up; "
                 f"{r['wall_seconds']} s in all.")
    return "\n".join(lines)
