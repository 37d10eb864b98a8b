"""`coop bench`: our CoOp formulation against the official one, side by side, on the CPU (coop.bench.run)."""
from coop.bench.common import QUICK, TEXT_MODEL, BenchConfig, class_names, load_bench_model, median_time
from coop.bench.memory import activation_bytes, activation_memory
from coop.bench.run import run_bench
from coop.bench.step import cached_eval, coop_step, image_step, text_eval
from coop.bench.table import format_table

__all__ = ["QUICK", "TEXT_MODEL", "BenchConfig", "activation_bytes", "activation_memory", "cached_eval",
           "class_names", "coop_step", "format_table", "image_step", "load_bench_model", "median_time",
           "run_bench", "text_eval"]
