"""The data layer's errors, in a module of their own so that `datasets` and `toyworld` can both raise them
without importing each other (`datasets` reads the toy registry; `toyworld` imports nothing from `datasets`)."""
from __future__ import annotations


class DatasetError(ValueError):
    """A dataset on disk is missing or malformed; the message says what and how to fix it. `why`, when given, is
    what is wrong without the fix, for a caller that can make the file again and says so (e.g. a manifest)."""

    def __init__(self, message: str, why: str | None = None):
        super().__init__(message)
        self.why = why


class ToyDatasetExistsError(FileExistsError, DatasetError):
    """`coop data toy` would replace a folder that is not a complete toy dataset (a FileExistsError for callers
    that catch that, a DatasetError for the CLI)."""
