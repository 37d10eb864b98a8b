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
from coop.features import CacheError, Features, load_features, read_tensors, save_features
from coop.io import read_json, write_json
from coop.methods.base import RunContext
from coop.methods.registry import MethodError, all_methods, get_method
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


RUN_KEYS = ("dataset", "backbone", "model", "pretrained", "method", "variant", "shots", "seed", "params")


def rerun_hint(run_dir: Path) -> str:
    return (f"Train that run again: move {run_dir} away (or delete its metrics.json) and rerun `coop run` with "
            f"--out {run_dir}, or the workflow, which reruns a run whose metrics.json is missing.")


def read_run(run_dir: str | Path) -> dict:
    """The metrics.json of a finished run folder, checked, or a CacheError that says what to give instead."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.json"
    if not path.is_file():
        raise CacheError(
            f"No finished run in {run_dir}: {path.name} not found. Give the output folder of a finished "
            "`coop run` (results/runs/<dataset>/<backbone>/<method>/<variant>/shots<K>/seed<S>)."
        )
    try:
        m = read_json(path)
    except (ValueError, UnicodeDecodeError) as e:
        raise CacheError(f"{path} is not valid JSON ({e}). {rerun_hint(run_dir)}") from None
    missing = [k for k in RUN_KEYS if not isinstance(m, dict) or k not in m]
    if missing:
        raise CacheError(f"{path} is not the metrics.json of a finished run (it lacks {missing}). "
                         f"{rerun_hint(run_dir)}")
    return m


def read_run_file(run_dir: str | Path, m: dict, name: str, framework: str = "numpy") -> dict:
    """The tensors of a finished run's file `name` (its learned parameters): read as safetensors only, so a
    pickle put there is refused, never unpickled; a CacheError names the file and how to rewrite it."""
    run_dir = Path(run_dir)
    return read_tensors(run_dir / name, f"the learned parameters of a {m['method']} run", rerun_hint(run_dir),
                        framework=framework)


def transfer_run(run_dir: str | Path, targets: list[str], data_root: str | Path = "data",
                 cache_dir: str | Path = "results", device: str | None = None,
                 log: Callable[[str], None] = print, state: dict | None = None) -> dict:
    """Evaluate one finished run on `targets`. `state` carries what the runs of one cell share (CLIP, the
    splits, the target features), so several runs in one process read and load them once."""
    run_dir = Path(run_dir)
    m = read_run(run_dir)
    info = get_method(m["method"])
    if info.classifier is None:
        able = ", ".join(n for n, i in all_methods().items() if i.classifier)
        raise MethodError(f"{run_dir} is a {info.name} run, which cannot be evaluated on other datasets (no "
                          f"classifier to transfer): give runs of a method that has one ({able}).")
    if info.classifier_file:  # checked before anything is loaded; the method's classifier reads it again
        tensors = read_run_file(run_dir, m, info.classifier_file)
        missing = [k for k in info.classifier_keys if k not in tensors]
        if missing:
            raise CacheError(f"{run_dir / info.classifier_file} lacks the tensors {missing}: it was not written by "
                             f"a {m['method']} run. {rerun_hint(run_dir)}")
    spec = get_dataset(m["dataset"])
    state = state if state is not None else {}
    if "source" not in state:
        state["source"] = read_split(data_root, spec)
    source = state["source"]
    cfg = build_config(info.config, m["params"])
    device = device or default_device()

    def load():
        if "clip" not in state:
            from coop.models.clip import load_clip

            state["clip"] = load_clip(m["model"], m["pretrained"], device=device, init_seed=m.get("init_seed", 0))
        return state["clip"]

    ctx = RunContext(spec=spec, classnames=source.classnames, image_root=image_root(data_root, spec),
                     shots=m["shots"], seed=m["seed"], manifest=None, test=None, load_clip=load,
                     load_fewshot=lambda: None, log=log)
    classify = info.classifier(ctx, cfg, run_dir)
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
