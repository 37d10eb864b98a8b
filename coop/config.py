"""Method parameters as dataclasses, built from `key=value` strings with types checked and typos named."""
from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

from coop.methods.registry import MethodError


def _check_type(value: Any, typ: Any, key: str) -> Any:
    """A value that is already typed (from YAML or Python) must match the field's type: a config gives
    `n_ctx: 4.5` or `csc: 3` no more than `--set` does."""
    args = typing.get_args(typ)
    if value is None and type(None) in args:
        return value
    if type(None) in args:
        typ = next(a for a in args if a is not type(None))
    ok = {bool: lambda v: isinstance(v, bool), int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), str: lambda v: isinstance(v, str)}
    if typ in ok and not ok[typ](value):
        raise MethodError(f"{key}={value!r}: expected {typ.__name__}, got {type(value).__name__}")
    return float(value) if typ is float else value


def _convert(value: Any, typ: Any, key: str) -> Any:
    if not isinstance(value, str):
        return _check_type(value, typ, key)
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin is typing.Union or (origin is not None and type(None) in args):
        if value.lower() in ("none", "null"):
            return None
        typ = next(a for a in args if a is not type(None))
    if typ is bool:
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        raise MethodError(f"{key}={value!r}: expected true or false")
    if typ in (int, float):
        try:
            return typ(value)
        except ValueError:
            raise MethodError(f"{key}={value!r}: expected {typ.__name__}") from None
    if typ is str:
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise MethodError(f"{key}={value!r}: expected JSON for type {typ}") from None


def build_config(cls: type, values: dict[str, Any]) -> Any:
    """cls(**values) with string values converted to the field types; an unknown key is an error."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise MethodError(
            f"Unknown parameter(s) {', '.join(unknown)} for {cls.__name__}; valid: {', '.join(sorted(fields))}."
        )
    cfg = cls(**{k: _convert(v, hints[k], k) for k, v in values.items()})
    check = getattr(cfg, "validate", None)
    if check:
        check()
    return cfg


def parse_sets(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise MethodError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out
