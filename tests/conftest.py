import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory) -> Path:
    """A data root with small toy datasets (3 train / 2 val / 3 test images per class)."""
    from coop.data.toyworld import generate

    root = tmp_path_factory.mktemp("data")
    for name in ("toy_shapes", "toy_textures", "toy_shapes_sketch", "toy_shapes_hard"):
        generate(name, root, n_train=4, n_val=2, n_test=3, seed=0)
    return root


@pytest.fixture(scope="session")
def clip():
    from coop.models import load_clip

    return load_clip("toy-rn", "random")


@pytest.fixture
def coop_bin() -> str:
    """The `coop` console script of the running interpreter's environment."""
    return str(Path(sys.executable).parent / "coop")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The whole workflow run once locally on the tiny config (tests/workflow_util.py): the reference that the
    workflow, SLURM and resume tests read or compare against. Read it, do not change it."""
    from workflow_util import TINY, snakemake

    work = tmp_path_factory.mktemp("workflow")
    proc = snakemake(work, "--cores", "2", config=TINY)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work


SLURM_UP, SLURM_DOWN = ROOT / "slurm" / "cluster-up.sh", ROOT / "slurm" / "cluster-down.sh"


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running single-node cluster (slurm/cluster-up.sh: a cluster already running is restarted), for every
    SLURM test of the session; stopped (every daemon by its PID file) at its end. Only with COOP_TEST_SLURM=1:
    the tests' skip marks keep it from running otherwise, and it never starts daemons unasked."""
    if os.environ.get("COOP_TEST_SLURM") != "1":
        pytest.skip("only on request: COOP_TEST_SLURM=1 uv run pytest -m slurm")
    proc = subprocess.run(["bash", str(SLURM_UP)], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "FAKE_GPUS": "2"})
    if proc.returncode in (2, 3):  # not root / not Debian, or the packages could not be installed
        subprocess.run(["bash", str(SLURM_DOWN)], capture_output=True)
        pytest.skip(f"cannot start a SLURM cluster here: {proc.stderr.strip()[-500:]}")
    try:
        assert proc.returncode == 0, f"slurm/cluster-up.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        yield proc.stdout
    finally:
        down = subprocess.run(["bash", str(SLURM_DOWN)], capture_output=True, text=True, timeout=300)
        assert down.returncode == 0, down.stdout + down.stderr
        for pid_file in ("/run/slurmctld.pid", "/run/slurmd.pid", "/run/slurmdbd.pid", "/run/munge/munged.pid",
                         "/run/mysqld/mysqld.pid"):
            assert not Path(pid_file).exists(), f"{pid_file} left behind by cluster-down.sh"
