"""Table 4 of the paper rebuilt from the nearest-words files: the vocabulary word nearest to each learned
context vector (`table4_nearest_words`, unified contexts, beside the paper's words) and its class-specific
companion (`table4_nearest_words_csc`, a plain long table; the paper prints no CSC words).

A record is one nearest_words.json (`coop interpret`): dataset, backbone, method, variant, shots, seed, csc
and "nearest" (index, class, token, distance per context vector). Only records of the experiment's labels,
datasets, backbones, seeds and largest shot count are kept.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

import pandas as pd

from coop.report.paper_names import paper_dataset, paper_names_of
from coop.report.selection import experiment_labels, load_paper_table, num

__all__ = ["table4_nearest_words", "table4_nearest_words_csc"]

_T4_TOKEN = re.compile(r"^(.*) \(([0-9.]+)\)$")


def _paper_table4() -> dict[str, dict[int, tuple[str, str, float]]]:
    """paper dataset -> index -> (cell text, token, distance)."""
    t = load_paper_table("table4_nearest_words")
    out: dict[str, dict[int, tuple[str, str, float]]] = {}
    for col in t.columns:
        if col == "index":
            continue
        for idx, text in zip(t["index"], t[col]):
            text = "" if pd.isna(text) else str(text)
            m = _T4_TOKEN.match(text)
            token, dist = (m.group(1), float(m.group(2))) if m else (text, math.nan)
            out.setdefault(col, {})[int(idx)] = (text, token, dist)
    return out


def _word(token, distance) -> str:
    d = num(distance)
    return f"{token} ({d:.4f})" if not math.isnan(d) else str(token)


def _records(records: Iterable[Mapping], exp: Mapping) -> list[tuple[str, Mapping]]:
    """(label, record) of the records that belong to `exp`, checked."""
    labels = {(m, v): lb for lb, m, v in experiment_labels(exp)} if exp.get("runs") else None
    shots = max(int(s) for s in exp["shots"]) if exp.get("shots") else None
    out = []
    for i, rec in enumerate(records):
        missing = [k for k in ("dataset", "backbone", "method", "variant", "seed", "nearest") if k not in rec]
        if missing:
            raise ValueError(f"nearest-word record {i} lacks keys {missing}")
        key = (str(rec["method"]), str(rec["variant"]))
        if labels is not None and key not in labels:
            continue
        if exp.get("datasets") and rec["dataset"] not in exp["datasets"]:
            continue
        if exp.get("backbones") and rec["backbone"] not in exp["backbones"]:
            continue
        if exp.get("seeds") and int(rec["seed"]) not in [int(s) for s in exp["seeds"]]:
            continue
        if shots is not None and "shots" in rec and int(rec["shots"]) != shots:
            continue
        for j, n in enumerate(rec["nearest"]):
            if not all(k in n for k in ("index", "token", "distance")):
                raise ValueError(f"nearest-word record {i} ({rec['dataset']}): entry {j} needs "
                                 f"index, token and distance, got {sorted(n)}")
        out.append((labels[key] if labels is not None else key[1], rec))
    return out


def _sort_key(exp: Mapping, preferred: Mapping[str, str], fields: list[str]):
    """Sort rows by `fields`, the ones in `preferred` in the experiment's order (others after)."""
    orders = {f: {str(v): i for i, v in enumerate(exp.get(key) or [])} for f, key in preferred.items()}

    def key(row: Mapping) -> tuple:
        out = []
        for f in fields:
            if f in orders:
                rank = orders[f].get(str(row[f]), len(orders[f]))
                out.append((rank, str(row[f])))
            else:
                out.append((0, row[f]))
        return tuple(out)

    return key


def table4_nearest_words(
    records: Iterable[Mapping], exp: Mapping, paper_names: Mapping | None = None
) -> pd.DataFrame:
    """Table 4: the nearest vocabulary word to each unified learned context vector.

    Long format, row keys (backbone, label, seed, index), column = dataset; ours and paper are
    "token (distance)" strings (distance to 4 decimals). The paper's word appears where the
    dataset stands for one of Table 4's datasets and our context has the paper's length (16).
    Extras: token, distance, paper_token, paper_distance, shots. CSC records are left to
    `table4_nearest_words_csc`.
    """
    names = paper_names_of(exp, paper_names)
    paper = _paper_table4()
    unified = [(lb, r) for lb, r in _records(records, exp) if not bool(r.get("csc", False))]
    rows = []
    for label, rec in unified:
        dataset = str(rec["dataset"])
        pname = paper_dataset(dataset, names)
        pcol = pname if pname in paper else ""
        n_ctx = len({int(n["index"]) for n in rec["nearest"]})
        for n in rec["nearest"]:
            idx = int(n["index"])
            ptext, ptoken, pdist = paper[pcol].get(idx, ("", "", math.nan)) if pcol else ("", "", math.nan)
            if pcol and n_ctx != len(paper[pcol]):
                ptext, ptoken, pdist = "", "", math.nan
            rows.append({
                "backbone": str(rec["backbone"]), "label": label, "seed": int(rec["seed"]), "index": idx,
                "column": dataset, "paper_column": pcol,
                "ours": _word(n["token"], n["distance"]), "paper": ptext,
                "token": str(n["token"]), "distance": num(n["distance"]),
                "paper_token": ptoken, "paper_distance": pdist, "shots": int(rec.get("shots", -1)),
            })
    cols = ["backbone", "label", "seed", "index", "column", "paper_column", "ours", "paper",
            "token", "distance", "paper_token", "paper_distance", "shots"]
    rows.sort(key=_sort_key(exp, {"backbone": "backbones", "label": "runs", "column": "datasets"},
                            ["backbone", "label", "seed", "index", "column"]))
    return pd.DataFrame(rows, columns=cols)


def table4_nearest_words_csc(
    records: Iterable[Mapping], exp: Mapping, paper_names: Mapping | None = None
) -> pd.DataFrame:
    """Table 4's class-specific companion: one row per (dataset, class, index) of CSC contexts.

    Columns: dataset, paper_dataset, backbone, label, seed, class, index, token, distance, shots
    (the paper prints no CSC words, so there is nothing beside them).
    """
    names = paper_names_of(exp, paper_names)
    rows = []
    for label, rec in _records(records, exp):
        if not bool(rec.get("csc", False)):
            continue
        for n in rec["nearest"]:
            rows.append({
                "dataset": str(rec["dataset"]), "paper_dataset": paper_dataset(str(rec["dataset"]), names),
                "backbone": str(rec["backbone"]), "label": label, "seed": int(rec["seed"]),
                "class": "" if n.get("class") is None else str(n["class"]), "index": int(n["index"]),
                "token": str(n["token"]), "distance": num(n["distance"]), "shots": int(rec.get("shots", -1)),
            })
    cols = ["dataset", "paper_dataset", "backbone", "label", "seed", "class", "index", "token", "distance", "shots"]
    rows.sort(key=_sort_key(exp, {"dataset": "datasets", "backbone": "backbones", "label": "runs"},
                            ["dataset", "backbone", "label", "seed"]))  # stable: classes keep their order
    return pd.DataFrame(rows, columns=cols)


