"""Atomic file writes and small JSON helpers: a crashed job never leaves a file that looks complete."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

_UMASK_LOCK = threading.Lock()


class DiskFullError(OSError):
    """A write failed because its file system is full (errno ENOSPC); the message names the file."""


def current_umask() -> int:
    """The process umask, read without changing it where the system allows.

    Linux (>= 4.7) reports it in /proc/self/status, which has no race. Elsewhere it is read the only portable
    way, `os.umask(0)` then restoring it, under a module lock so that two threads reading it here never see
    each other's 0; a thread creating a file elsewhere in that instant could still get umask 0. It is read at
    each write, not once at import, so a umask the program sets later (or a test) is honoured."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode a plain `open(path, "w")` gives a new file: 0666 less the umask (0644 under umask 022)."""
    return 0o666 & ~current_umask()


def _is_disk_full(e: BaseException) -> bool:
    """ENOSPC, also when a library (safetensors, torch) re-raised it as its own error with the OS message."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return True
    text = str(e)
    return "No space left on device" in text or "os error 28" in text or "Disk quota exceeded" in text


def _disk_full(path: Path, e: BaseException) -> DiskFullError:
    return DiskFullError(errno.ENOSPC, f"the disk is full: writing {path} failed ({e}); nothing was written "
                         f"there (an earlier copy, if any, is unchanged). Free space on {path.parent} and rerun.")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary file is created 0600 (tempfile.mkstemp); before the rename it gets the mode a plain
    `open(path, "w")` would give under the current umask (`default_file_mode`), so results, tables and figures
    are readable by whoever the umask lets read them. A failed write (a full disk included, then reported as
    DiskFullError naming `path`) leaves `path` as it was and no temporary file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent)
    except OSError as e:
        if _is_disk_full(e):
            raise _disk_full(path, e) from e
        raise
    os.close(fd)
    tmp = Path(tmp)
    try:
        try:
            yield tmp
            os.chmod(tmp, default_file_mode())
            os.replace(tmp, path)
        except Exception as e:
            if _is_disk_full(e) and not isinstance(e, DiskFullError):
                raise _disk_full(path, e) from e
            raise
    finally:
        tmp.unlink(missing_ok=True)


# Temporary files and folders are named .<name>.<host>-<pid>.<random>.tmp, so a later run can tell whether the
# process that wrote one is gone (a SIGKILL skips every clean-up). One written on another host (a cluster node)
# is taken as stale only after STALE_SECONDS without change.
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<host>[^.]+)-(?P<pid>\d+)\.[^.]+\.tmp$")
STALE_SECONDS = 24 * 3600


def _host() -> str:
    return socket.gethostname().replace(".", "_").replace("-", "_") or "host"


def temp_prefix(name: str) -> str:
    """The prefix of a temporary file or folder for `name` written by this process (see _TEMP)."""
    return f".{name}.{_host()}-{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def is_stale_temp(path: Path, now: float | None = None) -> bool:
    """True for a temporary file/folder of ours whose writer is gone: its process on this host no longer
    exists, or (another host, or an unnamed writer) it has not changed for STALE_SECONDS."""
    if not (path.name.startswith(".") and path.name.endswith(".tmp")):
        return False
    found = _TEMP.match(path.name)
    if found and found["host"] == _host():
        return not _alive(int(found["pid"]))
    try:
        age = (time.time() if now is None else now) - path.lstat().st_mtime
    except OSError:
        return False
    return age > STALE_SECONDS


def remove_stale_temps(folder: str | os.PathLike, owned: bool = False, recursive: bool = False) -> list[Path]:
    """Delete the temporary files (and toy-dataset folders) that `atomic_path` and its kind left in `folder` when
    their process was killed. `owned`: the caller owns the folder (a run's own folder), so every temporary file
    there is stale; else only those whose writer is gone (`is_stale_temp`), so a job writing beside is safe.
    `recursive`: every folder below too. Returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")
    stale = [p for p in found if (owned and p.is_file()) or is_stale_temp(p)]
    for p in stale:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
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
        found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)", text)
        if found:
            return f"a pickle that holds more than tensors: it refers to {found.group(1)}"
        return "not a torch checkpoint (an unreadable pickle)"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return f"{type(e).__name__}: {' '.join(lines[:2])[:300]}"
