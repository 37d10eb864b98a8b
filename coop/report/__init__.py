"""Tables and figures from per-run metrics.json files, and the paper's tables and figures beside ours.

Modules: `tables` (few-shot tables, CSV/Markdown), `collect` (runs.csv, transfer.csv), `figures` (Fig. 3),
`paper_figures` (Fig. 4), `paper_fig5` (Figs. 5a, 5b), `paper` (the paper's tables: re-exports `paper_names`, `selection`,
`paper_tables`, `paper_table4`, `paper_output`), `declarations` (what reports read from the method
registry) and `artefacts` (the registry of the paper's tables and figures that the CLI and workflow read).

Importing the package imports nothing heavy: the names below are loaded on first use (pandas for the
tables, matplotlib only for `plot_fewshot`), so `coop.report.artefacts` stays light for the workflow.
"""
from __future__ import annotations

__all__ = [
    "RUN_COLUMNS",
    "TABLE_COLUMNS",
    "aggregate",
    "average_over_datasets",
    "collect_runs",
    "fewshot_table",
    "plot_fewshot",
    "read_table",
    "to_markdown",
    "write_table",
]


def __getattr__(name: str):
    if name == "plot_fewshot":
        from coop.report.figures import plot_fewshot

        return plot_fewshot
    if name in __all__:
        from coop.report import tables

        return getattr(tables, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
