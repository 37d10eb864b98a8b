"""The registry of the paper's artefacts: one `Artefact` record per table and figure we rebuild.

A record says which experiment of the config the artefact belongs to, whether it is a table or a figure,
its builder (a "module:function" string, imported only when the artefact is built), the inputs the builder
takes in order (names of `INPUTS`: runs.csv, transfer.csv, the nearest-words files, fewshot.csv), its title,
the columns of the CSV it writes (a figure: of the numbers it draws, its `data` twin), and its caption file.
The CLI (`coop report paper|figure --what NAME`) takes its choices, titles and dispatch from here, and the
workflow generates one rule per record of its experiments (`artefacts_for`). A new table or figure is its
builder and one `register(Artefact(...))` (the built-in ones are below: the tables, then the figures).

This module imports nothing heavy (no pandas, matplotlib or torch): the workflow reads it at every parse.

Builder conventions: a table's builder is called `builder(*inputs, exp)` and returns the long DataFrame
written as CSV (and as Markdown, `coop.report.paper_output.paper_markdown`); each `appendix` entry
(heading, "module:function") is called the same way and, when not empty, appended to the Markdown under
its heading. A figure's builder is called `builder(*inputs, exp, png, pdf)` and writes both files; its
`data` twin `data(*inputs, exp)` returns the numbers drawn (columns `columns`).
"""
from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

__all__ = ["KINDS", "INPUTS", "VALUE_COLUMNS", "Input", "Artefact", "ArtefactError", "register", "get_artefact",
           "all_artefacts", "artefact_names", "artefacts_for", "experiments"]

KINDS = ("table", "figure")
# The value columns of every long paper table, after its row keys, "column" and "paper_column".
VALUE_COLUMNS = ("ours", "paper", "diff", "ours_mean", "ours_std", "n_seeds")
# Where the workflow keeps captions: paths relative to the repository's workflow/ folder.
_WORKFLOW_DIR = Path(__file__).resolve().parents[2] / "workflow"
_NAME = re.compile(r"[a-z][a-z0-9_]*")


class ArtefactError(ValueError):
    """An unknown artefact, or a badly declared one."""


@dataclass(frozen=True)
class Input:
    """One kind of input: its command-line option, the workflow's file (None: many files, listed by the
    workflow), whether it is several files, and whether a builder can do without it (it then gets None, or
    an empty list for several files)."""

    option: str
    path: str | None
    many: bool = False
    required: bool = True
    help: str = ""


INPUTS: dict[str, Input] = {
    "runs": Input("--runs", "results/tables/runs.csv", help="runs.csv (one row per run)"),
    "transfer": Input("--transfer", "results/tables/transfer.csv", required=False,
                      help="transfer.csv (one row per run x target of the domain-shift evaluations)"),
    "nearest": Input("--nearest", None, many=True, required=False,
                     help="nearest_words.json files (one per interpreted run)"),
    "fewshot": Input("--fewshot", "results/tables/fewshot.csv", help="fewshot.csv (the few-shot table)"),
}


def _resolve(ref: str | Callable) -> Callable:
    if callable(ref):  # a plugin's own function
        return ref
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Artefact:
    name: str                   # the output's file name (results/tables/NAME.csv, figures/NAME.png)
    experiment: str             # the experiment of the config it is drawn from (config `experiments.NAME`)
    kind: str                   # "table" or "figure"
    builder: str | Callable     # "module:function" or the function (see the module docstring for how it is called)
    inputs: tuple[str, ...]     # names of INPUTS, in the builder's argument order
    title: str                  # a table's Markdown title line; a figure's name in listings
    columns: tuple[str, ...]    # the CSV's columns (a figure: its data twin's)
    data: str | None = None     # figures: "module:function" returning the numbers drawn
    appendix: tuple[tuple[str, str], ...] = ()  # tables: (heading, "module:function") appended to the Markdown
    caption: str = ""           # caption file, relative to workflow/ (default report/NAME.rst)

    def __post_init__(self):
        if not self.caption:
            object.__setattr__(self, "caption", f"report/{self.name}.rst")

    # -- what the workflow reads

    @property
    def caption_path(self) -> Path:
        """The caption file (absolute), for Snakemake's report(..., caption=...)."""
        return _WORKFLOW_DIR / self.caption

    def caption_text(self) -> str:
        return self.caption_path.read_text(encoding="utf-8").strip()

    @property
    def outputs(self) -> dict[str, str]:
        """The files the workflow writes: a table's csv and md, a figure's png and pdf."""
        if self.kind == "table":
            return {"csv": f"results/tables/{self.name}.csv", "md": f"results/tables/{self.name}.md"}
        return {"png": f"figures/{self.name}.png", "pdf": f"figures/{self.name}.pdf"}

    def input_files(self, nearest: Sequence[str] = ()) -> dict[str, str | list[str]]:
        """Input name -> the workflow's file(s) (`nearest`: the nearest-words files, which only the workflow
        can list)."""
        return {i: list(nearest) if INPUTS[i].many else INPUTS[i].path for i in self.inputs}

    def cli_args(self, files: Mapping[str, str | Sequence[str]]) -> list[str]:
        """The input options of `coop report paper|figure --what NAME` for `files` (input -> path(s)); an
        input of several files with none is left out."""
        args: list[str] = []
        for i in self.inputs:
            value = files.get(i)
            if INPUTS[i].many:
                args += [INPUTS[i].option, *value] if value else []
            elif value is not None:
                args += [INPUTS[i].option, str(value)]
        return args

    @property
    def command(self) -> str:
        """The `coop report` subcommand that makes it: "paper" for tables, "figure" for figures."""
        return "paper" if self.kind == "table" else "figure"

    # -- building (imports the builder)

    def function(self) -> Callable:
        return _resolve(self.builder)

    def data_function(self) -> Callable:
        return _resolve(self.data) if self.data else self.function()

    def arguments(self, inputs: Mapping[str, Any]) -> list:
        return [inputs.get(i, [] if INPUTS[i].many else None) for i in self.inputs]

    def build(self, inputs: Mapping[str, Any], exp: Mapping, png=None, pdf=None):
        """A table's DataFrame; a figure drawn into `png` (and `pdf`), its Figure returned."""
        if self.kind == "table":
            return self.function()(*self.arguments(inputs), exp)
        return self.function()(*self.arguments(inputs), exp, png, pdf)

    def build_data(self, inputs: Mapping[str, Any], exp: Mapping):
        """The numbers of the artefact as a DataFrame with `columns` (a table: the table itself)."""
        return self.data_function()(*self.arguments(inputs), exp)

    def build_appendix(self, inputs: Mapping[str, Any], exp: Mapping) -> list[tuple[str, Any]]:
        return [(heading, _resolve(ref)(*self.arguments(inputs), exp)) for heading, ref in self.appendix]


ARTEFACTS: dict[str, Artefact] = {}


def register(artefact: Artefact) -> Artefact:
    """Add `artefact` to the registry (its name must be new, its fields well formed)."""
    a = artefact
    problems = []
    if not _NAME.fullmatch(a.name):
        problems.append("its name is not lower case letters, digits and underscores")
    if a.kind not in KINDS:
        problems.append(f"kind {a.kind!r} is not one of {KINDS}")
    if any(i not in INPUTS for i in a.inputs):
        problems.append(f"inputs {list(a.inputs)} are not among {sorted(INPUTS)}")
    for ref in [a.builder, *([a.data] if a.data else []), *(r for _, r in a.appendix)]:
        if not callable(ref) and not re.fullmatch(r"[\w.]+:\w+", str(ref)):
            problems.append(f"{ref!r} is not a 'module:function' reference")
    if a.kind == "figure" and not a.data:
        problems.append("a figure needs a data twin (data='module:function')")
    if not a.title or not a.columns:
        problems.append("it needs a title and its CSV columns")
    if a.name in ARTEFACTS and ARTEFACTS[a.name] != a:
        problems.append("the name is already taken")
    if problems:
        raise ArtefactError(f"artefact {a.name!r}: " + "; ".join(problems))
    ARTEFACTS[a.name] = a
    return a


def get_artefact(name: str) -> Artefact:
    try:
        return ARTEFACTS[name]
    except KeyError:
        raise ArtefactError(f"Unknown paper artefact {name!r}. Known: {', '.join(ARTEFACTS)}.") from None


def all_artefacts(kind: str | None = None) -> list[Artefact]:
    """Every registered artefact (of `kind`), in registration order (the tables, then the figures)."""
    return [a for a in ARTEFACTS.values() if kind is None or a.kind == kind]


def artefact_names(kind: str | None = None) -> list[str]:
    return [a.name for a in all_artefacts(kind)]


def artefacts_for(experiments: Iterable[str], kind: str | None = None) -> list[Artefact]:
    """The artefacts (of `kind`) drawn from any of `experiments` (e.g. the config's experiment names)."""
    wanted = set(experiments)
    return [a for a in all_artefacts(kind) if a.experiment in wanted]


def experiments() -> list[str]:
    """The experiment names some artefact is drawn from."""
    return list(dict.fromkeys(a.experiment for a in ARTEFACTS.values()))


# ----------------------------------------------------------------------------- the paper's artefacts

_LONG = ("column", "paper_column", *VALUE_COLUMNS)
_PROVENANCE = ("method", "variant", "shots")

register(Artefact(
    name="table1_domain_generalization", experiment="domain_shift", kind="table",
    builder="coop.report.paper_tables:table1_domain_generalization", inputs=("transfer", "runs"),
    title="Table 1: domain generalisation (trained on the source, 16 shots)",
    columns=("source", "backbone", "paper_backbone", "label", *_LONG, "role", *_PROVENANCE),
))
register(Artefact(
    name="table2_prompt_ensembling", experiment="ensembling", kind="table",
    builder="coop.report.paper_tables:table2_prompt_ensembling", inputs=("runs",),
    title="Table 2: hand-crafted prompt vs prompt ensembling vs CoOp",
    columns=("dataset", "paper_dataset", "label", *_LONG, *_PROVENANCE),
))
register(Artefact(
    name="table3_initialization", experiment="initialization", kind="table",
    builder="coop.report.paper_tables:table3_initialization", inputs=("runs",),
    title="Table 3: random vs word initialisation of the context (M=4)",
    columns=("label", *_LONG, "n_datasets", "paper_context_length", *_PROVENANCE),
))
register(Artefact(
    name="table4_nearest_words", experiment="interpretation", kind="table",
    builder="coop.report.paper_table4:table4_nearest_words", inputs=("nearest",),
    title="Table 4: nearest words to the learned context vectors",
    columns=("backbone", "label", "seed", "index", "column", "paper_column", "ours", "paper", "token", "distance",
             "paper_token", "paper_distance", "shots"),
    appendix=(("Class-specific contexts", "coop.report.paper_table4:table4_nearest_words_csc"),),
))
register(Artefact(
    name="table5_finetuning_methods", experiment="finetuning", kind="table",
    builder="coop.report.paper_tables:table5_finetuning", inputs=("runs",),
    title="Table 5: CoOp vs other ways to adapt CLIP (16 shots)",
    columns=("backbone", "paper_backbone", "label", *_LONG, "ours_delta", "paper_delta", *_PROVENANCE),
))
register(Artefact(
    name="fig1_prompt_engineering", experiment="prompt_engineering", kind="table",
    builder="coop.report.paper_tables:fig1_prompt_engineering", inputs=("runs",),
    title="Fig. 1: hand-written prompt variants vs CoOp",
    columns=("backbone", "paper_backbone", "label", *_LONG, *_PROVENANCE),
))
register(Artefact(
    name="fig3_fewshot", experiment="fewshot", kind="figure",
    builder="coop.report.figures:fig3_fewshot", data="coop.report.figures:fig3_data", inputs=("fewshot",),
    title="Fig. 3: few-shot learning curves",
    columns=("dataset", "backbone", "method", "variant", "shots", "acc_mean", "acc_std", "acc_ci95", "f1_mean",
             "f1_std", "n_seeds", "wall_seconds_mean"),
))
register(Artefact(
    name="fig4_gain_over_zeroshot", experiment="fewshot", kind="figure",
    builder="coop.report.paper_figures:plot_gain_over_zeroshot", data="coop.report.paper_figures:gain_over_zeroshot",
    inputs=("runs",), title="Fig. 4: CoOp's gain over zero-shot CLIP",
    columns=("backbone", "paper_backbone", "dataset", "paper_dataset", "coop_label", "shots", "coop_mean",
             "coop_std", "n_seeds", "zeroshot_mean", "gain"),
))
register(Artefact(
    name="fig5a_context_length", experiment="context_length", kind="figure",
    builder="coop.report.paper_fig5:plot_context_length", data="coop.report.paper_fig5:context_length_data",
    inputs=("runs",), title="Fig. 5a: context length",
    columns=("backbone", "label", "method", "variant", "n_ctx", "class_token_position", "csc", "series", "shots",
             "acc_mean", "acc_std", "n_seeds", "n_datasets"),
))
register(Artefact(
    name="fig5b_backbones", experiment="backbones", kind="figure",
    builder="coop.report.paper_fig5:plot_backbones", data="coop.report.paper_fig5:backbone_data",
    inputs=("runs",), title="Fig. 5b: backbones",
    columns=("backbone", "paper_backbone", "label", "method", "variant", "shots", "acc_mean", "acc_std", "n_seeds",
             "n_datasets"),
))
