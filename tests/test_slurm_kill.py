"""Killed SLURM jobs and a killed driver, on the real test cluster (`snakemake --profile slurm`, as in
tests/test_slurm.py): a training job cancelled with scancel ("CANCELLED by 0" in sacct) is retried and the sweep
finishes (coop/slurm_states.py; the plugin alone waits for it forever); a rerun after a SIGKILLed driver submits
nothing while a SLURM job of that driver still runs in the folder, with or without its lock (coop/drivers.py).

Each test starts from a copy of the local reference run (`tiny_run`) with one CoOp run removed, so that only
that run's job goes through SLURM (short); its result must equal the reference's, bit for bit. Cluster: the one
running now if there is one (left running), else the session's `slurm_cluster`.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from safetensors.numpy import load_file

from conftest import ROOT
from test_slurm import _cluster_config, _metric_columns, pytestmark as SLURM_MARKS
from workflow_util import snakemake, snakemake_command

RUN = "results/runs/toy_shapes/toy-rn/coop/end_m4/shots2/seed1"
pytestmark = SLURM_MARKS  # the marks and skips of tests/test_slurm.py: only on request, as root
FAST = ("--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs")  # as test_slurm.py


@pytest.fixture(scope="module")
def cluster(request):
    if not _cluster_config():
        request.getfixturevalue("slurm_cluster")
        assert _cluster_config(), "no SLURM controller answers"


@pytest.fixture
def one_run_left(cluster, request, tmp_path) -> Path:
    """A copy of the finished local reference run without RUN's results, tables and figures: the sweep has one
    CoOp run to do (through SLURM), then the tables and figures (local rules)."""
    tiny_run = request.getfixturevalue("tiny_run")
    work = tmp_path / "work"
    shutil.copytree(tiny_run, work, symlinks=True)
    for made in (RUN, "results/tables", "figures"):
        shutil.rmtree(work / made)
    return work


def _start(work: Path) -> tuple[subprocess.Popen, Path]:
    cmd, env = snakemake_command(work, "--profile", "slurm", *FAST)
    log = work.parent / "driver.log"
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    return proc, log


def _rerun(work: Path, *args: str) -> subprocess.CompletedProcess:
    return snakemake(work, "--profile", "slurm", *FAST, *args, cwd=ROOT, timeout=600)


def _training(work: Path, proc: subprocess.Popen, timeout: float = 300) -> str:
    """The SLURM job id of RUN once it is training (its checkpoint written)."""
    end = time.time() + timeout
    while time.time() < end:
        assert proc.poll() is None, "the driver ended before its job was training"
        if (work / RUN / "checkpoint.pt").exists():
            rows = subprocess.run(["squeue", "--me", "-h", "-o", "%i|%T|%Z"], capture_output=True, text=True,
                                  check=True).stdout.splitlines()
            running = [r.split("|")[0] for r in rows if r.endswith(f"|RUNNING|{work}")]
            assert len(running) == 1, rows
            return running[0]
        time.sleep(0.05)
    raise AssertionError(f"RUN never started training:\n{(work.parent / 'driver.log').read_text()[-3000:]}")


def _jobs_of(work: Path) -> list[dict]:
    """Every SLURM job with `work` as working directory (sacct, by start)."""
    fields = ["JobIDRaw", "State", "Start", "End", "WorkDir", "Comment"]
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-S", "now-2hours", "-o", ",".join(fields)],
                         capture_output=True, text=True, check=True).stdout
    jobs = [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line.strip()]
    return sorted((j for j in jobs if j["WorkDir"] == str(work)), key=lambda j: int(j["JobIDRaw"]))


def _one_after_another(jobs: list[dict]) -> None:
    """No two of the jobs ran at the same time (each started after the one before ended)."""
    spans = [(datetime.fromisoformat(j["Start"]), datetime.fromisoformat(j["End"])) for j in jobs]
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, jobs


def _equals_reference(work: Path, reference: Path) -> None:
    """RUN's metrics and learned prompt, and the tables, equal the local reference run's."""
    ours, ref = (json.loads((root / RUN / "metrics.json").read_text()) for root in (work, reference))
    for key in ("accuracy", "macro_f1", "n_test", "final_loss", "loss_history", "manifest_hash"):
        assert ours.get(key) == ref.get(key), key
    ctx = [load_file(root / RUN / "prompt.safetensors")["ctx"].tobytes() for root in (work, reference)]
    assert ctx[0] == ctx[1]
    assert not (work / RUN / "checkpoint.pt").exists()
    for table in ("fewshot.csv", "runs.csv"):
        pd.testing.assert_frame_equal(_metric_columns(pd.read_csv(work / "results/tables" / table)),
                                      _metric_columns(pd.read_csv(reference / "results/tables" / table)),
                                      check_exact=True)


def _wait_until_gone(job: str, timeout: float = 300) -> None:
    end = time.time() + timeout
    while time.time() < end:
        state = subprocess.run(["squeue", "-h", "--states=all", "-j", job, "-o", "%T"], capture_output=True,
                               text=True).stdout.strip()
        if state in ("", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY"):
            return
        time.sleep(0.5)
    raise AssertionError(f"SLURM job {job} still {state}")


def test_a_cancelled_training_job_is_retried_and_the_sweep_finishes(one_run_left, request):
    work = one_run_left
    proc, log = _start(work)
    try:
        victim = _training(work, proc)
        subprocess.run(["scancel", victim], check=True)
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:  # the plugin alone waits for the cancelled job forever: stop it (it cancels its jobs)
            os.kill(proc.pid, signal.SIGINT)
            proc.wait(timeout=120)
    out = log.read_text()
    assert proc.returncode == 0, out[-5000:]
    jobs = _jobs_of(work)
    # RUN's job, cancelled while training, then its retry (attempt 2), done; never both at once
    assert [j["State"] for j in jobs] == ["CANCELLED by 0", "COMPLETED"], jobs
    assert jobs[0]["JobIDRaw"] == victim and jobs[0]["Comment"] == jobs[1]["Comment"]
    _one_after_another(jobs)
    assert out.count("Trying to restart job") == 1, out[-5000:]
    assert re.findall(r"submitted with SLURM jobid (\d+)", out) == [j["JobIDRaw"] for j in jobs]
    _equals_reference(work, request.getfixturevalue("tiny_run"))


def test_a_rerun_after_a_killed_driver_submits_nothing_while_its_job_runs(one_run_left, request):
    work = one_run_left
    proc, log = _start(work)
    try:
        orphan = _training(work, proc)
    finally:
        proc.kill()  # SIGKILL: the driver cancels nothing, its SLURM job runs on
        proc.wait(timeout=60)
    # hold the orphan (as SLURM may: a suspended job is not over) for as long as the reruns below take
    subprocess.run(["scontrol", "suspend", orphan], check=True)
    try:
        locked = _rerun(work)
        assert (work / ".snakemake" / "locks").is_dir() and any((work / ".snakemake" / "locks").iterdir())
        unlock = snakemake(work, "--unlock", cwd=ROOT, timeout=300)
        assert unlock.returncode == 0, unlock.stderr[-2000:]
        unlocked = _rerun(work)  # --unlock does not end the job: still stopped
    finally:
        subprocess.run(["scontrol", "resume", orphan], check=True)
    for proc_, needs_unlock in ((locked, True), (unlocked, False)):
        errors = [line for line in proc_.stderr.splitlines() if line.startswith("error: ")]
        assert proc_.returncode == 2 and len(errors) == 1, proc_.stderr[-3000:]
        assert errors[0].startswith(f"error: 1 SLURM job(s) of an earlier snakemake still run in {work}")
        assert f"{orphan} SUSPENDED rule_short_runs_run_fewshot" in errors[0] and f"scancel {orphan}" in errors[0]
        assert ("snakemake --unlock" in errors[0]) == needs_unlock
        assert "submitted with SLURM jobid" not in proc_.stdout + proc_.stderr
    assert [j["JobIDRaw"] for j in _jobs_of(work)] == [orphan]  # nothing else was submitted
    _wait_until_gone(orphan)
    final = _rerun(work)
    assert final.returncode == 0, (final.stdout + final.stderr)[-5000:]
    jobs = _jobs_of(work)
    assert jobs[0]["JobIDRaw"] == orphan and all(j["State"] == "COMPLETED" for j in jobs), jobs
    _one_after_another(jobs)  # no run trained by two jobs at once
    _equals_reference(work, request.getfixturevalue("tiny_run"))
