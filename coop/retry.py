"""How much memory a cluster job asks on each attempt (the workflow's `mem_mb` resource; the profile's `retries`
sets how many attempts there are).

A job killed for exceeding its memory (SLURM: OUT_OF_MEMORY) is resubmitted by Snakemake with attempt = 2, 3, ...
The first attempt asks `first_mb`: the modelled request `full_mb` times the config's `cluster.mem_scale` (1 by
default; below 1 to try a smaller request first, e.g. to start sooner on a busy cluster). A retry must then reach
enough memory within the few attempts there are, so it does not grow from the small first request alone:

    attempt 1:       first_mb
    attempt n >= 2:  max(first_mb * n, full_mb * (n - 1))

With mem_scale = 1 this is today's rule, first_mb * n (8000, 16000, 24000 MB). With mem_scale < 1 the first retry
jumps to the full modelled request and the next to twice it (e.g. 40, 8000, 16000 MB for mem_scale = 0.005).
Every attempt is at most `cap_mb` where given (the largest memory a node offers: a larger request would never
start), and at least 1 MB.
"""
from __future__ import annotations

import math


def first_mem_mb(full_mb: float, mem_scale: float = 1.0) -> int:
    """The first attempt's request: the modelled memory scaled by `cluster.mem_scale`, rounded up, >= 1 MB."""
    if not full_mb > 0:
        raise ValueError(f"a job's modelled memory must be > 0 MB, got {full_mb!r}")
    if not (isinstance(mem_scale, (int, float)) and math.isfinite(mem_scale) and mem_scale > 0):
        raise ValueError(f"cluster.mem_scale must be a number > 0, got {mem_scale!r}: set e.g. "
                          "`cluster: {mem_scale: 1.0}` in the config")
    return max(1, math.ceil(full_mb * mem_scale))


def retry_mem_mb(first_mb: float, attempt: int, full_mb: float | None = None, cap_mb: float | None = None) -> int:
    """The memory (MB) that attempt `attempt` (1, 2, ...) of a job asks: see the module's docstring."""
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    full = first_mb if full_mb is None else full_mb
    mem = first_mb if attempt == 1 else max(first_mb * attempt, full * (attempt - 1))
    if cap_mb is not None:
        mem = min(mem, cap_mb)
    return max(1, math.ceil(mem))
