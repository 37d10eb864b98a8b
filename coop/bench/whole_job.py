"""The whole job, ours against the official formulation: every seed of one CoOp cell, from nothing cached to
every seed's test accuracy, on a generated toy dataset with a toy backbone.

Ours is what `coop run --seed 1 2 3` does on empty caches (the pipeline's own code, coop.experiment): load CLIP
and the split once; the few-shot subsets and the test features (encoded once, read by every seed); the view
caches (every epoch's augmented views encoded in large batches, once per seed's subset); one fused training of
all seeds (text encoder cut at the last EOT, shared prefix once), whose method ends with each seed's test logits
from the cached test features (class text features computed once); the metrics and prompts written.
The official formulation (coop.bench.official) runs each seed on its own: load, train with the step's images
encoded per step and the text encoder on 77 tokens, evaluate with the class text features recomputed per test
batch. Both are timed inside this process (phase by phase; CLIP loaded by every official seed, once by ours) and
as the processes a user starts (`coop run` and `python -m coop.bench.official`: start-up and imports included).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from coop.bench.common import BenchConfig
from coop.bench.official import official_run


def _params(cfg: BenchConfig) -> dict[str, Any]:
    return {"n_ctx": cfg.n_ctx, "batch_size": cfg.batch_size, "epoch_scale": cfg.job_epoch_scale}


def _kw(cfg: BenchConfig, folder: Path) -> dict[str, Any]:
    return dict(dataset=cfg.job_dataset, shots=cfg.job_shots, backbone=cfg.toy_model, pretrained=cfg.job_pretrained,
                data_root=folder / "data", params=_params(cfg))


def ours_in_process(cfg: BenchConfig, folder: Path, seeds: list[int]) -> dict[str, Any]:
    """Our fused job in this process, phase by phase, on empty caches under `folder`; also returns the
    learned contexts and accuracies (the fairness check against the official runs)."""
    from coop.data.datasets import get_dataset, read_split
    from coop.experiment import _finish, _prepare, _write_record
    from coop.methods.coop import _train_config
    from coop.methods.registry import get_method
    from coop.models.clip import load_clip

    kw = _kw(cfg, folder)
    cache, t = folder / "cache", {}
    start = time.perf_counter()
    state: dict[str, Any] = {"device": "cpu", "split": read_split(kw["data_root"], get_dataset(cfg.job_dataset)),
                             "clip": load_clip(cfg.toy_model, cfg.job_pretrained, device="cpu")}
    t["load_s"] = time.perf_counter() - start
    mark = time.perf_counter()
    runs = [_prepare(method="coop", seed=s, out=folder / "ours" / f"seed{s}", state=state, cache_dir=cache,
                     device="cpu", log=lambda m: None, **kw) for s in seeds]
    t["prepare_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    tcfg = _train_config(runs[0].ctx, runs[0].cfg)
    for r in runs:
        r.ctx.train_views(tcfg.epochs, r.cfg.crop_min)
    t["views_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    results = get_method("coop").train([r.ctx for r in runs], runs[0].cfg)
    t["train_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    records = [_finish(r, res, keep_checkpoint=False, write=False) for r, res in zip(runs, results)]
    for r, rec in zip(runs, records):
        _write_record(r, rec, keep_checkpoint=False, job_seconds=0.0)
    t["finish_s"] = time.perf_counter() - mark
    t["total_s"] = time.perf_counter() - start
    from safetensors.torch import load_file

    ctxs = [load_file(str(r.out / "prompt.safetensors"))["ctx"] for r in runs]
    steps = [sum(epoch_steps(len(r.ctx.items("train")), tcfg)) for r in runs]
    return {"times": t, "accuracy": [rec["accuracy"] for rec in records], "ctx": ctxs, "steps": steps,
            "epochs": tcfg.epochs, "batch_size": tcfg.batch_size, "n_train": len(runs[0].ctx.items("train")),
            "n_test": len(state["split"].test), "classes": len(state["split"].classnames)}


def epoch_steps(n: int, tcfg) -> list[int]:
    """The steps of one seed's training under `tcfg`, per epoch (coop.train's batching rule)."""
    from coop.train import _batches

    g = torch.Generator().manual_seed(0)
    return [len(_batches(n, tcfg.batch_size, g)) for _ in range(tcfg.epochs)]


def official_in_process(cfg: BenchConfig, folder: Path, seeds: list[int]) -> list[dict[str, Any]]:
    return [official_run(seed=s, test_batch=cfg.test_batch, **_kw(cfg, folder)) for s in seeds]


def _env(threads: int) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def ours_process(cfg: BenchConfig, folder: Path, seeds: list[int], threads: int) -> float:
    """Wall time of `coop run --seed 1 2 3` on empty caches (its own cache folder)."""
    kw = _kw(cfg, folder)
    cmd = [sys.executable, "-m", "coop.cli", "--threads", str(threads), "run", "--dataset", cfg.job_dataset,
           "--method", "coop", "--shots", str(cfg.job_shots), "--seed", *map(str, seeds), "--backbone",
           cfg.toy_model, "--pretrained", cfg.job_pretrained, "--device", "cpu", "--data-root", str(kw["data_root"]),
           "--cache-dir", str(folder / "cache_process"), "--out", str(folder / "ours_process" / "seed{seed}"),
           *[a for k, v in kw["params"].items() for a in ("--set", f"{k}={v}")]]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=_env(threads))
    return time.perf_counter() - start


def official_process(cfg: BenchConfig, folder: Path, seed: int, threads: int) -> tuple[float, dict[str, Any]]:
    """Wall time and record of one official seed run as its own process."""
    kw = _kw(cfg, folder)
    cmd = [sys.executable, "-m", "coop.bench.official", "--dataset", cfg.job_dataset, "--shots", str(cfg.job_shots),
           "--seed", str(seed), "--backbone", cfg.toy_model, "--pretrained", cfg.job_pretrained, "--data-root",
           str(kw["data_root"]), "--test-batch", str(cfg.test_batch), "--threads", str(threads),
           *[a for k, v in kw["params"].items() for a in ("--set", f"{k}={v}")]]
    start = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=_env(threads))
    return time.perf_counter() - start, json.loads(out.stdout.strip().splitlines()[-1])


def whole_job(cfg: BenchConfig, folder: Path, log=print) -> dict[str, Any]:
    """Both formulations' whole job, in this process and as processes; raises if they do not train the same
    number of steps at the same batch size and epochs."""
    from coop.data.toyworld import generate

    folder = Path(folder)
    generate(cfg.job_dataset, folder / "data", n_train=cfg.job_shots, n_val=min(4, cfg.job_shots),
             n_test=cfg.job_test_per_class, seed=0)
    seeds = list(range(1, cfg.fused_seeds + 1))
    threads = torch.get_num_threads()
    ours = ours_in_process(cfg, folder, seeds)
    log(f"whole job, ours in process: {ours['times']['total_s']:.1f} s")
    official = official_in_process(cfg, folder, seeds)
    log(f"whole job, official in process: {sum(o['total_s'] for o in official):.1f} s")
    steps_ours = sum(ours["steps"])
    for o in official:
        if (o["steps"], o["epochs"], o["batch_size"]) != (steps_ours // len(seeds), ours["epochs"], ours["batch_size"]):
            raise RuntimeError(f"the formulations train different things: official seed {o['seed']} took "
                               f"{o['steps']} steps of {o['batch_size']} over {o['epochs']} epochs, ours "
                               f"{ours['steps']} steps of {ours['batch_size']} over {ours['epochs']} epochs")
    rec: dict[str, Any] = {
        "dataset": cfg.job_dataset, "classes": ours["classes"], "shots": cfg.job_shots, "seeds": len(seeds),
        "epochs": ours["epochs"], "epoch_scale": cfg.job_epoch_scale, "batch_size": ours["batch_size"],
        "steps_per_seed": ours["steps"][0], "n_train": ours["n_train"], "n_test": ours["n_test"],
        "test_batch": cfg.test_batch, "model": cfg.toy_model, "pretrained": cfg.job_pretrained, "threads": threads,
    }
    o_sum = {k: sum(o[k] for o in official) for k in ("load_s", "train_s", "eval_s", "total_s")}
    rec["in_process"] = {"ours": ours["times"], "official": o_sum,
                         "official_per_seed": [{k: o[k] for k in ("seed", "load_s", "train_s", "eval_s", "total_s")}
                                               for o in official],
                         "speedup": o_sum["total_s"] / ours["times"]["total_s"]}
    n_steps = steps_ours  # all seeds' steps, the same count in both formulations
    step_ours, views_per_step = ours["times"]["train_s"] / n_steps, ours["times"]["views_s"] / n_steps
    step_official = o_sum["train_s"] / n_steps
    rec["per_step"] = {"official_s": step_official, "ours_s": step_ours, "ours_views_s": views_per_step,
                       "ours_incl_views_s": step_ours + views_per_step, "speedup": step_official / step_ours,
                       "speedup_incl_views": step_official / (step_ours + views_per_step)}
    rec["fairness"] = {"steps_ours": ours["steps"], "steps_official": [o["steps"] for o in official],
                       "accuracy_ours": ours["accuracy"], "accuracy_official": [o["accuracy"] for o in official],
                       "max_ctx_diff": max(float((a - b["ctx"]).abs().max()) for a, b in zip(ours["ctx"], official))}
    if cfg.job_processes:
        t_ours = ours_process(cfg, folder, seeds, threads)
        per_seed = [official_process(cfg, folder, s, threads)[0] for s in seeds]
        rec["processes"] = {"ours_s": t_ours, "official_s": sum(per_seed), "official_per_seed_s": per_seed,
                            "speedup": sum(per_seed) / t_ours}
        log(f"whole job as processes: ours {t_ours:.1f} s, official {sum(per_seed):.1f} s")
    return rec


def main(argv: list[str] | None = None) -> None:
    """`python -m coop.bench.whole_job [--quick] [--threads N]`: the whole-job rows alone (JSON to --out)."""
    import argparse
    import tempfile

    from coop.bench.common import QUICK
    from coop.bench.table import whole_job_rows
    from coop.io import write_json

    p = argparse.ArgumentParser(prog="python -m coop.bench.whole_job", description="coop bench's whole job alone")
    p.add_argument("--quick", action="store_true", help="a quarter of the epochs, 10 test images per class")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="also write the record as JSON")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rec = whole_job(BenchConfig(**(QUICK if a.quick else {})), Path(tmp))
    rec["wall_seconds"] = round(time.perf_counter() - start, 1)
    print("\n".join(["| measurement | official | ours | speedup |", "|---|---:|---:|---:|", *whole_job_rows(rec)]))
    print(f"fairness: {rec['fairness']}; {rec['wall_seconds']} s in all")
    if a.out:
        write_json(a.out, rec)


if __name__ == "__main__":
    main()
