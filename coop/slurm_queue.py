"""The SLURM jobs of a workflow run, as `squeue` lists them (for `coop status`).

snakemake-executor-plugin-slurm names every submission by the workflow run's ID ("SLURM run ID: ..." in the
driver's output) and writes `rule_<rule>_wildcards_<values joined by _, / as _>` into its comment; a group
submission's comment is `rule_<group>_<rules>_wildcards_<its first job's values>`, so only that job of a group
is known by name (the others are counted with the submission).
"""
from __future__ import annotations

import getpass
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass

FORMAT = "%i|%j|%T|%M|%k"   # job id, name (the run ID), state, elapsed, comment


@dataclass(frozen=True)
class SlurmJob:
    jobid: str
    name: str
    state: str       # PENDING, RUNNING, COMPLETING, ...
    elapsed: float   # seconds
    comment: str

    def as_dict(self) -> dict:
        return asdict(self)

    def runs(self, rule: str, values: list[str]) -> bool:
        """Whether this submission is (or starts with) the job of `rule` with these wildcard values."""
        wildcards = "_".join(values).replace("/", "_")
        return self.comment == f"rule_{rule}_wildcards_{wildcards}" or \
            self.comment.endswith(f"_{rule}_wildcards_{wildcards}")


def parse_elapsed(text: str) -> float:
    """squeue's %M: [days-][hours:]minutes:seconds."""
    days, _, rest = text.strip().rpartition("-")
    parts = [int(p) for p in rest.split(":") if p.isdigit()]
    seconds = 0
    for p in parts:
        seconds = seconds * 60 + p
    return float(seconds + (int(days) * 86400 if days.isdigit() else 0))


def parse_squeue(text: str) -> list[SlurmJob]:
    """Rows of `squeue -h -o FORMAT` that a Snakemake SLURM executor submitted (comment rule_...)."""
    jobs = []
    for line in text.splitlines():
        fields = line.split("|", 4)
        if len(fields) == 5 and fields[4].startswith("rule_"):
            jobid, name, state, elapsed, comment = (f.strip() for f in fields)
            jobs.append(SlurmJob(jobid, name, state, parse_elapsed(elapsed), comment))
    return jobs


def queued_jobs(run_id: str | None = None) -> list[SlurmJob] | None:
    """This user's workflow jobs queued or running (of one run ID if given); None where there is no squeue."""
    if not shutil.which("squeue"):
        return None
    cmd = ["squeue", "-h", "-u", getpass.getuser(), "-o", FORMAT]
    if run_id:
        cmd += ["--name", run_id]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    jobs = parse_squeue(proc.stdout)
    return [j for j in jobs if j.name == run_id] if run_id else jobs


RULE = re.compile(r"^rule_(?P<rule>.*?)(?:_wildcards_(?P<wildcards>.*))?$")


def describe(job: SlurmJob) -> str:
    """rule (or group and rules) and wildcards of a submission, for the table."""
    m = RULE.match(job.comment)
    return f"{m['rule']} {m['wildcards'] or ''}".strip() if m else job.comment
