"""Caches that rebuild themselves: a truncated or garbled feature cache, view cache, few-shot manifest or training
checkpoint is made again (the log names the file and why), the results equal a clean run's exactly, and a new
few-shot subset makes a view cache of its own instead of an error.

The reference of each test is a clean run of the same config in a fresh cache folder (seeded: equal bit for bit).
Hand runs (coop.experiment.run_experiment) here; the workflow's own (Snakemake reruns, jobs that are not redone)
in test_cache_repair_workflow.py.
"""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from coop.data.datasets import get_dataset
from coop.experiment import cache_keys, compute_features, fewshot_pool, run_experiment
from coop.data.fewshot import read_manifest
from coop.features import save_features
from coop.store import checkpoint_path, features_path, manifest_path

pytestmark = pytest.mark.resume

DATASET = "toy_shapes"
COOP = {"epochs": 3, "n_ctx": 2}
RESULT_KEYS = ("accuracy", "macro_f1", "manifest_hash", "loss_history", "test_items_hash")


def _run(method, root, cache, out, said=None, params=None, **kw):
    log = said.append if said is not None else (lambda s: None)
    return run_experiment(method=method, dataset=DATASET, shots=1, seed=1, backbone="toy-rn", data_root=root,
                          cache_dir=cache, out=out, params=params, log=log, **kw)


def _same_result(got: dict, ref: dict, out: Path, ref_out: Path) -> None:
    for key in RESULT_KEYS:
        assert got.get(key) == ref.get(key), key
    for art in ref_out.glob("*.safetensors"):
        assert (out / art.name).read_bytes() == art.read_bytes(), art.name  # learned parameters, bit for bit


def _truncate(path: Path) -> bytes:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return data


def _rebuilt_lines(said: list[str], path: Path) -> list[str]:
    return [s for s in said if s.startswith(f"{path} rebuilt: ")]


@pytest.fixture(scope="module")
def clean(toy_root, tmp_path_factory):
    """A clean CoOp run: its cache folder (test features, manifest, views) and result folder."""
    work = tmp_path_factory.mktemp("clean")
    record = _run("coop", toy_root, work / "cache", work / "out", params=COOP)
    return work, record


def test_truncated_features_views_and_manifest_are_rebuilt_byte_for_byte(toy_root, clean, tmp_path):
    ref_work, ref = clean
    cache = tmp_path / "cache"
    shutil.copytree(ref_work / "cache", cache)
    test = features_path(cache, DATASET, "toy-rn", "test")
    manifest = manifest_path(cache, DATASET, 1, 1)
    (views,) = (cache / "features" / DATASET / "toy-rn" / "views").glob("shots1_seed1_*.safetensors")
    original = {p: _truncate(p) for p in (test, views)}
    original[manifest] = manifest.read_bytes()
    manifest.write_text('{"dataset": "toy_sh')  # a garbled copy
    said = []
    got = _run("coop", toy_root, cache, tmp_path / "out", said, params=COOP)
    for p, data in original.items():
        (line,) = _rebuilt_lines(said, p)
        assert p.read_bytes() == data, p  # rebuilt in place, equal to the original byte for byte
    assert "not a valid safetensors feature file" in _rebuilt_lines(said, test)[0]
    assert "unreadable" in _rebuilt_lines(said, views)[0]
    assert "not valid JSON" in _rebuilt_lines(said, manifest)[0]
    _same_result(got, ref, tmp_path / "out", ref_work / "out")
    said.clear()
    _run("coop", toy_root, cache, tmp_path / "again", said, params=COOP)
    assert not [s for s in said if " rebuilt: " in s]  # good caches are read, not rebuilt


def test_a_feature_cache_is_written_byte_identical_by_separate_processes(toy_root, tmp_path, coop_bin):
    """The safetensors library writes metadata in a random order; ours is sorted, so a cache made again equals
    the first byte for byte (what Snakemake's checksum check of a rewritten input needs)."""
    outs = [tmp_path / f"test{i}.safetensors" for i in range(2)]
    for out in outs:
        subprocess.run([coop_bin, "--threads", "1", "features", "--dataset", DATASET, "--part", "test", "--root",
                        str(toy_root), "--backbone", "toy-rn", "--out", str(out)], check=True, capture_output=True)
    assert outs[0].read_bytes() == outs[1].read_bytes()
    meta_len = int.from_bytes(outs[0].read_bytes()[:8], "little")
    meta = json.loads(outs[0].read_bytes()[8:8 + meta_len])["__metadata__"]
    assert list(meta) == sorted(meta)


def test_a_truncated_fewshot_feature_cache_is_rebuilt_for_every_manifest(toy_root, clip, tmp_path):
    """The few-shot features (the workflow's fewshot_features rule: every manifest's images) are made again in
    full from the manifests beside the run's, equal to the rule's file; a linear probe then equals a clean run."""
    from coop.data.datasets import read_split
    from coop.data.fewshot import make_manifest, write_manifest

    cache = tmp_path / "cache"
    manifests = []
    for seed in (1, 2):  # the manifests of a workflow cell, then its fewshot_features output
        m = manifest_path(cache, DATASET, 1, seed)
        write_manifest(m, make_manifest(DATASET, read_split(toy_root, get_dataset(DATASET)), 1, seed))
        manifests.append(read_manifest(m))
    items = fewshot_pool(manifests)
    fewshot = features_path(cache, DATASET, "toy-rn", "fewshot")
    save_features(fewshot, compute_features(clip, DATASET, items, toy_root, "cpu"), items,
                  cache_keys(DATASET, "toy-rn", clip.name, clip.pretrained, "fewshot"))
    ref = _run("linear_probe", toy_root, cache, tmp_path / "ref_out")
    original = _truncate(fewshot)
    said = []
    got = _run("linear_probe", toy_root, cache, tmp_path / "out", said)
    (line,) = _rebuilt_lines(said, fewshot)
    assert "not a valid safetensors feature file" in line
    assert fewshot.read_bytes() == original
    _same_result(got, ref, tmp_path / "out", tmp_path / "ref_out")


@pytest.mark.parametrize("garble", ["truncated", "not_coop", "lacks_state"])
def test_a_corrupt_checkpoint_is_logged_and_training_starts_from_scratch(toy_root, clean, tmp_path, garble):
    import torch

    ref_work, ref = clean
    out = tmp_path / "out"
    _run("coop", toy_root, tmp_path / "cache", out, params=COOP, keep_checkpoint=True)  # a finished checkpoint
    ck = checkpoint_path(out)
    (out / "metrics.json").unlink()  # as if the job had been killed before writing it
    if garble == "truncated":
        _truncate(ck)
    elif garble == "not_coop":
        torch.save({"weights": torch.zeros(3)}, ck)
    else:
        state = torch.load(ck, weights_only=True)
        del state["optimizer"]
        torch.save(state, ck)
    said = []
    got = _run("coop", toy_root, tmp_path / "cache", out, said, params=COOP)
    (line,) = _rebuilt_lines(said, ck)
    assert line.endswith("training from scratch"), line
    assert not [s for s in said if s.startswith("resumed from")]
    _same_result(got, ref, out, ref_work / "out")
    assert not ck.exists()  # the run finished: its (new) checkpoint is gone


def test_a_new_fewshot_subset_makes_views_of_its_own(toy_root, tmp_path):
    """An edited split file (here: without the images sampled before) gives a new subset: the run builds views under a new
    key instead of stopping with "belongs to another subset", removes the old cell's file, and equals a clean run
    of the new data."""
    root = tmp_path / "data"
    shutil.copytree(toy_root / DATASET, root / DATASET)
    cache = tmp_path / "cache"
    _run("coop", root, cache, tmp_path / "old", params=COOP)
    folder = cache / "features" / DATASET / "toy-rn" / "views"
    (old,) = folder.glob("shots1_seed1_*.safetensors")
    spec = get_dataset(DATASET)
    split_file = root / DATASET / spec.split_file
    split = json.loads(split_file.read_text())
    picked = {p for p, _, _ in read_manifest(manifest_path(cache, DATASET, 1, 1))["train"]}
    split["train"] = [it for it in split["train"] if it[0] not in picked]  # the sampled images are gone
    split_file.write_text(json.dumps(split))
    # What the workflow does when the split file changes: its manifest and feature rules run again.
    manifest_path(cache, DATASET, 1, 1).unlink()
    features_path(cache, DATASET, "toy-rn", "test").unlink()
    said = []
    got = _run("coop", root, cache, tmp_path / "new", said, params=COOP)
    (new,) = folder.glob("shots1_seed1_*.safetensors")
    assert new != old and not old.exists()
    assert [s for s in said if s.startswith(f"removed {old}")], said
    assert not [s for s in said if "Delete it" in s or "another subset" in s and "removed" not in s]
    ref = _run("coop", root, tmp_path / "fresh", tmp_path / "ref", params=COOP)
    assert got["manifest_hash"] != json.loads((tmp_path / "old" / "metrics.json").read_text())["manifest_hash"]
    _same_result(got, ref, tmp_path / "new", tmp_path / "ref")
    assert new.read_bytes() == next((tmp_path / "fresh" / "features" / DATASET / "toy-rn" / "views").glob(
        "shots1_seed1_*.safetensors")).read_bytes()
