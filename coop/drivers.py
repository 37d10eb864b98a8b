"""Is another Snakemake driver running in this folder? Snakemake's lock error ("Directory cannot be locked ...
It can be removed with the --unlock argument") does not say how to tell a live driver from a stale lock, and
`--unlock` beside a live driver lets two drivers run the same jobs. The Snakefile asks `lock_advice` before
Snakemake takes its lock: a live driver found here stops the new one; a lock with none found gets the checks
to make before `--unlock`.

Drivers are found in /proc (Linux): processes running snakemake whose working directory is this folder
(Snakemake changes into its --directory), not this process or its ancestors, and not Snakemake's own job
processes (they run with `--mode subprocess` / `--mode remote`).

A killed driver (SIGKILL) leaves its jobs running: local `coop` jobs (found in /proc) and SLURM jobs (found
with `squeue --me`, by their working directory, which the SLURM plugin sets to the run's folder; only where
squeue is installed). A rerun beside them would run the same runs twice at once, so it stops, naming them, with
the command that ends them (kill / scancel); it never cancels them itself: their work may be nearly done.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from coop.slurm_states import live_jobs, squeue

# Options that make Snakemake run without taking the lock (it neither checks nor writes one).
_NO_LOCK = {"--unlock", "--nolock", "-n", "--dry-run", "--dryrun", "--lint", "--list", "-l", "--list-target-rules",
            "--summary", "-S", "--detailed-summary", "-D", "--report", "--dag", "--rulegraph", "--filegraph",
            "--d3dag", "--cleanup-metadata", "--cm", "--list-changes", "--lc", "--containerize", "--archive",
            "--generate-unit-tests", "--conda-create-envs-only", "--conda-cleanup-envs", "--version", "-v",
            "--help", "-h"}


@dataclass(frozen=True)
class Driver:
    pid: int
    command: str


def takes_lock(argv: list[str]) -> bool:
    """Whether a snakemake command line runs jobs under the lock (not a dry run, --unlock, --lint, ...)."""
    for arg in argv[1:]:
        flag = arg.split("=", 1)[0]
        if flag in _NO_LOCK:
            return False
        if arg.startswith("-") and not arg.startswith("--") and arg[1:].isalpha() and "n" in arg[1:]:
            return False  # -n combined with other short flags (-np)
    return True


def _ancestors(pid: int) -> set[int]:
    out = set()
    while pid > 1 and pid not in out:
        out.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return out


def _is_driver(args: list[str]) -> bool:
    names = [os.path.basename(a) for a in args[:3]]
    runs_snakemake = "snakemake" in names or ("-m" in args[:3] and "snakemake" in args[:4])
    return runs_snakemake and "--mode" not in args


def drivers_in(folder: str | Path, proc: str | Path = "/proc") -> list[Driver]:
    """Snakemake drivers on this host whose working directory is `folder`, other than this process's own line."""
    folder = os.path.realpath(folder)
    mine = _ancestors(os.getpid())
    found = []
    for entry in Path(proc).iterdir() if Path(proc).is_dir() else []:
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            args = [a for a in (entry / "cmdline").read_bytes().decode(errors="replace").split("\0") if a]
            if not _is_driver(args) or os.path.realpath(os.readlink(entry / "cwd")) != folder:
                continue
        except OSError:  # gone, or another user's
            continue
        found.append(Driver(int(entry.name), " ".join(args)))
    return sorted(found, key=lambda d: d.pid)


def _parent(pid: int, proc: Path) -> int:
    try:
        return int((proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def orphan_jobs(folder: str | Path, proc: str | Path = "/proc") -> list[Driver]:
    """`coop` job commands running in `folder` on this host that no live snakemake driver started (their
    driver was killed: SIGKILL leaves its local jobs running)."""
    folder, proc = os.path.realpath(folder), Path(proc)
    found = []
    for entry in proc.iterdir() if proc.is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            args = [a for a in (entry / "cmdline").read_bytes().decode(errors="replace").split("\0") if a]
            coop_job = any(os.path.basename(a) == "coop" for a in args[:2]) or args[1:3] == ["-m", "coop"]
            if not coop_job or os.path.realpath(os.readlink(entry / "cwd")) != folder:
                continue
        except OSError:
            continue
        pid, under_driver = int(entry.name), False
        while pid > 1 and not under_driver:
            pid = _parent(pid, proc)
            try:
                under_driver = _is_driver([a for a in (proc / str(pid) / "cmdline").read_bytes().decode(
                    errors="replace").split("\0") if a])
            except OSError:
                break
        if not under_driver:
            found.append(Driver(int(entry.name), " ".join(args)))
    return sorted(found, key=lambda d: d.pid)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def slurm_jobs(folder: str | Path) -> list[tuple[str, str, str]]:
    """(job id, state, comment) of this user's SLURM jobs still queued or running with `folder` as their working
    directory (the plugin submits with -D <the run's folder>); empty where SLURM is absent (no squeue) or does
    not answer."""
    rows = squeue("--me", "--format=%i|%T|%Z|%k")
    return live_jobs(rows, os.path.realpath(folder)) if rows else []


def lock_advice(folder: str | Path, argv: list[str]) -> tuple[str, str] | None:
    """None when nothing is in the way; else ("stop", message) when a live driver runs in `folder` on this host,
    jobs of a killed one still run here, or SLURM jobs of an earlier driver still run in `folder` (checked with
    or without a lock: --unlock does not end them); or ("note", message) with what to check before
    `snakemake --unlock` when a lock is there and none of those was found. SLURM jobs are named before local
    processes: on a one-host cluster the processes inside a SLURM job are orphans here too, and scancel ends the
    whole job."""
    if not takes_lock(argv):
        return None
    locks = sorted((Path(folder) / ".snakemake" / "locks").glob("*.lock"))
    live = drivers_in(folder) if locks else []
    if live:
        d = live[0]
        return "stop", (f"another snakemake (pid {d.pid}: {d.command}) is running in {os.path.realpath(folder)} on "
                        f"this host: let it finish, or stop it first (Ctrl-C in its terminal, or kill -INT {d.pid}: "
                        "it cancels its cluster jobs); do not --unlock, two drivers would run the same jobs")
    queued = slurm_jobs(folder)
    if queued:
        ids = " ".join(job for job, _, _ in queued)
        listed = ", ".join(f"{job} {state} {comment}" for job, state, comment in queued[:5])
        return "stop", (f"{len(queued)} SLURM job(s) of an earlier snakemake still run in {os.path.realpath(folder)} "
                        f"(squeue --me: {listed}{', ...' if len(queued) > 5 else ''}); a rerun now would submit their "
                        "work again, two jobs training the same runs at once. If a snakemake still drives them (on "
                        "any host), let it finish; else its driver was killed: wait for them to end or cancel them "
                        f"(scancel {ids}), then {'snakemake --unlock and ' if locks else ''}rerun (training "
                        "continues from its checkpoints)")
    orphans = orphan_jobs(folder) if locks else []
    if orphans:
        listed = "; ".join(f"pid {o.pid}: {o.command[:200]}" for o in orphans[:3])
        return "stop", (f"{len(orphans)} job(s) of a killed snakemake still run in {os.path.realpath(folder)}: "
                        f"{listed}; a rerun now would run them twice at once: wait for them to end or stop them "
                        f"(kill {' '.join(str(o.pid) for o in orphans)}), then snakemake --unlock and rerun (training "
                        "continues from its checkpoints)")
    if not locks:
        return None
    age = _age(time.time() - max(p.stat().st_mtime for p in locks))
    return "note", (f"{Path(folder) / '.snakemake' / 'locks'} holds {len(locks)} lock(s), written {age} ago, and no "
                    f"snakemake runs in this folder on {socket.gethostname()}. If none runs from another host either "
                    "(there: pgrep -af snakemake; on a cluster: squeue --me -o '%i %j %Z' lists the jobs of a driver, "
                    "by its working directory), the lock is left by a killed driver: snakemake --unlock, then rerun.")
