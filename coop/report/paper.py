"""The paper's tables (and Fig. 1) rebuilt from our runs, each cell beside the paper's own number: the
public names of the modules that hold them, re-exported (`paper_names`: the paper's dataset and backbone
names; `selection`: run selection, seed averages, cells; `paper_tables`: Tables 1, 2, 3, 5 and Fig. 1;
`paper_table4`: Table 4; `paper_output`: CSV and Markdown; `artefacts`: the registry naming them all).

Inputs are the frames the workflow writes: `runs` (runs.csv, one row per run: dataset, backbone,
method, variant, shots, seed, accuracy, ...; extra columns such as `param_n_ctx` are ignored here),
`transfer` (transfer.csv, one row per run x target: source, target, backbone, method, variant,
shots, seed, accuracy, ...) and, for Table 4, the nearest-word records of the learned contexts.
`exp` is one experiment of the config: {"datasets", "backbones", "shots", "seeds", "runs"
(label -> "method/variant"), "targets" (Table 1 only)}. Zero-shot methods (those the method
registry declares not few-shot) are taken at shots 0 / seed 0 whatever the experiment's shots; every
other method at the experiment's largest shot count and its seeds. `paper_names` ({"datasets": {ours: real},
"backbones": {ours: real}}, identity where missing; taken from exp["paper_names"] when not given)
says which real dataset/backbone a toy one stands in for; the fixed tables below turn real keys
(imagenet, dtd, RN50-quickgelu, ...) into the names the paper CSVs use (ImageNet, DTD, RN50, ...).

Long format (the DataFrame each builder returns, written as CSV), one row per cell:

    <row keys...>, column, paper_column, ours, paper, diff, ours_mean, ours_std, n_seeds, <extras...>

* row keys: the table's row identity, every column before `column` (e.g. backbone,
  paper_backbone, label);
* column: our name of the table column (a dataset or a backbone key); paper_column: the paper's
  name of that column ("" when it has none);
* ours: "mean ± std" over seeds (plain "mean" for a single seed, "" when we have no run);
  ours_mean / ours_std (sample std, ddof=1; 0 for one seed) / n_seeds: the same as numbers;
* paper: the paper's number (NaN where the paper has no such cell); diff = ours_mean - paper
  (NaN unless both exist and the cell's datasets and backbone are the paper's own, not stand-ins:
  `paper_names.is_paper_own`). Numbers are rounded to 2 decimals.
* extras: provenance (method, variant, shots, ...) and table-specific values (Table 5's
  ours_delta / paper_delta vs. the zero-shot row).

Table 4 (nearest words) follows the same layout with strings: ours/paper are "token (distance)",
with token, distance, paper_token, paper_distance as extras and no diff. Its CSC companion
(`table4_nearest_words_csc`) is a plain long table (one row per dataset x class x index).

Markdown (`paper_markdown`, written by `write_paper_table` beside the CSV) is the wide view: one
line per row key, and per column the sub-columns "<column> (<paper_column>) ours | paper | diff"
(plus Table 5's deltas vs. zero-shot); diffs and deltas are signed, and a column without any diff
has no "diff" sub-column. Under the title, a table drawn from stand-ins says that the paper's
column is the role the cell plays, not a target. A table without a `column` column is rendered as it is.
"""
from __future__ import annotations

from coop.report.paper_names import (
    PAPER_BACKBONES,
    PAPER_DATASETS,
    TABLE1_COLUMNS,
    paper_backbone,
    paper_dataset,
    real_backbone,
    real_dataset,
    table1_column,
)
from coop.report.paper_output import paper_markdown, paper_wide, write_paper_table
from coop.report.paper_table4 import table4_nearest_words, table4_nearest_words_csc
from coop.report.paper_tables import (
    fig1_prompt_engineering,
    table1_domain_generalization,
    table2_prompt_ensembling,
    table3_initialization,
    table5_finetuning,
)
from coop.report.selection import (
    VALUE_COLUMNS,
    experiment_labels,
    load_paper_table,
    paper_csv,
    seed_average,
    select_label_runs,
)

__all__ = [
    "PAPER_DATASETS",
    "PAPER_BACKBONES",
    "TABLE1_COLUMNS",
    "VALUE_COLUMNS",
    "paper_csv",
    "load_paper_table",
    "real_dataset",
    "real_backbone",
    "paper_dataset",
    "paper_backbone",
    "table1_column",
    "experiment_labels",
    "select_label_runs",
    "seed_average",
    "table1_domain_generalization",
    "table2_prompt_ensembling",
    "table3_initialization",
    "table4_nearest_words",
    "table4_nearest_words_csc",
    "table5_finetuning",
    "fig1_prompt_engineering",
    "paper_wide",
    "paper_markdown",
    "write_paper_table",
]
