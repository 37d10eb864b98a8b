"""SLURM job states as the SLURM plugin's status check reads them (coop/slurm_states.py), and SLURM jobs of a
killed driver stopping a rerun (coop/drivers.py). No cluster here: the plugin's real check_active_jobs is fed
status answers, and a fake `squeue` stands for the cluster. The same on a real cluster: tests/test_slurm.py.
"""
import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from coop.slurm_states import base_state, live_jobs, plugin_states, wrap_status_query

# Every job state of SLURM's documentation (sacct(1) and squeue(1), "JOB STATE CODES"), and what a driver must
# make of a job in it: "done" (completed), "failed" (ended otherwise: retried or reported), "wait" (still queued,
# running or held: it may yet run).
DOCUMENTED = {
    "BOOT_FAIL": "failed", "CANCELLED": "failed", "COMPLETED": "done", "DEADLINE": "failed",
    "FAILED": "failed", "NODE_FAIL": "failed", "OUT_OF_MEMORY": "failed", "PREEMPTED": "failed",
    "TIMEOUT": "failed",
    "PENDING": "wait", "RUNNING": "wait", "REQUEUED": "wait", "RESIZING": "wait", "SUSPENDED": "wait",
    "CONFIGURING": "wait", "COMPLETING": "wait", "REQUEUE_FED": "wait", "REQUEUE_HOLD": "wait",
    "RESV_DEL_HOLD": "wait", "SIGNALING": "wait", "SPECIAL_EXIT": "wait", "STAGE_OUT": "wait", "STOPPED": "wait",
    "REVOKED": "wait",  # a federated job's sibling, revoked here because the job started on another cluster
}
# as sacct prints a cancelled job: who cancelled it (root, a user)
CANCELLED_BY = ["CANCELLED by 0", "CANCELLED by 1234", "CANCELLED by 4294967294"]


# --- the plugin's own check, fed these states ------------------------------------------------------------------

def _plugin_verdicts(monkeypatch, answer: dict[str, str], live=lambda: {}, wrapped=True) -> dict[str, str]:
    """Job id -> "done" / "failed" / "wait", as snakemake-executor-plugin-slurm's check_active_jobs decides it
    when its status query answers `answer` (through wrap_status_query unless `wrapped` is False)."""
    import snakemake_executor_plugin_slurm as plugin
    from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo

    async def query(command, logger):
        return dict(answer), 0.01

    monkeypatch.setattr(plugin, "query_job_status", wrap_status_query(query, live) if wrapped else query)
    monkeypatch.setattr(plugin, "get_min_job_age", lambda: None)
    monkeypatch.setattr(plugin, "is_query_tool_available", lambda tool: False)  # squeue: no sacct reason lookups
    ex = plugin.Executor.__new__(plugin.Executor)
    settings = SimpleNamespace(init_seconds_before_status_checks=1, status_attempts=1, keep_successful_logs=True,
                               requeue=False, status_command="squeue")
    verdicts = {}
    ex.__dict__.update(
        workflow=SimpleNamespace(executor_settings=settings), logger=logging.getLogger("test_slurm_states"),
        run_uuid="run", status_rate_limiter=contextlib.nullcontext(), _status_query_calls=0,
        _status_query_failures=0, _status_query_total_seconds=0.0, _status_query_min_seconds=None,
        _status_query_max_seconds=0.0, _status_query_cycle_rows=[], _failed_nodes=set(),
        _preemption_warning=False, _next_seconds_between_status_checks=1,
        report_job_success=lambda j: verdicts.__setitem__(j.external_jobid, "done"),
        report_job_error=lambda j, msg=None, aux_logs=None: verdicts.__setitem__(j.external_jobid, "failed"))
    jobs = [SubmittedJobInfo(job=None, external_jobid=job, aux={}) for job in answer]

    async def check():
        return [j.external_jobid async for j in ex.check_active_jobs(jobs)]

    for job in asyncio.run(check()):
        verdicts[job] = "wait"
    return verdicts


def test_every_documented_state_reads_as_slurm_means_it(monkeypatch):
    answer = {str(100 + i): state for i, state in enumerate([*DOCUMENTED, *CANCELLED_BY])}
    verdicts = _plugin_verdicts(monkeypatch, answer)
    expected = {job: DOCUMENTED[base_state(state)] for job, state in answer.items()}
    assert verdicts == expected


def test_the_plugin_alone_waits_forever_for_a_cancelled_or_preempted_job(monkeypatch):
    """Why the wrapper exists (2.8.0, the latest release): without it these jobs would never be done."""
    answer = {"1": "CANCELLED by 0", "2": "PREEMPTED", "3": "CANCELLED", "4": "TIMEOUT"}
    assert _plugin_verdicts(monkeypatch, answer, wrapped=False) == {"1": "wait", "2": "wait", "3": "failed",
                                                                    "4": "failed"}


@pytest.mark.parametrize("state", ["PREEMPTED", "NODE_FAIL"])
def test_a_job_slurm_requeued_stays_running_one_it_did_not_fails(monkeypatch, state):
    # sacct still shows the ended attempt; the controller (squeue) says what happens to the job now
    answer = {"7": state, "8": state, "9": state}
    now = {"7": "PENDING", "8": state}  # 7 requeued, 8 over (still listed, MinJobAge), 9 no longer listed
    assert _plugin_verdicts(monkeypatch, answer, live=lambda: now) == {"7": "wait", "8": "failed", "9": "failed"}


def test_squeue_unanswered_leaves_a_requeuable_state_for_the_next_check():
    out, notes = plugin_states({"5": "PREEMPTED", "6": "CANCELLED by 0"}, live=lambda: None)
    assert out == {"5": "PREEMPTED", "6": "CANCELLED"} and notes == []


def test_squeue_is_asked_only_for_a_requeuable_state():
    asked = []
    out, _ = plugin_states({"1": "RUNNING", "2": "CANCELLED by 0", "3": "TIMEOUT"},
                           live=lambda: asked.append(1) or {})
    assert out == {"1": "RUNNING", "2": "CANCELLED", "3": "TIMEOUT"} and asked == []


def test_a_preempted_job_counted_as_failed_says_so():
    out, notes = plugin_states({"42": "PREEMPTED"}, live=lambda: {})
    assert out == {"42": "FAILED"}
    assert notes == ["SLURM job 42 ended PREEMPTED and was not requeued by SLURM: counted as failed "
                     "(Snakemake retries it)"]


@pytest.mark.parametrize("raw, name", [("CANCELLED by 0", "CANCELLED"), ("CANCELLED by 1234", "CANCELLED"),
                                       ("CANCELLED+", "CANCELLED"), (" TIMEOUT ", "TIMEOUT"),
                                       ("OUT_OF_MEMORY", "OUT_OF_MEMORY"), ("node_fail", "NODE_FAIL")])
def test_base_state(raw, name):
    assert base_state(raw) == name


def test_wrapping_twice_wraps_once():
    async def query(command, logger):
        return {}, 0.0

    once = wrap_status_query(query)
    assert wrap_status_query(once) is once


# --- SLURM jobs of an earlier driver stop a rerun in their folder --------------------------------------------

def test_live_jobs_of_a_folder_from_squeue_lines():
    rows = ["11|RUNNING|/w/a|rule_short_runs_run_fewshot_wildcards_x", "12|PENDING|/w/a|rule_zeroshot_run_zeroshot",
            "13|RUNNING|/w/b|rule_x", "14|CANCELLED|/w/a|rule_y", "15|COMPLETING|/w/a|rule_z", "garbage"]
    assert live_jobs(rows, "/w/a") == [("11", "RUNNING", "rule_short_runs_run_fewshot_wildcards_x"),
                                       ("12", "PENDING", "rule_zeroshot_run_zeroshot"), ("15", "COMPLETING", "rule_z")]


def _fake_squeue(bindir: Path, lines: list[str]) -> None:
    bindir.mkdir(parents=True, exist_ok=True)
    script = bindir / "squeue"
    script.write_text("#!/bin/sh\ncat <<'EOF'\n" + "".join(f"{line}\n" for line in lines) + "EOF\n")
    script.chmod(0o755)


@pytest.mark.badinput
@pytest.mark.parametrize("locked", [True, False], ids=["locked", "after --unlock"])
def test_slurm_jobs_in_the_folder_stop_a_rerun_in_one_line(tmp_path, monkeypatch, locked):
    from coop.drivers import lock_advice

    work = tmp_path / "work"
    (work / ".snakemake" / "locks").mkdir(parents=True)
    if locked:
        (work / ".snakemake" / "locks" / "0.input.lock").write_text("x\n")
    _fake_squeue(tmp_path / "bin", [f"301|RUNNING|{work}|rule_short_runs_run_fewshot_wildcards_a",
                                    f"302|PENDING|{work}|rule_run_fewshot_wildcards_b",
                                    f"303|RUNNING|{tmp_path / 'other'}|rule_x"])
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    kind, message = lock_advice(work, ["snakemake", "--profile", "slurm"])
    assert kind == "stop" and "\n" not in message
    assert message.startswith(f"2 SLURM job(s) of an earlier snakemake still run in {work.resolve()}")
    assert "301 RUNNING rule_short_runs_run_fewshot_wildcards_a" in message and "303" not in message
    assert "scancel 301 302" in message and ("snakemake --unlock" in message) == locked
    assert lock_advice(work, ["snakemake", "-n"]) is None  # a dry run submits nothing: not stopped


def test_no_squeue_costs_nothing(tmp_path, monkeypatch):
    from coop.drivers import lock_advice

    monkeypatch.setenv("PATH", str(tmp_path))  # no squeue (and nothing else) on the PATH
    start = time.perf_counter()
    assert lock_advice(tmp_path, ["snakemake", "--cores", "1"]) is None
    assert time.perf_counter() - start < 0.1


def test_squeue_failing_or_hanging_does_not_stop_a_run(tmp_path, monkeypatch):
    from coop import slurm_states
    from coop.drivers import lock_advice

    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "squeue").write_text("#!/bin/sh\necho 'slurm_load_jobs error: Unable to contact slurm controller' >&2\n"
                                   "exit 1\n")
    (bindir / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    assert lock_advice(tmp_path, ["snakemake", "--cores", "1"]) is None
    (bindir / "squeue").write_text("#!/bin/sh\nsleep 30\n")
    start = time.perf_counter()
    assert slurm_states.squeue("--me", timeout=0.5) is None
    assert time.perf_counter() - start < 5


@pytest.mark.badinput
def test_the_workflow_stops_beside_a_slurm_job_of_its_folder_and_makes_nothing(tmp_path, monkeypatch):
    from workflow_util import TINY, snakemake

    work = tmp_path / "work"
    work.mkdir()
    _fake_squeue(tmp_path / "bin", [f"77|RUNNING|{work}|rule_short_runs_run_fewshot_wildcards_a"])
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    proc = snakemake(work, "--cores", "1", config=TINY, timeout=120)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2 and len(errors) == 1 and proc.stderr.strip().splitlines()[-1] == errors[0]
    assert "1 SLURM job(s) of an earlier snakemake still run in" in errors[0] and "scancel 77" in errors[0]
    assert "Traceback" not in proc.stderr and not (work / "results").exists() and not (work / "data").exists()
    dry = snakemake(work, "-n", "--cores", "1", config=TINY, timeout=120)  # a dry run submits nothing
    assert dry.returncode == 0, dry.stderr[-2000:]
