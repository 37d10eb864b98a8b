"""What a finished run's metrics.json must hold, and the check of it (one JSON parse: cheap enough to run on
every run of the paper's sweep at each workflow start).

A record is good when it is a JSON object whose keys below have their types (numbers finite, accuracy and macro
F1 percentages) and, where the caller knows which run the file belongs to, whose identity (dataset, backbone,
method, variant, shots, seed) is that run's. The workflow checks the metrics.json of every run it asks for when
it starts (workflow/rules/tables.smk) and sets a bad one aside as `metrics.json.bad` beside it, naming it and
what is wrong in one line: the file is then missing, and its run is done again before any table reads it. The
table builders read every record through `read_record`, so a file that went bad after that check stops the
table job with the same one line (path, problem, fix), never a bare JSONDecodeError.
Light: no torch or pandas (the workflow imports this at every parse).
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coop.features import CacheError

IDENTITY = ("dataset", "backbone", "method", "variant", "shots", "seed")
# key -> the JSON type it must have ("number": an int or a float, never a bool)
FIELDS = {"dataset": "string", "backbone": "string", "method": "string", "variant": "string", "shots": "integer",
          "seed": "integer", "accuracy": "number", "macro_f1": "number", "n_test": "integer",
          "n_classes": "integer", "wall_seconds": "number", "params": "object"}
PERCENT = ("accuracy", "macro_f1")
BAD_SUFFIX = ".bad"  # a bad metrics.json is moved to metrics.json.bad beside it
FIX = "its run is done again by the next workflow run (which moves a bad metrics.json aside as metrics.json.bad)"


class BadRecordError(CacheError):
    """A metrics.json that fails its check; the message names the file, what is wrong and the fix."""


def _has_type(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "object":
        return isinstance(value, dict)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) if kind == "integer" else math.isfinite(value)


def record_problem(record: Any, expected: Mapping[str, Any] | None = None) -> str | None:
    """What is wrong with a parsed metrics.json (None: nothing). `expected`: the run's identity it must carry."""
    if not isinstance(record, dict):
        return f"not a JSON object but a JSON {type(record).__name__}"
    missing = [k for k in FIELDS if k not in record]
    if missing:
        return f"not a finished run's record: it lacks {', '.join(missing)}"
    for key, kind in FIELDS.items():
        if not _has_type(record[key], kind):
            return f"{key} is {json.dumps(record[key])[:60]}, not a finite {kind}" if kind == "number" \
                else f"{key} is {json.dumps(record[key])[:60]}, not a JSON {kind}"
    for key in PERCENT:
        if not 0 <= record[key] <= 100:
            return f"{key} is {record[key]}, not a percentage (0 to 100)"
    for key, want in (expected or {}).items():
        if str(record[key]) != str(want):
            return f"it is the record of another run ({key} {record[key]!r}, this run's is {want!r})"
    return None


def file_problem(path: str | os.PathLike, expected: Mapping[str, Any] | None = None) -> str | None:
    """What is wrong with the metrics.json at `path` (None: nothing; a missing file is not checked here)."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    try:
        record = json.loads(text)
    except ValueError as e:
        return f"not valid JSON ({e})" if text.strip() else "empty"
    return record_problem(record, expected)


def read_record(path: str | os.PathLike, expected: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The checked record of the metrics.json at `path`, or a BadRecordError naming it, the problem and the fix."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
        record = json.loads(text)
    except FileNotFoundError:
        raise BadRecordError(f"{path}: not found; {FIX}.") from None
    except (UnicodeDecodeError, ValueError):
        problem = file_problem(path, expected)
        raise BadRecordError(f"{path}: {problem}; {FIX}.") from None
    problem = record_problem(record, expected)
    if problem:
        raise BadRecordError(f"{path}: {problem}; {FIX}.")
    return record


def set_aside_bad(runs: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str, Path]]:
    """Check the metrics.json of every run in `runs` (path -> the run's identity) that exists; move each bad one
    to metrics.json.bad beside it (replacing an older one). Returns (path, problem, new path) of each moved."""
    moved = []
    for path, expected in runs.items():
        if not os.path.isfile(path):
            continue
        problem = file_problem(path, expected)
        if problem:
            aside = Path(str(path) + BAD_SUFFIX)
            os.replace(path, aside)
            moved.append((str(path), problem, aside))
    return moved
