# Cluster resources and groups of the GPU rules, and the check that every job fits the cluster's limits.
# Included after checks.smk (a job over the limits stops the parse in one line).
import re

from coop import store
from coop.job_sizes import JobSizes
from coop.methods.registry import get_method
from coop.resources import ResourceError


# Cluster resources (read by a cluster executor, e.g. `snakemake --profile slurm`; a local run ignores them
# unless --resources limits them). Every GPU rule asks one GPU, its threads as CPUs, and host memory, GPU memory
# (gpu_mem_mb), disk (disk_mb) and a runtime in minutes modelled from the job's work (coop.resources, applied
# to the config by coop.job_sizes): dataset size, backbone, method, shots, epochs, seeds. Retries (the
# profile's `retries`) ask more memory (coop.retry) and time, never above cluster.max_mem_mb / max_runtime.
SIZES = JobSizes(config)


def gpu_resources(request):
    """The resources of a GPU rule: `request(wildcards)` is the job's first-attempt coop.resources.Request."""
    return {
        "gpu": 1,
        "cpus_per_task": lambda wildcards, threads: threads,
        "mem_mb": lambda wildcards, attempt: SIZES.mem_mb(request(wildcards), attempt),
        "runtime": lambda wildcards, attempt: SIZES.runtime(request(wildcards), attempt),
        "gpu_mem_mb": lambda wildcards: request(wildcards).gpu_mem_mb,
        "disk_mb": lambda wildcards: request(wildcards).disk_mb,
    }


def run_request(wildcards):
    w = wildcards
    return SIZES.run(w.dataset, w.backbone, w.method, w.variant, shots_of(w), len(job_seeds(w)))


def fewshot_feature_request(wildcards):
    w = wildcards
    shots = sorted({s for e in EXPERIMENTS.values() if w.dataset in e["datasets"] for s in e["shots"]})
    return SIZES.features(w.dataset, w.backbone, "fewshot", SIZES.fewshot_images(w.dataset, shots or [1]))


RUN_RESOURCES = gpu_resources(run_request)
TEST_FEATURE_RESOURCES = gpu_resources(lambda w: SIZES.features(w.dataset, w.backbone, "test"))
FEWSHOT_FEATURE_RESOURCES = gpu_resources(fewshot_feature_request)
TRANSFER_RESOURCES = gpu_resources(
    lambda w: SIZES.transfer(tuple(transfer_targets(w)), w.backbone, len(SEEDS) if int(w.shots) else 1)
)
INTERPRET_RESOURCES = gpu_resources(lambda w: SIZES.interpret(w.backbone))


def _check_resources():
    """Before anything is submitted: every few-shot cell's jobs fit cluster.max_runtime / max_mem_mb (a fused
    cell that does not is split into one job per seed: SPLIT_CELLS), and every other GPU job too."""
    split = set()
    for name, exp in EXPERIMENTS.items():
        for dataset, backbone, method, variant, shots, seed in experiment_cells(exp):
            if seed != SEEDS[0] and shots:
                continue
            try:
                jobs = SIZES.seed_jobs(dataset, backbone, method, variant, shots)
                if not shots:
                    SIZES.check(SIZES.run(dataset, backbone, method, variant, 0, 1), "run_zeroshot",
                                f"{dataset}/{backbone}/{method}/{variant}")
                SIZES.check(SIZES.features(dataset, backbone, "test"), "test_features", f"{dataset}/{backbone}")
            except ResourceError as e:
                raise ConfigError(f"experiments.{name}: {e}") from None
            if FUSE_SEEDS and shots and len(jobs) > 1:
                split.add(store.cell_from_dataset(dataset, backbone, method, variant, shots))
    return sorted(split)


SPLIT_CELLS = _stop_on_bad_value(_check_resources)


def cells_constraint(cells, inside):
    """The dataset wildcard's constraint that lets a rule match the run files of `cells` only (`inside`) or of
    every other cell: a lookahead over the rest of the path (cells as coop.store.cell_from_dataset writes them)."""
    alternatives = "|".join(re.escape(c) for c in cells) or "(?!)"
    return f"(?{'=' if inside else '!'}(?:{alternatives})\\d)[^/]+"


def split_cells_constraint(inside):
    """The constraint matching the run files of the split cells only (`inside`) or of every other cell."""
    return cells_constraint(SPLIT_CELLS, inside)


# Groups: on a cluster, many short GPU jobs are packed into one submission each (the profile's
# group-components says how many) instead of each waiting in the queue; a local run ignores groups.
# "features": feature extraction; run jobs: their method's Cost.job_group ("zeroshot" for zero-shot methods,
# "short_runs" for jobs of at most coop.methods.registry.SHORT_JOB_MINUTES per seed: the linear probe, 1 shot).
def run_group(wildcards):
    minutes = SIZES.run(wildcards.dataset, wildcards.backbone, wildcards.method, wildcards.variant,
                        shots_of(wildcards), 1).minutes
    return get_method(wildcards.method).cost.job_group(shots_of(wildcards), minutes)
