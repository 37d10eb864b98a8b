# Helpers for the rules: the run set of every experiment, input functions, wildcard constraints (checks.smk
# checks the config, resources.smk sizes the jobs).
# Imports only light coop modules (no torch): every Snakemake call parses this file. Paths come from
# coop.store, method facts from the methods' declarations (coop.methods.registry), defaults from the coop
# package: nothing here names a method or restates a default.
import json
import os
import re
import shlex

import coop
from coop import store, sweep
from coop.data.datasets import get_dataset, split_path, zhou_split_file
from coop.methods.registry import get_method
from coop.models.names import parse_model, parse_pretrained, read_model_config
from coop.report.artefacts import artefacts_for

CODE_VERSION = coop.__version__  # bump it to rerun everything after a change inside the coop package
DATA_ROOT = config["data_root"]
TOY = config.get("toy_world", {})
THREADS = config["threads_per_job"]
EXPERIMENTS = config["experiments"]
SEEDS = config["seeds"]  # one list for every experiment
FUSE_SEEDS = config["fuse_seeds"]  # one few-shot job per cell trains all its seeds
PLUGINS = config.get("plugins", [])
DATASETS = config.get("datasets", {})  # datasets of the user's own, defined by config alone
# Which paper dataset / backbone each of ours plays (tables print the paper's number beside ours): the
# config's paper_names, and the paper_name of each dataset defined under datasets:.
PAPER_NAMES = {**config.get("paper_names", {})}
if any("paper_name" in e for e in DATASETS.values()):
    PAPER_NAMES["datasets"] = {**PAPER_NAMES.get("datasets", {}),
                               **{n: e["paper_name"] for n, e in DATASETS.items() if "paper_name" in e}}
PRETRAINING = config["pretraining"]
R = store.RESULTS

# Jobs run this checkout's coop package (pure Python, the one imported above: Snakemake puts the Snakefile's
# folder first on sys.path) from PYTHONPATH, so the conda envs of workflow/envs/ (--sdm conda) need only its
# dependencies and a `coop` command (their post-deploy script). "set -euo pipefail" is Snakemake's own default.
_BASEDIR = shlex.quote(workflow.basedir).replace("{", "{{").replace("}", "}}")  # the prefix is formatted too
shell.prefix(f"set -euo pipefail; export PYTHONPATH={_BASEDIR}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")


class ConfigError(ValueError):
    pass


def _cli(args):
    return shlex.join([str(a) for a in args])


def experiment_cells(exp):
    """(dataset, backbone, method, variant, shots, seed) of every run an experiment needs (coop.sweep, which
    `coop status` reads too)."""
    return sweep.experiment_cells(exp, SEEDS)


def run_log(shots, seed=None):
    """A run job's log pattern (coop.sweep.run_log): per cell, or per seed ("{seed}")."""
    return sweep.run_log(R, "{dataset}", "{backbone}", "{method}", "{variant}", shots, seed)


def run_file(dataset, backbone, method, variant, shots, seed, name=store.METRICS):
    return store.run_file(R, dataset, backbone, method, variant, shots, seed, name)


def run_pattern(name=store.METRICS, **fixed):
    """A run file's pattern: the wildcards of a run, with `fixed` fields filled in (e.g. shots=0)."""
    fields = {k: "{%s}" % k for k in ("dataset", "backbone", "method", "variant", "shots", "seed")}
    return run_file(**{**fields, **fixed}, name=name)


def fewshot_outputs():
    """The metrics.json files one few-shot job writes: every seed's (fuse_seeds), else its own seed's."""
    return [run_pattern(seed=s) for s in SEEDS] if FUSE_SEEDS else [run_pattern()]


def runs_of(*names):
    """metrics.json of the experiments named (all when none), each run once."""
    cells = {c for n in (names or EXPERIMENTS) if n in EXPERIMENTS for c in experiment_cells(EXPERIMENTS[n])}
    return sorted(run_file(*c) for c in cells)


def transfers():
    """One transfer file per domain-shift cell: its runs (all seeds) evaluated on every target."""
    if "domain_shift" not in EXPERIMENTS:
        return []
    cells = {c[:5] for c in experiment_cells(EXPERIMENTS["domain_shift"])}
    return sorted(store.transfer_path(R, *c) for c in cells)


def interpretations():
    """Nearest words of the learned context of the first seed's runs of interpretable methods (the paper shows
    one run)."""
    if "interpretation" not in EXPERIMENTS:
        return []
    cells = experiment_cells(EXPERIMENTS["interpretation"])
    return sorted({run_file(*c, name="nearest_words.json") for c in cells
                   if get_method(c[2]).interpretable and c[5] == SEEDS[0]})


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
    return str(store.manifest_path(R, dataset, shots, seed))


def pretrained_weights(model):
    return store.path("pretrained", R, model=model)


def test_features(dataset, backbone):
    return str(store.features_path(R, dataset, backbone, "test"))


def backbone_model(backbone):
    return config["backbones"][backbone].get("model", backbone)


def backbone_pretrained(backbone):
    """What --pretrained gets: the backbone's tag or path (None: the model's default weights,
    coop.models.names.default_pretrained); "toyworld" becomes this run's own pretrained file when
    pretraining.source is "workflow"."""
    pretrained = config["backbones"][backbone].get("pretrained")
    if pretrained is not None and str(pretrained) == "toyworld" and PRETRAINING["source"] == "workflow":
        return pretrained_weights(backbone_model(backbone))
    return None if pretrained is None else str(pretrained)


def backbone_weights(wildcards):
    """The local files a backbone loads (its weights, its own model-config JSON), as parsed once by
    coop.models.names: inputs, so that new weights or a changed architecture rerun what used them."""
    model = backbone_model(wildcards.backbone)
    files = [parse_pretrained(backbone_pretrained(wildcards.backbone), model).file, parse_model(model).file]
    return [f for f in files if f]


def backbone_args(wildcards):
    b = config["backbones"][wildcards.backbone]
    pretrained = backbone_pretrained(wildcards.backbone)
    args = ["--backbone", wildcards.backbone, "--model", backbone_model(wildcards.backbone)]
    args += ["--pretrained", pretrained] if pretrained is not None else []
    return _cli(args + (["--init-seed", b["init_seed"]] if "init_seed" in b else []))


for _label in config["backbones"]:  # names and weights parsed once, before any job: errors name the fix
    parse_pretrained(backbone_pretrained(_label), backbone_model(_label))
    if parse_model(backbone_model(_label)).kind == "config":  # a model-config JSON of the user's own
        read_model_config(backbone_model(_label))


def coop_args(wildcards=None, datasets=(), everything=False):
    """The coop command's global options: the protocol switches (so every result records the ones it ran
    under), the plugins its method comes from and the definitions of the user's datasets it reads (only
    those, so adding a plugin or a dataset reruns nothing else; `everything`: all of them)."""
    args = [a for k, v in config.get("protocol", {}).items() for a in ("--protocol", f"{k}={v}")]
    keys = wildcards.keys() if wildcards is not None else []
    methods = [wildcards.method] if "method" in keys else []
    plugins = PLUGINS if everything else sorted({get_method(m).plugin for m in methods} - {None})
    args += [a for p in plugins for a in ("--plugin", p)]
    names = set(DATASETS) if everything else {wildcards.dataset} & set(DATASETS) if "dataset" in keys else set()
    names |= set(datasets) & set(DATASETS)
    if names:
        args += ["--datasets", json.dumps({n: DATASETS[n] for n in sorted(names)}, sort_keys=True)]
    return _cli(args)


def report_args(wildcards=None):
    return coop_args(everything=True)


def shots_of(wildcards):
    """A run job's shots (zero-shot rules have no shots wildcard: 0)."""
    return int(wildcards.shots) if "shots" in wildcards.keys() else 0


def job_seeds(wildcards):
    """The seeds one job of this cell trains: every seed (fuse_seeds) or the job's own."""
    if shots_of(wildcards) == 0:
        return [0]
    return [int(wildcards.seed)] if "seed" in wildcards.keys() else SEEDS


def run_inputs(wildcards):
    """What a job reads: the split, the test features, and for few-shot methods every seed's manifest (and
    the few-shot features)."""
    info = get_method(wildcards.method)
    inputs = {"split": split_file(wildcards), "test": test_features(wildcards.dataset, wildcards.backbone),
              "weights": backbone_weights(wildcards)}
    if info.few_shot:
        inputs["manifests"] = [manifest(wildcards.dataset, shots_of(wildcards), s) for s in job_seeds(wildcards)]
        if not info.needs_images:
            inputs["fewshot"] = str(store.features_path(R, wildcards.dataset, wildcards.backbone, "fewshot"))
    return inputs


def run_out(wildcards):
    """--out of a run job: its run folder, with "{seed}" where coop run puts each seed."""
    w = wildcards
    return str(store.run_dir(R, w.dataset, w.backbone, w.method, w.variant, shots_of(w),
                             "{seed}" if shots_of(w) else 0))


def transfer_targets(wildcards):
    return EXPERIMENTS["domain_shift"]["targets"]


def cell_runs(wildcards):
    w = wildcards
    return [str(store.run_dir(R, w.dataset, w.backbone, w.method, w.variant, w.shots, s))
            for s in (SEEDS if int(w.shots) > 0 else [0])]


def transfer_inputs(wildcards):
    targets = transfer_targets(wildcards)
    return {
        "runs": [os.path.join(d, store.METRICS) for d in cell_runs(wildcards)],
        "splits": [str(split_path(DATA_ROOT, get_dataset(t))) for t in targets],
        "features": [test_features(t, wildcards.backbone) for t in targets],
    }


def method_args(wildcards):
    """The variant's parameters as --set key=value arguments."""
    params = config["methods"][wildcards.method][wildcards.variant] or {}

    def text(v):
        return "none" if v is None else str(v).lower() if isinstance(v, bool) else str(v)

    return _cli([a for k, v in params.items() for a in ("--set", f"{k}={text(v)}")])


TOY_FLAGS = {"n_train": "--n-train", "n_val": "--n-val", "n_test": "--n-test", "image_size": "--image-size",
             "seed": "--seed"}


def given_args(settings, names):
    """--flag value for each of `names` (setting -> flag) that `settings` gives; the rest keep coop's defaults."""
    return _cli([a for key, flag in names.items() if key in settings for a in (flag, settings[key])])


def experiment_json(name):
    """An experiment's definition and the paper-name mapping, as one shell-quoted JSON argument."""
    exp = {"name": name, **EXPERIMENTS[name], "seeds": SEEDS, "paper_names": PAPER_NAMES}
    return shlex.quote(json.dumps(exp))


def setup_json():
    """Every experiment and the paper-name mapping, as one shell-quoted JSON argument (the findings report)."""
    return shlex.quote(json.dumps({"experiments": EXPERIMENTS, "paper_names": PAPER_NAMES}))


def findings_transfer():
    """transfer.csv when the config has the domain-shift experiment (the findings of Table 1 read it)."""
    return ["results/tables/transfer.csv"] if "domain_shift" in EXPERIMENTS else []


# The paper's tables and figures that the config's experiments make (coop.report.artefacts: one record each,
# built-in or registered by a plugin).
def paper_artefacts(kind):
    return artefacts_for(EXPERIMENTS, kind=kind)


def artefact_inputs(artefact):
    return artefact.input_files(nearest=interpretations())


def artefact_args(artefact):
    """The input options of `coop report paper|figure --what NAME`."""
    return _cli(artefact.cli_args(artefact_inputs(artefact)))


def final_outputs():
    """The tables and figures, and every run's files that they are made from (metrics.json, transfers, nearest
    words): a deleted one is then remade, and only the tables that read it (Snakemake remakes a missing file only
    when a target asks for it, not when all that depends on it is up to date)."""
    outputs = ["results/tables/fewshot.csv", "results/tables/runs.csv", "results/tables/findings.csv", *runs_of(),
               *transfers(), *interpretations()]
    outputs += [a.outputs["csv"] for a in paper_artefacts("table")]
    outputs += [a.outputs["png"] for a in paper_artefacts("figure")]
    return outputs


# fuse_variants (runs.smk's run_variants_* rules): a variants job read as its first variant's run job.
class _Fields(dict):
    """Wildcards made here: a mapping whose keys read as attributes too."""
    __getattr__ = dict.__getitem__


def _as_variant(wildcards, method, variant):
    """The wildcards of a variants job as those of its first variant's run_fewshot job."""
    return _Fields({**dict(wildcards.items()), "method": method, "variant": variant})


def _log_links(method, variants):
    logs = [sweep.run_log(R, "{dataset}", "{backbone}", method, v, "{shots}") for v in variants]
    return "".join(f"ln -sfn {os.path.relpath(logs[0], os.path.dirname(l))} {l} && " for l in logs[1:])
