"""Data that changes: new toy_world settings (and going back to the old ones), or an edited split file, rerun
exactly what depends on the data, and the results equal a clean run of the new data in another folder."""
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from workflow_util import TINY, snakemake

pytestmark = pytest.mark.resume

# A small config (about 12 jobs): two toy datasets (so an edit of one shows the other untouched), a zero-shot
# method and the linear probe at 1 shot, one seed; the experiment is not called "fewshot", so no paper figure.
SMALL = {**TINY, "methods": {"zeroshot": {"default": {}}, "linear_probe": {"default": {}}}, "seeds": [1],
         "experiments": {"probe": {"datasets": ["toy_shapes", "toy_textures"], "backbones": ["toy-rn"],
                                   "shots": [1], "runs": {"zeroshot": "zeroshot/default",
                                                          "linear_probe": "linear_probe/default"}}}}
MORE_IMAGES = {**SMALL, "toy_world": {**SMALL["toy_world"], "n_train": 6, "n_test": 4}}
TIMING = {"wall_seconds", "wall_seconds_mean"}
RUN_KEYS = ("accuracy", "macro_f1", "n_test", "manifest_hash", "test_items_hash", "params", "C")


def run(work: Path, config: dict, *args: str) -> str:
    proc = snakemake(work, "--cores", "2", *args, config=config)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _jobs(dry_run: str) -> set[str]:
    """The jobs of a dry run's output, each as its outputs (sorted, joined; jobs of a group are indented)."""
    return {", ".join(sorted(o.strip() for o in line.split(":", 1)[1].split(",")))
            for line in dry_run.splitlines() if line.strip().startswith("output:")}


def planned(work: Path, config: dict | None = None) -> set[str]:
    """The jobs a dry run would run (see _jobs)."""
    return _jobs(run(work, config, "-n"))


def planned_all(work: Path) -> set[str]:
    """Every job of the workflow (a dry run of everything: --forceall), as `planned` gives them."""
    return _jobs(run(work, None, "-n", "--forceall"))


def results(work: Path) -> dict[str, object]:
    """What a run computed, without timings: the split files, the manifests, both tables, every run's numbers."""
    found: dict[str, object] = {}
    for split in sorted((work / "data").glob("*/split_zhou_*.json")):
        found[str(split.relative_to(work))] = split.read_bytes()
    for manifest in sorted((work / "results/fewshot").rglob("*.json")):
        found[str(manifest.relative_to(work))] = manifest.read_bytes()
    for table in ("fewshot.csv", "runs.csv"):
        df = pd.read_csv(work / "results/tables" / table, dtype=str, keep_default_na=False)  # text: NaN == NaN
        found[table] = df[[c for c in df.columns if c not in TIMING]].to_dict("list")
    for m in sorted((work / "results/runs").rglob("metrics.json")):
        record = json.loads(m.read_text())
        found[str(m.relative_to(work))] = {k: record.get(k) for k in RUN_KEYS}
    return found


def assert_same_results(work: Path, reference: Path) -> None:
    ours, ref = results(work), results(reference)
    assert ours.keys() == ref.keys()
    for key in ref:
        assert ours[key] == ref[key], key


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    """A finished run of SMALL: copy it, do not change it."""
    work = tmp_path_factory.mktemp("small")
    run(work, SMALL)
    return work


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def test_new_toy_world_settings_rerun_everything_from_the_data_and_equal_a_clean_run(small_run, tmp_path):
    """More images per class (the answer to "too many shots"): the datasets are regenerated in place (Snakemake
    deleted their split files first), every job downstream reruns, and the results equal a clean run of the new
    config; going back to the old settings gives the old results again."""
    work = _copy(small_run, tmp_path / "work")
    assert planned(work, MORE_IMAGES) == planned_all(work)  # every job reads the data
    run(work, MORE_IMAGES)
    assert not [p for p in (work / "data").iterdir() if p.name.startswith(".")]  # no temporary folder left
    clean = tmp_path / "clean"
    clean.mkdir()
    run(clean, MORE_IMAGES)
    assert_same_results(work, clean)
    assert results(work) != results(small_run)
    run(work, SMALL)  # reverting the config
    assert_same_results(work, small_run)


def test_an_edited_split_file_reruns_exactly_what_reads_it(small_run, tmp_path):
    """One dataset's split file edited by hand (its last test image of each class dropped): its manifests,
    features and runs, and the tables, rerun; the other dataset's jobs and the data jobs do not (the edit is
    kept), and the results equal a clean run on the edited data in another folder."""
    work = _copy(small_run, tmp_path / "work")
    split = work / "data/toy_shapes/split_zhou_ToyShapes.json"
    data = json.loads(split.read_text())
    keep = {label: max(i for i, it in enumerate(data["test"]) if it[1] == label) for _, label, _ in data["test"]}
    data["test"] = [it for i, it in enumerate(data["test"]) if keep[it[1]] != i]
    split.write_text(json.dumps(data))
    every = planned_all(work)
    expected = {j for j in every if "toy_shapes" in j or "results/tables/" in j} - {
        j for j in every if j.startswith("data/")}
    assert planned(work, SMALL) == expected
    textures = {p: p.stat().st_mtime_ns for p in (work / "results").rglob("*") if p.is_file() and
                "toy_textures" in str(p) and "logs" not in p.parts and "benchmarks" not in p.parts}
    run(work, SMALL)
    assert json.loads(split.read_text()) == data  # not regenerated over the edit
    assert {p: p.stat().st_mtime_ns for p in textures} == textures
    # the reference: the edited data in a fresh folder, run from scratch
    clean = tmp_path / "clean"
    clean.mkdir()
    shutil.copytree(work / "data", clean / "data")
    run(clean, SMALL)
    assert_same_results(work, clean)
    record = json.loads((work / "results/runs/toy_shapes/toy-rn/zeroshot/default/shots0/seed0/metrics.json")
                        .read_text())
    assert record["n_test"] == len(data["test"])
