"""Listing dataset folders the same way on every machine, and reading small text files of a dataset.

Every listing is sorted by name unless asked otherwise (the official code's unsorted `os.listdir` order
is not reproducible), skips hidden entries (".DS_Store", "._x.jpg") and, for images, takes only files
with an image extension (any case). Shared by the folder-layout readers (`coop.data.readers`,
`coop.data.official_layouts`).
"""
from __future__ import annotations

import os
from pathlib import Path

from coop.data.specs import DatasetError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


def _listing(names, sort: bool) -> list[str]:
    return sorted(names) if sort else list(names)


def _subdirs(path: Path, sort: bool = True) -> list[str]:
    """Non-hidden sub-folders of `path` (symlinks followed), sorted by name (else in os order)."""
    with os.scandir(path) as it:
        return _listing((e.name for e in it if not e.name.startswith(".") and e.is_dir()), sort)


def _image_files(path: Path, sort: bool = True) -> list[str]:
    """Non-hidden image files in `path` (by extension, any case), sorted by name (else in os order)."""
    with os.scandir(path) as it:
        return _listing((
            e.name for e in it
            if not e.name.startswith(".") and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS
            and e.is_file()
        ), sort)


_INCOMPLETE = ("The download or extraction is incomplete: extract the archive again (or delete the dataset "
               "folder and prepare it again).")


def _class_images(path: Path, what: str, sort: bool = True, fix: str = _INCOMPLETE) -> list[str]:
    files = _image_files(path, sort)
    if not files:
        raise DatasetError(
            f"Class folder {path} ({what}) holds no images (files ending in "
            f"{', '.join(sorted(IMAGE_EXTENSIONS))}). {fix}"
        )
    return files


def _read_lines(path: Path, what: str, fix: str) -> list[tuple[int, str]]:
    """(line number, stripped line) of the non-blank lines of a text file."""
    if not path.is_file():
        raise DatasetError(f"{what} not found: {path}. {fix}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path} is not UTF-8 text ({e}). {fix}") from None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _few(names: list[str], n: int = 5) -> str:
    more = f" and {len(names) - n} more" if len(names) > n else ""
    return ", ".join(names[:n]) + more
