"""The SLURM jobs of a workflow run, as `squeue` lists them (for `coop status`).

snakemake-executor-plugin-slurm names every submission by the workflow run's ID ("SLURM run ID: ..." in the
driver's output) and writes `rule_<rule>_wildcards_<values joined by _, / as _>` into its comment; a group
submission's comment is `rule_<group>_<rules>` without wildcards: its jobs are known only once it runs, from
its SLURM log (.snakemake/slurm_logs/group_<group>_<rules>/<jobid>.log), where the Snakemake inside it
announces each job as it starts it, with the job's `log:` path.
"""
from __future__ import annotations

import getpass
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

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

    @property
    def is_group(self) -> bool:
        return "_wildcards_" not in self.comment

    def runs(self, rule: str, values: list[str]) -> bool:
        """Whether this (single-job) submission is the job of `rule` with these wildcard values."""
        wildcards = "_".join(values).replace("/", "_")
        return self.comment == f"rule_{rule}_wildcards_{wildcards}"


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


LOG_LINE = re.compile(r"^\s*log: (.+?)\s*$")


def group_logs(job: SlurmJob, workdir: str | Path = ".") -> set[str]:
    """The `log:` paths of the jobs that a group submission has started so far, from its SLURM log (empty
    while it is pending, or where the log is not found)."""
    logdir = Path(workdir) / ".snakemake" / "slurm_logs"
    candidates = [logdir / ("group_" + job.comment[len("rule_"):]) / f"{job.jobid}.log"]
    found = [c for c in candidates if c.exists()] or (sorted(logdir.rglob(f"{job.jobid}.log"))
                                                      if logdir.is_dir() else [])
    logs: set[str] = set()
    for path in found[:1]:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if m := LOG_LINE.match(line):
                logs |= {p.strip() for p in m.group(1).split(",")}
    return logs
