"""The same config and seed give the same results on CPU; another seed gives another few-shot subset.

Each method runs twice through the `coop` CLI, in separate processes with separate cache folders (so the
second run recomputes the manifest and the feature caches rather than reading the first run's), and the two
metrics.json files are compared field by field. Both copies run in their own working folder with the same
relative --cache-dir and --out, so the recorded command line and config are the same too.

Excluded from the comparison, and only these: `wall_seconds` (wall-clock time of the run), `job_seconds` (of
the whole job) and `peak_memory` (the process's peak RSS): they measure the machine and its load, not the
result.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from coop.data.datasets import get_dataset, read_split
from coop.data.fewshot import make_manifest

TIMING_FIELDS = {"wall_seconds", "job_seconds", "peak_memory"}
DATASET = "toy_textures"
SHOTS, SEED = 2, 1
METHODS = {
    "coop": ["--set", "epochs=2", "--set", "n_ctx=4"],
    "linear_probe": [],
    "text_bias": ["--set", "epochs=2"],  # a Table-5 baseline
}


def _diff(a, b, path="") -> list[str]:
    """Every leaf where a and b differ, as 'path: a != b'."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}.{k}: only in one run" for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            out += _diff(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _diff(x, y, f"{path}[{i}]")]
    return [] if a == b and type(a) is type(b) else [f"{path}: {a!r} != {b!r}"]


@pytest.fixture(scope="module")
def twin_runs(toy_root, tmp_path_factory):
    """{method: (folder of copy a, folder of copy b)}: every run started at once (2 cores), each in its own
    working folder with its own cache."""
    coop_bin = str(Path(sys.executable).parent / "coop")
    base = tmp_path_factory.mktemp("determinism")
    procs, folders = [], {}
    for method, args in METHODS.items():
        folders[method] = []
        for copy in ("a", "b"):
            work = base / copy / method
            work.mkdir(parents=True)
            cmd = [coop_bin, "--threads", "1", "run", "--dataset", DATASET, "--method", method, "--shots",
                   str(SHOTS), "--seed", str(SEED), "--data-root", str(toy_root), "--cache-dir", "cache", "--out",
                   "run", *args]
            procs.append((subprocess.Popen(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                           text=True), method))
            folders[method].append(work)
    for proc, method in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{method}: {out[-3000:]}"
    return folders


@pytest.mark.parametrize("method", list(METHODS))
def test_same_seed_gives_identical_metrics(twin_runs, method):
    a, b = twin_runs[method]
    ma = json.loads((a / "run" / "metrics.json").read_text())
    mb = json.loads((b / "run" / "metrics.json").read_text())
    assert TIMING_FIELDS <= set(ma)  # the excluded fields exist (so the exclusion list is not stale)
    differences = _diff({k: v for k, v in ma.items() if k not in TIMING_FIELDS},
                        {k: v for k, v in mb.items() if k not in TIMING_FIELDS})
    assert differences == []
    assert ma["method"] == method and ma["seed"] == SEED and ma["manifest_hash"]
    if method != "linear_probe":
        assert len(ma["loss_history"]) == 2


def _safetensors(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        return dict(f.metadata() or {}), {k: f.get_tensor(k) for k in f.keys()}


@pytest.mark.parametrize("method", list(METHODS))
def test_same_seed_gives_identical_files(twin_runs, method):
    """The learned parameters, the manifest and the feature caches of both copies are identical: byte for byte,
    except that a safetensors file's metadata may be serialised in another key order (safetensors writes it
    from a hash map), so those are compared by content: the same metadata, the same tensors bit for bit."""
    a, b = twin_runs[method]
    files = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file() and p.name != "metrics.json")
    assert files == sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file() and p.name != "metrics.json")
    assert any(f.startswith("run/") and f.endswith(".safetensors") for f in files)  # the learned parameters
    assert f"cache/fewshot/{DATASET}/shots{SHOTS}_seed{SEED}.json" in files
    assert f"cache/features/{DATASET}/toy-rn/test.safetensors" in files
    for f in files:
        if f.endswith(".safetensors"):
            (meta_a, ta), (meta_b, tb) = _safetensors(a / f), _safetensors(b / f)
            assert meta_a == meta_b and sorted(ta) == sorted(tb), f
            for k in ta:
                assert ta[k].dtype == tb[k].dtype and ta[k].tobytes() == tb[k].tobytes(), (f, k)
        else:
            assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_every_method_trains_on_the_same_subset(twin_runs):
    hashes = {json.loads((twin_runs[m][0] / "run" / "metrics.json").read_text())["manifest_hash"] for m in METHODS}
    assert len(hashes) == 1


def test_another_seed_gives_another_fewshot_subset(toy_root, twin_runs):
    split = read_split(toy_root, get_dataset(DATASET))
    same = make_manifest(DATASET, split, SHOTS, SEED)
    other = make_manifest(DATASET, split, SHOTS, SEED + 1)
    recorded = json.loads((twin_runs["coop"][0] / "run" / "metrics.json").read_text())["manifest_hash"]
    assert same["hash"] == recorded  # the sampler in this process draws what the runs drew
    assert other["hash"] != same["hash"] and other["train"] != same["train"]
    assert make_manifest(DATASET, split, SHOTS, SEED + 1) == other  # and redraws it exactly
