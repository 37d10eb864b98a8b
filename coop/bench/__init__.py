"""`coop bench`: our CoOp formulation against the official one, side by side, on the CPU (coop.bench.run).

The names below are imported on first use, so that `python -m coop.bench.official` / `coop.bench.whole_job`
run their module once."""
from importlib import import_module

_HOMES = {
    "coop.bench.common": ("QUICK", "TEXT_MODEL", "BenchConfig", "class_names", "load_bench_model", "median_time"),
    "coop.bench.memory": ("activation_bytes", "activation_memory"),
    "coop.bench.run": ("run_bench",),
    "coop.bench.step": ("cached_eval", "coop_step", "image_step", "text_eval"),
    "coop.bench.table": ("format_table",),
}
_WHERE = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'coop.bench' has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)
