# Checks at parse time, before any job: every bad value of the config, the data on disk and the cluster limits
# stops the workflow in one line (`error: ...`, exit code 2; coop.config_file.stop), and another driver in this
# folder is found before Snakemake takes its lock. Included right after common.smk.
import os
import sys

from coop.config import build_config
from coop.config_file import stop
from coop.data.availability import check_obtainable
from coop.data.datasets import DatasetError, check_dataset_on_disk, get_dataset, register_datasets
from coop.data.shots_check import check_shots
from coop.drivers import lock_advice, takes_lock
from coop.errors import user_errors
from coop.io import remove_stale_temps
from coop.methods.registry import MethodError, get_method, load_plugins
from coop.resources import ResourceError


def _check_config():
    """What the schema cannot check: plugins import, every variant's parameters pass its method's dataclass,
    the protocol switches exist, and the names that experiments reference are defined."""
    load_plugins(PLUGINS)  # raises naming the plugin, the problem and the fix
    register_datasets(DATASETS)  # raises naming the entry, the problem and the fix
    from coop.protocol import configure

    configure({k: str(v) for k, v in config.get("protocol", {}).items()})
    for method, variants in config["methods"].items():
        info = get_method(method)
        for variant, params in variants.items():
            try:
                build_config(info.config, params or {})
            except MethodError as e:
                raise ConfigError(f"methods.{method}.{variant}: {e}") from None
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
    used = {d for e in EXPERIMENTS.values() for d in e["datasets"] + e.get("targets", [])}
    for name in DATASETS:  # no job makes them: they must be there before any job starts
        if name in used:
            check_dataset_on_disk(DATA_ROOT, get_dataset(name))
    if workflow.is_main_process:  # not again in every cluster job
        warned = set()
        for name, exp in EXPERIMENTS.items():
            for ds in exp["datasets"] + exp.get("targets", []):
                try:
                    check_obtainable(DATA_ROOT, get_dataset(ds), f"experiments.{name}")
                except DatasetError as e:
                    if takes_lock(sys.argv):  # a run of jobs stops; a dry run (--lint, --dag, ...) plans on
                        raise
                    if ds not in warned:  # (the paper's sweep, before its data is fetched)
                        warned.add(ds)
                        print(f"warning: {e} (A run without -n stops here.)", file=sys.stderr)
            runs = exp["runs"].values()
            methods = [get_method(run.partition("/")[0]) for run in runs]
            if any(m.few_shot for m in methods):
                for ds in exp["datasets"]:
                    check_shots(DATA_ROOT, get_dataset(ds), max(exp["shots"]), TOY, f"experiments.{name}.shots")


def _stop_on_bad_value(check):
    """`check()`, with a bad value (config, data on disk, cluster limits) reported in one line, exit code 2."""
    try:
        return check()
    except (ConfigError, ResourceError, *user_errors()) as e:
        stop(e)


_stop_on_bad_value(_check_config)


# Another driver in this folder (Snakemake takes its lock after this file is read): a live one on this host, or
# jobs of a killed one still running (local, or SLURM jobs of this folder in squeue, with or without a lock)
# stop this one (one line naming them, exit 2; running beside them would run the same jobs twice); a lock with
# none of these found gets the checks to make before --unlock, printed before Snakemake's own lock error
# (coop.drivers).
if workflow.is_main_process:
    _lock = lock_advice(os.getcwd(), sys.argv)
    if _lock and _lock[0] == "stop":
        stop(_lock[1])
    elif _lock:
        print(f"note: {_lock[1]}", file=sys.stderr)


# Before jobs start (not on a dry run): temporary files that killed writers left (a figure half-written when the
# driver was killed), in results/ and figures/ at any depth and beside the datasets; those of a process still
# writing, here or on another host within coop.io.STALE_SECONDS, are kept.
onstart:
    for _folder, _deep in ((R, True), (store.FIGURES, True), (DATA_ROOT, False)):
        for _path in remove_stale_temps(_folder, recursive=_deep):
            print(f"removed {_path}: a temporary file left by a killed job")
