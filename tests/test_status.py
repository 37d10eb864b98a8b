"""`coop status` on a half-finished sweep: the counts of runs done / failed / started / missing per experiment,
the log named for each failed job, the SLURM queue and the time left. The expected run set is that of the
workflow itself (`snakemake -n`), the expected log paths those written in workflow/rules/runs.smk's `log:`."""
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from coop.slurm_queue import SlurmJob, parse_elapsed, parse_squeue
from coop.status import log_error, sweep_status
from coop.sweep import load_config, sweep_jobs
from workflow_util import ROOT, TINY, snakemake, snakemake_command

RUN_RULES = ("run_zeroshot", "run_fewshot")


def _write(tmp_path, config):
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _dry_run_metrics(workdir, config) -> set[str]:
    """metrics.json files that the workflow's run jobs would write (snakemake -n, every job listed)."""
    proc = snakemake(workdir, "-n", "--cores", "1", config=config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out, metrics, rule = proc.stdout + proc.stderr, set(), None
    for line in out.splitlines():
        line = re.sub(r"^\[[^\]]*\]\s*", "", line).strip()
        if m := re.match(r"(local)?rule (\w+):", line):
            rule = m.group(2)
        elif line.startswith("output:") and rule in RUN_RULES:
            metrics |= {p.strip() for p in line[len("output:"):].split(",")}
    return metrics


@pytest.mark.parametrize("fuse", [True, False])
def test_run_set_is_the_workflows(tmp_path, fuse):
    config = {**copy.deepcopy(TINY), "fuse_seeds": fuse}
    jobs = sweep_jobs(load_config(_write(tmp_path, config)))
    ours = {str(m) for j in jobs["fewshot"] for m in j.metrics("results")}
    assert ours == _dry_run_metrics(tmp_path, config)
    # 2 datasets x 1 backbone: 2 zero-shot methods once each, 2 few-shot ones at shots 1, 2 x seeds 1, 2
    assert len(ours) == 2 * 2 + 2 * 2 * 2 * 2
    assert len(jobs["fewshot"]) == 2 * 2 + 2 * 2 * 2 * (1 if fuse else 2)
    logs = {j.log for j in jobs["fewshot"]}
    assert "results/logs/runs/toy_shapes/toy-rn/zeroshot/default/shots0.log" in logs
    assert ("results/logs/runs/toy_textures/toy-rn/coop/end_m4/shots2.log" in logs) == fuse
    assert ("results/logs/runs/toy_textures/toy-rn/coop/end_m4/shots2_seed1.log" in logs) == (not fuse)


def test_log_error_finds_the_last_error(tmp_path):
    log = tmp_path / "a.log"
    log.write_text("training: 3/6 steps (50%), 1 steps/s\nTraceback (most recent call last):\n  File \"x\", line 1\n"
                   "RuntimeError: boom\n")
    assert log_error(log) == "RuntimeError: boom"
    log.write_text("training: 6/6 steps (100%)\naccuracy 50.00%\n")
    assert log_error(log) is None
    log.write_text("error: toy_shapes has no split file; run coop data toy\n")
    assert log_error(log).startswith("error: toy_shapes has no split")
    assert log_error(tmp_path / "none.log") is None


def test_squeue_rows_and_comments():
    # the comment format of snakemake-executor-plugin-slurm: rule_<rule>_wildcards_<values joined by _>
    text = ("101|run-1|RUNNING|1:02:03|rule_run_fewshot_wildcards_toy_shapes_toy-rn_coop_end_m4_2\n"
            "102|run-1|PENDING|0:00|rule_short_runs_run_fewshot\n"
            "103|other|RUNNING|5:00|(null)\n")
    jobs = parse_squeue(text)
    assert [j.jobid for j in jobs] == ["101", "102"] and jobs[0].elapsed == 3723.0
    assert jobs[0].runs("run_fewshot", ["toy_shapes", "toy-rn", "coop", "end_m4", "2"])
    assert not jobs[0].runs("run_fewshot", ["toy_shapes", "toy-rn", "coop", "end_m4", "1"])
    assert not jobs[0].runs("run_fewshot", ["shapes", "toy-rn", "coop", "end_m4", "2"])
    assert jobs[1].is_group and not jobs[0].is_group  # a group submission names no wildcards
    assert parse_elapsed("1-00:00:10") == 86410.0 and parse_elapsed("45") == 45.0


HALF = {**copy.deepcopy(TINY), "experiments": {"fewshot": {**TINY["experiments"]["fewshot"],
                                                           "datasets": ["toy_shapes"]}}}
HALF["methods"] = {**HALF["methods"], "coop": {"end_m4": {"n_ctx": 4, "epochs": 2}}}
RUNS = "results/runs/toy_shapes/toy-rn"


@pytest.fixture(scope="module")
def half_sweep(tmp_path_factory):
    """The tiny sweep on one dataset, half done: zero-shot and the 1-shot runs asked for; the 1-shot CoOp job
    fails for real (a crafted checkpoint in its run folder: coop refuses it with a one-line error); then one
    finished probe run's metrics.json is deleted (as if its job had been interrupted after the first seed)."""
    work = tmp_path_factory.mktemp("half")
    bad = work / RUNS / "coop/end_m4/shots1/seed1/checkpoint.pt"
    bad.parent.mkdir(parents=True)
    import torch

    torch.save({"format": 1, "run": os.system}, bad)  # refers to code: refused (a garbled one is rebuilt)
    targets = [f"{RUNS}/zeroshot/default/shots0/seed0/metrics.json", f"{RUNS}/ensemble/default/shots0/seed0/metrics.json"]
    targets += [f"{RUNS}/{m}/shots1/seed{s}/metrics.json" for m in ("linear_probe/default", "coop/end_m4") for s in (1, 2)]
    proc = snakemake(work, "--cores", "2", "--keep-going", *targets, config=HALF)
    assert proc.returncode != 0, "the CoOp job should have failed"
    (work / RUNS / "linear_probe/default/shots1/seed2/metrics.json").unlink()
    return work


def test_status_of_a_half_finished_sweep(half_sweep):
    status = sweep_status(half_sweep / "config.yaml", half_sweep, slurm=[])
    d = status.as_dict()
    # 1 dataset: zeroshot + ensemble (1 run each), probe and CoOp at shots 1, 2 x seeds 1, 2 (8 runs)
    assert d["experiments"]["fewshot"] == {
        "total": 10, "done": 3, "failed": 2, "started": 1, "missing": 4, "running": 0, "queued": 0,
        "failed_logs": ["results/logs/runs/toy_shapes/toy-rn/coop/end_m4/shots1.log"]}
    failed = [j for j in d["jobs"] if j["state"] == "failed"]
    assert len(failed) == 1 and failed[0]["log_exists"] and "not a valid training checkpoint" in failed[0]["error"]
    started = [j for j in d["jobs"] if j["state"] == "started"]
    assert [j["log"] for j in started] == ["results/logs/runs/toy_shapes/toy-rn/linear_probe/default/shots1.log"]
    assert started[0]["done_runs"] == 1 and started[0]["runs"] == 2
    # time left: the probe's 1-shot job measured (its remaining seed: half the job), shots 2 modelled
    job_seconds = json.loads((half_sweep / RUNS / "linear_probe/default/shots1/seed1/metrics.json")
                             .read_text())["job_seconds"]
    assert d["time_left"]["measured_job_seconds"]["linear_probe/shots1"] == pytest.approx(job_seconds)
    assert started[0]["estimate"] == "measured" and started[0]["seconds_left"] == pytest.approx(job_seconds / 2, abs=0.1)
    from coop.job_sizes import JobSizes
    from coop.sweep import load_config

    probe2 = next(j for j in d["jobs"] if j["wildcards"].get("method") == "linear_probe" and j["wildcards"]["shots"] == "2")
    modelled = JobSizes(load_config(half_sweep / "config.yaml")).run("toy_shapes", "toy-rn", "linear_probe", "default", 2, 2)
    assert probe2["estimate"] == "modelled" and probe2["seconds_left"] == pytest.approx(60 * modelled.minutes, abs=0.1)
    total = sum(j["seconds_left"] for j in d["jobs"])
    assert d["time_left"]["seconds"] == pytest.approx(total, abs=0.5) and d["time_left"]["parallelism"] == 1


def test_cli_table_and_json(half_sweep):
    base = [sys.executable, "-m", "coop.cli", "status", "--configfile", str(half_sweep / "config.yaml"),
            "-d", str(half_sweep)]
    table = subprocess.run(base, capture_output=True, text=True, cwd=ROOT, check=True).stdout
    row = next(ln for ln in table.splitlines() if ln.startswith("fewshot "))
    assert row.split()[1:] == ["10", "3", "0", "0", "2", "1", "4"]  # total done running queued failed started missing
    assert "results/logs/runs/toy_shapes/toy-rn/coop/end_m4/shots1.log" in table
    as_json = json.loads(subprocess.run(base + ["--json", "--parallel", "2"], capture_output=True, text=True,
                                        cwd=ROOT, check=True).stdout)
    assert as_json["total"]["failed"] == 2 and as_json["time_left"]["parallelism"] == 2
    missing = subprocess.run(base[:5] + ["nope.yaml"], capture_output=True, text=True, cwd=ROOT)
    assert missing.returncode == 2 and missing.stderr.startswith("error: config file nope.yaml does not exist")


def test_queued_jobs_are_listed(half_sweep):
    queue = [SlurmJob("7", "run-x", "PENDING", 0.0,
                      "rule_run_fewshot_wildcards_toy_shapes_toy-rn_coop_end_m4_2"),
             SlurmJob("8", "run-x", "RUNNING", 30.0, "rule_short_runs_run_fewshot")]
    # a running group submission: the Snakemake inside it announces each job it starts, with its log
    slurm_log = half_sweep / ".snakemake/slurm_logs/group_short_runs_run_fewshot/8.log"
    slurm_log.parent.mkdir(parents=True)
    slurm_log.write_text("localrule run_fewshot:\n    log: results/logs/runs/toy_shapes/toy-rn/linear_probe/"
                         "default/shots2.log\n    jobid: 0\n")
    try:
        d = sweep_status(half_sweep / "config.yaml", half_sweep, slurm=queue).as_dict()
    finally:
        shutil.rmtree(half_sweep / ".snakemake/slurm_logs")
    assert d["experiments"]["fewshot"]["queued"] == 2 and d["experiments"]["fewshot"]["running"] == 2
    assert d["experiments"]["fewshot"]["missing"] == 0 and d["time_left"]["parallelism"] == 1
    assert {j["slurm_job"] for j in d["jobs"] if j["state"] in ("queued", "running")} == {"7", "8"}


# On the real SLURM cluster (conftest.py's slurm_cluster, shared with tests/test_slurm.py), on request.
SLURM_ENABLED = os.environ.get("COOP_TEST_SLURM") == "1"


@pytest.mark.slurm
@pytest.mark.skipif(not SLURM_ENABLED, reason="runs jobs on a SLURM cluster: only on request, COOP_TEST_SLURM=1")
def test_status_lists_the_sweeps_slurm_jobs(slurm_cluster, tmp_path):
    work = tmp_path / "sweep"
    work.mkdir()
    cmd, env = snakemake_command(work, "--profile", "slurm", "--slurm-init-seconds-before-status-checks", "2",
                                 config=HALF)
    driver_log = tmp_path / "driver.log"
    with open(driver_log, "w") as out:
        driver = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    status_cmd = [sys.executable, "-m", "coop.cli", "status", "--configfile", str(work / "config.yaml"),
                  "-d", str(work), "--json"]
    seen, run_id = [], None
    try:
        deadline = time.time() + 900
        while driver.poll() is None and time.time() < deadline:
            if run_id is None and (m := re.search(r"SLURM run ID: (\S+)", driver_log.read_text())):
                run_id = m.group(1)
            if run_id:
                d = json.loads(subprocess.run(status_cmd + ["--run-id", run_id], capture_output=True, text=True,
                                              cwd=ROOT, check=True).stdout)
                ids = set(subprocess.run(["squeue", "-h", "--name", run_id, "-o", "%i"], capture_output=True,
                                         text=True).stdout.split())
                in_queue = {j["slurm_job"] for j in d["jobs"] if j["state"] in ("queued", "running")}
                if in_queue:
                    seen.append((d, ids, in_queue))
            time.sleep(2)
        assert driver.wait(timeout=max(1, deadline - time.time())) == 0, driver_log.read_text()[-5000:]
    finally:
        if driver.poll() is None:
            driver.terminate()
            driver.wait(timeout=120)
            if run_id:
                subprocess.run(["scancel", "--name", run_id])
    assert seen, "coop status never saw a run job queued or running on SLURM"
    for d, ids, in_queue in seen:
        # every run job status puts in the queue is a submission squeue listed at (nearly) the same moment
        listed = {j["jobid"] for j in d["slurm"]}
        assert in_queue <= listed and all(j["name"] == run_id for j in d["slurm"])
        assert listed & ids or not ids
        counts = d["experiments"]["fewshot"]
        assert counts["queued"] + counts["running"] >= 1 and counts["total"] == 10
    states = sorted({(j["state"], j["wildcards"].get("method"), j["wildcards"].get("shots"), j["slurm_job"])
                     for d, _, _ in seen for j in d["jobs"] if j["slurm_job"]}, key=str)
    print(f"coop status polled {len(seen)} times with run jobs on SLURM: {states}")
    final = json.loads(subprocess.run(status_cmd, capture_output=True, text=True, cwd=ROOT, check=True).stdout)
    assert final["experiments"]["fewshot"]["done"] == 10 and final["jobs"] == []
