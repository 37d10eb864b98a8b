"""Reading a workflow config file, and saying in one line what is wrong with one: the file, line and column of
a YAML syntax error (PyYAML knows them), the key of a schema violation.

Used by the Snakefile (the default config/config.yaml is read through `read_config` before Snakemake's own
`configfile:`), by `coop check-config` (any file, before a long run) and by `coop status`. A file given with
`snakemake --configfile` is read by Snakemake itself before any workflow code runs; its YAML errors carry no
line there ("Config file is not valid JSON or YAML"): `coop check-config FILE` names it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"


class ConfigFileError(ValueError):
    """A config file that cannot be read, or whose content breaks the schema; the message is one line."""


def stop(message) -> None:
    """A bad value in the config, the data or the cluster settings, met while the workflow is parsed: one line
    on stderr, exit code 2, before any job (the Snakefile and workflow/rules/checks.smk)."""
    import sys

    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def read_config(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML (or JSON) config file; ConfigFileError naming the file, line and column of a
    syntax error, or saying that the top level is not a mapping."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError(f"config file {path} does not exist; give the file the workflow runs with "
                              "(--configfile; default config/config.yaml)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigFileError(f"config file {path} cannot be read: {e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        raise ConfigFileError(_yaml_error(path, e)) from None
    except yaml.YAMLError as e:  # no position known
        raise ConfigFileError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path}: the top level must be a mapping of keys (data_root:, experiments:, ...), "
                              f"got a {type(data).__name__}")
    return data


def _yaml_error(path: Path, e) -> str:
    mark = e.problem_mark or e.context_mark
    where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
    problem = e.problem or "not valid YAML"
    context = f" ({e.context}, line {e.context_mark.line + 1})" if e.context and e.context_mark else ""
    line = ""
    if mark is not None and mark.buffer:
        lines = mark.buffer.rstrip("\0").splitlines()
        if 0 <= mark.line < len(lines):
            line = f": {lines[mark.line].strip()!r}"
    hint = "; YAML indents with spaces only, not tabs" if "\\t" in problem or "\t" in problem else ""
    return f"{where}: {problem}{context}{line}{hint}"


def key_path(parts) -> str:
    """experiments.fewshot.shots[1] from jsonschema's path ['experiments', 'fewshot', 'shots', 1]."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(the top level)"


def schema_message(error) -> str:
    """One line for a jsonschema ValidationError: the key it is about and what is wrong."""
    best = error
    try:  # the most specific of the sub-errors (e.g. oneOf), as jsonschema picks it
        from jsonschema.exceptions import best_match

        best = best_match([error]) or error
    except ImportError:
        pass
    return f"config: {key_path(best.absolute_path)}: {' '.join(best.message.split())}"


def check_config(path: str | Path, schema: str | Path = SCHEMA) -> dict[str, Any]:
    """A config file read and checked against the workflow's schema (the checks the Snakefile makes before it
    builds anything that need no data): ConfigFileError with one line otherwise. Returns the mapping."""
    import jsonschema
    import yaml

    data = read_config(path)
    spec = yaml.safe_load(Path(schema).read_text())
    validator = jsonschema.validators.validator_for(spec)(spec)
    errors = sorted(validator.iter_errors(json.loads(json.dumps(data, default=str))),
                    key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigFileError(f"{path}: {schema_message(errors[0])}")
    _check_methods(path, data)
    return data


def _check_methods(path, data: dict[str, Any]) -> None:
    """Every variant's parameters through its method's dataclass (the plugins' methods too), as the Snakefile
    checks them: a MethodError naming the variant."""
    from coop.config import build_config
    from coop.methods.registry import MethodError, get_method, load_plugins

    load_plugins(data.get("plugins", []))
    for method, variants in (data.get("methods") or {}).items():
        info = get_method(method)
        for variant, params in (variants or {}).items():
            try:
                build_config(info.config, params or {})
            except MethodError as e:
                raise ConfigFileError(f"{path}: methods.{method}.{variant}: {e}") from None


def add_subcommand(sub) -> None:
    p = sub.add_parser("check-config", help="check workflow config files: YAML syntax (with the line) and the schema")
    p.add_argument("files", nargs="+", help="config files, as given to snakemake --configfile")
    p.set_defaults(func=_cmd_check_config)


def _cmd_check_config(args) -> None:
    for path in args.files:
        check_config(path)
        print(f"{path}: valid YAML, valid against {SCHEMA.name}, every method's values valid "
              f"(snakemake -n --configfile {path} checks the rest: datasets on disk, shots, cluster limits)")
