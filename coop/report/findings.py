"""The findings report: each finding of the paper checked on the runs of any config (results/tables/findings.*).

A `Finding` is a record: the paper's claim, where the paper shows it and its evidence there, the experiment of the
config it reads, and a `check(evidence, exp)` returning an `Outcome`: holds / does not hold / not measured, what
we measured (mean ± std over seeds) and a note. The paper's findings are registered in
`coop.report.findings_paper`; a plugin can register more. `Evidence` gives the checks the runs of an experiment
by label, as the config's `runs` name them, with their per-seed accuracies; which label plays which part (the
zero-shot prompt, CoOp, the linear probe ...) is read from the method declarations (`coop.report.declarations`),
never from a method's name.

The seeds' spread counts: a comparison "a beats b by more than m" holds only when the difference of the means
exceeds m by more than its standard error, sqrt(std_a^2 / n_a + std_b^2 / n_b) (sample std over seeds; a
zero-shot run has no spread). A difference inside that band is reported as "within the seeds' spread" and does
not hold.

Beside the findings, `paper_numbers` lists every number of the paper's tables that a run of the paper's own
dataset and backbone reproduces (the rows where the tables show a diff), each within TOLERANCE or not.
"""
from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["VERDICTS", "TOLERANCE", "Stat", "Outcome", "Finding", "Evidence", "register_finding", "all_findings",
           "beats", "not_measured", "evaluate", "paper_numbers", "findings_markdown", "FINDINGS_COLUMNS"]

VERDICTS = ("holds", "does not hold", "not measured")
# A reproduced paper number is within tolerance when |ours - paper| <= max(TOLERANCE, 2 x our std over seeds).
TOLERANCE = 2.0
FINDINGS_COLUMNS = ("finding", "source", "claim", "paper", "experiment", "ours", "verdict", "note")
NUMBER_COLUMNS = ("table", "row", "column", "paper_column", "ours_mean", "ours_std", "n_seeds", "paper", "diff",
                  "within_tolerance")


@dataclass(frozen=True)
class Stat:
    """Accuracies of one cell or one average, one value per seed (a zero-shot run: one value)."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if self.n > 1 else 0.0

    def text(self) -> str:
        return f"{self.mean:.1f}" + (f" ± {self.std:.1f}" if self.n > 1 else "")


@dataclass(frozen=True)
class Outcome:
    verdict: str          # one of VERDICTS
    ours: str = ""        # what we measured, in words and numbers
    note: str = ""        # why not measured, or what qualifies the verdict

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {VERDICTS}")


def not_measured(why: str) -> Outcome:
    return Outcome("not measured", note=why)


def beats(a: Stat, b: Stat, margin: float = 0.0) -> tuple[bool, bool]:
    """(a's mean exceeds b's by more than `margin` beyond the standard error of the difference, the difference
    is within that standard error of `margin`: too close to tell)."""
    d = a.mean - b.mean - margin
    se = math.sqrt(a.std ** 2 / a.n + b.std ** 2 / b.n)
    return d > se, abs(d) <= se


@dataclass(frozen=True)
class Finding:
    name: str                 # its row key: lower case and underscores
    source: str               # where the paper shows it ("Fig. 3", "Table 1", "abstract")
    claim: str                # the finding, as a sentence
    paper: str                # the paper's evidence for it
    experiment: str           # the config experiment it reads
    check: Callable[["Evidence", Mapping], Outcome]


FINDINGS: dict[str, Finding] = {}


def register_finding(finding: Finding) -> Finding:
    if finding.name in FINDINGS and FINDINGS[finding.name] != finding:
        raise ValueError(f"finding {finding.name!r} is already registered")
    FINDINGS[finding.name] = finding
    return finding


def all_findings() -> list[Finding]:
    importlib.import_module("coop.report.findings_paper")  # registers the paper's findings

    return list(FINDINGS.values())


class Evidence:
    """The runs of a workflow (runs.csv, transfer.csv) and its experiments, read by label."""

    def __init__(self, runs: pd.DataFrame, experiments: Mapping[str, Mapping], transfer: pd.DataFrame | None = None,
                 paper_names: Mapping | None = None):
        self.runs = runs
        self.transfer = transfer if transfer is not None else pd.DataFrame()
        self.experiments = experiments
        self.paper_names = paper_names or {}

    def labels(self, exp: Mapping) -> list[tuple[str, str]]:
        """(label, method) of the experiment's runs, in the config's order."""
        return [(label, str(run).split("/")[0]) for label, run in exp.get("runs", {}).items()]

    def _rows(self, exp: Mapping, label: str) -> pd.DataFrame:
        method, variant = str(exp["runs"][label]).split("/")
        r = self.runs
        return r[(r.method == method) & (r.variant == variant)]

    def param(self, exp: Mapping, label: str, key: str):
        """The label's parameter `key` (runs.csv's param_<key>) in its runs, or None."""
        rows = self._rows(exp, label)
        column = f"param_{key}"
        if column not in rows or rows.empty:
            return None
        value = rows[column].iloc[0]
        return None if pd.isna(value) else value

    def cell(self, exp: Mapping, label: str, dataset: str, backbone: str, shots: int) -> Stat | None:
        """The label's accuracy per seed on one dataset, backbone and shot count (zero-shot runs: at 0 shots)."""
        rows = self._rows(exp, label)
        rows = rows[(rows.dataset == dataset) & (rows.backbone == backbone)]
        at = rows[rows.shots == shots] if (rows.shots > 0).any() else rows[rows.shots == 0]
        return Stat(tuple(at.sort_values("seed").accuracy.astype(float))) if len(at) else None

    def average(self, exp: Mapping, label: str, backbone: str, shots: int, datasets=None) -> Stat | None:
        """The label's accuracy averaged over `datasets` (the experiment's), one value per seed; None when a
        dataset or a seed is missing."""
        datasets = list(datasets or exp["datasets"])
        cells = [self.cell(exp, label, d, backbone, shots) for d in datasets]
        if any(c is None for c in cells) or len({c.n for c in cells}) != 1:
            return None
        return Stat(tuple(np.mean([c.values for c in cells], axis=0)))

    def target(self, exp: Mapping, label: str, source: str, target: str, backbone: str) -> Stat | None:
        """The label's accuracy per seed on a domain-shift target (transfer.csv)."""
        t = self.transfer
        if t.empty:
            return None
        method, variant = str(exp["runs"][label]).split("/")
        rows = t[(t.method == method) & (t.variant == variant) & (t.source == source) & (t.target == target)
                 & (t.backbone == backbone)]
        return Stat(tuple(rows.sort_values("seed").accuracy.astype(float))) if len(rows) else None

    def n_classes(self, dataset: str) -> int | None:
        rows = self.runs[self.runs.dataset == dataset]
        return int(rows.n_classes.iloc[0]) if "n_classes" in rows and len(rows) else None


def evaluate(evidence: Evidence, findings: list[Finding] | None = None) -> pd.DataFrame:
    """One row per finding (FINDINGS_COLUMNS); a finding whose experiment the config lacks is not measured."""
    rows = []
    for f in findings if findings is not None else all_findings():
        exp = evidence.experiments.get(f.experiment)
        if exp is None:
            out = not_measured(f"the config has no experiment {f.experiment!r}")
        else:
            try:
                out = f.check(evidence, exp)
            except _Missing as e:
                out = not_measured(str(e))
        rows.append({"finding": f.name, "source": f.source, "claim": f.claim, "paper": f.paper,
                     "experiment": f.experiment, "ours": out.ours, "verdict": out.verdict, "note": out.note})
    return pd.DataFrame(rows, columns=FINDINGS_COLUMNS)


class _Missing(LookupError):
    """A check's runs are not there (raised by `need`): the finding is not measured, with the reason."""


def need(value, why: str):
    """`value`, or the finding is not measured because of `why` (when `value` is None or empty)."""
    if value is None or (hasattr(value, "__len__") and len(value) == 0):
        raise _Missing(why)
    return value


def paper_numbers(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Every paper number reproduced on the paper's own dataset and backbone: the rows of the long paper tables
    (name -> table) that carry a diff, with whether ours is within TOLERANCE (or twice our std over seeds)."""
    rows = []
    for name, t in tables.items():
        if "diff" not in t or "paper" not in t:
            continue
        t = t[pd.to_numeric(t["diff"], errors="coerce").notna() & pd.to_numeric(t["paper"], errors="coerce").notna()]
        for _, r in t.iterrows():
            std = float(r.get("ours_std", 0.0) or 0.0)
            diff = float(r["diff"])
            rows.append({"table": name, "row": r.get("label", ""), "column": r["column"],
                         "paper_column": r["paper_column"], "ours_mean": float(r["ours_mean"]), "ours_std": std,
                         "n_seeds": int(r.get("n_seeds", 1)), "paper": float(r["paper"]), "diff": diff,
                         "within_tolerance": abs(diff) <= max(TOLERANCE, 2 * std)})
    return pd.DataFrame(rows, columns=NUMBER_COLUMNS)


def findings_markdown(findings: pd.DataFrame, numbers: pd.DataFrame) -> str:
    """The report as Markdown: a summary line, the findings table, and the reproduced paper numbers."""
    counts = findings.verdict.value_counts()
    measured = int(len(findings) - counts.get("not measured", 0))
    lines = ["**Findings of the paper, checked on this run**", "",
             f"{int(counts.get('holds', 0))} of {measured} measured findings hold "
             f"({int(counts.get('not measured', 0))} not measured by this config). A comparison holds only when it "
             "clears the standard error of the difference over seeds.", "",
             "| finding | paper | ours | holds |", "| --- | --- | --- | --- |"]
    for _, r in findings.iterrows():
        ours = "; ".join(x for x in (r.ours, r.note) if x)
        lines.append(f"| {_cell(r.claim)} | {_cell(r.source)}: {_cell(r.paper)} | {_cell(ours)} | {r.verdict} |")
    lines += ["", "**The paper's numbers on its own datasets**", ""]
    if numbers.empty:
        lines.append("No dataset and backbone of the paper's own was run (a toy dataset only plays a paper "
                     "dataset's role), so no paper number is compared.")
    else:
        ok = int(numbers.within_tolerance.sum())
        lines += [f"{ok} of {len(numbers)} within {TOLERANCE:g} points (or twice our std over seeds).", "",
                  "| table | row | column | ours | paper | diff | within |",
                  "| --- | --- | --- | ---: | ---: | ---: | --- |"]
        for _, r in numbers.iterrows():
            ours = Stat((r.ours_mean,)).text() + (f" ± {r.ours_std:.1f}" if r.n_seeds > 1 else "")
            lines.append(f"| {r.table} | {_cell(r.row)} | {_cell(r.column)} | {ours} | {r.paper:.2f} | "
                         f"{r['diff']:+.2f} | {'yes' if r.within_tolerance else 'no'} |")
    return "\n".join(lines) + "\n"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_findings(runs_csv: str, setup: Mapping, csv_out: str, md_out: str, transfer_csv: str | None = None,
                   tables: list[str] = ()) -> pd.DataFrame:
    """Check every registered finding on a workflow's runs (`setup`: {"experiments": ..., "paper_names": ...}) and
    write findings.csv (FINDINGS_COLUMNS) and findings.md (with the paper numbers of the long paper `tables`)."""
    from pathlib import Path

    from coop.io import atomic_path
    from coop.report.tables import read_table

    runs = pd.read_csv(runs_csv)
    transfer = pd.read_csv(transfer_csv) if transfer_csv else None
    evidence = Evidence(runs, setup["experiments"], transfer, setup.get("paper_names"))
    findings = evaluate(evidence)
    numbers = paper_numbers({Path(t).stem: read_table(t) for t in tables})
    with atomic_path(csv_out) as tmp:
        findings.to_csv(tmp, index=False)
    with atomic_path(md_out) as tmp:
        Path(tmp).write_text(findings_markdown(findings, numbers), encoding="utf-8")
    return findings
