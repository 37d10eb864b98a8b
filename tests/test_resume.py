"""Resume: a sweep interrupted by SIGINT, SIGTERM or SIGKILL, or by a training job killed mid-epoch, finishes
with the command the README documents; no finished job runs again and the results equal an uninterrupted run.

The uninterrupted reference is the session's `tiny_run` (the same tiny config, run locally in one go).
"""
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from safetensors.numpy import load_file

from workflow_util import TINY, snakemake, snakemake_command

pytestmark = pytest.mark.resume

# runs of the tiny config: 2 datasets x (zeroshot + ensemble) + 2 datasets x 2 methods x 2 shots x 2 seeds
N_RUNS = 2 * 2 + 2 * 2 * 2 * 2
TIMING = {"wall_seconds", "wall_seconds_mean"}


def start(work: Path) -> tuple[subprocess.Popen, Path]:
    """Start the workflow in its own session (so a signal can reach the driver and its jobs, like Ctrl-C)."""
    cmd, env = snakemake_command(work, "--cores", "2", config=TINY)
    log = work / "driver.log"
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


def wait_for(condition, proc: subprocess.Popen, timeout: float = 300) -> None:
    end = time.time() + timeout
    while not condition():
        assert proc.poll() is None, "the workflow ended before it could be interrupted"
        assert time.time() < end, "timed out waiting for the workflow"
        time.sleep(0.02)


def metrics_files(work: Path) -> list[Path]:
    return sorted((work / "results/runs").glob("**/metrics.json"))


def jobs(log: str) -> tuple[dict[str, set[str]], set[str]]:
    """From a Snakemake log: each started job's outputs (by jobid), and the jobids that finished."""
    started, jobid, outputs = {}, None, set()
    for line in log.splitlines():
        if re.match(r"^(local)?rule \w+:$", line):
            outputs, jobid = set(), None
        elif line.strip().startswith("output:"):
            outputs = {o.strip() for o in line.split(":", 1)[1].split(",")}
        elif line.strip().startswith("jobid:"):
            jobid = line.split(":", 1)[1].strip()
            started[jobid] = outputs
    finished = set(re.findall(r"Finished jobid: (\d+)", log))
    return started, finished


def snapshot(work: Path, files: set[str]) -> dict[str, tuple[int, bytes]]:
    return {f: ((work / f).stat().st_mtime_ns, (work / f).read_bytes()) for f in files if (work / f).is_file()}


def assert_equals_reference(work: Path, reference: Path) -> None:
    """Every table, and every run's metrics, loss history and learned prompt, equal the uninterrupted run's."""
    for table in ("fewshot.csv", "runs.csv"):
        ours = pd.read_csv(work / "results/tables" / table)
        ref = pd.read_csv(reference / "results/tables" / table)
        cols = [c for c in ref.columns if c not in TIMING]
        pd.testing.assert_frame_equal(ours[cols], ref[cols])
    runs = metrics_files(work)
    assert len(runs) == N_RUNS
    for m in runs:
        rel = m.relative_to(work)
        ours, ref = pd.read_json(m, typ="series"), pd.read_json(reference / rel, typ="series")
        for key in ("accuracy", "macro_f1", "manifest_hash", "loss_history", "C"):
            if key in ref:
                assert ours[key] == ref[key], (rel, key)
        prompt = m.parent / "prompt.safetensors"
        if prompt.exists():  # bit-identical learned context
            ref_ctx = load_file(reference / rel.parent / "prompt.safetensors")["ctx"]
            assert load_file(prompt)["ctx"].tobytes() == ref_ctx.tobytes()
    # No checkpoint outlives its job, and a run's folder keeps no half-written file of a killed attempt (a
    # SIGKILL can leave a hidden .*.tmp beside a shared cache, never a file that looks complete).
    leftovers = [p for p in (work / "results/runs").rglob("*") if p.name.endswith(".tmp") or p.name == "checkpoint.pt"]
    assert not leftovers, leftovers


def rerun(work: Path, unlock: bool = False) -> str:
    """The README's resume command: the same command again (after `--unlock` if the driver was SIGKILLed)."""
    if unlock:
        proc = snakemake(work, "--unlock")
        assert proc.returncode == 0, proc.stderr[-2000:]
    proc = snakemake(work, "--cores", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_driver_interrupted_mid_sweep(tmp_path, tiny_run, how):
    proc, log = start(tmp_path)
    wait_for(lambda: len(metrics_files(tmp_path)) >= 5, proc)
    if how == "SIGINT":        # Ctrl-C: the terminal signals the driver and its jobs
        os.killpg(proc.pid, signal.SIGINT)
    elif how == "SIGTERM":     # `kill PID` of the driver
        proc.send_signal(signal.SIGTERM)
    else:                      # the node died or the job was killed: driver and jobs at once
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=300)
    assert proc.returncode != 0
    assert not (tmp_path / "results/tables/fewshot.csv").exists(), "interrupted after the end of the sweep"
    started, finished = jobs(log.read_text())
    done = set().union(*(started[j] for j in finished if j in started))
    assert done, "nothing had finished: interrupted too early to test anything"
    before = snapshot(tmp_path, done)

    second = rerun(tmp_path, unlock=how == "SIGKILL")
    rerun_started, _ = jobs(second)
    rerun_outputs = set().union(*rerun_started.values()) if rerun_started else set()
    assert not (rerun_outputs & done), f"finished jobs ran again: {sorted(rerun_outputs & done)}"
    assert snapshot(tmp_path, done) == before  # untouched, byte for byte and by mtime
    assert_equals_reference(tmp_path, tiny_run)


def test_training_job_killed_mid_epoch_continues_from_its_checkpoint(tmp_path, tiny_run):
    proc, log = start(tmp_path)
    checkpoints = lambda: list((tmp_path / "results/runs").glob("*/*/coop/*/*/*/checkpoint.pt"))  # noqa: E731
    wait_for(lambda: checkpoints(), proc)
    victim = _coop_training_process(proc.pid)
    os.kill(victim, signal.SIGKILL)
    proc.wait(timeout=300)
    assert proc.returncode != 0  # keep-going: the other jobs finished, the killed one failed
    ck = checkpoints()
    assert ck, "the killed job's checkpoint is kept for the rerun"
    cell_log = _cell_log(tmp_path, ck[0])

    rerun(tmp_path)
    resumed = re.findall(r"resumed from .*checkpoint\.pt at epoch (\d+)/20", cell_log.read_text())
    assert resumed and int(resumed[0]) > 0, cell_log.read_text()[-2000:]
    assert_equals_reference(tmp_path, tiny_run)


def _coop_training_process(session: int, timeout: float = 60) -> int:
    """PID of a `coop run --method coop` job of the workflow started in `session`."""
    end = time.time() + timeout
    while time.time() < end:
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                cmd = (d / "cmdline").read_bytes().split(b"\0")
                if os.getsid(int(d.name)) == session and b"coop" in cmd[0] + (cmd[1] if len(cmd) > 1 else b"") \
                        and b"--method" in cmd and cmd[cmd.index(b"--method") + 1] == b"coop":
                    return int(d.name)
            except (OSError, ValueError, IndexError):
                continue
        time.sleep(0.01)
    raise AssertionError("no CoOp training job found")


def _cell_log(work: Path, checkpoint: Path) -> Path:
    """The job log of the few-shot cell that a run's checkpoint belongs to."""
    rel = checkpoint.parent.parent.relative_to(work / "results/runs")  # {dataset}/{backbone}/coop/{variant}/shotsK
    return work / "results/logs/runs" / rel.parent / f"{rel.name}.log"


def test_temp_files_of_killed_writers_are_removed_on_the_next_run(tmp_path):
    """A driver killed while a figure was written left figures/.fig3_fewshot.pdf.<host>-<pid>.<x>.tmp for good;
    the next run (any target) removes it, and the temporary file of a writer still alive stays."""
    from coop import io

    work = tmp_path / "work"
    (work / "figures").mkdir(parents=True)
    (work / "results" / "tables").mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = work / "figures" / f".fig3_fewshot.pdf.{io._host()}-{dead.pid}.a1b2c3.tmp"
    stale_table = work / "results" / "tables" / f".table1.csv.{io._host()}-{dead.pid}.d4e5f6.tmp"
    writing = work / "figures" / f".fig4.pdf.{io._host()}-{os.getpid()}.g7h8i9.tmp"
    for p in (stale, stale_table, writing):
        p.write_text("half a file")
    split = "data/toy_shapes/split_zhou_ToyShapes.json"
    proc = snakemake(work, "--cores", "1", split, config=TINY, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (work / split).is_file()
    assert not stale.exists() and not stale_table.exists()
    assert writing.exists()
    assert f"removed {stale.relative_to(work)}" in proc.stdout + proc.stderr
