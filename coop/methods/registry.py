"""The method registry: every method declares itself once (`Method`) where it is defined and calls `register`.

A method is one module: its parameters (a dataclass with defaults and a `validate()`), whether it trains on a
few-shot subset, what it reads, how it trains (`train(ctxs, cfg) -> [MethodResult]`, one context per seed: one
seed is a list of one), how a finished run is reloaded as a classifier (transfer), whether its learned context
can be interpreted (Table 4), its display name and plot style, and its cost (the workflow's cluster resources).
Reports, transfer, interpretation, figures and the workflow read these declarations and never name a method.

Method modules are imported without torch (they import it inside their functions), so the workflow reads this
table at every parse without paying torch's import. Built-in methods live in `coop.methods.*` (`BUILTINS`);
plugins are modules or files of the user's own (`load_plugins`), each of which registers one or more methods.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping


class MethodError(ValueError):
    """An unknown method or bad method parameters."""


class PluginError(MethodError):
    """A plugin that does not import, declares no method, declares one badly, or clashes with another name."""


# The modules of the built-in methods, imported on first use of the registry.
BUILTINS = ("coop.methods.zeroshot", "coop.methods.linear_probe", "coop.methods.coop", "coop.methods.text_heads",
            "coop.methods.finetune_image")
# A job whose first-attempt runtime for one seed is at most this many minutes is packed with others of its kind
# into one cluster submission (Snakemake group "short_runs") unless its method names a group of its own.
SHORT_JOB_MINUTES = 20
_NAME = re.compile(r"[a-z][a-z0-9_]*")


STEPS = ("text_encoder", "head", "image_encoder", "probe", "none")
# The baselines that the paper's findings compare CoOp with (coop.report.findings_paper finds them by this role).
PAPER_ROLES = ("linear_probe", "prompt_ensemble", "image_finetune")


@dataclass(frozen=True)
class Cost:
    """What the method's jobs cost, as the cluster resource model reads it (coop.resources): what one training
    step does (`step`, one of STEPS: every class prompt through the text encoder as CoOp, a small head on cached
    or view features, the image encoder over a batch, the linear probe's C search, or no training), whether it
    reads the augmented-view cache (`views`), how many prompts per class it encodes once (`prompts_per_class`:
    the ensemble's templates), and its Snakemake `group` (None: "short_runs" when one seed's modelled runtime is
    at most SHORT_JOB_MINUTES).

    A method whose work the model cannot describe states its first-attempt request instead: `minutes` (+
    `minutes_per_shot` x shots) of runtime per seed, `mem_mb` of host memory; retries grow both."""

    step: str = "text_encoder"
    views: bool = True
    prompts_per_class: int = 1
    group: str | None = None
    minutes: float | None = None
    minutes_per_shot: float = 0.0
    mem_mb: int | None = None

    def seed_minutes(self, shots: int) -> float | None:
        """The stated runtime of one seed, or None (modelled)."""
        return None if self.minutes is None else self.minutes + self.minutes_per_shot * shots

    def runtime(self, shots: int, seeds: int = 1) -> int | None:
        """The stated first-attempt runtime in minutes of a job training `seeds` seeds, or None (modelled)."""
        per_seed = self.seed_minutes(shots)
        return None if per_seed is None else int(per_seed * max(seeds, 1))

    def job_group(self, shots: int, seed_minutes: float | None = None) -> str | None:
        """The job's Snakemake group; `seed_minutes`: the modelled runtime of one seed (when none is stated)."""
        if self.group is not None:
            return self.group
        minutes = self.seed_minutes(shots) if self.minutes is not None else seed_minutes
        return "short_runs" if minutes is not None and minutes <= SHORT_JOB_MINUTES else None


@dataclass(frozen=True)
class Method:
    """Everything about one method. `train(ctxs, cfg)` gets one `RunContext` per seed (zero-shot methods: one,
    seed 0) and returns one `MethodResult` each; `classifier(ctx, cfg, run_dir)` rebuilds a finished run as
    features -> logits over its classes (None: the method cannot be transferred)."""

    name: str                       # config key and result-path folder: lower case, digits, underscores
    config: type                    # dataclass of its parameters (defaults; optional validate() raising MethodError)
    train: Callable[..., list]      # train(ctxs: list[RunContext], cfg) -> list[MethodResult]
    few_shot: bool                  # trains on a few-shot subset (else shots = 0, seed = 0)
    needs_images: bool              # reads training images / their augmented views (else cached features only)
    description: str                # one line for `coop list`
    display_name: str               # legends and tables, e.g. "CoOp"
    style: Mapping[str, Any] = field(default_factory=lambda: {"marker": "^", "linestyle": ":", "markersize": 5})
    order: int = 100                # position in legends (smaller first)
    show_variant: bool = False      # legends name the variant even when it is "default" (a method of many variants)
    classifier: Callable | None = None    # classifier(ctx, cfg, run_dir) -> (features -> logits)
    classifier_file: str | None = None    # the run-folder file the classifier is rebuilt from
    classifier_keys: tuple[str, ...] = ()  # the tensors that file must hold
    interpretable: bool = False     # classifier_file holds "ctx", learned token embeddings (nearest words, Table 4)
    paper_role: str | None = None   # the baseline of the paper's findings it is (one of PAPER_ROLES), else None
    cost: Cost = Cost()
    # Variants of one cell trained in one job (fuse_variants): train_variants([(cfg, ctxs), ...]) returns each
    # variant's results, each ending where it would alone; variant_key(cfg) is what such variants must share
    # (None for both: one job per variant).
    train_variants: Callable[..., list] | None = None
    variant_key: Callable[[Any], Any] | None = None
    plugin: str | None = None       # the plugin that registered it (None: built in); set by load_plugins

    @property
    def zero_shot(self) -> bool:
        return not self.few_shot


METHODS: dict[str, Method] = {}
_LOADED: set[str] = set()  # the plugins imported in this process
_loading: list[str] = []  # the plugin being imported (register() stamps its methods with it)
_builtins_loaded = False


def _check(m: Method) -> None:
    def bad(problem: str, fix: str) -> PluginError:
        where = f"plugin {m.plugin!r}" if m.plugin else "built-in method"
        return PluginError(f"{where}: method {m.name!r} {problem}. {fix}")

    if not isinstance(m.name, str) or not _NAME.fullmatch(m.name):
        raise bad("has an invalid name", "Use lower-case letters, digits and underscores, starting with a letter "
                                         "(it becomes a folder name under results/runs/).")
    if not (isinstance(m.config, type) and dataclasses.is_dataclass(m.config)):
        raise bad("declares no parameter dataclass as config", "Pass config=YourConfig, a @dataclass whose fields "
                                                               "have defaults.")
    try:
        m.config()
    except TypeError as e:
        raise bad(f"has parameters without defaults ({e})", "Give every field of its config dataclass a default.")
    if (m.train_variants is None) != (m.variant_key is None):
        raise bad("declares only one of train_variants and variant_key", "Declare both (variants of a cell "
                  "trained together) or neither.")
    for attr in ("train",) + tuple(a for a in ("classifier", "train_variants", "variant_key")
                                   if getattr(m, a) is not None):
        if not callable(getattr(m, attr)):
            raise bad(f"declares a {attr} that is not callable", f"Pass {attr}=a function.")
    for attr in ("description", "display_name"):
        if not isinstance(getattr(m, attr), str) or not getattr(m, attr):
            raise bad(f"lacks a {attr}", f"Pass {attr}='...'.")
    if m.paper_role is not None and m.paper_role not in PAPER_ROLES:
        raise bad(f"declares paper_role {m.paper_role!r}", f"Use one of {', '.join(PAPER_ROLES)}, or None.")
    if m.interpretable and m.classifier_file is None:
        raise bad("is interpretable but names no classifier_file", "Name the file holding its context 'ctx'.")
    if m.classifier_file is not None and m.classifier is None:
        raise bad("names a classifier_file but no classifier", "Pass classifier=a function or drop the file.")
    if not isinstance(m.cost, Cost):
        raise bad("declares a cost that is not a coop.methods.Cost", "Pass cost=Cost(step=...) (or "
                  "Cost(minutes=..., mem_mb=...)).")
    if m.cost.step not in STEPS:
        raise bad(f"declares Cost(step={m.cost.step!r})", f"Use one of {', '.join(STEPS)}.")


def register(method: Method) -> Method:
    """Add `method` to the registry (call it at the top level of the module that defines the method)."""
    if _loading:
        method = dataclasses.replace(method, plugin=_loading[-1])
    _check(method)
    old = METHODS.get(method.name)
    if old is not None and old != method:
        owner = f"plugin {old.plugin!r}" if old.plugin else "a built-in method"
        raise PluginError(f"{'plugin ' + repr(method.plugin) if method.plugin else 'coop'}: method name "
                          f"{method.name!r} is already taken by {owner}. Give the new method another name.")
    METHODS[method.name] = method
    return method


def _ensure_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        for module in BUILTINS:
            importlib.import_module(module)


def all_methods() -> dict[str, Method]:
    """Every registered method (built-ins first, then plugins), by name."""
    _ensure_builtins()
    return dict(METHODS)


def get_method(name: str) -> Method:
    _ensure_builtins()
    try:
        return METHODS[name]
    except KeyError:
        raise MethodError(
            f"Unknown method {name!r}. Known methods: {', '.join(METHODS)} (`coop list` describes them; a "
            "method of your own is loaded with `plugins:` in the config or `coop --plugin MODULE`)."
        ) from None


def _import_plugin(plugin: str):
    if plugin.endswith(".py") or "/" in plugin or "\\" in plugin:
        path = Path(plugin).expanduser()
        if not path.is_file():
            raise PluginError(f"plugin {plugin!r}: no such file. Give the path of a .py file or an importable "
                              "module name (e.g. my_package.my_method).")
        name = f"coop_plugin_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(plugin)


def load_plugins(plugins: list[str] | tuple[str, ...]) -> list[Method]:
    """Import each plugin (a module name, or a .py file path) and return the methods it registered. Each must
    register at least one method (under a name that no built-in or other plugin uses) or a table or figure
    (coop.report.artefacts.register)."""
    _ensure_builtins()
    added: list[Method] = []
    for plugin in plugins:
        if plugin in _LOADED:  # imported once per process
            added += [m for m in METHODS.values() if m.plugin == plugin]
            continue
        from coop.report.artefacts import ARTEFACTS  # light: a plugin may add tables and figures too

        before, artefacts_before = set(METHODS), set(ARTEFACTS)
        _loading.append(plugin)
        try:
            _import_plugin(plugin)
        except PluginError:
            raise
        except ModuleNotFoundError as e:
            raise PluginError(f"plugin {plugin!r} does not import: {e}. Install it (pip install -e <its folder>), "
                              "put its folder on PYTHONPATH, or give the path of its .py file.") from None
        except Exception as e:
            raise PluginError(f"plugin {plugin!r} failed while importing: {type(e).__name__}: {e}. Fix the "
                              "module (see the README, 'Extending').") from None
        finally:
            _loading.pop()
        new = [METHODS[n] for n in METHODS if n not in before]
        if not new and set(ARTEFACTS) == artefacts_before:
            raise PluginError(f"plugin {plugin!r} registered no method and no table or figure. At its top level "
                              "call coop.methods.register(Method(name=..., config=..., train=..., ...)) or "
                              "coop.report.artefacts.register(Artefact(...)).")
        _LOADED.add(plugin)
        added += new
    return added


def variant_groups(name: str, variants: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    """The variants (name -> parameters) of method `name` that one job can train together, in groups in the
    given order: those whose configs give the same `variant_key`; every variant alone when the method does
    not declare one."""
    from coop.config import build_config

    m = get_method(name)
    if m.variant_key is None:
        return [[v] for v in variants]
    groups: dict[Any, list[str]] = {}
    for v, params in variants.items():
        groups.setdefault(m.variant_key(build_config(m.config, dict(params or {}))), []).append(v)
    return list(groups.values())


def method_config_class(name: str) -> type:
    return get_method(name).config


def method_classifier(name: str) -> Callable:
    """classifier(ctx, cfg, run_dir) -> (features -> logits over the run's classes), for transfer."""
    m = get_method(name)
    if m.classifier is None:
        raise MethodError(f"{name} cannot be evaluated on other datasets (no classifier to transfer).")
    return m.classifier
