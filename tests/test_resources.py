"""Cluster requests modelled from the work (coop.resources, coop.job_sizes): the model against the equations
written out here for hand-made shapes, the attempt caps, the split of a fused job that exceeds the partition
limit, and the parse-time stop when a single seed cannot fit."""
import math
import re

import pytest

from conftest import ROOT
from coop import resources as r
from coop.resources import BackboneShape, Request, RunWork


def _vit(**kw):
    base = dict(dim=512, image_size=224, text_width=512, text_layers=12, vocab=49408, context=77, vision="vit",
                vision_width=768, vision_layers=12, patch=16)
    return BackboneShape(**{**base, **kw})


def test_backbone_shapes_from_their_config_files():
    rn = r.backbone_shape("RN50-quickgelu")
    assert (rn.dim, rn.image_size, rn.vision, rn.vision_width, rn.vision_layers) == (1024, 224, "resnet", 64, 16)
    assert rn.vision_params == pytest.approx(38.3e6) and rn.image_flops == pytest.approx(8.2e9)
    vit = r.backbone_shape("ViT-B-16")
    assert vit == _vit()
    # ViT-B/16 image tower: 12 blocks of 12 w^2 weights; 197 tokens, 2 FLOPs per weight and token
    assert vit.image_flops == 2 * 12 * 768 ** 2 * 12 * 197
    toy = r.backbone_shape("toy-rn")
    assert (toy.dim, toy.image_size, toy.text_width, toy.text_layers) == (128, 32, 128, 3)


def test_feature_request_by_the_equations():
    b = _vit()
    gpu = r.GPU
    images = 50_000
    seconds = images * ((2 * 12 * 768 ** 2 * 12 * 197) / gpu.flops + gpu.prep_s)  # encode + decode/transform
    minutes = (gpu.startup_s + seconds) / 60
    params = 12 * 512 ** 2 * 12 + (49408 + 77) * 512 + 12 * 768 ** 2 * 12 + 3 * 16 ** 2 * 768
    batch = 256 * (0.6 * 2 ** 20 + 3 * 224 ** 2 * 4)
    host_mb = gpu.base_mb + (params * 4 + batch + 2 * images * 512 * 4) / 2 ** 20
    req = r.feature_request(b, images, gpu)
    assert req.mem_mb == math.ceil(host_mb * 1.3)
    assert req.runtime == max(5, math.ceil(minutes * 1.5))
    assert req.disk_mb == math.ceil(images * 512 * 4 / 2 ** 20 * 1.3)


def test_coop_run_request_by_the_equations():
    """ImageNet-shaped CoOp, 16 shots, 3 fused seeds, 50 epochs, views of flips only (crop_min 1.0)."""
    b, gpu = _vit(), r.GPU
    w = RunWork(classes=1000, shots=16, seeds=3, epochs=50, test=50_000)
    n = 16_000
    steps = 50 * math.ceil(n / 32)
    text = lambda prompts, tokens: 2 * 12 * 512 ** 2 * 12 * prompts * tokens  # noqa: E731
    # class names once (12-token hand-made prompts), each seed's views (2 flips), 3 seeds' steps (fwd + bwd) over
    # 1,000 prompts of 22 tokens (M = 16 + SOS, name, ".", EOT)
    flops = text(1000, 12) + 3 * n * 2 * b.image_flops + 3 * steps * 3 * text(1000, 22)
    req = r.run_request(b, w, gpu)
    prep = 3 * n * 51 * gpu.prep_s  # each seed's images decoded once and augmented in each of the 50 epochs
    assert req.minutes == pytest.approx((gpu.startup_s + flops / gpu.flops + prep) / 60)
    # views on disk: every seed's 50 epochs x 16,000 x 512 float32, plus 8 bytes per test image and seed
    disk = 3 * 50 * n * 512 * 4 + 3 * 50_000 * 8
    assert req.disk_mb == math.ceil(disk / 2 ** 20 * 1.3)
    # memory does not grow with the epochs: streaming views (the old in-RAM cache held 50 x 16,000 x 512 floats)
    longer = r.run_request(b, RunWork(classes=1000, shots=16, seeds=3, epochs=200, test=50_000), gpu)
    assert longer.mem_mb - req.mem_mb < 200 and longer.disk_mb > 3.9 * req.disk_mb


def test_more_work_asks_more():
    b = r.backbone_shape("RN50-quickgelu")
    one = r.run_request(b, RunWork(classes=1000, shots=16, seeds=1, epochs=50, test=50_000))
    three = r.run_request(b, RunWork(classes=1000, shots=16, seeds=3, epochs=50, test=50_000))
    few = r.run_request(b, RunWork(classes=1000, shots=1, seeds=3, epochs=50, test=50_000))
    assert three.runtime > 2.5 * one.runtime and three.gpu_mem_mb > one.gpu_mem_mb
    assert few.runtime < three.runtime


def test_attempts_are_capped_by_the_partition_limit():
    assert [r.attempt_runtime(400, a, cap=1000) for a in (1, 2, 3)] == [400, 800, 1000]
    assert r.attempt_runtime(400, 3) == 1200


def test_seed_groups_fused_split_or_impossible():
    minutes = {1: 100, 2: 190, 3: 280}
    req = lambda n: Request(1000, 0, minutes[n], 1, minutes[n])  # noqa: E731
    assert r.seed_groups([1, 2, 3], req, None) == [[1, 2, 3]]
    assert r.seed_groups([1, 2, 3], req, 300) == [[1, 2, 3]]
    assert r.seed_groups([1, 2, 3], req, 150) == [[1], [2], [3]]
    with pytest.raises(r.ResourceError, match="100 min and 0 MB of GPU memory for one seed"):
        r.seed_groups([1, 2, 3], req, 60)
    gpu = {1: 20_000, 2: 38_000, 3: 56_000}
    greq = lambda n: Request(1000, gpu[n], 100, 1, 100)  # noqa: E731
    assert r.seed_groups([1, 2, 3], greq, None, 60_000) == [[1, 2, 3]]
    assert r.seed_groups([1, 2, 3], greq, None, 40_000) == [[1], [2], [3]]


# ------------------------------------------------------------------------------------- through the workflow
IMAGENET = {
    "data_root": "data",
    "backbones": {"rn50": {"model": "RN50-quickgelu", "pretrained": "random"}},
    "methods": {"coop": {"m16": {"n_ctx": 16}}},
    "experiments": {"fewshot": {"datasets": ["imagenet"], "backbones": ["rn50"], "shots": [16],
                                "runs": {"coop": "coop/m16"}}},
    "seeds": [1, 2, 3],
    "threads_per_job": 1,
}


def _dry(tmp_path, cluster):
    from workflow_util import snakemake

    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return snakemake(work, "-n", "--quiet", "rules", config={**IMAGENET, "cluster": cluster}, timeout=300)


def test_a_fused_job_over_max_runtime_is_split_into_one_job_per_seed(tmp_path):
    """ImageNet CoOp at 16 shots: three fused seeds model to ~575 min, one seed to ~190 min (GPU profile)."""
    from coop.job_sizes import JobSizes

    sizes = JobSizes({**IMAGENET, "cluster": {}})
    fused, one = (sizes.run("imagenet", "rn50", "coop", "m16", 16, n).runtime for n in (3, 1))
    assert one < 300 < fused
    out = _dry(tmp_path, {"max_runtime": 300})
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.search(r"^run_fewshot_seed +3$", out.stdout, re.M), out.stdout
    assert not re.search(r"^run_fewshot +\d", out.stdout, re.M)
    fused_run = _dry(tmp_path, {"max_runtime": 1440})
    assert fused_run.returncode == 0, fused_run.stderr[-3000:]
    assert re.search(r"^run_fewshot +1$", fused_run.stdout, re.M) and "run_fewshot_seed" not in fused_run.stdout


@pytest.mark.badinput
def test_a_seed_above_max_runtime_stops_before_anything_is_submitted(tmp_path):
    out = _dry(tmp_path, {"max_runtime": 60})
    msg = out.stdout + out.stderr
    assert out.returncode != 0
    assert "experiments.fewshot: rule run_fewshot, job imagenet/rn50/coop/m16 at 16 shots, one seed" in msg, msg
    assert "above cluster.max_runtime = 60 min" in msg and "Raise cluster.max_runtime" in msg
    assert not (tmp_path / "work" / "results").exists()


@pytest.mark.e2e
def test_scale_benchmark_requests_cover_the_measured_peaks(tmp_path):
    """The scale benchmark at a small size (the README's table is the ImageNet-shaped run): the workflow's jobs
    ran, and each memory request covers the job's measured peak within 2x (the model's promise)."""
    import argparse

    from coop import bench_scale

    a = argparse.Namespace(classes=20, shots=2, test_per_class=2, epochs=1, batch_size=64, seeds=[1, 2], threads=1,
                           dir=str(tmp_path / "scale"), keep=True, out=None)
    rec = bench_scale.run(a)
    jobs = {r["job"]: r for r in rec["jobs"]}
    assert set(jobs) == {"test_features", "run_zeroshot", "run_fewshot (CoOp, 2 fused seeds)"}
    for row in jobs.values():
        assert row["measured_rss_mb"] > 100 and bench_scale.within(row, "mem"), row
    # the fused job's disk is its two seeds' views: 1 epoch x 40 images x 1,024 float32 each, and more
    fused = jobs["run_fewshot (CoOp, 2 fused seeds)"]
    assert fused["measured_disk_mb"] >= 2 * 40 * 1024 * 4 / 2 ** 20
    assert "run_fewshot" in bench_scale.format_table(rec)


def test_variants_of_a_cell_fuse_only_into_a_short_job():
    """fuse_variants: a job of several variants adds their runtimes, holds CLIP once (host memory: the largest
    variant's), and is made only where it is short; ImageNet at 16 shots keeps one job per variant."""
    from coop.job_sizes import FUSE_VARIANTS_MINUTES, JobSizes
    from coop.sweep import load_config

    sizes = JobSizes(load_config(ROOT / "config/paper.yaml"))
    four = ("end_m16", "middle_m16", "end_m16_csc", "middle_m16_csc")
    alone = [sizes.run("eurosat", "RN50-quickgelu", "coop", v, 1, 3) for v in four]
    req = sizes.variants("eurosat", "RN50-quickgelu", "coop", four, 1)
    assert req.minutes == pytest.approx(sum(a.minutes for a in alone))
    assert req.mem_mb == max(a.mem_mb for a in alone)
    assert max(a.gpu_mem_mb for a in alone) < req.gpu_mem_mb < sum(a.gpu_mem_mb for a in alone)
    assert req.minutes <= FUSE_VARIANTS_MINUTES and sizes.fuses("eurosat", "RN50-quickgelu", "coop", four, 1)
    big = sizes.variants("imagenet", "RN50-quickgelu", "coop", four, 16)
    assert big.minutes > FUSE_VARIANTS_MINUTES and not sizes.fuses("imagenet", "RN50-quickgelu", "coop", four, 16)
