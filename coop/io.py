"""Atomic file writes and small JSON helpers: a crashed job never leaves a file that looks complete."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that `atomic_path` left in `folder` when its process was killed (SIGKILL skips
    the clean-up). Call it only on a folder that no other process is writing, e.g. a run's own folder."""
    folder = Path(folder)
    stale = [p for p in folder.glob(".*.tmp") if p.is_file()] if folder.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


def torch_load_reason(e: Exception) -> str:
    """One line on why a checkpoint failed to load (torch's weights-only message is long and advises loading
    unsafely; keep only its reason)."""
    import pickle
    import re

    text = str(e)
    if isinstance(e, pickle.UnpicklingError) or "Weights only load failed" in text:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if found:
            return f"a pickle that holds more than tensors: it refers to {found.group(1)}"
        return "not a torch checkpoint (an unreadable pickle)"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return f"{type(e).__name__}: {' '.join(lines[:2])[:300]}"
