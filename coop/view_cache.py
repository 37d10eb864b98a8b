"""The view cache's file, written and read in pieces: one float32 tensor "features" of shape (E, N, D), row-major,
in the safetensors format, so that neither building nor reading it holds more than a block of rows in memory.

A safetensors file is an 8-byte little-endian header length H, then H bytes of JSON (each tensor's dtype, shape
and data_offsets relative to the end of the header, and "__metadata__": a str -> str mapping), padded with
spaces, then the tensors' bytes. `ViewWriter` writes that header first, then each block of rows at its place with
positional writes (no memory map: pages written or read stay out of the job's resident memory), so rows can
arrive in any order. `ViewReader` reads one epoch (or any block of rows) with positional reads. The files are
ordinary safetensors files: `safetensors.safe_open` and `load_file` read them. `write_tensors` writes any small
set of numpy arrays the same way (the feature caches, a run's learned parameters): sorted metadata, so the same
content gives the same bytes.
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

NAME = "features"
DTYPE = "F32"
ITEMSIZE = 4
MAX_HEADER = 100_000_000  # the safetensors library's own limit on the header's size


class ViewFileError(ValueError):
    """A file that is not a view cache of the expected layout."""


def header_bytes(shape: tuple[int, int, int], metadata: dict[str, str]) -> bytes:
    """The 8-byte length and the JSON header of a file holding one F32 tensor `features` of `shape`."""
    nbytes = int(np.prod(shape)) * ITEMSIZE
    return tensors_header({NAME: (DTYPE, tuple(shape), nbytes)}, metadata)


def tensors_header(tensors: dict[str, tuple[str, tuple[int, ...], int]], metadata: dict[str, str]) -> bytes:
    """The 8-byte length and JSON header of a safetensors file holding `tensors` (name -> (dtype, shape, bytes)),
    laid out one after another in name order, padded with spaces so that the data starts at a multiple of 8
    bytes. The metadata keys are sorted: the same content always gives the same bytes (the safetensors library
    writes them in a random order), so a rebuilt cache equals the original byte for byte."""
    header: dict = {"__metadata__": {str(k): str(v) for k, v in sorted(metadata.items())}}
    offset = 0
    for name in sorted(tensors):
        dtype, shape, nbytes = tensors[name]
        header[name] = {"dtype": dtype, "shape": [int(s) for s in shape], "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)
    return struct.pack("<Q", len(text)) + text


_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.float16): "F16",
           np.dtype(np.int64): "I64", np.dtype(np.int32): "I32", np.dtype(np.uint8): "U8", np.dtype(np.bool_): "BOOL"}


def write_tensors(path: str | Path, arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write numpy `arrays` as a safetensors file at `path` (not atomic: give an `atomic_path`), with
    deterministic bytes (`tensors_header`); read back by `safetensors.safe_open` / `load_file`."""
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    unknown = {k: v.dtype for k, v in arrays.items() if v.dtype not in _DTYPES}
    if unknown:
        raise ValueError(f"no safetensors dtype for {unknown}")
    head = tensors_header({k: (_DTYPES[v.dtype], v.shape, v.nbytes) for k, v in arrays.items()}, metadata)
    with open(path, "wb") as f:
        f.write(head)
        for name in sorted(arrays):
            f.write(arrays[name].astype(arrays[name].dtype.newbyteorder("<"), copy=False).tobytes())


def read_header(path: str | Path) -> tuple[dict, dict[str, str], int]:
    """(tensor entry, metadata, offset of the data) of a view-cache file; ViewFileError when the file is not a
    safetensors file with one F32 tensor `features` of 3 dimensions whose bytes the file holds."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ViewFileError("shorter than a safetensors header")
        (n,) = struct.unpack("<Q", head)
        if n > min(MAX_HEADER, size - 8):
            raise ViewFileError(f"header length {n} does not fit the file's {size} bytes")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ViewFileError(f"header is not JSON ({e})") from None
    entry = header.get(NAME) if isinstance(header, dict) else None
    if not isinstance(entry, dict) or entry.get("dtype") != DTYPE or len(entry.get("shape", ())) != 3:
        raise ViewFileError(f"no {DTYPE} tensor {NAME!r} of 3 dimensions")
    start, end = entry.get("data_offsets", (None, None))
    if end - start != int(np.prod(entry["shape"])) * ITEMSIZE or 8 + n + end > size:
        raise ViewFileError("the tensor's bytes are not all in the file")
    return entry, dict(header.get("__metadata__") or {}), 8 + n + start


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while len(data):
        n = os.pwrite(fd, data, offset)
        data, offset = data[n:], offset + n


def _pread_into(fd: int, out: np.ndarray, offset: int) -> None:
    view = memoryview(out).cast("B")
    while len(view):
        n = os.preadv(fd, [view], offset)
        if n == 0:
            raise ViewFileError(f"the file ends {len(view)} bytes early")
        view, offset = view[n:], offset + n


class ViewWriter:
    """Writes an (E, N, D) float32 features tensor into `path` (created or truncated) block by block:
    `write(epoch, start, rows)` puts rows (n, D) at [epoch, start:start + n]. Every row must be written once
    before `close`; the file has its full size from the start (unwritten rows read as zeros)."""

    def __init__(self, path: str | Path, shape: tuple[int, int, int], metadata: dict[str, str]):
        self.shape = tuple(int(s) for s in shape)
        head = header_bytes(self.shape, metadata)
        self.offset = len(head)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            _pwrite_all(self.fd, memoryview(head), 0)
            os.ftruncate(self.fd, self.offset + int(np.prod(self.shape)) * ITEMSIZE)
        except BaseException:
            os.close(self.fd)
            raise

    def write(self, epoch: int, start: int, rows) -> None:
        rows = np.ascontiguousarray(np.asarray(rows, dtype=np.float32))
        e, n, d = self.shape
        if rows.ndim != 2 or rows.shape[1] != d or not (0 <= epoch < e and 0 <= start and start + len(rows) <= n):
            raise ValueError(f"rows {rows.shape} at epoch {epoch}, start {start} do not fit shape {self.shape}")
        _pwrite_all(self.fd, memoryview(rows).cast("B"), self.offset + (epoch * n + start) * d * ITEMSIZE)

    def close(self) -> None:
        if self.fd >= 0:
            try:
                os.fsync(self.fd)
            finally:
                os.close(self.fd)
                self.fd = -1

    def __enter__(self) -> "ViewWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ViewReader:
    """Reads blocks of an (E, N, D) view cache with positional reads: `epoch(e)` -> (N, D) float32 array. The
    file stays open, so a job replacing it meanwhile (a new file renamed over it) does not change what this one
    reads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        entry, self.metadata, self.offset = read_header(self.path)
        self.shape = tuple(int(s) for s in entry["shape"])
        self.fd = os.open(self.path, os.O_RDONLY)

    def rows(self, epoch: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        e, n, d = self.shape
        stop = n if stop is None else stop
        if not (0 <= epoch < e and 0 <= start <= stop <= n):
            raise IndexError(f"epoch {epoch}, rows {start}:{stop} outside shape {self.shape}")
        out = np.empty((stop - start, d), dtype=np.float32)
        _pread_into(self.fd, out, self.offset + (epoch * n + start) * d * ITEMSIZE)
        return out

    def epoch(self, epoch: int) -> np.ndarray:
        return self.rows(epoch)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
