"""Timing fields of metrics.json: `job_seconds` is the whole job (the same for every seed it trained),
`wall_seconds` the seed's share of it, so the shares of a fused job add up to at most the job."""
import json
from pathlib import Path

import pytest

from coop.experiment import run_seeds

SLACK = 0.05  # seconds: rounding to the millisecond, and the clock reads between the intervals


@pytest.mark.parametrize("fuse", [True, False])
def test_seed_shares_add_up_to_the_job(toy_root, tmp_path, fuse):
    seeds = [1, 2, 3]
    records = run_seeds(seeds, str(tmp_path / "run" / "seed{seed}"), fuse=fuse, dataset="toy_shapes",
                        method="coop", shots=1, backbone="toy-rn", pretrained="random",
                        params={"epochs": 2, "n_ctx": 4}, data_root=toy_root, cache_dir=tmp_path / "cache",
                        log=lambda s: None)
    written = [json.loads((tmp_path / "run" / f"seed{s}" / "metrics.json").read_text()) for s in seeds]
    for rec in written + records:
        assert rec["job_seconds"] > 0 and 0 < rec["wall_seconds"] <= rec["job_seconds"] + SLACK
    jobs = {rec["job_seconds"] for rec in written}
    assert len(jobs) == 1 and {r["job_seconds"] for r in records} == jobs
    (job,) = jobs
    assert sum(rec["wall_seconds"] for rec in written) <= job + SLACK
    assert [r["wall_seconds"] for r in records] == [w["wall_seconds"] for w in written]
    if fuse:
        assert all(rec["fused_seeds"] == seeds for rec in written)
