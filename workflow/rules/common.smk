# Helpers for the rules: targets, input functions, wildcard constraints. Imports only light coop modules.
import re
import shlex

import coop
from coop.data.datasets import DatasetError, get_dataset, split_path
from coop.methods.registry import MethodError, get_method

CODE_VERSION = coop.__version__  # bump it to rerun everything after a change inside the coop package
DATA_ROOT = config["data_root"]
TOY = config.get("toy_world", {})
THREADS = config.get("threads_per_job", 1)

for _name in config["datasets"]:
    try:
        get_dataset(_name)
    except DatasetError as e:
        raise ValueError(f"config 'datasets': {e}") from None
for _name in config["methods"]:
    get_method(_name)


def _alternatives(names):
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


wildcard_constraints:
    dataset=_alternatives(config["datasets"]),
    backbone=_alternatives(config["backbones"]),
    method=_alternatives(config["methods"]),
    variant=r"[A-Za-z0-9_.\-]+",
    shots=r"\d+",
    seed=r"\d+",


def run_path(dataset, backbone, method, variant, shots, seed):
    return f"results/runs/{dataset}/{backbone}/{method}/{variant}/shots{shots}/seed{seed}/metrics.json"


def run_cells():
    """(dataset, backbone, method, variant, shots, seed) of every run in the config."""
    for dataset in config["datasets"]:
        for backbone in config["backbones"]:
            for method, variants in config["methods"].items():
                few_shot = get_method(method).few_shot
                for variant in variants:
                    if few_shot:
                        for shots in config["shots"]:
                            for seed in config["seeds"]:
                                yield dataset, backbone, method, variant, shots, seed
                    else:
                        yield dataset, backbone, method, variant, 0, 0


def all_runs():
    return [run_path(*cell) for cell in run_cells()]


def split_file(wildcards):
    return str(split_path(DATA_ROOT, get_dataset(wildcards.dataset)))


def manifest(dataset, shots, seed):
    return f"results/fewshot/{dataset}/shots{shots}_seed{seed}.json"


def all_manifests(wildcards):
    return [manifest(wildcards.dataset, k, s) for k in config["shots"] for s in config["seeds"]]


def backbone_args(wildcards):
    b = config["backbones"][wildcards.backbone]
    return shlex.join([
        "--backbone", wildcards.backbone, "--model", b.get("model", wildcards.backbone),
        "--pretrained", str(b["pretrained"]), "--init-seed", str(b.get("init_seed", 0)),
    ])


def run_inputs(wildcards):
    """What a run reads: the split, the test features, and for few-shot methods the manifest (+ features)."""
    info = get_method(wildcards.method)
    inputs = {
        "split": split_file(wildcards),
        "test": f"results/features/{wildcards.dataset}/{wildcards.backbone}/test.safetensors",
    }
    if info.few_shot:
        inputs["manifest"] = manifest(wildcards.dataset, wildcards.shots, wildcards.seed)
        if not info.needs_images:
            inputs["fewshot"] = f"results/features/{wildcards.dataset}/{wildcards.backbone}/fewshot.safetensors"
    return inputs


def method_args(wildcards):
    """The variant's parameters as --set key=value arguments."""
    params = config["methods"][wildcards.method][wildcards.variant] or {}

    def text(v):
        return "none" if v is None else str(v).lower() if isinstance(v, bool) else str(v)

    return shlex.join([a for k, v in params.items() for a in ("--set", f"{k}={text(v)}")])
