"""Fetching dataset files: downloads that resume, checksum verification, and safe archive extraction.

`download(url, dest)` writes via `dest.part`, continuing a partial file with an HTTP Range request and
retrying interrupted transfers; `verify(path, checksum, ...)` checks an "md5:<hex>"/"sha256:<hex>" digest;
`extract(archive, dest)` unpacks a zip or tar into a new folder, refusing (UnsafeArchiveError) any member
whose path would land outside it (absolute paths, `..`, links pointing outside, device files) before
anything of it is written; `_move` lays extracted paths out into a dataset folder.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import stat
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable

from coop.data.datasets import DatasetError

USER_AGENT = "coop-bench/0.1 (+urllib)"
CHUNK = 1 << 20


class UnsafeArchiveError(DatasetError):
    """An archive member would be written outside the extraction folder."""


# ---------------------------------------------------------------------------------------------
# checksums and downloads

def file_checksum(path: str | Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _parse_checksum(checksum: str) -> tuple[str, str]:
    algo, sep, value = checksum.partition(":")
    if not sep:  # a bare hex digest: md5 (32) or sha256 (64)
        algo, value = {32: "md5", 64: "sha256"}.get(len(checksum), "?"), checksum
    algo = algo.lower()
    if algo not in ("md5", "sha1", "sha256", "sha512") or not re.fullmatch(r"[0-9a-fA-F]+", value):
        raise DatasetError(f"Checksum {checksum!r} is not 'md5:<hex>' or 'sha256:<hex>'.")
    return algo, value.lower()


def verify(path: Path, checksum: str | None, url: str, name: str, root: Path) -> None:
    """Raise if `path` does not match `checksum` (no check when the checksum is not known)."""
    if not checksum:
        return
    algo, expected = _parse_checksum(checksum)
    actual = file_checksum(path, algo)
    if actual != expected:
        raise DatasetError(
            f"Checksum mismatch for {path} (from {url}): expected {algo} {expected}, got {actual}. The file is "
            "corrupt or not what the source table expects (an HTML error page, a changed archive). Delete "
            f"{path} and rerun `coop data prepare {name} --root {root}` to download it again."
        )


def _total_from_content_range(value: str | None) -> int | None:
    m = re.fullmatch(r"bytes (?:\d+-\d+|\*)/(\d+)", (value or "").strip())
    return int(m.group(1)) if m else None


def download(url: str, dest: Path, *, timeout: float = 60.0, retries: int = 3,
             log: Callable[[str], None] = print) -> Path:
    """Fetch `url` to `dest`, via `dest.part`, continuing a partial `.part` file with a Range request.

    Interrupted transfers are retried (`retries` times, resuming); every request has `timeout`
    seconds for connecting and for each read. Returns `dest`; it is not verified here.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    for attempt in range(retries + 1):
        offset = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": USER_AGENT}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
        except urllib.error.HTTPError as e:
            e.close()
            if e.code == 416 and offset:  # nothing left to fetch: the part file is complete (or too long)
                if _total_from_content_range(e.headers.get("Content-Range")) == offset:
                    last_error = None
                    break
                log(f"  {part.name} does not fit the file on the server; starting over")
                part.unlink()
                last_error = OSError("the partial file did not fit the file on the server")
                continue
            if e.code >= 500 and attempt < retries:
                last_error = e
                time.sleep(min(2 ** attempt, 10))
                continue
            raise DatasetError(
                f"Downloading {url} failed: HTTP {e.code} {e.reason}. The URL may have moved: fetch the file by "
                f"hand, save it as {dest}, and rerun."
            ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            last_error = e
            if attempt < retries:
                time.sleep(min(2 ** attempt, 10))
                continue
            break
        with resp:
            if offset and resp.status == 206:
                start = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
                if not start or int(start.group(1)) != offset:
                    resp.close()
                    raise DatasetError(
                        f"Downloading {url}: the server answered the resume request for byte {offset} with "
                        f"Content-Range {resp.headers.get('Content-Range')!r}. Delete {part} and rerun."
                    )
                mode = "ab"
                log(f"  resuming {dest.name} at {offset / 1e6:.1f} MB")
            else:
                if offset:
                    log(f"  the server ignored the resume request; downloading {dest.name} from the start")
                offset, mode = 0, "wb"
            length = resp.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else None
            done = offset
            next_report = 0.0
            try:
                with open(part, mode) as f:
                    while chunk := resp.read(CHUNK):
                        f.write(chunk)
                        done += len(chunk)
                        if total and done / total >= next_report:
                            log(f"  {dest.name}: {done / 1e6:.1f} of {total / 1e6:.1f} MB")
                            next_report = done / total + 0.1
            except (OSError, http.client.HTTPException) as e:  # reset or timed out: resume from what we have
                last_error = e
                if attempt < retries:
                    time.sleep(min(2 ** attempt, 10))
                    continue
                break
        if total is not None and done != total:
            last_error = OSError(f"got {done} of {total} bytes")
            if attempt < retries and done > offset:
                continue
            break
        last_error = None
        break
    if last_error is not None:
        raise DatasetError(
            f"Downloading {url} failed: {last_error}. Check the network and rerun: the download resumes from "
            f"{part}. Or fetch the file by hand and save it as {dest}."
        )
    os.replace(part, dest)
    return dest


# ---------------------------------------------------------------------------------------------
# safe extraction

def archive_kind(filename: str) -> str:
    n = filename.lower()
    if n.endswith(".zip"):
        return "zip"
    if n.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")):
        return "tar"
    return "file"


def _inside(dest: Path, rel: str) -> bool:
    """Whether `rel` (a path relative to the resolved folder `dest`) stays inside `dest` (or is `dest`).

    Links already on disk are followed (os.path.realpath), so a link extracted earlier cannot be used
    as a ladder ("a" -> ".", then "a/a/l" -> "../../x").
    """
    path = os.path.realpath(os.path.join(str(dest), rel))
    return path == str(dest) or path.startswith(str(dest) + os.sep)


def _check_name(archive: Path, name: str, dest: Path) -> None:
    posix = name.replace("\\", "/")
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix):
        raise UnsafeArchiveError(
            f"Refusing to extract {archive}: member {name!r} has an absolute path. The archive is damaged or "
            "malicious; delete it and download it again from the official source."
        )
    if ".." in PurePosixPath(posix).parts or not _inside(dest, posix):
        raise UnsafeArchiveError(
            f"Refusing to extract {archive}: member {name!r} would be written outside the target folder "
            "('..' in its path). The archive is damaged or malicious; delete it and download it again from "
            "the official source."
        )


def _check_link(archive: Path, name: str, target: str, dest: Path, hard: bool) -> None:
    # A symlink's target is relative to the link's folder; a hard link's to the archive's top.
    base = "" if hard else os.path.dirname(name.replace("\\", "/"))
    if target.startswith("/") or not _inside(dest, os.path.join(base, target)):
        raise UnsafeArchiveError(
            f"Refusing to extract {archive}: member {name!r} is a {'hard' if hard else 'symbolic'} link to "
            f"{target!r}, outside the target folder. The archive is damaged or malicious; delete it and download "
            "it again from the official source."
        )


_FILTER_ERROR = getattr(tarfile, "FilterError", ())  # Python >= 3.11.4


def extract(archive: Path, dest: Path, kind: str | None = None) -> None:
    """Extract `archive` into the new folder `dest`, refusing members that would escape it.

    Every member is checked before it is written; on a refusal the caller removes `dest` (prepare
    extracts into a temporary folder only).
    """
    kind = kind or archive_kind(archive.name)
    dest.mkdir(parents=True, exist_ok=False)
    dest = dest.resolve()
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as z:
                infos = z.infolist()
                for info in infos:  # the central directory lists every member: check all before writing
                    _check_name(archive, info.filename, dest)
                    if stat.S_ISLNK(info.external_attr >> 16):
                        _check_link(archive, info.filename, z.read(info).decode("utf-8", "replace"), dest, False)
                z.extractall(dest)  # zipfile writes symlink members as small text files
        elif kind == "tar":
            data_filter = getattr(tarfile, "data_filter", None)  # Python >= 3.11.4: a second line of defence
            with tarfile.open(archive, "r|*") as t:  # streaming: one pass over a compressed archive
                for m in t:
                    _check_name(archive, m.name, dest)
                    if m.issym() or m.islnk():
                        _check_link(archive, m.name, m.linkname, dest, m.islnk())
                    elif not (m.isfile() or m.isdir()):
                        raise UnsafeArchiveError(
                            f"Refusing to extract {archive}: member {m.name!r} is a device or special file. "
                            "The archive is damaged or malicious; delete it and download it again from the official "
                            "source."
                        )
                    if data_filter is not None:
                        t.extract(m, dest, filter="data")
                    else:  # directory modes are not applied (a read-only folder would block its files)
                        t.extract(m, dest, set_attrs=not m.isdir())
        else:
            raise DatasetError(f"{archive} is not a zip or tar archive (kind {kind!r}).")
    except _FILTER_ERROR as e:  # refused by tarfile's data filter after our own checks passed
        raise UnsafeArchiveError(f"Refusing to extract {archive}: {e}. Delete it and download it again.") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as e:
        raise DatasetError(
            f"{archive} is not a readable {kind} archive ({e}). Delete it and download it again."
        ) from None


def _move(src: Path, dst: Path, what: str) -> None:
    if not src.exists() and not src.is_symlink():
        raise DatasetError(f"{what}: expected {src.name!r} in the archive, found no such path. The archive's "
                           "layout differs from the one recorded in the source table.")
    if src.is_dir() and dst.is_dir():  # merge (e.g. an archive's top folder into the dataset folder)
        for child in sorted(src.iterdir()):
            _move(child, dst / child.name, what)
        return
    if dst.exists():
        raise DatasetError(f"{what}: {dst.name!r} comes from two sources; fix the layout in the source table.")
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)
