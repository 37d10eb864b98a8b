"""The few-shot sampler of the official protocol and the manifest that every method reads."""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from coop.data.datasets import DatasetError, Item, Split
from coop.io import read_json, write_json


def _group_by_label(items: list[Item]) -> dict[int, list[Item]]:
    groups: dict[int, list[Item]] = {}  # dicts keep the order of first appearance
    for it in items:
        groups.setdefault(it.label, []).append(it)
    return groups


def _sample(items: list[Item], k: int, rng: random.Random) -> list[Item]:
    out: list[Item] = []
    for group in _group_by_label(items).values():
        out.extend(rng.sample(group, k) if len(group) >= k else group)
    return out


def sample_fewshot(split: Split, shots: int, seed: int, strict: bool = True,
                   dataset: str = "<dataset>") -> tuple[list[Item], list[Item]]:
    """Return (train, val) subsets: `shots` per class from train, then min(shots, 4) from val.

    Python's `random` seeded with `seed`; one stream for train then val (docs/PROTOCOL.md). With `strict`, a
    class with fewer than `shots` training images is an error rather than silently fewer shots.
    A split without val images (ImageNet) gets its few-shot val set from the train images not chosen
    for training (same per-class count, same RNG stream); see `val_from_train`.
    """
    if shots < 1:
        raise DatasetError(f"shots must be >= 1, got {shots}: give the number of training images per class.")
    if strict:
        groups = _group_by_label(split.train).values()
        short = {g[0].classname: len(g) for g in groups if len(g) < shots}
        if short:
            some = ", ".join(f"{n!r} has {c}" for n, c in list(short.items())[:5])
            fewest = min(len(g) for g in groups)
            raise DatasetError(
                f"{len(short)} classes have fewer than {shots} training images ({some}), so a {shots}-shot "
                f"subset cannot be drawn. Use at most {fewest} shots (the smallest class has {fewest} training "
                "images), or take all images of such classes: write the manifest with `coop data sample "
                f"--dataset {dataset} --shots {shots} --seed {seed} --allow-fewer --out "
                f"<cache-dir>/fewshot/{dataset}/shots{shots}_seed{seed}.json` (where `coop run` looks for it)."
            )
    rng = random.Random()
    rng.seed(seed)
    train = _sample(split.train, shots, rng)
    if val_from_train(split):
        chosen = {id(it) for it in train}  # rng.sample returns the very Item objects of split.train
        val = _sample([it for it in split.train if id(it) not in chosen], min(shots, 4), rng)
    else:
        val = _sample(split.val, min(shots, 4), rng)
    return train, val


def val_from_train(split: Split) -> bool:
    """True when the split has no val images (ImageNet): few-shot val then comes from unused train images."""
    return not split.val and bool(split.train)


def items_hash(items: list[Item]) -> str:
    """A content hash of an item list (paths, labels and names), order-sensitive."""
    blob = json.dumps([[it.path, it.label, it.classname] for it in items]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def make_manifest(dataset: str, split: Split, shots: int, seed: int, strict: bool = True) -> dict:
    if not split.train:
        raise DatasetError(
            f"Dataset {dataset!r} has no training images (an evaluation-only dataset?): few-shot subsets "
            "are drawn from the dataset a method is trained on (its spec's `source`)."
        )
    train, val = sample_fewshot(split, shots, seed, strict, dataset=dataset)
    manifest = {
        "dataset": dataset,
        "shots": shots,
        "seed": seed,
        "classnames": split.classnames,
        "train": [[it.path, it.label, it.classname] for it in train],
        "val": [[it.path, it.label, it.classname] for it in val],
    }
    if val_from_train(split):
        manifest["val_from_train"] = True  # the val images are train images not chosen for training
    manifest["hash"] = items_hash(train + val)
    return manifest


def write_manifest(path: str | Path, manifest: dict) -> None:
    write_json(path, manifest)


def read_manifest(path: str | Path) -> dict:
    """A few-shot manifest, checked against its content hash; a DatasetError (with `why`) when it is unreadable,
    incomplete or altered."""
    def bad(why: str) -> DatasetError:
        fix = "delete it and rerun to resample (the same dataset, shots and seed give the same subset)"
        return DatasetError(f"Manifest {path} {why}; {fix}.", why)

    try:
        m = read_json(path)
    except (ValueError, UnicodeDecodeError) as e:
        raise bad(f"is not valid JSON ({e})") from None
    if not isinstance(m, dict):
        raise bad("is not a JSON object")
    missing = {"dataset", "shots", "seed", "classnames", "train", "val", "hash"} - set(m)
    if missing:
        raise bad(f"lacks {sorted(missing)}")
    try:
        items = manifest_items(m, "train") + manifest_items(m, "val")
    except (TypeError, ValueError):
        raise bad("has malformed items (not [path, label, classname])") from None
    if items_hash(items) != m["hash"]:
        raise bad("does not match its content hash")
    return m


def manifest_items(manifest: dict, part: str) -> list[Item]:
    return [Item(p, int(lbl), name) for p, lbl, name in manifest[part]]
