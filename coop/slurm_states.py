"""SLURM job states, as `sacct` and `squeue` print them, read the way the Snakemake SLURM plugin needs them.

snakemake-executor-plugin-slurm 2.8.0 (the pinned, latest release) compares the state strings of its status
query exactly: `sacct` prints a job cancelled with scancel as "CANCELLED by <uid>", which the plugin does not
know, so it takes the job for running and waits for it forever; a job ended PREEMPTED it leaves to SLURM to
requeue, and waits forever too where SLURM does not. `plugin_states` rewrites the answer of the status query so
that every end state of a job that did not complete is one the plugin counts as a failure (Snakemake then
retries the job, profile `retries`, or reports it), and a job that SLURM has requeued stays running.
workflow/rules/slurm.smk applies it to the plugin. No Snakemake here; SLURM only through `squeue`.

The states (SLURM's sacct/squeue manual pages, "JOB STATE CODES"): a job that left the queue ended in one of
END_STATES; REQUEUABLE of them are ones after which SLURM itself may put the job back in the queue (a
preemption with PreemptMode=REQUEUE, a node failure of a requeueable job), under the same job id.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from typing import Callable, Iterable, Mapping

# End states of a job, from SLURM's documentation.
COMPLETED = "COMPLETED"
END_STATES = frozenset({
    "BOOT_FAIL",      # terminated due to launch failure (typically hardware)
    "CANCELLED",      # cancelled by the user or an administrator (sacct adds " by <uid>")
    "COMPLETED",      # all processes ended with exit code 0
    "DEADLINE",       # terminated on reaching its --deadline
    "FAILED",         # ended with a non-zero exit code or other failure
    "NODE_FAIL",      # terminated by the failure of one of its nodes
    "OUT_OF_MEMORY",  # an out of memory error
    "PREEMPTED",      # terminated by preemption
    "TIMEOUT",        # reached its time limit
    "REVOKED",        # a sibling of a federated job started on another cluster
})
REQUEUABLE = frozenset({"PREEMPTED", "NODE_FAIL"})
# The failure states that the plugin's check_active_jobs knows (its `fail_stati`, and its own NODE_FAIL case).
PLUGIN_FAILURES = frozenset({"BOOT_FAIL", "CANCELLED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
                             "TIMEOUT"})
# What a failure the plugin does not know is reported to it as (the warning line names the real state).
FAILED = "FAILED"

_BY_UID = re.compile(r"\s+by\s+\S+$")


def base_state(state: str) -> str:
    """The state's name alone: "CANCELLED by 1234" -> "CANCELLED" (sacct names who cancelled), a truncated
    "CANCELLED+" (sacct without --parsable) -> "CANCELLED", in capitals, without surrounding blanks."""
    return _BY_UID.sub("", state.strip()).rstrip("+").strip().upper()


def is_end_state(state: str) -> bool:
    """Whether a job in `state` has left the queue for good (also a PREEMPTED one, unless SLURM requeues it:
    then squeue shows it PENDING again)."""
    return base_state(state) in END_STATES


def plugin_states(states: Mapping[str, str], live: Callable[[], Mapping[str, str] | None]
                  ) -> tuple[dict[str, str], list[str]]:
    """The status query's answer (job id -> state) as the plugin must read it, and a warning line for each job
    reported as a failure under another name than its own.

    A "CANCELLED by <uid>" is a CANCELLED; a REQUEUABLE state is checked against `live()` (job id -> the
    controller's current state, squeue; jobs it no longer knows left out; None when it could not be asked): a
    job SLURM has put back in the queue keeps its live state (the plugin waits for it, as for any state it does
    not know), one that is over is a failure (NODE_FAIL stays NODE_FAIL, which the plugin handles; PREEMPTED
    becomes FAILED). `live` is called once, and only when a REQUEUABLE state is in the answer; when it answers
    None those states are left as they are, for the next status check."""
    out = {job: (base_state(s) if base_state(s) in END_STATES else s) for job, s in states.items()}
    requeuable = [job for job, s in out.items() if s in REQUEUABLE]
    notes: list[str] = []
    now = live() if requeuable else {}
    if now is None:
        return out, notes
    for job in requeuable:
        current = now.get(job)
        if current is not None and not is_end_state(current):
            out[job] = current  # requeued by SLURM: pending or running again under the same id
        elif out[job] not in PLUGIN_FAILURES:
            notes.append(f"SLURM job {job} ended {out[job]} and was not requeued by SLURM: counted as failed "
                         "(Snakemake retries it)")
            out[job] = FAILED
    return out, notes


def live_jobs(rows: Iterable[str], folder: str) -> list[tuple[str, str, str]]:
    """(job id, state, comment) of each job still queued or running whose working directory is `folder`, from
    `squeue --me --noheader --format=%i|%T|%Z|%k` lines (the plugin submits with -D <the run's folder> and
    --comment rule_<rule>_wildcards_<...>)."""
    found = []
    for row in rows:
        parts = row.rstrip("\n").split("|", 3)
        if len(parts) == 4 and parts[2] == folder and not is_end_state(parts[1]):
            found.append((parts[0], parts[1], parts[3]))
    return found


def squeue(*args: str, timeout: float = 5) -> list[str] | None:
    """The lines of `squeue --noheader <args>`, or None where squeue is not installed, fails or does not answer
    within `timeout` seconds (no controller)."""
    exe = shutil.which("squeue")
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, "--noheader", *args], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.splitlines() if proc.returncode == 0 else None


def my_job_states() -> dict[str, str] | None:
    """Job id -> current state of this user's jobs that the controller knows (also those ended within its
    MinJobAge), or None where squeue cannot tell."""
    rows = squeue("--me", "--states=all", "--format=%i|%T")
    if rows is None:
        return None
    return dict(row.strip().split("|", 1) for row in rows if "|" in row)


def wrap_status_query(query, live: Callable[[], Mapping[str, str] | None] = my_job_states):
    """The plugin's `query_job_status(command, logger)` (async; returns (job id -> state, seconds), or
    (None, None) when the query failed), its answer read through `plugin_states`, each note logged as a
    warning. Wrapping twice wraps once."""
    if getattr(query, "coop_states", False):
        return query

    async def query_job_status(command, logger):
        states, seconds = await query(command, logger)
        if states is None:
            return states, seconds
        states, notes = plugin_states(states, live)
        for note in notes:
            logger.warning(note)
        return states, seconds

    query_job_status.coop_states = True
    return query_job_status
