# Helpers for the rules: the run set of every experiment, input functions, wildcard constraints.
# Imports only light coop modules (no torch): every Snakemake call parses this file.
import json
import os
import re
import shlex

import coop
from coop.data.datasets import get_dataset, split_path
from coop.methods.registry import get_method

CODE_VERSION = coop.__version__  # bump it to rerun everything after a change inside the coop package
DATA_ROOT = config["data_root"]
TOY = config.get("toy_world", {})
THREADS = config.get("threads_per_job", 1)
EXPERIMENTS = config["experiments"]
SEEDS = config["seeds"]  # one list for every experiment
FUSE_SEEDS = config.get("fuse_seeds", True)  # one few-shot job per cell trains all its seeds
PAPER_NAMES = config.get("paper_names", {})
# Each coop command gets the protocol switches, so every result records the ones it ran under.
PROTOCOL = shlex.join([a for k, v in config.get("protocol", {}).items() for a in ("--protocol", f"{k}={v}")])
# The toy CLIPs' weights behind the "toyworld" tag: the shipped files, or pretrained in this run (pretrain.smk).
PRETRAINING = config.get("pretraining", {})
SHIPPED_WEIGHTS = os.path.join(os.path.dirname(coop.__file__), "models", "pretrained")
RUNS_ROOT = "results/runs/{dataset}/{backbone}/{method}/{variant}/shots{shots}/seed{seed}"


class ConfigError(ValueError):
    pass


def _check_config():
    """Names that the schema cannot check: datasets, methods, variants and backbones referenced by experiments."""
    for name, exp in EXPERIMENTS.items():
        for ds in exp["datasets"] + exp.get("targets", []):
            get_dataset(ds)  # raises with the list of known datasets
        for backbone in exp["backbones"]:
            if backbone not in config["backbones"]:
                raise ConfigError(f"experiments.{name}.backbones: {backbone!r} is not defined under 'backbones'.")
        for label, run in exp["runs"].items():
            method, variant = run.split("/")
            get_method(method)
            if variant not in config["methods"].get(method, {}):
                raise ConfigError(
                    f"experiments.{name}.runs.{label}: {run!r} names no variant; define "
                    f"methods.{method}.{variant} in the config."
                )
    if "domain_shift" in EXPERIMENTS and not EXPERIMENTS["domain_shift"].get("targets"):
        raise ConfigError("experiments.domain_shift needs 'targets' (the shifted datasets to evaluate on).")


_check_config()


def exp_shots(exp):
    return exp.get("shots", [1, 2, 4, 8, 16])


def experiment_cells(exp):
    """(dataset, backbone, method, variant, shots, seed) of every run an experiment needs."""
    for dataset in exp["datasets"]:
        for backbone in exp["backbones"]:
            for run in exp["runs"].values():
                method, variant = run.split("/")
                if get_method(method).few_shot:
                    for shots in exp_shots(exp):
                        for seed in SEEDS:
                            yield dataset, backbone, method, variant, shots, seed
                else:
                    yield dataset, backbone, method, variant, 0, 0


def run_file(dataset, backbone, method, variant, shots, seed, name="metrics.json"):
    return os.path.join(RUNS_ROOT.format(dataset=dataset, backbone=backbone, method=method, variant=variant,
                                         shots=shots, seed=seed), name)


def runs_of(*names):
    """metrics.json of the experiments named (all when none), each run once."""
    cells = {c for n in (names or EXPERIMENTS) if n in EXPERIMENTS for c in experiment_cells(EXPERIMENTS[n])}
    return sorted(run_file(*c) for c in cells)


def transfers():
    """One transfer file per domain-shift cell: its runs (all seeds) evaluated on every target."""
    if "domain_shift" not in EXPERIMENTS:
        return []
    cells = {c[:5] for c in experiment_cells(EXPERIMENTS["domain_shift"])}
    return sorted("results/transfer/{}/{}/{}/{}/shots{}.json".format(*c) for c in cells)


def interpretations():
    """Nearest words of the learned context of the first seed's CoOp runs (the paper shows one run)."""
    if "interpretation" not in EXPERIMENTS:
        return []
    cells = experiment_cells(EXPERIMENTS["interpretation"])
    return sorted({run_file(*c, name="nearest_words.json") for c in cells if c[2] == "coop" and c[5] == SEEDS[0]})


def all_datasets():
    return sorted({d for e in EXPERIMENTS.values() for d in e["datasets"] + e.get("targets", [])})


def all_manifests(wildcards):
    """Every few-shot subset of a dataset that some experiment trains on."""
    cells = {(c[4], c[5]) for e in EXPERIMENTS.values() for c in experiment_cells(e)
             if c[0] == wildcards.dataset and c[4] > 0}
    return [manifest(wildcards.dataset, k, s) for k, s in sorted(cells)]


def _alternatives(names):
    """A regex of exactly these names ("(?!)" matches nothing, for an empty list)."""
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) or "(?!)"


ZERO_SHOT_METHODS = [m for m in config["methods"] if not get_method(m).few_shot]
FEW_SHOT_METHODS = [m for m in config["methods"] if get_method(m).few_shot]


wildcard_constraints:
    dataset=_alternatives(all_datasets()),
    target=_alternatives(all_datasets()),
    backbone=_alternatives(config["backbones"]),
    method=_alternatives(config["methods"]),
    variant=r"[A-Za-z0-9_.\-]+",
    shots=r"\d+",
    seed=r"\d+",


def split_file(wildcards):
    return str(split_path(DATA_ROOT, get_dataset(wildcards.dataset)))


def manifest(dataset, shots, seed):
    return f"results/fewshot/{dataset}/shots{shots}_seed{seed}.json"


def pretrained_weights(model):
    return f"results/pretrained/{model}.safetensors"


def backbone_pretrained(backbone):
    """What --pretrained gets: the backbone's tag or path; "toyworld" becomes this run's own pretrained file
    when pretraining.source is "workflow"."""
    b = config["backbones"][backbone]
    if b["pretrained"] == "toyworld" and PRETRAINING.get("source", "shipped") == "workflow":
        return pretrained_weights(b.get("model", backbone))
    return str(b["pretrained"])


def backbone_weights(wildcards):
    """The local weights file a backbone loads, if any: an input, so that new weights rerun what used them."""
    b = config["backbones"][wildcards.backbone]
    pretrained = backbone_pretrained(wildcards.backbone)
    if pretrained == "toyworld":
        return os.path.join(SHIPPED_WEIGHTS, f"{b.get('model', wildcards.backbone)}.safetensors")
    if os.path.dirname(pretrained) or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors")):
        return pretrained
    return []


def backbone_args(wildcards):
    b = config["backbones"][wildcards.backbone]
    return shlex.join([
        "--backbone", wildcards.backbone, "--model", b.get("model", wildcards.backbone),
        "--pretrained", backbone_pretrained(wildcards.backbone), "--init-seed", str(b.get("init_seed", 0)),
    ])


def test_features(dataset, backbone):
    return f"results/features/{dataset}/{backbone}/test.safetensors"


def run_inputs(wildcards):
    """What a job reads: the split, the test features, and for few-shot methods every seed's manifest (and
    the few-shot features)."""
    info = get_method(wildcards.method)
    inputs = {"split": split_file(wildcards), "test": test_features(wildcards.dataset, wildcards.backbone),
              "weights": backbone_weights(wildcards)}
    if info.few_shot:
        seeds = SEEDS if FUSE_SEEDS else [wildcards.seed]
        inputs["manifests"] = [manifest(wildcards.dataset, wildcards.shots, s) for s in seeds]
        if not info.needs_images:
            inputs["fewshot"] = f"results/features/{wildcards.dataset}/{wildcards.backbone}/fewshot.safetensors"
    return inputs


def transfer_targets(wildcards):
    return EXPERIMENTS["domain_shift"]["targets"]


def cell_seeds(wildcards):
    return SEEDS if int(wildcards.shots) > 0 else [0]


def cell_runs(wildcards):
    w = wildcards
    return [os.path.dirname(run_file(w.dataset, w.backbone, w.method, w.variant, w.shots, s))
            for s in cell_seeds(wildcards)]


def transfer_inputs(wildcards):
    targets = transfer_targets(wildcards)
    return {
        "runs": [os.path.join(d, "metrics.json") for d in cell_runs(wildcards)],
        "splits": [str(split_path(DATA_ROOT, get_dataset(t))) for t in targets],
        "features": [test_features(t, wildcards.backbone) for t in targets],
    }


def method_args(wildcards):
    """The variant's parameters as --set key=value arguments."""
    params = config["methods"][wildcards.method][wildcards.variant] or {}

    def text(v):
        return "none" if v is None else str(v).lower() if isinstance(v, bool) else str(v)

    return shlex.join([a for k, v in params.items() for a in ("--set", f"{k}={text(v)}")])


def experiment_json(name):
    """An experiment's definition and the paper-name mapping, as one shell-quoted JSON argument."""
    exp = {"name": name, **EXPERIMENTS[name], "seeds": SEEDS, "paper_names": PAPER_NAMES}
    return shlex.quote(json.dumps(exp))


# Outputs of each experiment: table or figure name -> experiment.
PAPER_TABLES = {
    name: exp for name, exp in [
        ("table1_domain_generalization", "domain_shift"), ("table2_prompt_ensembling", "ensembling"),
        ("table3_initialization", "initialization"), ("table4_nearest_words", "interpretation"),
        ("table5_finetuning_methods", "finetuning"), ("fig1_prompt_engineering", "prompt_engineering"),
    ] if exp in EXPERIMENTS
}
PAPER_FIGURES = {
    name: exp for name, exp in [
        ("fig4_gain_over_zeroshot", "fewshot"), ("fig5a_context_length", "context_length"),
        ("fig5b_backbones", "backbones"),
    ] if exp in EXPERIMENTS
}


def paper_table_inputs(experiment):
    inputs = {"runs": "results/tables/runs.csv"}
    if experiment == "domain_shift":
        inputs["transfer"] = "results/tables/transfer.csv"
    if experiment == "interpretation":
        inputs["nearest"] = interpretations()
    return inputs


def paper_table_args(experiment):
    """--transfer / --nearest arguments of a paper table's inputs."""
    inputs = paper_table_inputs(experiment)
    args = ["--transfer", inputs["transfer"]] if "transfer" in inputs else []
    args += ["--nearest", *inputs["nearest"]] if inputs.get("nearest") else []
    return shlex.join(args)


def final_outputs():
    outputs = ["results/tables/fewshot.csv", "results/tables/runs.csv"]
    if "fewshot" in EXPERIMENTS:
        outputs += ["figures/fig3_fewshot.png"]
    outputs += [f"results/tables/{t}.csv" for t in PAPER_TABLES]
    outputs += [f"figures/{f}.png" for f in PAPER_FIGURES]
    return outputs


# Cluster resources (read by a cluster executor, e.g. `snakemake --profile slurm`; a local run ignores them
# unless --resources limits them). Every GPU rule asks one GPU, its threads as CPUs, GPU_MEM_MB of host memory
# and a runtime in minutes for the first attempt; memory and runtime grow with each retry (the profile sets
# `retries`), so a job killed for its time or memory limit is resubmitted with more.
GPU_MEM_MB = 8000


def gpu_mem_mb(wildcards, attempt):
    return GPU_MEM_MB * attempt


def gpu_runtime(minutes):
    """runtime= of a GPU rule: `minutes` (a number, or a function of the wildcards) x the attempt."""

    def runtime(wildcards, attempt):
        base = minutes(wildcards) if callable(minutes) else minutes
        return int(base * attempt)

    return runtime


def training_minutes(wildcards):
    """One few-shot job's first-attempt runtime: per seed it trains, 10 min + 8 min per shot for CoOp and the
    other trained methods (16 shots: 138 min, generous for ImageNet's 16,000 images x 50 epochs on one GPU),
    10 min for the linear probe (features are cached)."""
    per_seed = 10 if wildcards.method == "linear_probe" else 10 + 8 * int(wildcards.shots)
    return per_seed * (len(SEEDS) if FUSE_SEEDS else 1)


# Groups: on a cluster, many short GPU jobs are packed into one submission each (the profile's
# group-components says how many) instead of each waiting in the queue; a local run ignores groups.
# "features": feature extraction; "zeroshot": zero-shot runs; "short_runs": the linear probe and 1-shot runs.
def run_group(wildcards):
    return "short_runs" if wildcards.method == "linear_probe" or int(wildcards.shots) == 1 else None
