"""The cluster requests of the workflow's jobs, from its config (read by workflow/rules/common.smk): the job
model of coop.resources applied to each job's dataset, backbone, method variant, shots and seeds, the config's
`cluster:` limits and scales, and the retry growth of coop.retry.

`cluster:` keys (all optional; workflow/schemas/config.schema.yaml):
  device        the cost profile of the nodes ("gpu", default; "cpu" for CPU-only nodes; coop.resources.DEVICES)
  max_runtime   the partition's time limit in minutes: no attempt asks more; a fused-seeds job whose estimate
                exceeds it is split into one job per seed; a single seed above it stops the workflow at parse
  max_mem_mb    the largest memory a node offers: no attempt asks more; a job whose first request exceeds it
                stops the workflow at parse
  max_gpu_mem_mb the GPU memory the jobs can count on: a fused job above it is split into one job per seed, a
                seed above it stops the workflow at parse
  mem_scale     multiplies every first-attempt memory request (coop.retry)
  runtime_scale multiplies every first-attempt runtime (e.g. 2 on slower GPUs)
"""
from __future__ import annotations

import functools
from typing import Any, Mapping

from coop.config import build_config
from coop.data.datasets import get_dataset
from coop.data.sizes import DataShape, data_shape
from coop.methods.registry import get_method
from coop.resources import (DEVICES, F32, MB, PROMPT_TOKENS, Request, ResourceError, RunWork, asked_minutes,
                            attempt_runtime, backbone_shape, feature_request, interpret_request, run_request,
                            seed_groups, transfer_request)
from coop.retry import first_mem_mb, retry_mem_mb
from coop.schedule import resolve_epochs

# The longest job (modelled minutes) that trains several variants of a cell together (fuse_variants): what they
# share is a job's fixed cost (start, CLIP, features: seconds), worth sharing among short jobs; a longer job
# gains nothing from it and would only run its variants one after another instead of side by side.
FUSE_VARIANTS_MINUTES = 60
# A dataset whose size cannot be known at parse time (a layout without a split file, not in the paper's
# Table 6) is sized as ImageNet: the largest the protocol has.
UNKNOWN = DataShape(1000, 1281167, 0, 50000, None, "unknown: sized as ImageNet")


class JobSizes:
    """Requests of every GPU job of one workflow config."""

    def __init__(self, config: Mapping[str, Any], device=None):
        cluster = config.get("cluster") or {}
        self.device = device or DEVICES[cluster.get("device", "gpu")]  # a Device: e.g. one measured here
        self.max_runtime = cluster.get("max_runtime")
        self.max_mem_mb = cluster.get("max_mem_mb")
        self.max_gpu_mem_mb = cluster.get("max_gpu_mem_mb")
        self.mem_scale = float(cluster.get("mem_scale", 1.0))
        self.runtime_scale = float(cluster.get("runtime_scale", 1.0))
        self.root = config["data_root"]
        self.toy = config.get("toy_world") or {}
        self.backbones = config["backbones"]
        self.methods = config["methods"]
        self.seeds = list(config["seeds"])
        self.fuse = bool(config.get("fuse_seeds", True))

    # --- what a job is made of
    @functools.lru_cache(maxsize=None)
    def shape(self, dataset: str) -> DataShape:
        return data_shape(self.root, get_dataset(dataset), self.toy) or UNKNOWN

    @functools.lru_cache(maxsize=None)
    def backbone(self, backbone: str):
        return backbone_shape(self.backbones[backbone].get("model", backbone))

    def work(self, dataset: str, method: str, variant: str, shots: int, seeds: int) -> RunWork:
        info = get_method(method)
        cfg = build_config(info.config, self.methods[method][variant] or {})
        shape = self.shape(dataset)
        epochs = resolve_epochs(getattr(cfg, "epochs", None), getattr(cfg, "epoch_scale", 1.0), shots, dataset)
        crop_min = getattr(cfg, "crop_min", 1.0)
        return RunWork(classes=shape.classes, shots=shots, seeds=max(1, seeds) if shots else 1,
                       epochs=epochs if shots and info.cost.step != "none" else 0, test=shape.test,
                       batch_size=getattr(cfg, "batch_size", 32), step=info.cost.step,
                       views=info.cost.views and info.needs_images, distinct_views=2 if crop_min >= 1 else epochs,
                       templates=info.cost.prompts_per_class,
                       prompt_tokens=getattr(cfg, "n_ctx", 16) + PROMPT_TOKENS - 16)

    # --- first-attempt requests
    @functools.lru_cache(maxsize=None)
    def run(self, dataset: str, backbone: str, method: str, variant: str, shots: int, seeds: int) -> Request:
        cost = get_method(method).cost
        req = run_request(self.backbone(backbone), self.work(dataset, method, variant, shots, seeds), self.device)
        stated = cost.runtime(shots, seeds)
        if stated is not None:   # a method that states its own request
            req = Request(cost.mem_mb or req.mem_mb, req.gpu_mem_mb, max(1, stated), req.disk_mb, stated)
        elif cost.mem_mb is not None:
            req = Request(cost.mem_mb, req.gpu_mem_mb, req.runtime, req.disk_mb, req.minutes)
        return self._scaled(req)

    @functools.lru_cache(maxsize=None)
    def features(self, dataset: str, backbone: str, part: str, images: int | None = None) -> Request:
        n = self.shape(dataset).test if images is None else images
        return self._scaled(feature_request(self.backbone(backbone), n, self.device))

    def fewshot_images(self, dataset: str, shots: list[int]) -> int:
        """Images of every few-shot subset of a dataset (train + val, all seeds), an upper bound."""
        classes = self.shape(dataset).classes
        return sum(classes * (s + min(s, 4)) for s in shots) * len(self.seeds)

    @functools.lru_cache(maxsize=None)
    def transfer(self, targets: tuple[str, ...], backbone: str, runs: int) -> Request:
        shapes = [self.shape(t) for t in targets]
        return self._scaled(transfer_request(self.backbone(backbone), max(s.classes for s in shapes),
                                             max(s.test for s in shapes), runs * len(shapes), self.device))

    @functools.lru_cache(maxsize=None)
    def interpret(self, backbone: str) -> Request:
        return self._scaled(interpret_request(self.backbone(backbone), self.device))

    def _scaled(self, req: Request) -> Request:
        """cluster.runtime_scale applied to the modelled minutes (then the margin and the minimum)."""
        if self.runtime_scale == 1.0:
            return req
        minutes = req.minutes * self.runtime_scale
        return Request(req.mem_mb, req.gpu_mem_mb, asked_minutes(minutes), req.disk_mb, minutes)

    # --- attempts and limits
    def mem_mb(self, req: Request, attempt: int) -> int:
        return retry_mem_mb(first_mem_mb(req.mem_mb, self.mem_scale), attempt, req.mem_mb, self.max_mem_mb)

    def runtime(self, req: Request, attempt: int) -> int:
        return attempt_runtime(req.runtime, attempt, self.max_runtime)

    def seed_jobs(self, dataset: str, backbone: str, method: str, variant: str, shots: int) -> list[list[int]]:
        """How the seeds of a few-shot cell are trained: one fused job when fuse_seeds and it fits max_runtime,
        else one job per seed. A seed that fits no job raises ResourceError naming the job and the fix."""
        if not shots:
            return [[0]]
        one = lambda n: self.run(dataset, backbone, method, variant, shots, n)  # noqa: E731
        self.check(one(1), "run_fewshot", f"{dataset}/{backbone}/{method}/{variant} at {shots} shots, one seed")
        if not self.fuse:
            return [[s] for s in self.seeds]
        return seed_groups(self.seeds, one, self.max_runtime, self.max_gpu_mem_mb)

    @functools.lru_cache(maxsize=None)
    def variants(self, dataset: str, backbone: str, method: str, variants: tuple[str, ...], shots: int) -> Request:
        """One job training `variants` of a cell, every seed of each (coop run --variants): the variants' runtimes
        add up; CLIP and the test features are held once (host memory: the largest variant's), each variant's
        learners and activations add to the GPU memory."""
        reqs = [self.run(dataset, backbone, method, v, shots, len(self.seeds)) for v in variants]
        weights_mb = self.backbone(backbone).params * F32 / MB
        minutes = sum(r.minutes for r in reqs)
        gpu_mb = int(sum(r.gpu_mem_mb for r in reqs) - (len(reqs) - 1) * weights_mb)
        return Request(max(r.mem_mb for r in reqs), gpu_mb, asked_minutes(minutes), sum(r.disk_mb for r in reqs),
                       minutes)

    def fuses(self, dataset: str, backbone: str, method: str, variants: tuple[str, ...], shots: int) -> bool:
        """Whether one job may train `variants` of a cell: each variant's seeds train in one job (none is split
        per seed), the whole job is short (at most FUSE_VARIANTS_MINUTES modelled) and fits cluster.max_runtime
        and max_gpu_mem_mb."""
        if any(len(self.seed_jobs(dataset, backbone, method, v, shots)) > 1 for v in variants):
            return False
        req = self.variants(dataset, backbone, method, variants, shots)
        return not (req.minutes > FUSE_VARIANTS_MINUTES or (self.max_runtime and req.runtime > self.max_runtime)
                    or (self.max_gpu_mem_mb and req.gpu_mem_mb > self.max_gpu_mem_mb))

    def check(self, req: Request, rule: str, job: str) -> None:
        """A ResourceError when even the first attempt of a job cannot fit the partition limits."""
        if self.max_runtime and req.runtime > self.max_runtime:
            raise ResourceError(
                f"rule {rule}, job {job}: its modelled runtime is {req.runtime} min, above cluster.max_runtime = "
                f"{self.max_runtime} min (the partition's time limit), so it would pend forever or be killed. "
                "Raise cluster.max_runtime to the partition's limit (or use a partition with a longer one), lower "
                "the shots or epochs (epoch_scale), or set cluster.runtime_scale below 1 if your GPUs are faster "
                "than coop.resources assumes."
            )
        if self.max_gpu_mem_mb and req.gpu_mem_mb > self.max_gpu_mem_mb:
            raise ResourceError(
                f"rule {rule}, job {job}: it needs about {req.gpu_mem_mb} MB of GPU memory, above "
                f"cluster.max_gpu_mem_mb = {self.max_gpu_mem_mb} MB (the smallest GPU it may get). Raise "
                "cluster.max_gpu_mem_mb and ask for larger GPUs (--set-resources ...:slurm_extra), or use "
                "precision: amp, fewer classes per job or a shorter context."
            )
        if self.max_mem_mb and first_mem_mb(req.mem_mb, self.mem_scale) > self.max_mem_mb:
            raise ResourceError(
                f"rule {rule}, job {job}: it needs {req.mem_mb} MB of host memory, above cluster.max_mem_mb = "
                f"{self.max_mem_mb} MB (the largest node). Raise cluster.max_mem_mb if your nodes have more, or "
                "run this dataset on larger nodes."
            )
