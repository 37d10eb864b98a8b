"""The tiny workflow through a real SLURM cluster with the project's own profile (`snakemake --profile slurm`).

A single-node SLURM 22.05 with two fake GPUs is started by the project's slurm/cluster-up.sh (root, Debian
packages) and stopped by slurm/cluster-down.sh at the end of the session (the `slurm_cluster` fixture of
conftest.py, shared with tests/test_status.py). The run is compared with the local
reference run (`tiny_run`, conftest.py): same tables, and every job that is not a local rule went through
sbatch. And a job killed for exceeding its memory (the cluster enforces --mem) is resubmitted with more
(coop/retry.py); that test uses a cluster already running if there is one, and leaves it running.
Runs only on request, COOP_TEST_SLURM=1 in the environment (.ci/run sets it): it installs packages
and starts daemons as root. Skipped without it, and where a cluster cannot be started (not root, no apt-get,
packages not installable).
"""
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter

import pandas as pd
import pytest

from conftest import ROOT
from workflow_util import TINY, snakemake

IS_ROOT = sys.platform == "linux" and os.geteuid() == 0
# The one switch: the cluster (munge, MariaDB, slurmdbd, slurmctld, slurmd) is started only when asked for.
ENABLED = os.environ.get("COOP_TEST_SLURM") == "1"
ENABLE_HINT = "COOP_TEST_SLURM=1 uv run pytest -m slurm"
pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(not ENABLED, reason=f"starts munge/MariaDB/SLURM daemons: only on request, {ENABLE_HINT}"),
    pytest.mark.skipif(not IS_ROOT, reason="needs root on Linux to start a SLURM cluster (slurm/cluster-up.sh "
                       "installs packages, starts munge/slurmdbd/slurmctld/slurmd)"),
    pytest.mark.skipif(not shutil.which("apt-get") and not shutil.which("slurmctld"),
                       reason="needs apt-get (Debian) to install SLURM, or SLURM already installed"),
]

# The rules whose jobs are submitted with sbatch; every other rule of the tiny workflow is a local rule.
GPU_RULES = {"test_features", "fewshot_features", "run_zeroshot", "run_fewshot"}
LOCAL_RULES = {"toy_dataset", "fewshot_manifest", "runs_table", "fewshot_table", "fig3_fewshot",
               "fig4_gain_over_zeroshot", "findings", "all"}


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory):
    """The tiny workflow run with `snakemake --profile slurm`, typed at the repository root (so the project's
    slurm/config.yaml is the profile), its outputs in a scratch folder (-d). Two settings are added for the
    test's speed only: status checks every few seconds instead of 40 s, and SLURM's logs of successful jobs
    kept (to see which jobs each submission ran)."""
    work = tmp_path_factory.mktemp("slurm_run")
    proc = snakemake(work, "--profile", "slurm", "--slurm-init-seconds-before-status-checks", "2",
                     "--slurm-keep-successful-logs", config=TINY, cwd=ROOT, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    out = proc.stdout + proc.stderr
    run_id = re.search(r"SLURM run ID: (\S+)", out).group(1)
    return work, out, run_id


def _sacct(run_id: str) -> list[dict]:
    """The run's sbatch jobs as sacct lists them (one row per job allocation)."""
    fields = ["JobID", "JobName", "Comment", "State", "AllocTRES"]
    proc = subprocess.run(["sacct", "-X", "-n", "-P", "--name", run_id, "-o", ",".join(fields)],
                          capture_output=True, text=True, check=True)
    return [dict(zip(fields, line.split("|"))) for line in proc.stdout.splitlines() if line.strip()]


def _jobs_in(text: str, keyword: str = "rule") -> Counter:
    """Rule name -> number of jobs that a Snakemake log announces as `rule NAME:` (or `localrule NAME:`)."""
    return Counter(re.findall(rf"^\s*{keyword} (\w+):$", text, flags=re.M))


def test_profile_is_the_projects_and_submits_with_sbatch(slurm_run):
    work, out, run_id = slurm_run
    assert "Using profile" in out and "slurm" in out.split("Using profile")[1].splitlines()[0]
    assert f"SLURM run ID: {run_id}" in out
    # sacct's --name matches a prefix in some versions: keep exactly this run's jobs
    jobs = [j for j in _sacct(run_id) if j["JobName"] == run_id]
    assert jobs and all(j["State"] == "COMPLETED" for j in jobs), jobs
    # every submission asked for (and got) one GPU, also those packing several jobs
    assert all("gres/gpu=1" in j["AllocTRES"] for j in jobs), jobs
    submitted = set(re.findall(r"has been submitted with SLURM jobid (\d+)", out))
    assert submitted == {j["JobID"] for j in jobs}


def test_every_gpu_job_went_through_sbatch_and_short_ones_are_packed(slurm_run):
    work, out, run_id = slurm_run
    # The driver announces local jobs as `localrule`, submitted ones as `rule` (indented inside a group).
    local, remote = _jobs_in(out, "localrule"), _jobs_in(out, "rule")
    assert set(local) <= LOCAL_RULES and set(remote) == GPU_RULES, (local, remote)
    # 2 datasets: test + few-shot features each; zero-shot + ensemble each; (probe, CoOp) x shots 1, 2 each
    assert remote == {"test_features": 2, "fewshot_features": 2, "run_zeroshot": 4, "run_fewshot": 8}
    # Each of those jobs ran inside exactly one sbatch allocation: the SLURM log of each submission shows the
    # Snakemake inside it running each of its jobs (`localrule NAME:` there).
    logs = sorted((work / ".snakemake" / "slurm_logs").rglob("*.log"))
    in_slurm = Counter()
    for log in logs:
        in_slurm.update(_jobs_in(log.read_text(), "localrule"))
    assert in_slurm == remote, (in_slurm, remote)
    jobs = [j for j in _sacct(run_id) if j["JobName"] == run_id]
    assert len(logs) == len(jobs)
    # Packing (group-components in slurm/config.yaml): the 4 feature jobs in one submission, the 4 zero-shot
    # runs in one, the 8 few-shot runs in two (4 + 4): each toy run's modelled runtime (coop.resources) is under
    # SHORT_JOB_MINUTES, so all of them are "short_runs".
    from coop.job_sizes import JobSizes
    from coop.methods.registry import SHORT_JOB_MINUTES

    sizes = JobSizes(TINY)
    assert all(sizes.run("toy_shapes", "toy-rn", m, v, 2, 1).minutes <= SHORT_JOB_MINUTES
               for m, v in (("coop", "end_m4"), ("linear_probe", "default")))
    comments = Counter(re.sub(r"_wildcards_.*", "", j["Comment"]) for j in jobs)
    assert comments == {"rule_features_fewshot_features_test_features": 1, "rule_zeroshot_run_zeroshot": 1,
                         "rule_short_runs_run_fewshot": 2}, comments
    assert len(jobs) == 4 < sum(remote.values()) == 16


def _metric_columns(df: pd.DataFrame) -> pd.DataFrame:
    keep = [c for c in df.columns if "wall" not in c and "seconds" not in c and "memory" not in c]
    keys = [c for c in ("dataset", "backbone", "method", "variant", "shots", "seed") if c in df.columns]
    return df[keep].sort_values(keys).reset_index(drop=True)


def test_tables_equal_the_local_run(slurm_run, request):
    work, _, _ = slurm_run
    # the local reference run, asked for only now (not as an argument: pytest would set a session fixture up
    # before the cluster, and run it for nothing where the cluster cannot start)
    tiny_run = request.getfixturevalue("tiny_run")
    for table in ("fewshot.csv", "runs.csv"):
        ours = _metric_columns(pd.read_csv(work / "results/tables" / table))
        ref = _metric_columns(pd.read_csv(tiny_run / "results/tables" / table))
        pd.testing.assert_frame_equal(ours, ref, check_exact=True)
    # and each run's own metrics, training loss included
    runs = sorted(p.relative_to(tiny_run) for p in (tiny_run / "results/runs").rglob("metrics.json"))
    assert len(runs) == 2 * 2 + 2 * 2 * 2 * 2
    for rel in runs:
        ours, ref = (json.loads((root / rel).read_text()) for root in (work, tiny_run))
        for key in ("accuracy", "macro_f1", "n_test", "final_loss", "loss_history", "C", "manifest_hash"):
            assert ours.get(key) == ref.get(key), (rel, key)


def test_jobs_see_a_gpu_but_run_on_the_cpu(slurm_run):
    """A fake GPU sets CUDA_VISIBLE_DEVICES, but there is no CUDA behind it: the code falls back to the CPU."""
    work, _, _ = slurm_run
    probe = ("import os, torch; from coop.provenance import default_device; "
             "print(os.environ.get('CUDA_VISIBLE_DEVICES'), torch.cuda.is_available(), default_device())")
    proc = subprocess.run(["srun", "-n1", "--gpus=1", sys.executable, "-c", probe], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    visible, cuda, device = proc.stdout.split()
    assert visible != "None" and cuda == "False" and device == "cpu"
    for m in (work / "results/runs").rglob("metrics.json"):
        assert json.loads(m.read_text())["device"] == "cpu"


# --- A job killed for exceeding its memory is retried with more (coop/retry.py), under the real SLURM ---------

OOM_TARGET = "results/features/toy_shapes/toy-rn/test.safetensors"
# cluster.mem_scale: the feature job's first attempt asks its modelled memory x this (a few tens of MB), far less
# than the Snakemake + torch process inside the job takes (hundreds of MB), so SLURM kills it surely.
OOM_MEM_SCALE = 0.005
# what slurmstepd writes in the job's log when it kills the job for memory, by the state sacct then shows
KILL_LOG_LINE = {"OUT_OF_MEMORY": "oom-kill event(s) in StepId=", "FAILED": "exceeded memory limit"}


def _cluster_config() -> dict[str, str]:
    """The running cluster's `scontrol show config` as a dict; empty if no cluster answers."""
    if not shutil.which("scontrol"):
        return {}
    proc = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=60)
    return dict(re.findall(r"^(\w+)\s+= (.*)$", proc.stdout, flags=re.M)) if proc.returncode == 0 else {}


@pytest.fixture(scope="module")
def memory_enforcing_cluster(request):
    """A cluster that kills a job over its --mem: the one running now if there is one (left running: not
    ours), else one started (and stopped) by the slurm_cluster fixture. The job state that a kill for memory
    leaves in sacct depends on how the cluster enforces memory (slurm/cluster-up.sh, MEM_ENFORCE)."""
    conf = _cluster_config()
    if not conf:
        request.getfixturevalue("slurm_cluster")
        conf = _cluster_config()
    if "cgroup" in conf.get("TaskPlugin", ""):
        return "OUT_OF_MEMORY"  # the kernel's cgroup OOM killer; slurmstepd counts its kills
    if "OverMemoryKill" in conf.get("JobAcctGatherParams", ""):
        return "FAILED"  # slurmstepd's own poll kills the step: SLURM 22.05 records the job FAILED
    pytest.fail("the running SLURM cluster does not enforce memory (TaskPlugin="
                f"{conf.get('TaskPlugin')}, JobAcctGatherParams={conf.get('JobAcctGatherParams')}): restart "
                "it with this repository's slurm/cluster-up.sh")


def test_a_job_killed_for_memory_is_retried_with_more(memory_enforcing_cluster, tmp_path):
    oom_state = memory_enforcing_cluster
    cfg = {**TINY, "cluster": {"mem_scale": OOM_MEM_SCALE}}
    work = tmp_path / "oom"
    work.mkdir()
    proc = snakemake(work, "--profile", "slurm", "--slurm-init-seconds-before-status-checks", "2",
                     "--slurm-keep-successful-logs", OOM_TARGET, config=cfg, cwd=ROOT, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    run_id = re.search(r"SLURM run ID: (\S+)", out).group(1)
    fields = ["JobID", "JobName", "State", "ReqMem"]
    sacct = subprocess.run(["sacct", "-X", "-n", "-P", "--name", run_id, "-o", ",".join(fields)],
                           capture_output=True, text=True, check=True)
    jobs = sorted((dict(zip(fields, line.split("|"))) for line in sacct.stdout.splitlines() if line.strip()),
                  key=lambda j: int(j["JobID"]))
    jobs = [j for j in jobs if j["JobName"] == run_id]
    # one GPU job (the feature extraction), submitted twice: attempt 1 killed for memory, attempt 2 done
    assert [j["State"] for j in jobs] == [oom_state, "COMPLETED"], jobs
    first, second = (int(re.fullmatch(r"(\d+)M", j["ReqMem"]).group(1)) for j in jobs)
    # the growth rule (coop/retry.py's docstring): attempt 1 asks ceil(full x mem_scale), attempt 2
    # max(2 x first, full), i.e. the whole modelled request `full` here; so second = full, first from it
    assert first == -(-second * OOM_MEM_SCALE // 1) and first <= 64, (first, second)
    assert second > 2 * first
    # Snakemake was told the job failed and restarted it (attempt 2), asking the larger memory
    assert out.count("Trying to restart job") == 1, out[-5000:]
    # (each job's announcement: `rule NAME:` then indented `key: value` lines, resources among them)
    asked = re.findall(r"rule test_features:\n(?:[ \t]+\w+: .*\n)*?[ \t]+resources: .*?\bmem_mb=(\d+)", out)
    assert asked == [str(first), str(second)], out[-5000:]
    assert re.findall(r"submitted with SLURM jobid (\d+)", out) == [j["JobID"] for j in jobs]
    # SLURM's log of the first attempt says why it ended (shown by the profile's show-failed-logs)
    assert KILL_LOG_LINE[oom_state] in out, out[-5000:]
    # and the output is the one a local run makes, tensor by tensor
    from safetensors.numpy import load_file

    local = tmp_path / "local"
    local.mkdir()
    ref = snakemake(local, "--cores", "1", OOM_TARGET, config=TINY, timeout=900)
    assert ref.returncode == 0, ref.stdout[-3000:] + ref.stderr[-3000:]
    ours, theirs = load_file(work / OOM_TARGET), load_file(local / OOM_TARGET)
    assert ours.keys() == theirs.keys() and ours
    for key in ours:
        assert (ours[key] == theirs[key]).all(), key
