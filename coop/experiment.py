"""One run: dataset x backbone x method variant x shots x seed -> metrics.json (+ learned parameters).

Inputs come from the caches that the workflow builds (manifest, feature files); a run started by hand
builds whatever is missing, so every method also runs alone. One that is truncated or garbled (or, for the test
features, made from another split) is made again in place, equal to what its rule writes, and the log says so.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

from coop.config import build_config
from coop.data.datasets import DatasetError, Item, get_dataset, image_root, read_split
from coop.data.fewshot import items_hash, make_manifest, manifest_items, read_manifest, write_manifest
from coop.features import CacheError, Features, feature_precision, load_features, rebuilt, save_features
from coop.io import atomic_path, remove_stale_temps, write_json
from coop.methods.base import RunContext
from coop.defaults import CROP_MIN
from coop.store import (checkpoint_path, feature_keys, features_path, manifest_path, matching,  # noqa: F401
                        views_path)
from coop.methods.registry import MethodError, get_method, variant_groups
from coop import protocol
from coop.provenance import default_device, device_name, git_commit, peak_memory_mb, versions


def cache_keys(dataset: str, backbone: str, model: str, pretrained: str, part: str) -> dict[str, str]:
    """The keys a feature cache must match (coop.store.feature_keys)."""
    return feature_keys(dataset, backbone, model, pretrained, part)


def compute_features(clip, dataset: str, items, data_root: str | Path, device: str, precision: str = "fp32",
                     log: Callable[[str], None] | None = None):
    """Test-transform image features of `items` as a float32 numpy array (coop.features.extract_features: the
    job's threads as loader workers, `precision`'s autocast on CUDA, progress lines to `log`)."""
    from coop.features import extract_features

    return extract_features(clip, items, image_root(data_root, get_dataset(dataset)), device=device,
                            precision=precision, log=log).numpy()


@dataclasses.dataclass
class _Run:
    """A prepared run: its method's context and config, and what its metrics.json records."""
    ctx: RunContext
    cfg: Any
    out: Path
    config: dict[str, Any]
    manifest: dict | None
    state: dict[str, Any]
    start: float
    prepare_seconds: float = 0.0  # the wall time of this run's own `_prepare`


def run_experiment(*, method: str, state: dict[str, Any] | None = None, keep_checkpoint: bool = False,
                   **kw: Any) -> dict[str, Any]:
    """One run (the arguments of `_prepare`). `state` carries what every seed of a cell shares (CLIP, the split,
    the test features) between calls, so several seeds in one process read and load them once. Training
    continues from the run's checkpoint when one is there; it is deleted at the end unless `keep_checkpoint`."""
    run = _prepare(method=method, state=state if state is not None else {}, **kw)
    (result,) = get_method(method).train([run.ctx], run.cfg)
    return _finish(run, result, keep_checkpoint)  # a job of its own: job_seconds == wall_seconds


def _prepare(
    *, dataset: str, method: str, shots: int, seed: int, backbone: str, out: str | Path, state: dict[str, Any],
    model: str | None = None, pretrained: str = "random", variant: str = "default",
    params: dict[str, Any] | None = None, data_root: str | Path = "data", cache_dir: str | Path = "results",
    device: str | None = None, init_seed: int = 0, log: Callable[[str], None] = print,
) -> _Run:
    start = time.time()
    spec = get_dataset(dataset)
    info = get_method(method)
    cfg = build_config(info.config, params or {})
    model = model or backbone
    if info.few_shot and shots < 1:
        raise MethodError(f"{method} trains on few-shot data: give --shots >= 1.")
    if not info.few_shot and (shots, seed) != (0, 0):
        raise MethodError(f"{method} uses no training data: run it with --shots 0 --seed 0.")
    state.setdefault("device", device)
    if "split" not in state:
        state["split"] = read_split(data_root, spec)
    split = state["split"]
    manifest = None
    if info.few_shot:
        manifest = read_or_sample_manifest(manifest_path(cache_dir, dataset, shots, seed), dataset, lambda: split,
                                           shots, seed, log)

    def load() -> Any:
        # Torch is imported only here: methods that read cached features alone (linear probe) start fast.
        if "clip" not in state:
            from coop.models.clip import load_clip

            state["device"] = state["device"] or default_device()
            state["clip"] = load_clip(model, pretrained, device=state["device"], init_seed=init_seed)
        return state["clip"]

    def cached(part: str, items) -> Features:
        path = features_path(cache_dir, dataset, backbone, part)
        keys = cache_keys(dataset, backbone, model, pretrained, part)
        if path.exists():
            have, why = _usable_features(path, keys, items if part == "test" else None)
            if have is not None:
                return have
            # Shared (the workflow's feature rule made it): made again in full, as that rule does, so that it
            # serves every run and equals the original byte for byte.
            full = items if part == "test" else fewshot_pool(_manifests_of(cache_dir, dataset, manifest))
            save_features(path, compute_features(load(), dataset, full, data_root, state["device"], "fp32", log),
                          full, keys)
            log(rebuilt(path, why))
            return load_features(path, **keys)
        precision = getattr(cfg, "precision", "fp32")
        feats = compute_features(load(), dataset, items, data_root, state["device"], precision, log)
        # The test features are complete by definition, so safe to share (a partial few-shot pool is not), when
        # computed in fp32 as the workflow's feature rule does: autocast ones (CUDA, precision amp/fp16) are not.
        if part == "test" and feature_precision(precision, state["device"]) == "fp32":
            save_features(path, feats, items, keys)
        return Features(feats, _labels(items), [it.path for it in items], {**keys, "items_hash": items_hash(items)})

    def views(epochs: int, crop_min: float = CROP_MIN):
        from coop.views import open_views, view_keys

        clip = load()
        items = manifest_items(manifest, "train")
        keys = view_keys(items, manifest["hash"], backbone, model, pretrained, clip.preprocess, crop_min)
        return open_views(clip, items, image_root(data_root, spec), manifest["hash"], epochs,
                          views_path(cache_dir, dataset, backbone, shots, seed, keys, crop_min), keys,
                          state["device"], log, crop_min)

    if "test" not in state:
        state["test"] = cached("test", split.test)
    test = state["test"]
    pool = (manifest_items(manifest, "train") + manifest_items(manifest, "val")) if manifest else []
    out = Path(out)
    remove_stale_temps(out, owned=True)  # a killed earlier attempt's half-written files; this run owns its folder
    config = {
        "dataset": dataset, "backbone": backbone, "model": model, "pretrained": pretrained, "init_seed": init_seed,
        "method": method, "variant": variant, "shots": shots, "seed": seed, "params": dataclasses.asdict(cfg),
        "protocol": protocol.as_dict(), "data_root": str(data_root), "cache_dir": str(cache_dir),
    }
    identity = {k: v for k, v in config.items() if k not in ("variant", "data_root", "cache_dir")}
    identity["manifest_hash"] = manifest["hash"] if manifest else None
    ctx = RunContext(
        spec=spec, classnames=split.classnames, image_root=image_root(data_root, spec), shots=shots, seed=seed,
        manifest=manifest, test=test, load_clip=load, load_fewshot=lambda: cached("fewshot", pool), log=log,
        split=split, checkpoint=checkpoint_path(out), run_key=_digest(identity),
        load_views=views if manifest else None,
    )
    log(f"{method}/{variant} on {dataset} with {backbone} ({pretrained}), shots={shots} seed={seed}")
    return _Run(ctx, cfg, out, config, manifest, state, start, prepare_seconds=time.time() - start)


def read_or_sample_manifest(mpath: str | Path, dataset: str, split: Callable[[], Any], shots: int, seed: int,
                            log: Callable[[str], None]) -> dict:
    """A few-shot manifest: read, or sampled from `split()` and written when missing or unreadable (a truncated
    or garbled file: sampling is deterministic, so the new one equals the one it replaces; the log says so)."""
    mpath, why = Path(mpath), None
    if mpath.exists():
        try:
            return read_manifest(mpath)
        except DatasetError as e:
            why = f"it {e.why}" if e.why else str(e)
    write_manifest(mpath, make_manifest(dataset, split(), shots, seed))
    if why is not None:
        log(rebuilt(mpath, why))
    return read_manifest(mpath)


def _usable_features(path: Path, keys: dict[str, str], items: list[Item] | None) -> tuple[Features | None, str | None]:
    """(the feature cache at `path`, None) when it can serve a run, else (None, why not: unreadable, truncated,
    garbled; other keys; other images than `items`, when given); read once. A file that is really a pickle is
    refused: a CacheError that names it (it is kept for inspection, never unpickled)."""
    try:
        have = load_features(path, **keys)
    except CacheError as e:
        if e.why is None or "looks like a pickle" in e.why:
            raise
        return None, e.why
    if items is not None and have.meta.get("items_hash") != items_hash(items):
        return None, "it holds other images than the split (the split file changed)"
    return have, None


def fewshot_pool(manifests: list[dict]) -> list[Item]:
    """Every image of the few-shot `manifests` (train and val) once, in path order: what the few-shot feature
    cache holds (`coop features --part fewshot`)."""
    seen: dict[str, Item] = {}
    for man in manifests:
        for it in manifest_items(man, "train") + manifest_items(man, "val"):
            seen.setdefault(it.path, it)
    return [seen[p] for p in sorted(seen)]


def _manifests_of(cache_dir: str | Path, dataset: str, current: dict | None) -> list[dict]:
    """The readable manifests of `dataset` under `cache_dir` (those the few-shot feature cache covers), with
    the run's own."""
    out = [current] if current else []
    for p in matching("manifest", cache_dir, dataset=dataset):
        try:
            out.append(read_manifest(p))
        except DatasetError:
            continue
    return out


def _finish(run: _Run, result, keep_checkpoint: bool, write: bool = True) -> dict[str, Any]:
    """Evaluate `result` on the test labels, write the artifacts and metrics.json (last) of `run`.

    With `write=False` metrics.json is not written yet: the caller sets the timing fields and calls
    `_write_record`. `wall_seconds` is the time since this run's `_prepare` began (the caller of a fused job
    replaces it by the seed's share); `job_seconds` is filled in by `_write_record`."""
    from coop.evaluate import classification_metrics

    c, ctx, state, out = run.config, run.ctx, run.state, run.out
    dataset, backbone, method, variant = c["dataset"], c["backbone"], c["method"], c["variant"]
    shots, seed, cfg, manifest, test = c["shots"], c["seed"], run.cfg, run.manifest, ctx.test
    metrics = classification_metrics(result.logits, test.labels)
    out.mkdir(parents=True, exist_ok=True)
    for name, tensors in result.artifacts.items():
        from coop.view_cache import write_tensors  # the same content gives the same bytes

        with atomic_path(out / name) as tmp:
            write_tensors(tmp, tensors, {"dataset": dataset, "backbone": backbone, "method": method,
                                         "variant": variant, "shots": str(shots), "seed": str(seed)})
    record = {
        "dataset": dataset, "backbone": backbone, "model": c["model"], "pretrained": c["pretrained"],
        "init_seed": c["init_seed"], "method": method, "variant": variant, "shots": shots, "seed": seed,
        **metrics, "n_classes": len(ctx.classnames),
        "params": dataclasses.asdict(cfg), **result.info,
        "manifest_hash": manifest["hash"] if manifest else None,
        "test_items_hash": test.meta.get("items_hash"),
        "protocol": protocol.as_dict(), "precision": getattr(cfg, "precision", "fp32"),
        "device": state["device"] or "cpu", "device_name": device_name(state["device"] or "cpu"),
        "versions": versions(), "git_commit": git_commit(), "config": c, "command": _command(),
        "wall_seconds": round(time.time() - run.start, 3), "job_seconds": None, "peak_memory": peak_memory_mb(),
    }
    if hasattr(cfg, "precision") and "coop.train" in sys.modules:  # what amp meant on this device
        record["precision_effective"] = sys.modules["coop.train"].effective_precision(cfg.precision,
                                                                                      record["device"])
    if write:
        _write_record(run, record, keep_checkpoint, job_seconds=record["wall_seconds"])
    return record


def _write_record(run: _Run, record: dict[str, Any], keep_checkpoint: bool, job_seconds: float) -> dict[str, Any]:
    """Write `record` as the metrics.json of `run` (last: its presence means the run is complete), with
    `job_seconds`, the wall time of the whole job (process call) that produced it."""
    record["job_seconds"] = job_seconds
    write_json(run.out / "metrics.json", record)
    if not keep_checkpoint:
        checkpoint_path(run.out).unlink(missing_ok=True)
    run.ctx.log(f"accuracy {record['accuracy']:.2f}%  macro F1 {record['macro_f1']:.2f}%  "
                f"({record['wall_seconds']:.1f} s)")
    return record


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _command() -> str:
    """The command line of this process when it is the `coop` CLI (how to rerun it), else ""."""
    return " ".join(sys.argv) if sys.argv and Path(sys.argv[0]).name == "coop" else ""


def _labels(items):
    import numpy as np

    return np.array([it.label for it in items], dtype=np.int64)


def run_seeds(seeds: list[int], out: str, fuse: bool = True, **kw: Any) -> list[dict[str, Any]]:
    """The same run for several seeds in this process (CLIP is loaded once). With `fuse` (the default) the
    method's `train` gets every seed at once (CoOp and the text heads: one text-encoder pass for all seeds per
    step, each seed ending where it would alone); with `fuse=False` one seed after another.

    `out` holds "{seed}" where the seed goes in the output folder, unless there is a single seed.
    """
    if len(seeds) > 1 and "{seed}" not in out:
        raise MethodError(f"--out must contain {{seed}} when several seeds run together, got {out!r}")
    _check_seeds(seeds)
    # Timing: `job_seconds` is the wall time of this whole call, the same in every seed's metrics.json (hence
    # they are written together at the end; the checkpoints, kept until then, make a rerun after a kill cheap).
    # `wall_seconds` is the seed's own share, so that the seeds' shares add up to at most the job: one after
    # another, the seed's preparation, training and finishing; fused, the seed's preparation (the first seed's
    # includes loading what all seeds share: CLIP, the split, the test features) plus an equal share of the
    # joint training (training time / number of seeds) plus its own finishing (evaluation, artifacts).
    job_start = time.time()
    state: dict[str, Any] = {}
    outs = [out.replace("{seed}", str(s)) for s in seeds]
    if fuse:  # one training of every seed (the method's train gets them all)
        runs = [_prepare(seed=s, out=o, state=state, **kw) for s, o in zip(seeds, outs)]
        train_start = time.time()
        results = get_method(kw["method"]).train([r.ctx for r in runs], runs[0].cfg)
        done = _finish_together(runs, results, time.time() - train_start,
                                {"fused_seeds": list(seeds)} if len(seeds) > 1 else {})
    else:  # one seed after another, each a training of its own
        done = []
        for s, o in zip(seeds, outs):
            r = _prepare(seed=s, out=o, state=state, **kw)
            (res,) = get_method(kw["method"]).train([r.ctx], r.cfg)
            done.append((r, _finish(r, res, keep_checkpoint=True, write=False)))
    return _write_all(done, job_start)


def _check_seeds(seeds: list[int]) -> None:
    if len(set(seeds)) != len(seeds):
        raise MethodError(f"--seed lists a seed twice ({seeds}); give each seed once.")


def _finish_together(runs: list[_Run], results: list, train_seconds: float,
                     info: dict[str, Any]) -> list[tuple[_Run, dict[str, Any]]]:
    """Evaluate runs that trained together (`info` added to each result), their metrics.json not written yet:
    each run's `wall_seconds` is its preparation, an equal share of the joint training and its own finishing."""
    share = train_seconds / len(runs)
    done = []
    for r, res in zip(runs, results):
        res.info.update(info)
        finish_start = time.time()
        record = _finish(r, res, keep_checkpoint=True, write=False)
        record["wall_seconds"] = round(r.prepare_seconds + share + time.time() - finish_start, 3)
        done.append((r, record))
    return done


def _write_all(done: list[tuple[_Run, dict[str, Any]]], job_start: float) -> list[dict[str, Any]]:
    """Write every run's metrics.json with the job's time (the same in each), then remove their checkpoints."""
    job_seconds = round(time.time() - job_start, 3)
    for r, record in done:
        _write_record(r, record, keep_checkpoint=True, job_seconds=job_seconds)
    # Only now: a job killed after its first seeds reruns them from their final checkpoints, not from scratch.
    for r, _ in done:
        checkpoint_path(r.out).unlink(missing_ok=True)
    return [record for _, record in done]


def run_variants(variants: dict[str, dict[str, Any]], seeds: list[int], out: str, **kw: Any) -> list[dict[str, Any]]:
    """Several variants (name -> parameters) of one method on one cell, every seed of each, trained together in
    this process by the method's `train_variants` (CLIP, the split and the test features loaded once; CoOp: the
    text-encoder passes of every variant and seed in one step), each ending where it would alone. `out` holds
    "{variant}" and "{seed}". Timing as `run_seeds` fused: `job_seconds` the whole call, `wall_seconds` a run's
    preparation, its equal share of the joint training and its own finishing."""
    method = get_method(kw["method"])
    if method.train_variants is None:
        raise MethodError(f"{kw['method']} cannot train several variants in one job (it declares no "
                          "train_variants): run each variant on its own (--variant NAME --set ...).")
    missing = [f for f in ("{variant}", "{seed}") if f not in out]
    if missing:
        raise MethodError(f"--out must contain {' and '.join(missing)} when several variants run together, "
                          f"got {out!r}")
    _check_seeds(seeds)
    groups = variant_groups(kw["method"], variants)
    if len(groups) > 1:
        raise MethodError(f"{kw['method']} variants {' | '.join(', '.join(g) for g in groups)} cannot train in one "
                          "job: their schedule or optimiser settings differ. Run each group in a job of its own.")
    job_start = time.time()
    state: dict[str, Any] = {}
    runs = {v: [_prepare(seed=s, out=out.replace("{variant}", v).replace("{seed}", str(s)), state=state,
                         variant=v, params=p, **kw) for s in seeds] for v, p in variants.items()}
    train_start = time.time()
    results = method.train_variants([(rs[0].cfg, [r.ctx for r in rs]) for rs in runs.values()])
    train_seconds = time.time() - train_start
    info = {"fused_seeds": list(seeds), "fused_variants": list(variants)}
    flat = [r for rs in runs.values() for r in rs]
    return _write_all(_finish_together(flat, [res for ress in results for res in ress], train_seconds, info),
                      job_start)
