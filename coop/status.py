"""`coop status`: how far a sweep is, read from the results folder and the config the workflow runs with.

Each run job of the sweep (coop.sweep: the same run set and log paths as the workflow) is in one state:

* done: every metrics.json it makes exists (a run is complete exactly when its metrics.json is there,
  coop.store); runs of a fused job that are already done count as done whatever the job's state;
* queued / running: SLURM lists it (`squeue`: the job's rule and wildcards in the submission's comment; a
  packed group submission names no jobs: those it has started are read from its SLURM log, coop.slurm_queue);
* failed: its log (results/logs/runs/..., the `log:` of workflow/rules/runs.smk) ends in an error: a Python
  traceback, or the one-line `error: ...` of the coop command. The log is rewritten when the job starts
  again, so a rerun that is under way is not "failed". (Snakemake's own records are not read: it keeps
  metadata of finished outputs only, and a failed job's message is in this log either way, locally and on
  SLURM.)
* started: its log exists without an error: running locally now, or interrupted (killed, out of time on a
  cluster: see SLURM's log in .snakemake/slurm_logs/); the next `snakemake` reruns it;
* missing: not started.

Time left: for each job not done, the mean `job_seconds` of the jobs of the same method and shots that wrote runs
("measured"), else the runtime the cluster request models (coop.resources, "modelled"); less the elapsed time of a running SLURM
job; summed, and divided by the jobs running at once (running SLURM jobs, else --parallel).
"""
from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coop import store
from coop.progress import format_seconds
from coop.slurm_queue import SlurmJob, describe, group_logs, queued_jobs
from coop.sweep import Job, load_config, sweep_jobs

STATES = ("done", "running", "queued", "failed", "started", "missing")
TAIL_BYTES = 65536
ERROR_LINE = re.compile(r"^(Traceback \(most recent call last\):|error: |\w+(Error|Exception|Interrupt)\b)")


def log_error(log: Path) -> str | None:
    """The error a job's log ends in (the last error line of its tail), or None."""
    try:
        with open(log, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - TAIL_BYTES))
            lines = [ln.rstrip() for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return None
    tail = lines[-40:]
    if not any(ERROR_LINE.match(ln) for ln in tail):
        return None
    errors = [ln for ln in tail if ERROR_LINE.match(ln) and not ln.startswith("Traceback")]
    return (errors or [ln for ln in tail if ERROR_LINE.match(ln)])[-1][:300]


@dataclass
class JobStatus:
    job: Job
    state: str
    done_runs: int
    error: str | None = None
    slurm: SlurmJob | None = None
    seconds_left: float = 0.0
    estimate: str = ""   # measured | modelled | "" (done)

    def as_dict(self, workdir: Path) -> dict[str, Any]:
        return {"rule": self.job.rule, "wildcards": dict(self.job.wildcards), "state": self.state,
                "runs": len(self.job.cells), "done_runs": self.done_runs, "log": self.job.log,
                "log_exists": (workdir / self.job.log).exists(), "error": self.error,
                "slurm_job": self.slurm.jobid if self.slurm else None,
                "seconds_left": round(self.seconds_left, 1), "estimate": self.estimate}


@dataclass
class SweepStatus:
    workdir: Path
    config: str
    experiments: dict[str, list[JobStatus]]
    slurm: list[SlurmJob] | None
    parallel: int
    measured: dict[str, float] = field(default_factory=dict)

    def jobs(self) -> list[JobStatus]:
        """Every job once (experiments share runs)."""
        return list({id(s.job): s for ss in self.experiments.values() for s in ss}.values())

    def counts(self, statuses: list[JobStatus]) -> dict[str, int]:
        """Runs (not jobs) in each state."""
        out = dict.fromkeys(STATES, 0)
        for s in statuses:
            out["done"] += s.done_runs
            if s.state != "done":
                out[s.state] += len(s.job.cells) - s.done_runs
        out["total"] = sum(len(s.job.cells) for s in statuses)
        return out

    def seconds_left(self) -> float:
        return sum(s.seconds_left for s in self.jobs()) / max(1, self.parallelism())

    def parallelism(self) -> int:
        running = [j for j in self.slurm or [] if j.state == "RUNNING"]
        return len(running) or self.parallel

    def as_dict(self) -> dict[str, Any]:
        jobs = self.jobs()
        return {
            "workdir": str(self.workdir), "config": self.config,
            "experiments": {name: {**self.counts(ss), "failed_logs": [s.job.log for s in ss if s.state == "failed"]}
                            for name, ss in self.experiments.items()},
            "total": self.counts(jobs),
            "jobs": [s.as_dict(self.workdir) for s in jobs if s.state != "done"],
            "slurm": None if self.slurm is None else [{**j.as_dict(), "what": describe(j)} for j in self.slurm],
            "time_left": {"seconds": round(self.seconds_left(), 1), "parallelism": self.parallelism(),
                          "parallelism_from": "running SLURM jobs" if self.parallelism() != self.parallel
                          else "--parallel",
                          "jobs_measured": sum(s.estimate == "measured" for s in jobs),
                          "jobs_modelled": sum(s.estimate == "modelled" for s in jobs),
                          "measured_job_seconds": self.measured},
        }


def _job_seconds(metrics: list[Path]) -> float | None:
    """The wall time of the job that wrote these runs (job_seconds; the largest if they disagree)."""
    values = []
    for m in metrics:
        try:
            record = json.loads(m.read_text())
        except (OSError, ValueError):
            continue
        value = record.get("job_seconds") or record.get("wall_seconds")
        if isinstance(value, (int, float)):
            values.append(float(value))
    return max(values) if values else None


def _modelled_seconds(job: Job, sizes) -> float:
    """The job's runtime as the cluster request models it (coop.resources), before margins."""
    dataset, backbone, method, variant, shots, _ = job.cells[0]
    return 60.0 * sizes.run(dataset, backbone, method, variant, shots, len(job.cells)).minutes


def sweep_status(config_path: str | Path = "config/config.yaml", workdir: str | Path = ".",
                 slurm: list[SlurmJob] | None | bool = True, parallel: int = 1,
                 run_id: str | None = None) -> SweepStatus:
    """The state of every run job of the config's experiments, under `workdir` (the workflow's -d).
    `slurm`: True asks squeue (None where there is none), or a list of jobs given directly."""
    workdir = Path(workdir)
    from coop.job_sizes import JobSizes

    config = load_config(config_path)
    sizes = JobSizes(config)
    by_exp = sweep_jobs(config, store.RESULTS, sizes)
    queue = queued_jobs(run_id) if slurm is True else (slurm or None)
    unique = {j: None for jobs in by_exp.values() for j in jobs}
    members = {q.jobid: group_logs(q, workdir) if q.is_group else set() for q in queue or []}
    finished: dict[Job, list[Path]] = {}
    statuses: dict[Job, JobStatus] = {}
    for job in unique:
        metrics = [workdir / m for m in job.metrics(store.RESULTS)]
        done = [m for m in metrics if m.exists()]
        if done:  # the job that wrote them ran this long (a fused job records its whole time in each seed's)
            finished[job] = done
        if len(done) == len(metrics):
            statuses[job] = JobStatus(job, "done", len(done))
            continue
        values = [v for _, v in job.wildcards]
        error = log_error(workdir / job.log)
        submission = next((q for q in queue or [] if q.runs(job.rule, values)), None)
        if submission is None and error is None:  # a group member that failed stays failed while its group runs
            submission = next((q for q in queue or [] if job.log in members[q.jobid]), None)
        if submission:
            state = "running" if submission.state in ("RUNNING", "COMPLETING") else "queued"
        elif error is not None:
            state = "failed"
        elif (workdir / job.log).exists():
            state = "started"
        else:
            state = "missing"
        statuses[job] = JobStatus(job, state, len(done), error if state == "failed" else None, submission)
    measured = _measured(finished)
    for job, s in statuses.items():
        if s.state == "done":
            continue
        key = f"{job.method}/shots{job.shots}"
        if key in measured:
            s.seconds_left, s.estimate = measured[key], "measured"
        else:
            s.seconds_left, s.estimate = _modelled_seconds(job, sizes), "modelled"
        left_share = (len(job.cells) - s.done_runs) / len(job.cells)
        s.seconds_left *= left_share
        if s.slurm and s.state == "running" and not s.slurm.is_group:  # a group's time covers its other jobs
            s.seconds_left = max(0.0, s.seconds_left - s.slurm.elapsed)
    return SweepStatus(workdir, str(config_path), {n: [statuses[j] for j in jobs] for n, jobs in by_exp.items()},
                       queue, parallel, measured)


def _measured(finished: dict[Job, list[Path]]) -> dict[str, float]:
    """method/shotsK -> mean measured job time of the finished jobs."""
    times = defaultdict(list)
    for job, metrics in finished.items():
        seconds = _job_seconds(metrics)
        if seconds is not None:
            times[f"{job.method}/shots{job.shots}"].append(seconds)
    return {k: sum(v) / len(v) for k, v in sorted(times.items())}


def render(status: SweepStatus) -> str:
    """The readable table: runs per experiment and state, failed jobs with their log, SLURM jobs, time left."""
    cols = ("total",) + STATES
    rows = [(name, status.counts(ss)) for name, ss in status.experiments.items()]
    rows.append(("all (distinct runs)", status.counts(status.jobs())))
    width = max(len(r[0]) for r in rows + [("experiment", None)])
    lines = [f"{'experiment':<{width}}  " + "  ".join(f"{c:>7}" for c in cols)]
    lines += [f"{name:<{width}}  " + "  ".join(f"{c[k]:>7}" for k in cols) for name, c in rows]
    failed = [s for s in status.jobs() if s.state == "failed"]
    if failed:
        lines += ["", f"failed jobs ({len(failed)}): read their log"]
        lines += [f"  {s.job.log}\n      {s.error}" for s in failed]
    started = [s for s in status.jobs() if s.state == "started"]
    if started:
        lines += ["", f"started, not finished ({len(started)}: running locally, or interrupted; rerun snakemake)"]
        lines += [f"  {s.job.log}" for s in started]
    if status.slurm is None:
        lines += ["", "SLURM: no squeue here"]
    else:
        lines += ["", f"SLURM: {len(status.slurm)} workflow job(s) queued or running"]
        lines += [f"  {j.jobid:>8}  {j.state:<10} {format_seconds(j.elapsed):>12}  {describe(j)}"
                  for j in status.slurm]
    jobs = [s for s in status.jobs() if s.state != "done"]
    if jobs:
        t = status.as_dict()["time_left"]
        lines += ["", f"time left: about {format_seconds(status.seconds_left())} for {len(jobs)} job(s) at "
                  f"{t['parallelism']} at once ({t['parallelism_from']}); estimates: {t['jobs_measured']} measured "
                  f"(mean job_seconds of finished jobs of the same method and shots), {t['jobs_modelled']} "
                  "modelled (coop.resources, as the cluster request)"]
    else:
        lines += ["", "every run is done"]
    return "\n".join(lines)


def main(config: str, directory: str = ".", as_json: bool = False, parallel: int = 1,
         run_id: str | None = None) -> str:
    status = sweep_status(config, directory, parallel=parallel, run_id=run_id)
    return json.dumps(status.as_dict(), indent=2) if as_json else render(status)


def _command(a) -> None:
    try:
        print(main(a.configfile, a.directory, as_json=a.json, parallel=a.parallel, run_id=a.run_id))
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def add_subcommand(sub) -> None:
    """Register `coop status` on the CLI's subparsers."""
    p = sub.add_parser("status", help="a sweep's runs done / failed (with the log to read) / queued / missing, "
                       "its SLURM jobs and the time left")
    p.add_argument("--configfile", default="config/config.yaml", help="the workflow's config (as for snakemake)")
    p.add_argument("-d", "--directory", default=".", help="the workflow's working directory (snakemake -d)")
    p.add_argument("--parallel", type=int, default=1,
                   help="jobs running at once, for the time left where SLURM shows none running (default 1)")
    p.add_argument("--run-id", default=None,
                   help="only the SLURM jobs of this run ID (\"SLURM run ID:\" in the driver's output)")
    p.add_argument("--json", action="store_true", help="the status as JSON")
    p.set_defaults(func=_command)
