"""coop.io's atomic writes: final files get the mode a plain open() gives under the umask; a failed write (a full
disk included) leaves neither the target nor a temporary file, and says what to do."""
import errno
import json
import os
import stat
from pathlib import Path

import pytest

from coop import io


@pytest.fixture
def umask():
    """Set the process umask for one test; the old one is restored after."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write_all(folder: Path) -> list[Path]:
    """One file by every atomic helper: atomic_path (written through the path, as the library callers do),
    write_text, write_json."""
    a, t, j = folder / "sub" / "a.bin", folder / "t.md", folder / "j.json"
    with io.atomic_path(a) as tmp:
        tmp.write_bytes(b"\x00\x01")
    io.write_text(t, "text\n")
    io.write_json(j, {"x": 1})
    return [a, t, j]


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_get_the_umask_mode(tmp_path, umask, mask, mode):
    umask(mask)
    assert io.current_umask() == mask and io.default_file_mode() == mode
    for path in _write_all(tmp_path):
        assert _mode(path) == mode, (path, oct(_mode(path)))
    plain = tmp_path / "plain.txt"  # the reference: what open(path, "w") gives
    with open(plain, "w") as f:
        f.write("x")
    assert _mode(plain) == mode
    # Overwriting an existing file applies the same rule.
    io.write_json(tmp_path / "j.json", {"x": 2})
    assert _mode(tmp_path / "j.json") == mode and json.loads((tmp_path / "j.json").read_text()) == {"x": 2}
    assert not list(tmp_path.rglob("*.tmp"))


def test_current_umask_leaves_the_umask_as_it_was(umask):
    umask(0o027)
    io.current_umask()
    assert os.umask(0o027) == 0o027


def test_current_umask_without_proc(umask, monkeypatch):
    """Where /proc/self/status is not there (not Linux), the locked os.umask round trip gives the same answer."""
    umask(0o027)
    real_open = open

    def no_proc(file, *a, **k):
        if str(file) == "/proc/self/status":
            raise FileNotFoundError(file)
        return real_open(file, *a, **k)

    monkeypatch.setattr("builtins.open", no_proc)
    assert io.current_umask() == 0o027 and io.default_file_mode() == 0o640
    assert os.umask(0o027) == 0o027


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_failed_write_leaves_nothing(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "out.json"
    with pytest.raises(ValueError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise ValueError("boom")
    assert not target.exists() and not _leftovers(tmp_path)
    # An existing target keeps its old content and mode.
    io.write_json(target, {"old": True})
    with pytest.raises(TypeError):
        io.write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"old": True} and _mode(target) == 0o644
    assert not _leftovers(tmp_path)


def _enospc_midway(monkeypatch):
    """Path.write_text writes part of its text, then fails as a full disk does."""
    real = Path.write_text

    def write_text(self, data, *a, **k):
        real(self, data[: len(data) // 2], *a, **k)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", write_text)


def _check_disk_full(err: pytest.ExceptionInfo, target: Path) -> None:
    msg = str(err.value)
    assert isinstance(err.value, OSError) and err.value.errno == errno.ENOSPC
    assert str(target) in msg and "disk is full" in msg and "Free space" in msg and "rerun" in msg


def test_full_disk_new_file(tmp_path, monkeypatch):
    target = tmp_path / "runs" / "metrics.json"
    _enospc_midway(monkeypatch)
    with pytest.raises(io.DiskFullError) as err:
        io.write_json(target, {"accuracy": 50.0, "long": "x" * 1000})
    _check_disk_full(err, target)
    assert not target.exists() and not _leftovers(tmp_path)


def test_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "table.md"
    io.write_text(target, "old table\n")
    _enospc_midway(monkeypatch)
    with pytest.raises(io.DiskFullError) as err:
        io.write_text(target, "new table " * 100)
    _check_disk_full(err, target)
    assert target.read_text() == "old table\n" and not _leftovers(tmp_path)


def test_full_disk_inside_atomic_path(tmp_path):
    """A writer that opens the temporary path itself (safetensors, torch.save, savefig), and one that re-raises
    the OS error as its own exception with the OS message (as safetensors does)."""
    target = tmp_path / "prompt.safetensors"
    with pytest.raises(io.DiskFullError) as err:
        with io.atomic_path(target) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"partial")
                raise OSError(errno.ENOSPC, "No space left on device")
    _check_disk_full(err, target)
    assert not target.exists() and not _leftovers(tmp_path)

    class LibraryError(Exception):
        pass

    with pytest.raises(io.DiskFullError) as err:
        with io.atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise LibraryError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
                               "message: \"No space left on device\" })")
    _check_disk_full(err, target)
    assert isinstance(err.value.__cause__, LibraryError)
    assert not target.exists() and not _leftovers(tmp_path)


def test_full_disk_creating_the_temp_file(tmp_path, monkeypatch):
    def mkstemp(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(io.tempfile, "mkstemp", mkstemp)
    target = tmp_path / "x.json"
    with pytest.raises(io.DiskFullError) as err:
        io.write_json(target, {})
    _check_disk_full(err, target)
    assert not target.exists()


# ---------------------------------------------------------------------------------------------
# temporary files that a killed writer left

def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temps_are_those_whose_writer_is_gone(tmp_path):
    """Named .<name>.<host>-<pid>.<random>.tmp: on this host, stale exactly when the pid no longer exists;
    from another host (or unnamed), stale only after STALE_SECONDS without change."""
    host = io._host()
    dead = tmp_path / f".fig3.pdf.{host}-{_dead_pid()}.abc123.tmp"
    alive = tmp_path / f".fig3.pdf.{host}-{os.getpid()}.def456.tmp"
    remote_new = tmp_path / ".fig3.pdf.node17-12345.ghi789.tmp"
    remote_old = tmp_path / ".fig4.pdf.node17-12345.jkl012.tmp"
    unnamed_old = tmp_path / ".table.csv.x1y2z3.tmp"   # the format before writers were named
    result = tmp_path / "fig3.pdf"
    hidden = tmp_path / ".snakemake_timestamp"
    toy_folder = tmp_path / f".toy_shapes.{host}-{_dead_pid()}.q1w2e3.tmp"  # a toy dataset being generated
    for p in (dead, alive, remote_new, remote_old, unnamed_old, result, hidden):
        p.write_text("x")
    (toy_folder / "images").mkdir(parents=True)
    two_days = 2 * 24 * 3600
    for p in (remote_old, unnamed_old):
        os.utime(p, (p.stat().st_atime - two_days, p.stat().st_mtime - two_days))
    removed = io.remove_stale_temps(tmp_path)
    assert sorted(p.name for p in removed) == sorted(p.name for p in (dead, remote_old, unnamed_old, toy_folder))
    assert all(p.exists() for p in (alive, remote_new, result, hidden))
    assert not toy_folder.exists()


def test_atomic_path_names_its_writer(tmp_path):
    with io.atomic_path(tmp_path / "a.json") as tmp:
        assert tmp.name.startswith(f".a.json.{io._host()}-{os.getpid()}.") and tmp.name.endswith(".tmp")
        assert not io.is_stale_temp(tmp)  # this process is writing it


def test_owned_folder_and_recursive_sweep(tmp_path):
    deep = tmp_path / "runs" / "a"
    deep.mkdir(parents=True)
    mine = deep / f".metrics.json.{io._host()}-{os.getpid()}.r4t5y6.tmp"
    mine.write_text("x")
    assert io.remove_stale_temps(tmp_path, recursive=True) == []  # its writer (this process) is alive
    assert io.remove_stale_temps(deep, owned=True) == [mine]       # a run's own folder: every temp is stale
