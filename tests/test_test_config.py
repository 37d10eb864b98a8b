"""The `.test/config.yaml` users run (`snakemake --cores 2 --configfile .test/config.yaml`) is the tests' tiny
config, and its dry run plans the jobs that its datasets, backbones, runs, shots and seeds call for."""
import re
import shutil

import pytest
import yaml

from coop.methods.registry import get_method
from workflow_util import ROOT, TINY, snakemake

TEST_CONFIG = ROOT / ".test" / "config.yaml"


def _job_stats(out: str) -> dict[str, int]:
    """Rule -> job count from the first `Job stats:` table of a Snakemake log."""
    table = out.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)}


def test_tiny_is_the_test_config():
    assert TINY == yaml.safe_load(TEST_CONFIG.read_text())


@pytest.mark.parametrize("fuse_seeds", [True, False])
def test_dry_run_plans_the_expected_jobs(tmp_path, fuse_seeds):
    shutil.copy(TEST_CONFIG, tmp_path / "config.yaml")  # the file itself, as users pass it
    proc = snakemake(tmp_path, "-n", "--config", f"fuse_seeds={fuse_seeds}", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    stats = _job_stats(proc.stdout + proc.stderr)

    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    exp, = cfg["experiments"].values()
    d, b, shots, seeds = len(exp["datasets"]), len(exp["backbones"]), len(exp["shots"]), len(cfg["seeds"])
    few = [r for r in exp["runs"].values() if get_method(r.split("/")[0]).few_shot]
    zero = len(exp["runs"]) - len(few)
    assert (len(few), zero) == (2, 2)  # linear_probe, coop | zeroshot, ensemble
    expected = {
        "toy_dataset": d,                                  # one generated dataset each
        "fewshot_manifest": d * shots * seeds,             # one split per dataset x shots x seed
        "test_features": d * b,
        "fewshot_features": d * b,
        "run_zeroshot": d * b * zero,                      # no shots, no seeds
        "run_fewshot": d * b * len(few) * shots * (1 if fuse_seeds else seeds),  # fused: one job trains all seeds
        "fewshot_table": 1, "runs_table": 1, "fig3_fewshot": 1, "fig4_gain_over_zeroshot": 1, "findings": 1, "all": 1,
        "total": None,
    }
    expected["total"] = sum(v for v in expected.values() if v is not None)
    assert stats == expected
    assert (stats["run_fewshot"], stats["total"]) == ((8, 32) if fuse_seeds else (16, 40))
