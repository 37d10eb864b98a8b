"""Tables and figures from per-run metrics.json files.

`coop.report.tables` needs only pandas; the matplotlib-based `plot_fewshot` is imported lazily.
"""
from coop.report.tables import (
    RUN_COLUMNS,
    TABLE_COLUMNS,
    aggregate,
    average_over_datasets,
    collect_runs,
    fewshot_table,
    read_table,
    to_markdown,
    write_table,
)

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
    # Keep `import coop.report` free of matplotlib unless a figure is actually requested.
    if name == "plot_fewshot":
        from coop.report.figures import plot_fewshot

        return plot_fewshot
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
