"""Bad values met through the workflow, before any job: one `error:` line, exit code 2, nothing made.

A config's YAML error names its line (the default config/config.yaml read by the Snakefile, any file by
`coop check-config`); a schema error and a method's bad value are one line naming the key; a real dataset that
is neither on disk nor downloadable is named by the dry run (a warning: it still plans) and stops the run; a second driver in the same folder is
stopped (a live one) or told what to check before `--unlock` (a stale lock); jobs of a killed driver that still
run stop the rerun (they would train the same seeds twice at once).
"""
import copy
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from workflow_util import ROOT, TINY, snakemake

pytestmark = pytest.mark.badinput
COOP = str(Path(sys.executable).parent / "coop")


def _one_error_line(proc: subprocess.CompletedProcess, *phrases: str) -> str:
    """Exit code 2, stderr's last line is `error: ...` holding every phrase, no traceback, nothing after it."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert "Traceback" not in out and "Exception" not in out, out[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and proc.stderr.strip().splitlines()[-1] == errors[0], proc.stderr
    for phrase in phrases:
        assert phrase in errors[0], f"{phrase!r} not in {errors[0]!r}"
    return errors[0]


def _made_nothing(work: Path) -> None:
    assert not (work / "data").exists() and not (work / "results").exists()


# ---------------------------------------------------------------------------------------------
# the config file

BROKEN = "seeds: [1, 2\nthreads_per_job: 1\n"


def test_check_config_names_the_yaml_line_within_two_seconds(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BROKEN)
    start = time.monotonic()
    proc = subprocess.run([COOP, "check-config", str(bad)], capture_output=True, text=True, timeout=60)
    took = time.monotonic() - start
    _one_error_line(proc, f"{bad}, line 2, column 16", "expected ',' or ']'", "'threads_per_job: 1'")
    assert took < 2.0, took

    tabs = tmp_path / "tabs.yaml"
    tabs.write_text("toy_world:\n\tn_train: 8\n")
    _one_error_line(subprocess.run([COOP, "check-config", str(tabs)], capture_output=True, text=True),
                    f"{tabs}, line 2, column 1", "spaces only, not tabs")


def test_check_config_applies_the_schema_and_the_methods(tmp_path):
    cfg = copy.deepcopy(TINY)
    cfg["experiments"]["fewshot"]["shots"] = "1, 2"
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(cfg))
    _one_error_line(subprocess.run([COOP, "check-config", str(tmp_path / "a.yaml")], capture_output=True, text=True),
                    "config: experiments.fewshot.shots: '1, 2' is not of type 'array'")
    cfg = copy.deepcopy(TINY)
    cfg["methods"]["coop"]["end_m4"]["lr"] = -1
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(cfg))
    _one_error_line(subprocess.run([COOP, "check-config", str(tmp_path / "b.yaml")], capture_output=True, text=True),
                    "methods.coop.end_m4: lr must be > 0, got -1")
    good = subprocess.run([COOP, "check-config", str(ROOT / ".test" / "config.yaml"),
                           str(ROOT / "config" / "config.yaml")], capture_output=True, text=True)
    assert good.returncode == 0 and good.stdout.count("valid YAML") == 2, good.stdout + good.stderr


def test_the_default_config_with_a_yaml_error_names_its_line(tmp_path):
    """Without --configfile the Snakefile reads config/config.yaml (of its working directory) itself."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(BROKEN)
    proc = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-s", str(ROOT / "Snakefile"),
                           "-d", str(tmp_path), "-n"], capture_output=True, text=True, timeout=120)
    _one_error_line(proc, "config/config.yaml, line 2, column 16", "expected ',' or ']'")


@pytest.mark.parametrize("change, phrases", [
    (lambda c: c["experiments"]["fewshot"].update(shots="1, 2"),
     ["config: experiments.fewshot.shots: '1, 2' is not of type 'array'"]),
    (lambda c: c["methods"]["coop"]["end_m4"].update(batch_size=0),
     ["methods.coop.end_m4: batch_size must be >= 1, got 0"]),
], ids=["schema", "method value"])
def test_a_bad_config_value_stops_the_dry_run_in_one_line(tmp_path, change, phrases):
    cfg = copy.deepcopy(TINY)
    change(cfg)
    proc = snakemake(tmp_path, "-n", config=cfg, timeout=120)
    _one_error_line(proc, *phrases)
    _made_nothing(tmp_path)


MISSING = ["experiments.again: dataset 'caltech101' is not at", "cannot be downloaded automatically",
           "split_zhou_Caltech101.json from https://drive.google.com", "Then rerun snakemake"]


def test_a_real_dataset_that_cannot_be_had_is_named_by_the_dry_run_and_stops_the_run(tmp_path):
    """The dry run warns (one line per dataset, what to fetch and from where) and still plans the sweep, as
    for the paper's config before its data is fetched; the run itself stops before any job, in one line."""
    cfg = copy.deepcopy(TINY)
    cfg["experiments"]["fewshot"]["datasets"] = ["caltech101"]
    cfg["experiments"]["again"] = copy.deepcopy(cfg["experiments"]["fewshot"])  # named once, not per experiment
    dry = snakemake(tmp_path, "-n", config=cfg, timeout=120)
    assert dry.returncode == 0, dry.stdout[-2000:] + dry.stderr[-2000:]
    warnings = [line for line in dry.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and all(p in warnings[0] for p in MISSING), dry.stderr[-3000:]
    assert "prepare_caltech101" in dry.stdout + dry.stderr  # planned
    _made_nothing(tmp_path)
    _one_error_line(snakemake(tmp_path, "--cores", "1", config=cfg, timeout=120), *MISSING)
    _made_nothing(tmp_path)


# ---------------------------------------------------------------------------------------------
# a second driver, and the jobs of a killed one

def _fake(tmp_path: Path, name: str, cwd: Path) -> subprocess.Popen:
    """A process whose command line is that of `name` (a script of that name), running in `cwd`."""
    script = tmp_path / "bin" / name
    script.parent.mkdir(exist_ok=True)
    script.write_text("#!/bin/sh\nsleep 60\n")
    script.chmod(0o755)
    return subprocess.Popen([str(script), "--cores", "1"], cwd=cwd, start_new_session=True)


@pytest.fixture
def locked(tmp_path):
    """A working directory with the TINY config and a lock as a driver leaves it."""
    work = tmp_path / "work"
    (work / ".snakemake" / "locks").mkdir(parents=True)
    (work / ".snakemake" / "locks" / "0.output.lock").write_text("results/tables/runs.csv\n")  # as Snakemake writes it: relative
    return work


def _run_locked(work: Path) -> subprocess.CompletedProcess:
    return snakemake(work, "--cores", "1", config=TINY, timeout=120)


def _run_beside(tmp_path: Path, name: str, work: Path) -> tuple[subprocess.Popen, subprocess.CompletedProcess]:
    """The workflow run in `work` while a process of command `name` runs there (killed afterwards)."""
    other = _fake(tmp_path, name, work)
    try:
        time.sleep(0.3)
        return other, _run_locked(work)
    finally:
        other.kill()
        other.wait()


def test_a_live_driver_in_the_folder_stops_a_second_one(tmp_path, locked):
    driver, proc = _run_beside(tmp_path, "snakemake", locked)
    _one_error_line(proc, f"another snakemake (pid {driver.pid}:", "is running in", "do not --unlock",
                    f"kill -INT {driver.pid}")
    _made_nothing(locked)
    dry = snakemake(locked, "-n", config=TINY, timeout=120)  # a dry run takes no lock: not stopped
    assert dry.returncode == 0, dry.stderr[-2000:]


def test_a_job_of_a_killed_driver_still_running_stops_the_rerun(tmp_path, locked):
    job, proc = _run_beside(tmp_path, "coop", locked)  # its parent (this test) is no snakemake: an orphan
    _one_error_line(proc, "1 job(s) of a killed snakemake still run in", f"pid {job.pid}:",
                    "would run them twice at once", f"kill {job.pid}", "snakemake --unlock")
    _made_nothing(locked)


def test_a_stale_lock_gets_the_checks_before_unlock(tmp_path, locked):
    proc = _run_locked(locked)
    assert proc.returncode != 0
    notes = [line for line in proc.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "holds 1 lock(s)" in notes[0] and "no snakemake runs in this folder" in notes[0]
    assert "squeue --me" in notes[0] and "pgrep -af snakemake" in notes[0] and "snakemake --unlock" in notes[0]
    assert "LockException" in proc.stderr  # Snakemake's own refusal follows: nothing ran
    _made_nothing(locked)


def test_which_command_lines_take_the_lock():
    from coop.drivers import takes_lock

    assert takes_lock(["snakemake", "--cores", "2"]) and takes_lock(["snakemake", "--profile", "slurm", "-j", "9"])
    for flags in (["-n"], ["-np"], ["--dry-run"], ["--unlock"], ["--nolock", "--cores", "1"], ["--lint"],
                  ["--summary"], ["--report", "r.html"]):
        assert not takes_lock(["snakemake", *flags]), flags
