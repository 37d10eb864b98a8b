"""Memory benchmark of the view cache: an ImageNet-shaped 16-shot subset (1,000 classes x 16 shots = 16,000
images, 50 epochs, features of dimension 1,024) built through the real code path (coop.views.build_views), then
read back one epoch at a time (coop.views.EpochViews), each in a child process whose peak resident memory
(getrusage's ru_maxrss) is reported beside the file's size, the time, and what the former in-memory algorithm
would have held (the whole (E, N, D) float32 tensor, plus its de-duplication table, plus the decoded images).

    python -m coop.bench_views                      # the ImageNet shape (3.3 GB of disk, deleted afterwards)
    python -m coop.bench_views --classes 100 --epochs 5

The images are synthetic (small PNGs, `--size` pixels) and the image tower a tiny ViT with random weights whose
output dimension is `--dim`: the memory of the cache does not depend on the encoder, and this keeps it cheap on
a CPU. The view augmentation is the model's real train transform (`--crop-min`, default the official 0.08: every
view is a new crop, the most encoder work).
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from coop.defaults import CROP_MIN

TARGET_GB = 2.0


def tiny_config(dim: int, size: int) -> dict:
    """An open_clip model config: a one-block ViT image tower on `size` px images with output dimension `dim`
    (and a small text tower, which the cache never runs)."""
    return {"embed_dim": dim, "quick_gelu": True,
            "vision_cfg": {"image_size": size, "layers": 1, "width": 64, "head_width": 32, "patch_size": 8},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1}}


def make_images(root: Path, classes: int, shots: int, size: int) -> list:
    """`classes` x `shots` synthetic PNGs under `root` (a colour per class, noise per image): the items."""
    import numpy as np
    from PIL import Image

    from coop.data.datasets import Item

    rng = np.random.default_rng(0)
    items = []
    for c in range(classes):
        folder = root / f"c{c:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 256, 3)
        for s in range(shots):
            pixels = np.clip(base + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
            rel = f"c{c:04d}/{s:02d}.png"
            Image.fromarray(pixels).save(root / rel)
            items.append(Item(rel, c, f"class {c}"))
    return items


def _peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kilobytes


def child(a: argparse.Namespace) -> dict:
    """In the child process: build (or read) the cache and measure this process's peak resident memory."""
    import torch

    from coop.data.datasets import Item
    from coop.models import load_clip
    from coop.views import EpochViews, build_views, view_keys

    torch.set_num_threads(a.threads)
    work = Path(a.work)
    items = [Item(p, int(y), f"class {y}") for p, y in json.loads((work / "items.json").read_text())]
    clip = load_clip(str(work / "tiny.json"), "random")
    keys = view_keys(items, "bench", "tiny", clip.name, "random", clip.preprocess, a.crop_min)
    path = work / "views.safetensors"
    before = _peak_bytes()
    start = time.perf_counter()
    if a.child == "build":
        build_views(clip, items, work / "images", "bench", a.epochs, path, keys, log=lambda s: print(s, flush=True),
                    crop_min=a.crop_min)
    else:
        views = EpochViews(path, a.epochs)
        total = 0.0
        for e in range(views.shape[0]):
            total += float(views[e][:, 0].sum())  # touch every epoch, one at a time, as training does
    return {"seconds": time.perf_counter() - start, "peak_before": before, "peak": _peak_bytes()}


def _run_child(mode: str, a: argparse.Namespace, work: Path) -> dict:
    cmd = [sys.executable, "-m", "coop.bench_views", "--child", mode, "--work", str(work), "--epochs",
           str(a.epochs), "--crop-min", str(a.crop_min), "--threads", str(a.threads)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    lines = proc.stdout.strip().splitlines()
    for line in lines[:-1]:
        print("  " + line, flush=True)
    return json.loads(lines[-1])


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m coop.bench_views", description=__doc__.split("\n\n")[0])
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--shots", type=int, default=16)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--size", type=int, default=32, help="image side in pixels (also the tower's input size)")
    p.add_argument("--crop-min", type=float, default=CROP_MIN)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dir", default=None, help="work folder (default: a temporary one); deleted afterwards")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--child", choices=["build", "read"], help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a)), flush=True)
        return 0
    work = Path(tempfile.mkdtemp(prefix="coop-bench-views-", dir=a.dir))
    try:
        t0 = time.perf_counter()
        items = make_images(work / "images", a.classes, a.shots, a.size)
        (work / "items.json").write_text(json.dumps([[it.path, it.label] for it in items]))
        (work / "tiny.json").write_text(json.dumps(tiny_config(a.dim, a.size)))
        n = len(items)
        print(f"{n} images of {a.size} px made in {time.perf_counter() - t0:.1f} s; building {a.epochs} epochs "
              f"x {n} views x {a.dim} features (crop_min={a.crop_min}, {a.threads} thread(s))", flush=True)
        build = _run_child("build", a, work)
        size = (work / "views.safetensors").stat().st_size
        read = _run_child("read", a, work)
        tensor = a.epochs * n * a.dim * 4
        distinct = tensor if a.crop_min < 1 else min(a.epochs, 2) * n * a.dim * 4  # its de-duplication table
        images = n * a.size * a.size * 3
        former = build["peak_before"] + tensor + distinct + images
        rows = [
            ("build: peak RSS", _gb(build["peak"]), f"(before building: {_gb(build['peak_before'])})"),
            ("build: time", f"{build['seconds']:.0f} s", f"({a.epochs * n / build['seconds']:.0f} views/s)"),
            ("file size", _gb(size), f"(E x N x D x 4 B = {_gb(tensor)} + header)"),
            ("read 1 epoch at a time: peak RSS", _gb(read["peak"]),
             f"(before reading: {_gb(read['peak_before'])}, {read['seconds']:.1f} s for {a.epochs} epochs)"),
            ("former in-memory build, estimate", _gb(former),
             f"(before building {_gb(build['peak_before'])} + tensor {_gb(tensor)} + de-duplication table "
             f"{_gb(distinct)} + images {_gb(images)}; extending a cache added its old epochs twice more)"),
            ("ratio former / streaming (peak)", f"{former / build['peak']:.1f} x", ""),
            (f"target: build peak <= {TARGET_GB:.0f} GB", "met" if build["peak"] <= TARGET_GB * 1e9 else "MISSED", ""),
        ]
        width = max(len(r[0]) for r in rows)
        for name, value, note in rows:
            print(f"{name:<{width}}  {value:>9}  {note}", flush=True)
        return 0 if build["peak"] <= TARGET_GB * 1e9 else 1
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
