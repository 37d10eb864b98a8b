"""The sweep a config asks for: which runs each experiment has, which job makes each run and where that job logs.

One home for the workflow (workflow/rules/common.smk and runs.smk call these) and for `coop status`.
Light: no torch, no Snakemake (the workflow imports this at every parse).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from coop import store

# The log of a run job, relative to the results folder: one per zero-shot run (shots 0), one per few-shot
# cell when a job trains every seed (fuse_seeds), else one per seed.
RUN_LOG = "logs/runs/{dataset}/{backbone}/{method}/{variant}/shots{shots}{seed_part}.log"
# The schema that the workflow validates configs with (its defaults fill what a config leaves out).
SCHEMA = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"

Cell = tuple[str, str, str, str, int, int]  # dataset, backbone, method, variant, shots, seed


def _few_shot(method: str) -> bool:
    from coop.methods.registry import get_method

    return get_method(method).few_shot


def experiment_cells(exp: dict[str, Any], seeds: list[int],
                     few_shot: Callable[[str], bool] = _few_shot) -> Iterator[Cell]:
    """(dataset, backbone, method, variant, shots, seed) of every run an experiment needs: zero-shot methods
    once per dataset x backbone (shots 0, seed 0), few-shot ones at every shots x seed."""
    for dataset in exp["datasets"]:
        for backbone in exp["backbones"]:
            for run in exp["runs"].values():
                method, variant = run.split("/")
                if few_shot(method):
                    for shots in exp["shots"]:
                        for seed in seeds:
                            yield dataset, backbone, method, variant, shots, seed
                else:
                    yield dataset, backbone, method, variant, 0, 0


def run_log(root: str | Path, dataset: str, backbone: str, method: str, variant: str, shots,
            seed=None) -> str:
    """The log of the job that makes a run; `seed` None: the job of the whole cell (zero-shot, or fused seeds).
    Fields may be Snakemake wildcards ("{dataset}")."""
    part = "" if seed is None else f"_seed{seed}"
    return str(Path(root) / RUN_LOG.format(dataset=dataset, backbone=backbone, method=method, variant=variant,
                                           shots=shots, seed_part=part))


@dataclass(frozen=True)
class Job:
    """One run job of the workflow: its rule, its wildcards (in the order of its output pattern, as the SLURM
    plugin writes them into a job's comment), the runs (cells) it makes and its log."""
    rule: str
    wildcards: tuple[tuple[str, str], ...]
    cells: tuple[Cell, ...]
    log: str

    @property
    def method(self) -> str:
        return self.cells[0][2]

    @property
    def shots(self) -> int:
        return self.cells[0][4]

    def metrics(self, root: str | Path) -> list[Path]:
        return [Path(store.run_file(root, *c)) for c in self.cells]


FusedKey = tuple[str, str, str, str, int]  # dataset, backbone, method, variant, shots


def fused_variants(config: dict[str, Any], sizes=None) -> dict[FusedKey, tuple[str, ...]]:
    """The few-shot cells whose job trains several variants of their method at once (fuse_variants, with
    fuse_seeds): (dataset, backbone, method, variant, shots) -> the variants of that job, in the config's
    order. The variants of a cell that the method can train together (coop.methods.registry.variant_groups)
    form one job when there are two or more, none of them is split per seed and the job fits the cluster's
    limits (`sizes`, coop.job_sizes.JobSizes)."""
    from coop.methods.registry import get_method, variant_groups

    if not (config.get("fuse_seeds", True) and config.get("fuse_variants", True)):
        return {}
    wanted: dict[tuple[str, str, str, int], set[str]] = {}
    for exp in config["experiments"].values():
        for dataset, backbone, method, variant, shots, _ in experiment_cells(exp, config["seeds"]):
            if shots and get_method(method).train_variants is not None:
                wanted.setdefault((dataset, backbone, method, shots), set()).add(variant)
    out: dict[FusedKey, tuple[str, ...]] = {}
    for (dataset, backbone, method, shots), variants in wanted.items():
        params = {v: p for v, p in config["methods"][method].items() if v in variants}
        for group in variant_groups(method, params) if len(params) > 1 else []:
            if len(group) > 1 and (sizes is None or sizes.fuses(dataset, backbone, method, tuple(group), shots)):
                out.update({(dataset, backbone, method, v, shots): tuple(group) for v in group})
    return out


def fused_rule(method: str, variants: tuple[str, ...]) -> str:
    """The workflow rule that trains `variants` of `method` together (one per set of variants: its outputs name
    them): run_variants_<method>_<digest of the variants>."""
    import hashlib

    return f"run_variants_{method}_{hashlib.sha256('+'.join(variants).encode()).hexdigest()[:8]}"


def job_of(cell: Cell, seeds: list[int], fuse_seeds: bool, root: str | Path = store.RESULTS,
           split: bool = False, fused: tuple[str, ...] = ()) -> Job:
    """The job that makes `cell` (rules run_zeroshot / run_fewshot / run_fewshot_seed / run_variants_* of
    workflow/rules/runs.smk; `split`: a fused cell over cluster.max_runtime, trained one seed per job; `fused`:
    the variants one job trains together, `fused_variants`). The log of a variants job is its first variant's
    (the others' log paths link to it)."""
    dataset, backbone, method, variant, shots, seed = cell
    if fused:
        cells = tuple((dataset, backbone, method, v, shots, s) for v in fused for s in seeds)
        return Job(fused_rule(method, fused), (("dataset", dataset), ("backbone", backbone), ("shots", str(shots))),
                   cells, run_log(root, dataset, backbone, method, fused[0], shots))
    names = [("dataset", dataset), ("backbone", backbone), ("method", method), ("variant", variant)]
    if shots == 0:
        return Job("run_zeroshot", tuple(names), (cell,), run_log(root, dataset, backbone, method, variant, 0))
    names.append(("shots", str(shots)))
    if fuse_seeds and not split:
        cells = tuple((dataset, backbone, method, variant, shots, s) for s in seeds)
        return Job("run_fewshot", tuple(names), cells, run_log(root, dataset, backbone, method, variant, shots))
    names.append(("seed", str(seed)))
    return Job("run_fewshot_seed" if split else "run_fewshot", tuple(names), (cell,),
               run_log(root, dataset, backbone, method, variant, shots, seed))


def with_defaults(config: dict[str, Any], schema: str | Path = SCHEMA) -> dict[str, Any]:
    """`config` with the schema's defaults filled in where it gives nothing, as Snakemake's `validate` does
    (top-level keys and each experiment's)."""
    import yaml

    spec = yaml.safe_load(Path(schema).read_text())
    out = dict(config)
    for key, prop in spec.get("properties", {}).items():
        if key not in out and "default" in prop:
            out[key] = prop["default"]
    exp_props = spec.get("$defs", {}).get("experiment", {}).get("properties", {})
    out["experiments"] = {
        name: {**{k: p["default"] for k, p in exp_props.items() if "default" in p and k not in exp}, **exp}
        for name, exp in out.get("experiments", {}).items()}
    return out


def load_config(path: str | Path) -> dict[str, Any]:
    """A workflow config file, with the schema's defaults; the methods of its plugins registered."""
    import yaml

    from coop.methods.registry import load_plugins

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file {path} does not exist; give the one the workflow runs with "
                                "(--configfile, as for snakemake; default config/config.yaml)")
    config = with_defaults(yaml.safe_load(path.read_text()) or {})
    load_plugins(config.get("plugins", []))
    return config


def sweep_jobs(config: dict[str, Any], root: str | Path = store.RESULTS, sizes=None) -> dict[str, list[Job]]:
    """Experiment name -> the run jobs it needs (each once, in a stable order). `sizes` (coop.job_sizes.JobSizes
    of the config): which fused cells the workflow splits into one job per seed."""
    from coop.resources import ResourceError

    seeds, fuse = config["seeds"], config.get("fuse_seeds", True)

    def split(cell: Cell) -> bool:
        if not (fuse and sizes and cell[4]):
            return False
        try:
            return len(sizes.seed_jobs(*cell[:5])) > 1
        except ResourceError:  # the workflow refuses this config; show it as one job
            return False

    fused = fused_variants(config, sizes)
    out = {}
    for name, exp in config["experiments"].items():
        jobs = {job_of(c, seeds, fuse, root, split(c), fused.get(c[:5], ())): None
                for c in experiment_cells(exp, seeds)}
        out[name] = list(jobs)
    return out
