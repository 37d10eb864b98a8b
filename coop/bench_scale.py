"""Scale benchmark: an ImageNet-shaped sweep cell through the real workflow, each job's measured peak memory,
disk and time beside what the resource model (coop.resources, coop.job_sizes) asks for it.

    python -m coop.bench_scale                 # 1,000 classes x 16 shots, 3 fused seeds (a few minutes, 2 cores)
    python -m coop.bench_scale --classes 100   # smaller

What runs: a synthetic dataset of the config's own (`datasets:`, split_json) with 1,000 classes, 16 training,
4 val and 5 test images per class (small PNGs), a tiny ViT with ImageNet-backbone-sized features (dimension 1,024,
random weights), and the workflow (`snakemake --cores 1`, one job at a time) making the test features, the
zero-shot run and one fused CoOp job of three seeds at 16 shots (views built, trained, evaluated). Epochs are cut
to `--epochs` (default 2) and the batch raised to `--batch-size` (default 512) so that it runs on a laptop CPU:
the text encoder runs over all 1,000 class prompts at every step. Each job's peak RSS and wall time are Snakemake's
benchmark records of it (`results/benchmarks/`, psutil polling of the job's processes); its disk is the size
of the files it wrote.

The requests are the model's for the same jobs with a device profile measured here first (`calibrate`: the
base memory and start-up time of a process that loaded the backbone, the text encoder's FLOP/s, the seconds of
decoding and augmenting one image), in place of the GPU profile a cluster run uses: the comparison checks the
model's structure (what grows with classes, images, epochs, seeds), not the GPU constants. Memory and disk
asked must cover the measured peak and stay within 2x of it; the time line compares the modelled minutes
(before the margin) with the measured ones.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DIM, SIZE = 1024, 32


def make_dataset(root: Path, classes: int, train: int, val: int, test: int) -> None:
    """root/scale/{images/..., split.json}: synthetic PNGs, a colour per class and noise per image."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = root / "scale"
    split: dict[str, list] = {"train": [], "val": [], "test": []}
    for c in range(classes):
        (folder / "images" / f"c{c:04d}").mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 256, 3)
        for part, n in (("train", train), ("val", val), ("test", test)):
            for i in range(n):
                pixels = np.clip(base + rng.normal(0, 40, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
                rel = f"c{c:04d}/{part}{i:02d}.png"
                Image.fromarray(pixels).save(folder / "images" / rel)
                split[part].append([rel, c, f"class {c}"])
    (folder / "split.json").write_text(json.dumps(split))


def bench_config(work: Path, model: Path, a: argparse.Namespace) -> dict:
    return {
        "data_root": str(work / "data"),
        "datasets": {"scale": {"folder": "scale", "layout": "split_json", "split_file": "split.json",
                               "image_dir": "images", "template": "a photo of a {}."}},
        "backbones": {"tiny": {"model": str(model), "pretrained": "random"}},
        "methods": {"zeroshot": {"default": {}},
                    "coop": {"m16": {"n_ctx": 16, "epochs": a.epochs, "batch_size": a.batch_size, "crop_min": 1.0}}},
        "experiments": {"fewshot": {"datasets": ["scale"], "backbones": ["tiny"], "shots": [a.shots],
                                    "runs": {"zeroshot": "zeroshot/default", "coop": "coop/m16"}}},
        "seeds": list(a.seeds), "threads_per_job": a.threads, "fuse_seeds": True, "cluster": {"device": "cpu"},
    }


CALIBRATE = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
from PIL import Image
from coop.models import load_clip
from coop.models.transforms import train_transform
from coop.models.text import encode_texts
from coop.resources import backbone_shape
model, threads, listing = sys.argv[1], int(sys.argv[2]), sys.argv[3]
paths = open(listing).read().split("\n")
n_img = len(paths)
torch.set_num_threads(threads)
clip = load_clip(model, "random")
startup = time.perf_counter() - t0
# peak RSS of this process image (VmHWM: ru_maxrss would keep the forking parent's peak across exec)
base = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
b = backbone_shape(model)
prompts = ["X " * 16 + f"class {i}." for i in range(256)]  # a CoOp prompt's length: 16 context tokens + name
encode_texts(clip.model, clip.tokenizer, prompts, cut=True)  # warm-up
t = time.perf_counter(); reps = 3
for _ in range(reps):
    encode_texts(clip.model, clip.tokenizer, prompts, cut=True)
text_s = (time.perf_counter() - t) / reps
tokens = int(clip.tokenizer(prompts).argmax(-1).max()) + 1
flops = b.text_flops(len(prompts), tokens) / text_s  # forward FLOP/s (the model counts a step as 3 forwards)
tf = train_transform(clip.preprocess, 1.0)
t = time.perf_counter()
for p in paths:
    tf(Image.open(p).convert("RGB"))
prep = (time.perf_counter() - t) / n_img
print(json.dumps({"base_mb": base - b.params * 4 / 2**20, "startup_s": startup, "flops": flops, "prep_s": prep}))
"""


def calibrate(model: Path, threads: int, images: list[Path]):
    """The CPU profile of this machine, measured in a child process (see the module docstring)."""
    from coop.resources import Device

    listing = model.with_name("calibration-images.txt")
    listing.write_text("\n".join(map(str, images)))
    out = subprocess.run([sys.executable, "-c", CALIBRATE, str(model), str(threads), str(listing)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"calibration failed:\n{out.stderr[-3000:]}")
    m = json.loads(out.stdout.strip().splitlines()[-1])
    return Device("cpu-measured", flops=m["flops"], base_mb=m["base_mb"], startup_s=m["startup_s"],
                  gpu_base_mb=0, prep_s=m["prep_s"]), m


def _bench(path: Path) -> dict:
    """Snakemake's benchmark record of a job: {"s": seconds, "max_rss": MB, ...}."""
    head, row = path.read_text().splitlines()[:2]
    return {k: (float(v) if v not in ("-", "NA", "") else 0.0) for k, v in zip(head.split("\t"), row.split("\t"))
            if k != "h:m:s"}


def _size_mb(paths) -> float:
    return sum(p.stat().st_size for path in paths for p in ([path] if path.is_file() else path.rglob("*"))
               if p.is_file()) / 2 ** 20


def run(a: argparse.Namespace) -> dict:
    from coop import store
    from coop.data.datasets import register_datasets
    from coop.job_sizes import JobSizes

    from coop.bench_views import tiny_config

    work = Path(a.dir or tempfile.mkdtemp(prefix="coop-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model = work / "scale-vit.json"
    model.write_text(json.dumps(tiny_config(DIM, SIZE)))
    make_dataset(work / "data", a.classes, a.shots, 4, a.test_per_class)
    made = time.perf_counter() - start
    images = sorted((work / "data" / "scale" / "images").rglob("*.png"))[:256]
    device, measured = calibrate(model, a.threads, images)
    cfg = bench_config(work, model, a)
    import yaml

    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = store.RESULTS
    runs = {"coop": [store.run_file(r, "scale", "tiny", "coop", "m16", a.shots, s) for s in a.seeds],
            "zeroshot": [store.run_file(r, "scale", "tiny", "zeroshot", "default", 0, 0)]}
    snakemake = Path(sys.executable).parent / "snakemake"
    root = Path(__file__).resolve().parent.parent
    cmd = [str(snakemake), "-s", str(root / "Snakefile"), "-d", str(work), "--configfile", str(work / "config.yaml"),
           "--cores", str(a.threads), "-j", "1", *runs["coop"], *runs["zeroshot"]]
    t = time.perf_counter()
    env = {**os.environ, "PATH": str(snakemake.parent) + os.pathsep + os.environ.get("PATH", "")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"the workflow failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    workflow_s = time.perf_counter() - t
    register_datasets(cfg["datasets"])
    sizes = JobSizes(cfg, device=device)
    bench = work / "results" / "benchmarks"
    views = work / "results" / "features" / "scale" / "tiny" / "views"
    jobs = {
        "test_features": (bench / "features/scale/tiny/test.tsv", sizes.features("scale", "tiny", "test"),
                          [work / "results/features/scale/tiny/test.safetensors"]),
        "run_zeroshot": (bench / "runs/scale/tiny/zeroshot/default/shots0.tsv",
                         sizes.run("scale", "tiny", "zeroshot", "default", 0, 1), [work / runs["zeroshot"][0]]),
        f"run_fewshot (CoOp, {len(a.seeds)} fused seeds)": (
            bench / f"runs/scale/tiny/coop/m16/shots{a.shots}.tsv",
            sizes.run("scale", "tiny", "coop", "m16", a.shots, len(a.seeds)),
            [views, *[(work / m).parent for m in runs["coop"]]]),
    }
    rows = []
    for name, (tsv, req, outputs) in jobs.items():
        b = _bench(tsv)
        disk = _size_mb(outputs)
        rows.append({"job": name, "measured_rss_mb": b["max_rss"], "asked_mem_mb": req.mem_mb,
                     "mem_ratio": req.mem_mb / b["max_rss"] if b["max_rss"] else None,
                     "measured_disk_mb": disk, "asked_disk_mb": req.disk_mb,
                     "disk_ratio": req.disk_mb / disk if disk else None,
                     "measured_min": b["s"] / 60, "modelled_min": req.minutes, "asked_runtime_min": req.runtime})
    record = {"classes": a.classes, "shots": a.shots, "seeds": list(a.seeds), "epochs": a.epochs,
              "batch_size": a.batch_size, "dim": DIM, "threads": a.threads, "device_profile": measured,
              "dataset_seconds": made, "workflow_seconds": workflow_s, "jobs": rows, "folder": str(work)}
    if not a.keep and not a.dir:
        shutil.rmtree(work, ignore_errors=True)
    return record


def within(row: dict, key: str) -> bool:
    """Asked covers the measured value and stays within 2x of it."""
    ratio = row[f"{key}_ratio"]
    return ratio is not None and 1.0 <= ratio <= 2.0


def format_table(rec: dict) -> str:
    lines = [f"scale benchmark: {rec['classes']} classes x {rec['shots']} shots, seeds {rec['seeds']}, "
             f"{rec['epochs']} epochs, batch {rec['batch_size']}, dim {rec['dim']}, {rec['threads']} thread(s); "
             f"workflow {rec['workflow_seconds']:.0f} s",
             "| job | peak RSS (MB) | asked mem_mb | ratio | disk (MB) | asked disk_mb | ratio | time (min) | "
             "modelled (min) | asked runtime |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rec["jobs"]:
        mem_ok = "" if within(r, "mem") else " (!)"
        disk_ok = "" if r["measured_disk_mb"] < 1 or within(r, "disk") else " (!)"
        lines.append(f"| {r['job']} | {r['measured_rss_mb']:.0f} | {r['asked_mem_mb']} | {r['mem_ratio']:.2f}"
                     f"{mem_ok} | {r['measured_disk_mb']:.1f} | {r['asked_disk_mb']} | "
                     f"{'-' if r['measured_disk_mb'] < 1 else format(r['disk_ratio'], '.2f')}{disk_ok} | {r['measured_min']:.2f} | {r['modelled_min']:.2f} | "
                     f"{r['asked_runtime_min']} |")
    p = rec["device_profile"]
    lines.append(f"device profile measured here: base {p['base_mb']:.0f} MB, start-up {p['startup_s']:.1f} s, "
                 f"text encoder {p['flops'] / 1e9:.1f} GFLOP/s, {p['prep_s'] * 1e3:.2f} ms per image")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m coop.bench_scale", description=__doc__.splitlines()[0])
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--shots", type=int, default=16)
    p.add_argument("--test-per-class", type=int, default=5)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dir", help="work folder (kept); default: a temporary one, deleted")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--out", help="also write the record as JSON here")
    a = p.parse_args(argv)
    rec = run(a)
    print(format_table(rec))
    if a.out:
        Path(a.out).write_text(json.dumps(rec, indent=2) + "\n")
    bad = [r["job"] for r in rec["jobs"] if not within(r, "mem")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
