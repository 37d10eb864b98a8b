"""`coop run` for every method, end to end on a tiny toy dataset, through the console script."""
import json
import subprocess

import numpy as np
import pytest

REQUIRED = {"accuracy", "macro_f1", "n_test", "method", "params", "dataset", "shots", "seed", "backbone",
            "versions", "git_commit", "wall_seconds", "peak_memory", "manifest_hash", "device"}


def _run(coop_bin, toy_root, out, *args):
    cmd = [coop_bin, "--threads", "1", "run", "--dataset", "toy_textures", "--data-root", str(toy_root),
           "--cache-dir", str(out.parent / "cache"), "--out", str(out), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("method, args", [
    ("zeroshot", []),
    ("ensemble", []),
    ("linear_probe", ["--shots", "2", "--seed", "1"]),
    ("coop", ["--shots", "2", "--seed", "1", "--set", "epochs=2", "--set", "n_ctx=4"]),
    ("coop", ["--shots", "1", "--seed", "2", "--set", "epochs=1", "--set", "csc=true",
              "--set", "class_token_position=middle", "--set", "precision=amp"]),
    ("coop", ["--shots", "1", "--seed", "1", "--set", "epochs=1", "--set", "init=a photo of a",
              "--set", "class_token_position=front", "--set", "precision=fp16"]),
])
def test_run_writes_metrics(coop_bin, toy_root, tmp_path, method, args):
    out = tmp_path / "run"
    proc = _run(coop_bin, toy_root, out, "--method", method, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert REQUIRED <= set(m)
    assert m["method"] == method and m["n_test"] == 8 * 3 and 0 <= m["accuracy"] <= 100
    if method == "coop":
        from safetensors.numpy import load_file

        ctx = load_file(out / "prompt.safetensors")["ctx"]
        assert ctx.shape[-1] == 128 and np.isfinite(ctx).all()
        assert m["params"]["precision"] in ("fp32", "amp", "fp16")
        if m["params"]["csc"]:
            assert ctx.shape[0] == 8
        if m["params"]["init"]:
            assert m["n_ctx_effective"] == 4


def test_coop_run_is_deterministic(coop_bin, toy_root, tmp_path):
    args = ["--method", "coop", "--shots", "2", "--seed", "3", "--set", "epochs=2"]
    a, b = tmp_path / "a" / "run", tmp_path / "b" / "run"
    assert _run(coop_bin, toy_root, a, *args).returncode == 0
    assert _run(coop_bin, toy_root, b, *args).returncode == 0
    ma, mb = (json.loads((p / "metrics.json").read_text()) for p in (a, b))
    assert ma["loss_history"] == mb["loss_history"] and ma["accuracy"] == mb["accuracy"]


@pytest.mark.badinput
@pytest.mark.parametrize("args, message", [
    (["--method", "coop", "--shots", "2", "--seed", "1", "--set", "n_cxt=4"], "Unknown parameter"),
    (["--method", "zeroshot", "--shots", "4"], "uses no training data"),
    (["--method", "lp"], "Unknown method 'lp'"),
    (["--method", "zeroshot", "--backbone", "RN5O"], "Unknown backbone 'RN5O'"),
    (["--method", "zeroshot", "--backbone", "RN50-quickgelu", "--pretrained", "opneai"],
     "Unknown pretrained tag 'opneai'"),
    (["--method", "linear_probe", "--shots", "16", "--seed", "1"], "fewer than 16 training images"),
])
def test_bad_arguments_are_clear_errors(coop_bin, toy_root, tmp_path, args, message):
    proc = _run(coop_bin, toy_root, tmp_path / "run", *args)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_several_seeds_in_one_process(coop_bin, toy_root, tmp_path):
    """One job trains every seed of a cell; each seed's result equals that seed run alone."""
    args = ["--method", "coop", "--shots", "2", "--set", "epochs=2", "--set", "n_ctx=4"]
    out = tmp_path / "fused" / "seed{seed}"
    cmd = [coop_bin, "--threads", "1", "run", "--dataset", "toy_textures", "--data-root", str(toy_root),
           "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--seed", "1", "2", *args]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=600).returncode == 0
    alone = tmp_path / "alone" / "run"
    assert _run(coop_bin, toy_root, alone, "--seed", "2", *args).returncode == 0
    fused = json.loads((tmp_path / "fused" / "seed2" / "metrics.json").read_text())
    single = json.loads((alone / "metrics.json").read_text())
    assert fused["loss_history"] == single["loss_history"] and fused["accuracy"] == single["accuracy"]
    assert json.loads((tmp_path / "fused" / "seed1" / "metrics.json").read_text())["seed"] == 1


# `--threads N` wins over OMP_NUM_THREADS in the environment: torch imported after main reads the variables main
# set; torch imported before main is told by main. The no-flag reading shows the environment's 2 took effect.
_THREADS_AFTER = """
import sys
from coop.cli import main
assert main(["--threads", "1", "list"]) == 0
import torch
print("threads", torch.get_num_threads())
"""
_THREADS_BEFORE = """
import torch
print("threads", torch.get_num_threads())
from coop.cli import main
assert main(["--threads", "1", "list"]) == 0
print("threads", torch.get_num_threads())
"""


@pytest.mark.parametrize("script, expected", [(_THREADS_AFTER, ["1"]), (_THREADS_BEFORE, ["2", "1"])])
def test_threads_flag_beats_the_environment(script, expected):
    import os
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("threads ")]
    assert got == expected, proc.stdout[-2000:]
