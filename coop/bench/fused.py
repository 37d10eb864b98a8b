"""Three seeds fused against one after another: as `coop run` processes, in one process, training loops only; and
Fig. 3's four CoOp variants of a cell in one `coop run --variants` process against one process per variant."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from coop.bench.common import BenchConfig, class_names, median_time
from coop.models.prompt import CoOpClassifier, FusedCoOp, PromptLearner
from coop.train import SeedTraining, TrainConfig, fit, fit_seeds
from coop.views import ViewData


def _coop_run(cfg: BenchConfig, folder: Path, seeds: list[int], *args: str) -> None:
    """One `coop run` process of CoOp on the bench's toy_shapes cell under `folder` (its data and caches), these
    seeds, with `args` (--out, --set / --variant / --variants)."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "coop.cli", "--threads", str(torch.get_num_threads()), "run",
           "--dataset", "toy_shapes", "--method", "coop", "--shots", str(cfg.fused_shots),
           "--seed", *map(str, seeds), "--backbone", cfg.toy_model, "--pretrained", "random",
           "--device", "cpu", "--data-root", str(folder / "data"), "--cache-dir", str(folder / "cache"), *args]
    subprocess.run(cmd, check=True, capture_output=True)


def fused_vs_separate_runs(cfg: BenchConfig, folder: Path) -> dict[str, float]:
    """Three seeds as three separate `coop run` processes (the official way: one run per seed) vs one
    `coop run --seed 1 2 3` process (fused), on a generated toy dataset (toy_shapes, 10 classes) with the
    caches built beforehand, so both read the same manifests, test features and views. Also the same runs
    inside this process (no start-up): each seed's run loads CLIP and its caches, trains, evaluates and writes."""
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
        _coop_run(cfg, folder, run_seeds_, "--out", out, *[a for k, v in params.items() for a in ("--set", f"{k}={v}")])

    t_sep = median_time(lambda: [cli([s]) for s in seeds], 1, warmup=0)
    t_fused = median_time(lambda: cli(seeds), 1, warmup=0)
    t_sep_in = median_time(lambda: [run_seeds([s], out, **kw) for s in seeds], cfg.official_reps, warmup=0)
    t_fused_in = median_time(lambda: run_seeds(seeds, out, **kw), cfg.official_reps, warmup=0)
    return {"separate_runs_s": t_sep, "fused_run_s": t_fused, "speedup": t_sep / t_fused,
            "in_process_separate_runs_s": t_sep_in, "in_process_fused_run_s": t_fused_in,
            "in_process_speedup": t_sep_in / t_fused_in}


# Fig. 3's CoOp variants: class token at the end or in the middle, unified or class-specific context
FIG3_VARIANTS = {"end": {}, "middle": {"class_token_position": "middle"}, "end_csc": {"csc": True},
                 "middle_csc": {"class_token_position": "middle", "csc": True}}


def fused_variants_vs_separate_runs(cfg: BenchConfig, folder: Path) -> dict[str, float]:
    """Fig. 3's four CoOp variants of one cell, every seed of each: one `coop run --seed ...` process per variant
    (fuse_variants off: seeds fused, variants apart) vs one `coop run --variants` process (the workflow's
    run_variants_* job), on a generated toy dataset with the caches built beforehand (both read the same)."""
    import json

    from coop.data.toyworld import generate
    from coop.experiment import run_variants

    generate("toy_shapes", folder / "data", n_train=cfg.fused_shots, n_val=4, n_test=10, seed=0)
    seeds = list(range(1, cfg.fused_seeds + 1))
    base = {"epochs": cfg.fused_epochs, "n_ctx": cfg.n_ctx, "batch_size": cfg.batch_size}
    variants = {v: {**base, **p} for v, p in FIG3_VARIANTS.items()}
    out = str(folder / "runs" / "{variant}" / "seed{seed}")
    run_variants(variants, seeds, out, dataset="toy_shapes", method="coop", shots=cfg.fused_shots,
                 backbone=cfg.toy_model, data_root=folder / "data", cache_dir=folder / "cache", device="cpu",
                 log=lambda s: None)  # warm-up; builds the manifests, test features and view caches

    def separate() -> None:
        for v, params in variants.items():
            _coop_run(cfg, folder, seeds, "--variant", v, "--out", out.replace("{variant}", v),
                      *[a for k, x in params.items() for a in ("--set", f"{k}={str(x).lower()}")])

    t_sep = median_time(separate, 1, warmup=0)
    t_fused = median_time(lambda: _coop_run(cfg, folder, seeds, "--variants", json.dumps(variants), "--out", out), 1,
                          warmup=0)
    return {"variants": len(variants), "separate_runs_s": t_sep, "fused_run_s": t_fused, "speedup": t_sep / t_fused}


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
