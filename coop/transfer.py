"""Domain generalisation (the paper's Table 1): a finished run's classifier evaluated on other datasets.

The run's classifier is rebuilt over its source classes; a target with a subset of them (ImageNet-A/-R: 200
of ImageNet's 1000, matched by class name) is scored on those columns only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from coop.config import build_config
from coop.data.datasets import DatasetError, get_dataset, image_root, read_split
from coop.evaluate import classification_metrics
from coop.experiment import cache_keys, compute_features, features_path
from coop.features import Features, load_features, save_features
from coop.io import read_json, write_json
from coop.methods.base import RunContext
from coop.methods.registry import method_classifier, method_config_class
from coop.provenance import default_device


def class_subset(source: list[str], target: list[str], target_name: str) -> list[int]:
    """Indices of the target's classes among the source's, by name (or by id: wnids for ImageNet, whose
    class names are not unique)."""
    index = {name: i for i, name in enumerate(source)}
    missing = [c for c in target if c not in index]
    if missing:
        raise DatasetError(
            f"{target_name} has {len(missing)} classes the source does not know (e.g. {missing[:3]}); a transfer "
            "target must use the source's class names."
        )
    return [index[c] for c in target]


def transfer_run(run_dir: str | Path, targets: list[str], data_root: str | Path = "data",
                 cache_dir: str | Path = "results", device: str | None = None,
                 log: Callable[[str], None] = print, state: dict | None = None) -> dict:
    """Evaluate one finished run on `targets`. `state` carries what the runs of one cell share (CLIP, the
    splits, the target features), so several runs in one process read and load them once."""
    run_dir = Path(run_dir)
    m = read_json(run_dir / "metrics.json")
    spec = get_dataset(m["dataset"])
    state = state if state is not None else {}
    if "source" not in state:
        state["source"] = read_split(data_root, spec)
    source = state["source"]
    cfg = build_config(method_config_class(m["method"]), m["params"])
    device = device or default_device()

    def load():
        if "clip" not in state:
            from coop.models.clip import load_clip

            state["clip"] = load_clip(m["model"], m["pretrained"], device=device, init_seed=m.get("init_seed", 0))
        return state["clip"]

    ctx = RunContext(spec=spec, classnames=source.classnames, image_root=image_root(data_root, spec),
                     shots=m["shots"], seed=m["seed"], manifest=None, test=None, load_clip=load,
                     load_fewshot=lambda: None, log=log)
    classify = method_classifier(m["method"])(ctx, cfg, run_dir)
    def target_data(target: str) -> tuple[list[int], Features]:
        tsplit = read_split(data_root, get_dataset(target))
        if source.class_ids and tsplit.class_ids:
            subset = class_subset(source.class_ids, tsplit.class_ids, target)
        else:
            subset = class_subset(source.classnames, tsplit.classnames, target)
        path = features_path(cache_dir, target, m["backbone"], "test")
        keys = cache_keys(target, m["backbone"], m["model"], m["pretrained"], "test")
        if not path.exists():
            save_features(path, compute_features(load(), target, tsplit.test, data_root, device), tsplit.test, keys)
        return subset, load_features(path, **keys)

    results = {}
    for target in targets:
        if ("target", target) not in state:
            state[("target", target)] = target_data(target)
        subset, feats = state[("target", target)]
        metrics = classification_metrics(classify(feats.features)[:, subset], feats.labels)
        results[target] = {**metrics, "n_classes": len(subset)}
        log(f"{m['method']}/{m['variant']} {m['dataset']} -> {target}: {metrics['accuracy']:.2f}%")
    return {key: m[key] for key in ("dataset", "backbone", "method", "variant", "shots", "seed")} | {
        "source_accuracy": m["accuracy"], "targets": results}


def write_transfers(run_dirs: list[str | Path], targets: list[str], out: str | Path, **kw) -> list[dict]:
    """Evaluate several runs (the seeds of one cell) on `targets`, CLIP loaded once: one JSON list."""
    state: dict = {}
    records = [transfer_run(d, targets, state=state, **kw) for d in run_dirs]
    write_json(out, records)
    return records
