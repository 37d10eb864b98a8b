"""`coop data`: generate the toy world, sample few-shot subsets, prepare and check real datasets (a part of the
`coop` command line, coop/cli.py)."""
from __future__ import annotations

import argparse


def cmd_data_toy(a: argparse.Namespace) -> None:
    from coop.data.toyworld import generate

    given = {k: getattr(a, k) for k in ("n_train", "n_val", "n_test", "image_size", "seed")}
    path = generate(a.dataset, a.root, **{k: v for k, v in given.items() if v is not None})  # else generate's defaults
    print(f"wrote {path}")


def cmd_data_sample(a: argparse.Namespace) -> None:
    from coop.data.datasets import get_dataset, read_split
    from coop.data.fewshot import make_manifest, write_manifest

    split = read_split(a.root, get_dataset(a.dataset))
    manifest = make_manifest(a.dataset, split, a.shots, a.seed, strict=not a.allow_fewer)
    write_manifest(a.out, manifest)
    print(f"wrote {a.out}: {len(manifest['train'])} train, {len(manifest['val'])} val images")


def cmd_data_prepare(a: argparse.Namespace) -> None:
    from coop.data.prepare import prepare

    path = prepare(a.dataset, a.root)
    print(f"ready: {path}")


def cmd_data_check(a: argparse.Namespace) -> None:
    from coop.data.prepare import check

    statuses = check(a.root)
    for s in statuses:
        state = "ok" if s.valid else ("invalid" if s.present else "missing")
        print(f"{s.name:22s} {state:8s} {s.message}")
    if a.strict and not all(s.valid for s in statuses):
        raise SystemExit(1)


def add_subcommand(sub) -> None:
    """Register `coop data ...` on the `coop` parser's subparsers."""
    data = sub.add_parser("data", help="datasets: generate the toy world, sample few-shot subsets")
    dsub = data.add_subparsers(dest="data_command", required=True)
    p = dsub.add_parser("toy", help="generate one toy dataset on disk")
    p.add_argument("--dataset", required=True)
    p.add_argument("--root", default="data")
    # Left out: coop.data.toyworld.generate's defaults (one home for them).
    p.add_argument("--n-train", type=int, help="train images per class")
    p.add_argument("--n-val", type=int, help="val images per class")
    p.add_argument("--n-test", type=int, help="test images per class")
    p.add_argument("--image-size", type=int, help="image side in pixels")
    p.add_argument("--seed", type=int)
    p.set_defaults(func=cmd_data_toy)
    p = dsub.add_parser("sample", help="write the few-shot manifest of dataset x shots x seed")
    p.add_argument("--dataset", required=True)
    p.add_argument("--shots", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--root", default="data")
    p.add_argument("--out", required=True)
    p.add_argument("--allow-fewer", action="store_true", help="take all images of classes with fewer shots")
    p.set_defaults(func=cmd_data_sample)

    p = dsub.add_parser("prepare", help="download and lay out a real dataset (or say what to fetch by hand)")
    p.add_argument("dataset")
    p.add_argument("--root", default="data")
    p.set_defaults(func=cmd_data_prepare)
    p = dsub.add_parser("check", help="which real datasets are present and valid under the root")
    p.add_argument("--root", default="data")
    p.add_argument("--strict", action="store_true", help="exit 1 unless every dataset is valid")
    p.set_defaults(func=cmd_data_check)
