import os
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
