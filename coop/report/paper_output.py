"""Writing the paper's tables: the long DataFrame as CSV, its wide view as Markdown (`paper_wide`,
`paper_markdown`, `write_paper_table`), and the one call that builds and writes a registered artefact
(`make_artefact`, what `coop report paper|figure` runs).

Markdown is the wide view of the long format (`coop.report.paper`): one line per row key, and per column the
sub-columns "<column> (<paper_column>) ours | paper | diff" (plus Table 5's deltas vs. zero-shot); diffs and
deltas are signed, and a column's "diff" is left out when none of its cells has one (a stand-in's cells never
do: `selection.cell`). Under the title, a table drawn from stand-ins says so (`stand_in_note`). A table
without a `column` column is rendered as it is.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import pandas as pd

from coop.io import read_json, write_text
from coop.report.artefacts import INPUTS, Artefact
from coop.report.paper_names import paper_names_of, stand_ins
from coop.report.tables import read_table, to_markdown, write_table

__all__ = ["paper_wide", "paper_markdown", "stand_in_note", "write_paper_table", "read_inputs", "make_artefact"]

_MD_VALUES = {  # long-format column -> Markdown sub-column name
    "ours": "ours", "paper": "paper", "diff": "diff",
    "ours_delta": "ours Δ zero-shot", "paper_delta": "paper Δ zero-shot",
}
_SIGNED = ("diff", "ours_delta", "paper_delta")

def _text(value, signed: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:+.2f}" if signed else f"{value:.2f}"
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return str(value)
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item"):  # numpy scalars
        return _text(value.item(), signed)
    return str(value)


def paper_wide(df: pd.DataFrame) -> pd.DataFrame:
    """The wide, all-string view of a long paper table (what `paper_markdown` prints).

    One row per distinct row key (the columns before "column"), in first-seen order; per value of
    "column" (first-seen order) the sub-columns "<column> (<paper_column>) ours", "... paper",
    "... diff" (and Table 5's deltas) that the table has; "... diff" only for a column with at least one
    difference. Without a "column" column, `df` is returned as strings.
    """
    if "column" not in df.columns:
        return pd.DataFrame({c: [_text(v) for v in df[c]] for c in df.columns}, columns=list(df.columns))
    cols = list(df.columns)
    keys = cols[: cols.index("column")]
    values = [c for c in _MD_VALUES if c in cols]
    groups: dict[str, str] = {}
    for col, pcol in zip(df["column"], df["paper_column"] if "paper_column" in cols else [""] * len(df)):
        col, pcol = _text(col), _text(pcol)
        if col not in groups or (pcol and not groups[col]):
            groups[col] = pcol
    headers = {g: (f"{g} ({p})" if p and p != g else g) for g, p in groups.items()}
    diffs = set(df.loc[df["diff"].notna(), "column"].map(_text)) if "diff" in cols else set()
    shown = {g: [v for v in values if v != "diff" or g in diffs] for g in groups}
    out_cols = [*keys, *[f"{headers[g]} {_MD_VALUES[v]}" for g in groups for v in shown[g]]]
    lines: dict[tuple, dict[str, str]] = {}
    for rec in df.to_dict("records"):
        k = tuple(_text(rec[c]) for c in keys)
        line = lines.setdefault(k, {c: v for c, v in zip(keys, k)})
        g = _text(rec["column"])
        for v in shown[g]:
            line[f"{headers[g]} {_MD_VALUES[v]}"] = _text(rec[v], signed=v in _SIGNED)
    return pd.DataFrame([[ln.get(c, "") for c in out_cols] for ln in lines.values()], columns=out_cols)


def _escape(text: str) -> str:
    return str(text).replace("|", r"\|").replace("\n", " ")


def stand_in_note(exp: Mapping) -> str | None:
    """The line under a table's title when some of the experiment's datasets or backbones stand in for the
    paper's (`paper_names.stand_ins`; all of the mapping's when the experiment names none), else None."""
    names = paper_names_of(exp, None)
    datasets = [*(exp.get("datasets") or []), *(exp.get("targets") or [])]
    backbones = list(exp.get("backbones") or [])
    if not datasets and not backbones:
        datasets, backbones = list(names.get("datasets") or {}), list(names.get("backbones") or {})
    roles = stand_ins(names, datasets, backbones)
    if not roles:
        return None
    plays = ", ".join(f"{ours} plays {paper}" for ours, paper in roles)
    return (f"Paper columns: the paper's result for the role our cell plays ({plays}), not a target for it; "
            "a difference to the paper is given only where the dataset and backbone are the paper's own.")


def paper_markdown(df: pd.DataFrame, title: str | None = None, note: str | None = None) -> str:
    """A GitHub pipe table of `paper_wide(df)`: keys left-aligned, values right-aligned, under the bold
    `title` and the italic `note` (`stand_in_note`) when given."""
    wide = paper_wide(df)
    cols = list(wide.columns)
    if "column" in df.columns:
        n_keys = list(df.columns).index("column")
        right = [i >= n_keys for i in range(len(cols))]
    else:
        right = [pd.api.types.is_numeric_dtype(df[c]) for c in cols]
    lines = [] if title is None else [f"**{_escape(title)}**", ""]
    if note:
        lines += [f"*{_escape(note)}*", ""]
    lines.append("| " + " | ".join(_escape(c) for c in cols) + " |")
    lines.append("| " + " | ".join("---:" if r else "---" for r in right) + " |")
    for row in wide.itertuples(index=False):
        lines.append("| " + " | ".join(_escape(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write_paper_table(
    df: pd.DataFrame,
    csv_path: str | os.PathLike,
    md_path: str | os.PathLike | None = None,
    title: str | None = None,
    appendix: Sequence[tuple[str, pd.DataFrame]] = (),
    note: str | None = None,
) -> None:
    """Write a paper table: the long DataFrame as CSV (`tables.write_table`), the wide view as
    Markdown (`paper_markdown`, with an optional bold `title` line and italic `note`), both atomically.
    Each non-empty `appendix` table follows in the Markdown as a plain table under its bold heading."""
    write_table(df, csv_path)
    if md_path is not None:
        text = paper_markdown(df, title, note)
        for heading, extra in appendix:
            if len(extra):
                text += f"\n**{_escape(heading)}**\n\n" + to_markdown(extra)
        write_text(md_path, text)


def read_inputs(paths: Mapping[str, object]) -> dict[str, object]:
    """Input name (`coop.report.artefacts.INPUTS`) -> its content: tables read as DataFrames, the
    nearest-words files as a list of records; a missing optional input is None (a list of files: [])."""
    out: dict[str, object] = {}
    for name, path in paths.items():
        spec = INPUTS[name]
        if spec.many:
            out[name] = [read_json(p) for p in (path or [])]
        else:
            out[name] = read_table(path) if path is not None else None
    return out


def make_artefact(artefact: Artefact, paths: Mapping[str, object], exp: Mapping, outputs: Mapping[str, object]):
    """Build the registered `artefact` from its input files `paths` (input name -> path(s)) and write
    `outputs`: a table's "csv" and "md", a figure's "png", optional "pdf" and optional "csv" (the numbers
    drawn). Returns the table's DataFrame or the figure's Figure."""
    missing = [n for n in artefact.inputs if paths.get(n) is None and INPUTS[n].required]
    if missing:
        raise ValueError(f"{artefact.name} needs {', '.join(INPUTS[n].option for n in missing)}")
    inputs = read_inputs({n: paths.get(n) for n in artefact.inputs})
    if artefact.kind == "table":
        df = artefact.build(inputs, exp)
        write_paper_table(df, outputs["csv"], outputs.get("md"), title=artefact.title,
                          appendix=artefact.build_appendix(inputs, exp), note=stand_in_note(exp))
        return df
    fig = artefact.build(inputs, exp, outputs["png"], outputs.get("pdf"))
    if outputs.get("csv") is not None:
        write_table(artefact.build_data(inputs, exp), outputs["csv"])
    return fig
