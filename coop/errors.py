"""The errors that mean "bad input": the CLI prints their message (what is wrong, how to fix it) and exits 2."""
from __future__ import annotations

import sys

from coop.config_file import ConfigFileError
from coop.data.datasets import DatasetError
from coop.features import CacheError
from coop.methods.registry import MethodError
from coop.protocol import ProtocolError


def user_errors() -> tuple[type[BaseException], ...]:
    """Evaluated when an error is caught, so torch-backed modules are only consulted if already imported."""
    errors: list[type[BaseException]] = [DatasetError, CacheError, MethodError, ProtocolError,
                                            ConfigFileError]
    if "coop.models.names" in sys.modules:  # imported by coop.models.clip
        errors.append(sys.modules["coop.models.names"].BackboneError)
    if "coop.train" in sys.modules:
        errors += [sys.modules["coop.train"].NonFiniteLossError, sys.modules["coop.train"].CheckpointError]
    return tuple(errors)
