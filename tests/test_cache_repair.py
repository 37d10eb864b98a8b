"""Caches that rebuild themselves: a truncated or garbled feature cache, view cache, few-shot manifest or training
checkpoint is made again (the log names the file and why), the results equal a clean run's exactly, and a new
few-shot subset makes a view cache of its own instead of an error.

The reference of each test is a clean run of the same config in a fresh cache folder (seeded: equal bit for bit).
First hand runs (coop.experiment.run_experiment), then the workflow (Snakemake reruns of a finished small sweep:
which jobs run again, which files are left alone).
"""
import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from coop.data.datasets import get_dataset
from coop.experiment import cache_keys, compute_features, fewshot_pool, run_experiment
from coop.data.fewshot import read_manifest
from coop.features import save_features
from coop.store import checkpoint_path, features_path, manifest_path
from workflow_util import TINY, snakemake

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


# ---------------------------------------------------------------------------------------------
# The workflow: a finished small sweep, a cache garbled, the same command again.

SMALL = {**copy.deepcopy(TINY),
         "methods": {"zeroshot": {"default": {}}, "linear_probe": {"default": {}},
                     "coop": {"end_m4": {"n_ctx": 4, "epochs": 4}}},
         "experiments": {"fewshot": {"datasets": [DATASET], "backbones": ["toy-rn"], "shots": [1],
                                     "runs": {"zeroshot": "zeroshot/default", "linear_probe": "linear_probe/default",
                                              "coop": "coop/end_m4"}}}}
FEATURES = Path("results/features") / DATASET / "toy-rn"
RUNS = Path("results/runs") / DATASET / "toy-rn"
COOP_LOG = Path("results/logs/runs") / DATASET / "toy-rn/coop/end_m4/shots1.log"


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    """The small sweep (one dataset, zero-shot, linear probe and CoOp at 1 shot, 2 seeds) run once: the reference,
    copied (never changed) by each test."""
    work = tmp_path_factory.mktemp("small")
    proc = snakemake(work, "--cores", "2", config=SMALL)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work


def _copy(small_run: Path, to: Path) -> Path:
    shutil.copytree(small_run, to, symlinks=True)  # mtimes kept: Snakemake sees a finished sweep
    return to


def _rerun(work: Path) -> list[tuple[str, set[str]]]:
    """The same command again: (rule, outputs) of each job it started."""
    proc = snakemake(work, "--cores", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    started, rule = [], None
    for line in (proc.stdout + proc.stderr).splitlines():
        found = re.match(r"^(?:local)?rule (\w+):$", line)
        if found:
            rule = found[1]
        elif rule and line.strip().startswith("output:"):
            started.append((rule, {o.strip() for o in line.split(":", 1)[1].split(",")}))
            rule = None
    return started


def _nothing_left(work: Path) -> None:
    """A dry run afterwards has nothing to do: every rebuilt file equals the one Snakemake recorded."""
    proc = snakemake(work, "--cores", "2", "-n")
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]


def _same_results(work: Path, ref: Path) -> None:
    metrics = sorted((ref / "results/runs").glob("**/metrics.json"))
    assert len(metrics) == 5
    for m in metrics:
        rel = m.relative_to(ref)
        ours, theirs = json.loads((work / rel).read_text()), json.loads(m.read_text())
        for key in RESULT_KEYS:
            assert ours.get(key) == theirs.get(key), (rel, key)
        for art in m.parent.glob("*.safetensors"):
            assert (work / rel.parent / art.name).read_bytes() == art.read_bytes(), rel.parent / art.name
    for table in ("fewshot.csv", "runs.csv"):
        import pandas as pd

        cols = [c for c in pd.read_csv(ref / "results/tables" / table).columns if "seconds" not in c]
        pd.testing.assert_frame_equal(pd.read_csv(work / "results/tables" / table)[cols],
                                      pd.read_csv(ref / "results/tables" / table)[cols])


def _logs(work: Path) -> str:
    return "\n".join(p.read_text() for p in sorted((work / "results/logs").rglob("*.log")))


def test_workflow_rebuilds_truncated_feature_caches(small_run, tmp_path):
    """Declared outputs, truncated after the sweep: the runs that read them (rerun by Snakemake: their input
    changed) make them again, not the feature rules; byte for byte, so the results equal the clean run's and a
    dry run then has nothing left to do."""
    work = _copy(small_run, tmp_path / "work")
    test, fewshot = FEATURES / "test.safetensors", FEATURES / "fewshot.safetensors"
    original = {p: (work / p).read_bytes() for p in (test, fewshot)}
    views = {p: p.stat().st_mtime_ns for p in (work / FEATURES / "views").iterdir()}
    _truncate(work / test)
    _truncate(work / fewshot)
    started = _rerun(work)
    rules = {rule for rule, _ in started}
    assert "run_fewshot" in rules and not rules & {"test_features", "fewshot_features", "fewshot_manifest"}, started
    logs = _logs(work)
    for p in (test, fewshot):
        assert re.search(rf"^{re.escape(str(p))} rebuilt: not a valid safetensors", logs, re.M), (p, logs[-3000:])
        assert (work / p).read_bytes() == original[p], p
    assert "Delete it" not in logs
    assert {p: p.stat().st_mtime_ns for p in (work / FEATURES / "views").iterdir()} == views  # read, not rebuilt
    _same_results(work, small_run)
    _nothing_left(work)


def test_workflow_rebuilds_a_garbled_manifest(small_run, tmp_path):
    """A manifest garbled after the sweep: the job that reads it first (the few-shot features) samples it again,
    equal to the original (not its rule: the split did not change); the results equal the clean run's."""
    work = _copy(small_run, tmp_path / "work")
    manifest = Path("results/fewshot") / DATASET / "shots1_seed2.json"
    original = (work / manifest).read_bytes()
    (work / manifest).write_text('{"dataset": ')
    started = _rerun(work)
    assert "fewshot_manifest" not in {rule for rule, _ in started}, started
    logs = _logs(work)
    assert re.search(rf"^{re.escape(str(manifest))} rebuilt: it is not valid JSON", logs, re.M), logs[-3000:]
    assert (work / manifest).read_bytes() == original and "Delete it" not in logs
    _same_results(work, small_run)
    _nothing_left(work)


def test_workflow_rebuilds_a_truncated_view_cache_and_a_corrupt_checkpoint(small_run, tmp_path):
    """Undeclared caches: a sweep interrupted in a CoOp cell (one seed's metrics.json, the tables not yet written)
    with a garbled checkpoint left,
    and its truncated view cache: the rerun trains that cell again from scratch, rebuilds the views (the log
    names both), equals the clean run; no other job runs and the other seed's views are untouched."""
    work = _copy(small_run, tmp_path / "work")
    (views1,) = (work / FEATURES / "views").glob("shots1_seed1_*.safetensors")
    (views2,) = (work / FEATURES / "views").glob("shots1_seed2_*.safetensors")
    original, mtime2 = views1.read_bytes(), views2.stat().st_mtime_ns
    _truncate(views1)
    seed1 = work / RUNS / "coop/end_m4/shots1/seed1"
    (seed1 / "metrics.json").unlink()
    (seed1 / "checkpoint.pt").write_bytes(b"PK\x03\x04 half a zip")  # a torch.save cut short
    shutil.rmtree(work / "results/tables")  # interrupted before the end of the sweep: no tables, no figures yet
    shutil.rmtree(work / "figures")
    started = _rerun(work)
    assert not {rule for rule, _ in started} & {"test_features", "fewshot_features", "fewshot_manifest",
                                               "run_zeroshot", "toy_dataset"}, started
    assert [outs for rule, outs in started if rule == "run_fewshot"] == [
        {str(RUNS / f"coop/end_m4/shots1/seed{s}/metrics.json") for s in (1, 2)}]
    log = (work / COOP_LOG).read_text()
    assert re.search(rf"^{re.escape(str(views1.relative_to(work)))} rebuilt: unreadable", log, re.M), log[-3000:]
    ck = Path("results/runs") / DATASET / "toy-rn/coop/end_m4/shots1/seed1/checkpoint.pt"
    assert re.search(rf"^{re.escape(str(ck))} rebuilt: not a valid training checkpoint .*training from scratch$",
                     log, re.M), log[-3000:]
    assert views1.read_bytes() == original and views2.stat().st_mtime_ns == mtime2
    _same_results(work, small_run)


def test_workflow_a_changed_split_gives_views_under_a_new_key(small_run, tmp_path):
    """The split file edited after the sweep (its images sampled for seed 1 removed): the rerun samples a new
    subset and builds its views under a new key (no "belongs to another subset ... Delete it"), removes the old
    key's file, and equals a clean run of the edited data."""
    work = _copy(small_run, tmp_path / "work")
    split_file = work / "data" / DATASET / get_dataset(DATASET).split_file
    split = json.loads(split_file.read_text())
    picked = {p for p, _, _ in read_manifest(work / "results/fewshot" / DATASET / "shots1_seed1.json")["train"]}
    split["train"] = [it for it in split["train"] if it[0] not in picked]
    split_file.write_text(json.dumps(split))
    (old,) = (work / FEATURES / "views").glob("shots1_seed1_*.safetensors")
    clean_new = tmp_path / "clean"  # the reference: a clean sweep of the edited data
    clean_new.mkdir()
    shutil.copytree(work / "data", clean_new / "data", symlinks=True)
    _rerun(work)
    logs = _logs(work)
    assert "Delete it" not in logs and "belongs to another subset" not in logs
    (new,) = (work / FEATURES / "views").glob("shots1_seed1_*.safetensors")
    assert new.name != old.name and not old.exists()
    assert f"removed {old.relative_to(work)}" in logs
    proc = snakemake(clean_new, "--cores", "2", config=SMALL)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (clean_new / FEATURES / "views" / new.name).read_bytes() == new.read_bytes()
    _same_results(work, clean_new)


def test_matching_finds_a_datasets_manifests_and_no_other(tmp_path):
    """store.matching fills the fields not given with any value; a name with glob characters is literal."""
    from coop.store import matching

    root = tmp_path / "re[sults]"
    want = [manifest_path(root, "toy_shapes", s, d) for s, d in ((1, 1), (16, 2), (2, 3))]
    others = [manifest_path(root, "toy_shapes_v2", 1, 1), manifest_path(root, "toy_*", 1, 1),
              root / "fewshot" / "toy_shapes" / "notes.json"]
    for p in want + others:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("{}")
    assert matching("manifest", root, dataset="toy_shapes") == sorted(want)
    assert matching("manifest", root, dataset="toy_*") == [others[1]]
    assert matching("manifest", root, dataset="toy_shapes", shots=16) == [want[1]]
