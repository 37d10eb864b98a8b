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
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from coop.bench.common import BenchConfig, image_size, load_bench_model, median_time
from coop.bench.fused import fused_variants_vs_separate_runs, fused_vs_separate, fused_vs_separate_runs
from coop.bench.memory import activation_memory
from coop.bench.step import cached_eval, coop_step, image_step, text_eval
from coop.bench.table import format_table
from coop.bench.whole_job import whole_job
from coop.io import write_json


def run_bench(cfg: BenchConfig, out: str | Path | None = None, log=print) -> dict[str, Any]:
    """Measure everything; print the table; write the JSON to `out` (when given); return the record."""
    from coop.provenance import device_name, peak_memory_mb

    start = time.perf_counter()
    model, tok = load_bench_model(cfg.model)
    size = cfg.image_size or image_size(model)
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
    with tempfile.TemporaryDirectory() as tmp:
        fused["variants"] = fused_variants_vs_separate_runs(cfg, Path(tmp))
    log(f"fused seeds and variants done ({time.perf_counter() - start:.0f} s)")
    with tempfile.TemporaryDirectory() as tmp:
        job = whole_job(cfg, Path(tmp), log=log)
    log(f"whole job done ({time.perf_counter() - start:.0f} s)")
    memory = activation_memory(model, tok, cfg)
    record = {
        "coop_step_speedup_10cls": steps[10]["speedup"] if 10 in steps else None,
        "coop_step_speedup_100cls": steps[100]["speedup"] if 100 in steps else steps[top]["speedup"],
        "coop_step_speedup_1000cls": steps[1000]["speedup"] if 1000 in steps else None,
        "eval_speedup": evaluation["speedup"],
        "fused_seeds_speedup": fused["speedup"],
        "fused_training_loop_speedup": fused["loop_speedup"],
        "fused_variants_speedup": fused["variants"]["speedup"],
        "whole_job_speedup": job["processes"]["speedup"] if "processes" in job else job["in_process"]["speedup"],
        "whole_job_in_process_speedup": job["in_process"]["speedup"],
        "coop_step_speedup_incl_views": job["per_step"]["speedup_incl_views"],
        "whole_job": job,
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
