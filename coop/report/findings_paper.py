"""The CoOp paper's findings (Zhou et al., IJCV 2022), each a `Finding` of coop.report.findings with its check.

Which label of an experiment plays which part is read from the method declarations: the hand-crafted prompt is
the experiment's first zero-shot label (`first_zero_shot`), CoOp its first label that learns a unified context
(`learns_context`, parameter csc false), the baselines those whose method declares the `paper_role`
(registry.PAPER_ROLES). Context length and initialisation come from the labels' parameters (n_ctx, init, csc).
Every check runs on each backbone of its experiment and holds only when it holds on all of them.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from coop.report.declarations import first_zero_shot, labels_with_role, learns_context
from coop.report.findings import Evidence, Finding, Outcome, Stat, beats, need, register_finding
from coop.report.paper_names import paper_backbone

# -- the paper's numbers quoted as evidence, read from the packaged paper CSVs (coop/report/paper/)


def _paper(table: str, row: str, column: str, key: str = "method") -> float:
    from coop.report.selection import load_paper_table

    t = load_paper_table(table)
    return float(t.loc[t[key] == row, column].iloc[0])


def _t5(row: str) -> float:
    return _paper("table5_finetuning_methods", row, "imagenet_16shot_rn50")


def _t2_gain(better: str, worse: str) -> str:
    gains = [_paper("table2_prompt_ensembling", better, b) - _paper("table2_prompt_ensembling", worse, b)
             for b in ("RN50", "RN101", "ViT-B/32", "ViT-B/16")]
    return f"{min(gains):+.1f} to {max(gains):+.1f} on ImageNet over four backbones"


def _t1_m4_vs_m16() -> str:
    targets = ("imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r")
    m4 = [_paper("table1_domain_generalization", "coop_m4", t) for t in targets]  # the first rows: RN50
    m16 = [_paper("table1_domain_generalization", "coop_m16", t) for t in targets]
    return "RN50, M=4 vs M=16 on the four ImageNet variants: " + ", ".join(f"{a:.2f} vs {b:.2f}" for a, b in
                                                                             zip(m4, m16))


def _t3() -> str:
    words = _paper("table3_initialization", "a photo of a", "avg_accuracy_11_datasets", key="init")
    rand = _paper("table3_initialization", "random", "avg_accuracy_11_datasets", key="init")
    return f"{words:.2f} vs {rand:.2f} on average over 11 datasets (M=4)"


# -- the parts labels play


def _zero_shot(ev: Evidence, exp: Mapping) -> str:
    return need(first_zero_shot(ev.labels(exp)), "the experiment has no zero-shot label")


def _contexts(ev: Evidence, exp: Mapping, csc: bool | None = False) -> list[str]:
    """Labels learning a context (unified ones when csc is False, class-specific when True, any when None)."""
    out = [lb for lb, m in ev.labels(exp) if learns_context(m)]
    if csc is not None:
        out = [lb for lb in out if _truthy(ev.param(exp, lb, "csc")) == csc]
    return out


def _coop(ev: Evidence, exp: Mapping) -> str:
    return need(_contexts(ev, exp), "the experiment has no label learning a unified context (CoOp)")[0]


def _role(ev: Evidence, exp: Mapping, role: str) -> str:
    return need(labels_with_role(ev.labels(exp), role), f"the experiment has no {role.replace('_', ' ')} label")[0]


def _truthy(value) -> bool:
    return str(value).strip().lower() in ("true", "1", "1.0", "yes")


def _avg(ev, exp, label, backbone, shots) -> Stat:
    return need(ev.average(exp, label, backbone, shots), f"{label} lacks runs at {shots} shots on {backbone}")


def _each_backbone(exp: Mapping, check) -> Outcome:
    """Run `check(backbone) -> (holds, text, close)` on every backbone of `exp`; holds when all hold."""
    results = [(b, *check(b)) for b in exp["backbones"]]
    many = len(results) > 1
    text = "; ".join((f"{b}: " if many else "") + t for b, _, t, _ in results)
    holds = all(h for _, h, _, _ in results)
    close = any(c and not h for _, h, _, c in results)
    return Outcome("holds" if holds else "does not hold", text, "within the seeds' spread" if close else "")


def _every(results) -> tuple[bool, bool]:
    """(every comparison holds, some comparison is within the seeds' spread) of `beats` results."""
    results = list(results)
    return all(h for h, _ in results), any(c for _, c in results)


def _vs(a: Stat, b: Stat) -> str:
    return f"{a.text()} vs {b.text()} ({a.mean - b.mean:+.1f})"


def _top(exp: Mapping) -> int:
    return max(int(s) for s in exp["shots"])


# -- Fig. 3: few-shot learning

def _above_chance(ev: Evidence, exp: Mapping) -> Outcome:
    zs = _zero_shot(ev, exp)

    def check(backbone):
        parts, ok = [], True
        for d in exp["datasets"]:
            acc = need(ev.cell(exp, zs, d, backbone, 0), f"{zs} lacks a run on {d}").mean
            chance = 100 / need(ev.n_classes(d), f"runs.csv gives no class count for {d}")
            ok &= acc >= 2 * chance and acc >= chance + 15
            parts.append(f"{d} {acc:.1f} (chance {chance:.1f})")
        return ok, ", ".join(parts), False
    return _each_backbone(exp, check)


def _gain_at(shots_of, margin: float):
    def check_fn(ev: Evidence, exp: Mapping) -> Outcome:
        zs, coop = _zero_shot(ev, exp), _coop(ev, exp)
        shots = shots_of(exp)
        need(shots in [int(s) for s in exp["shots"]] or None, f"the experiment has no {shots}-shot runs")

        def check(backbone):
            a, b = _avg(ev, exp, coop, backbone, shots), _avg(ev, exp, zs, backbone, 0)
            holds, close = beats(a, b, margin)
            return holds, f"{coop} at {shots} shots {_vs(a, b)} over {len(exp['datasets'])} datasets", close
        return _each_backbone(exp, check)
    return check_fn


def _most_datasets(ev: Evidence, exp: Mapping) -> Outcome:
    zs, coop, top = _zero_shot(ev, exp), _coop(ev, exp), _top(exp)

    def check(backbone):
        won, parts = 0, []
        for d in exp["datasets"]:
            a = need(ev.cell(exp, coop, d, backbone, top), f"{coop} lacks {d}")
            b = need(ev.cell(exp, zs, d, backbone, 0), f"{zs} lacks {d}")
            won += beats(a, b)[0]
            parts.append(f"{d} {a.mean - b.mean:+.1f}")
        n = len(exp["datasets"])
        return won >= max(n - 1, 1), f"above zero-shot on {won} of {n} at {top} shots: " + ", ".join(parts), False
    return _each_backbone(exp, check)


def _probe_needs_shots(ev: Evidence, exp: Mapping) -> Outcome:
    zs, lp = _zero_shot(ev, exp), _role(ev, exp, "linear_probe")
    low = min(int(s) for s in exp["shots"])

    def check(backbone):
        a, b = _avg(ev, exp, zs, backbone, 0), _avg(ev, exp, lp, backbone, low)
        holds, close = beats(a, b)
        return holds, f"{lp} at {low} shot{'s' * (low > 1)} {b.text()} vs zero-shot {a.text()}", close
    return _each_backbone(exp, check)


def _probe_catches_up(ev: Evidence, exp: Mapping) -> Outcome:
    zs, lp, top = _zero_shot(ev, exp), _role(ev, exp, "linear_probe"), _top(exp)

    def check(backbone):
        a, b = _avg(ev, exp, lp, backbone, top), _avg(ev, exp, zs, backbone, 0)
        holds, close = beats(a, b)
        return holds, f"{lp} at {top} shots {_vs(a, b)}", close
    return _each_backbone(exp, check)


def _coop_above_probe(ev: Evidence, exp: Mapping) -> Outcome:
    coop, lp = _coop(ev, exp), _role(ev, exp, "linear_probe")

    def check(backbone):
        shots = sorted(int(s) for s in exp["shots"])
        pairs = [(_avg(ev, exp, coop, backbone, s), _avg(ev, exp, lp, backbone, s)) for s in shots]
        ok, close = _every(beats(a, b) for a, b in pairs)
        parts = [f"{s}: {a.mean - b.mean:+.1f}" for s, (a, b) in zip(shots, pairs)]
        return ok, f"{coop} minus {lp} by shots: " + ", ".join(parts), close
    return _each_backbone(exp, check)


def _csc_by_shots(ev: Evidence, exp: Mapping) -> Outcome:
    unified = _coop(ev, exp)
    csc = need(_contexts(ev, exp, csc=True), "the experiment has no class-specific (csc) context label")[0]
    low = min(int(s) for s in exp["shots"])

    def check(backbone):
        a, b = _avg(ev, exp, unified, backbone, low), _avg(ev, exp, csc, backbone, low)
        holds, close = beats(a, b)
        return holds, f"at {low} shot{'s' * (low > 1)}: unified {a.text()} vs class-specific {b.text()}", close
    return _each_backbone(exp, check)


def _gain_follows_prompt(ev: Evidence, exp: Mapping) -> Outcome:
    zs, coop, top = _zero_shot(ev, exp), _coop(ev, exp), _top(exp)
    need(len(exp["datasets"]) >= 3 or None, "fewer than 3 datasets: no ranking to compare")

    def check(backbone):
        zero = [need(ev.cell(exp, zs, d, backbone, 0), f"{zs} lacks {d}").mean for d in exp["datasets"]]
        gain = [need(ev.cell(exp, coop, d, backbone, top), f"{coop} lacks {d}").mean - z
                for d, z in zip(exp["datasets"], zero)]
        need(len(set(zero)) > 1 and len(set(gain)) > 1 or None, "zero-shot accuracies or gains all equal: no ranking")
        rho = float(pd.Series(gain).rank().corr(pd.Series(zero).rank()))
        parts = ", ".join(f"{d} {g:+.1f}" for d, g in sorted(zip(exp["datasets"], gain), key=lambda t: -t[1]))
        return rho < 0, f"gains {parts}; rank correlation with zero-shot accuracy {rho:+.2f}", False
    return _each_backbone(exp, check)


# -- Table 1, Table 2, Table 3, Table 5, Fig. 5

def _targets_mean(ev, exp, label, backbone) -> Stat:
    source = exp["datasets"][0]
    cells = [need(ev.target(exp, label, source, t, backbone), f"{label} lacks the target {t}") for t in exp["targets"]]
    need(len({c.n for c in cells}) == 1 or None, f"{label} has targets with different seeds")
    return Stat(tuple(np.mean([c.values for c in cells], axis=0)))


def _short_context_robust(ev: Evidence, exp: Mapping) -> Outcome:
    ctx = sorted(_contexts(ev, exp), key=lambda lb: float(ev.param(exp, lb, "n_ctx") or 0))
    need(len(ctx) >= 2 and ev.param(exp, ctx[0], "n_ctx") != ev.param(exp, ctx[-1], "n_ctx") or None,
         "the experiment has no two context lengths")
    short, long = ctx[0], ctx[-1]

    def check(backbone):
        a, b = _targets_mean(ev, exp, short, backbone), _targets_mean(ev, exp, long, backbone)
        holds, close = beats(a, b)
        return holds, f"mean over {len(exp['targets'])} targets: {short} {a.text()} vs {long} {b.text()}", close
    return _each_backbone(exp, check)


def _coop_robust_vs_probe(ev: Evidence, exp: Mapping) -> Outcome:
    ctx, lp = need(_contexts(ev, exp), "no CoOp label"), _role(ev, exp, "linear_probe")

    def check(backbone):
        b = _targets_mean(ev, exp, lp, backbone)
        res = [(lb, *beats(_targets_mean(ev, exp, lb, backbone), b)) for lb in ctx]
        text = ", ".join(f"{lb} {_targets_mean(ev, exp, lb, backbone).text()}" for lb in ctx)
        return all(h for _, h, _ in res), f"mean over targets: {text} vs {lp} {b.text()}", any(c for *_, c in res)
    return _each_backbone(exp, check)


def _pairwise(first, second, what: str, margin: float = 0.0):
    """A check that label `first(ev, exp)` beats `second(ev, exp)` on every dataset of the experiment."""
    def check_fn(ev: Evidence, exp: Mapping) -> Outcome:
        a_label, b_label, top = first(ev, exp), second(ev, exp), _top(exp)

        def check(backbone):
            pairs = [(need(ev.cell(exp, a_label, d, backbone, top), f"{a_label} lacks {d}"),
                      need(ev.cell(exp, b_label, d, backbone, top), f"{b_label} lacks {d}")) for d in exp["datasets"]]
            ok, close = _every(beats(a, b, margin) for a, b in pairs)
            parts = [(f"{d}: " if len(pairs) > 1 else "") + f"{a_label} {_vs(a, b)}"
                     for d, (a, b) in zip(exp["datasets"], pairs)]
            return ok, "; ".join(parts), close
        return _each_backbone(exp, check)
    check_fn.__doc__ = what
    return check_fn


def _init_no_better(ev: Evidence, exp: Mapping) -> Outcome:
    ctx = _contexts(ev, exp)
    words = need([lb for lb in ctx if ev.param(exp, lb, "init")], "no label initialises its context from words")[0]
    rand = need([lb for lb in ctx if not ev.param(exp, lb, "init")], "no randomly initialised label")[0]
    top = _top(exp)

    def check(backbone):
        a, b = _avg(ev, exp, words, backbone, top), _avg(ev, exp, rand, backbone, top)
        better, _ = beats(a, b, 1.0)
        return not better, f"{words!r} {_vs(a, b)} against {rand}", False
    return _each_backbone(exp, check)


def _coop_best(ev: Evidence, exp: Mapping) -> Outcome:
    coop, top = _coop(ev, exp), _top(exp)
    others = [lb for lb, _ in ev.labels(exp) if lb != coop]

    def check(backbone):
        per = [(d, need(ev.cell(exp, coop, d, backbone, top), f"{coop} lacks {d}"),
                [(lb, need(ev.cell(exp, lb, d, backbone, top), f"{lb} lacks {d}")) for lb in others])
               for d in exp["datasets"]]
        ok, close = _every(beats(a, b) for _, a, rest in per for _, b in rest)
        text = "; ".join((f"{d}: " if len(per) > 1 else "") + f"{coop} {a.text()} vs "
                         + ", ".join(f"{lb} {b.text()}" for lb, b in rest) for d, a, rest in per)
        return ok, text, close
    return _each_backbone(exp, check)


def _backbone_order(ev: Evidence, exp: Mapping) -> Outcome:
    """Each label ranks the backbones as the paper's zero-shot ImageNet accuracy does (Table 2, prompt
    engineering: RN50 < RN101 < ViT-B/32 < ViT-B/16)."""
    from coop.report.selection import load_paper_table

    need(len(exp["backbones"]) >= 2 or None, "the experiment has one backbone")
    paper = load_paper_table("table2_prompt_ensembling").set_index("method").iloc[0]
    names = ev.paper_names or exp.get("paper_names")
    rank = {b: float(paper.get(paper_backbone(b, names), np.nan)) for b in exp["backbones"]}
    need(all(np.isfinite(v) for v in rank.values()) or None, "a backbone has no paper counterpart")
    order = sorted(exp["backbones"], key=rank.get)
    top = _top(exp)
    ok, parts = True, []
    for label, _ in ev.labels(exp):
        means = [need(ev.average(exp, label, b, top), f"{label} lacks {b}").mean for b in order]
        ok &= all(x < y for x, y in zip(means, means[1:]))
        parts.append(f"{label}: " + ", ".join(f"{b} {m:.1f}" for b, m in zip(order, means)))
    return Outcome("holds" if ok else "does not hold", "in the paper's order: " + "; ".join(parts))


def _longer_context(ev: Evidence, exp: Mapping) -> Outcome:
    ctx = sorted(_contexts(ev, exp), key=lambda lb: float(ev.param(exp, lb, "n_ctx") or 0))
    need(len(ctx) >= 2 or None, "the experiment has no two context lengths")
    top = _top(exp)

    def check(backbone):
        a, b = _avg(ev, exp, ctx[-1], backbone, top), _avg(ev, exp, ctx[0], backbone, top)
        holds, close = beats(a, b)
        return holds, f"{ctx[-1]} {_vs(a, b)} against {ctx[0]}", close
    return _each_backbone(exp, check)


for _f in [
    Finding("zero_shot_above_chance", "Fig. 3", "Zero-shot CLIP is far above chance on every dataset",
            f"e.g. ImageNet {_t5('zeroshot')} (RN50) with 1,000 classes", "fewshot", _above_chance),
    Finding("coop_gain_16_shots", "abstract, Fig. 3", "CoOp at 16 shots beats the hand-crafted prompt by more "
            "than 5 points on average", "about +15 on average over 11 datasets", "fewshot", _gain_at(_top, 5.0)),
    Finding("coop_from_two_shots", "abstract, Fig. 3", "CoOp beats the hand-crafted prompt on average from 2 shots",
            "\"with as few as one or two shots\"", "fewshot", _gain_at(lambda exp: 2, 0.0)),
    Finding("coop_most_datasets_16", "Fig. 3", "At 16 shots CoOp beats zero-shot on all datasets but at most one",
            f"on 10 of 11 (not Food101); ImageNet {_t5('coop') - _t5('zeroshot'):+.1f}", "fewshot", _most_datasets),
    Finding("probe_needs_shots", "Fig. 3", "The linear probe at 1 shot is below zero-shot on average",
            "it needs about 4 or more shots to match zero-shot", "fewshot", _probe_needs_shots),
    Finding("probe_catches_up_16", "Fig. 3", "The linear probe at 16 shots beats zero-shot on average",
            "above zero-shot on average at 16 shots", "fewshot", _probe_catches_up),
    Finding("coop_above_probe", "Fig. 3", "CoOp beats the linear probe on average at every shot count",
            "by large margins, most at few shots", "fewshot", _coop_above_probe),
    Finding("csc_below_unified_few_shots", "Fig. 3", "A class-specific context is below the unified one at few shots",
            "unified better at 1-4 shots; CSC catches up at 16 on fine-grained datasets", "fewshot", _csc_by_shots),
    Finding("gain_where_prompt_misses", "Fig. 4", "CoOp gains most where the hand-crafted prompt does worst",
            f"EuroSAT about +45, DTD +20 vs ImageNet {_t5('coop') - _t5('zeroshot'):+.1f}, Food101 below", "fewshot",
            _gain_follows_prompt),
    Finding("longer_context_better", "Fig. 5a", "A longer context is better in domain", "M=16 above M=4 on average",
            "context_length", _longer_context),
    Finding("backbone_order", "Fig. 5b", "Stronger backbones are better for every method, ViT-B/16 the best",
            "RN50 < RN101 < ViT-B/32 < ViT-B/16", "backbones", _backbone_order),
    Finding("coop_gain_every_backbone", "Fig. 5b", "CoOp beats zero-shot on every backbone",
            "on all four backbones", "backbones", _pairwise(_coop, _zero_shot, "CoOp vs zero-shot")),
    Finding("short_context_robust", "Table 1", "A shorter context generalises better to shifted domains",
            _t1_m4_vs_m16(), "domain_shift", _short_context_robust),
    Finding("coop_robust_vs_probe", "Table 1", "CoOp keeps more of its gain under shift than the linear probe",
            "both contexts above the probe on every variant", "domain_shift", _coop_robust_vs_probe),
    Finding("ensembling_beats_prompt", "Table 2", "Prompt ensembling beats the single hand-crafted prompt",
            _t2_gain("prompt_ensembling", "prompt_engineering"), "ensembling",
            _pairwise(lambda ev, exp: _role(ev, exp, "prompt_ensemble"), _zero_shot, "ensemble vs prompt")),
    Finding("coop_beats_ensembling", "Table 2", "CoOp beats prompt ensembling", _t2_gain("coop", "prompt_ensembling"),
            "ensembling", _pairwise(_coop, lambda ev, exp: _role(ev, exp, "prompt_ensemble"), "CoOp vs ensemble")),
    Finding("word_init_no_better", "Table 3", "Word initialisation is no better than random (within 1 point)",
            _t3(), "initialization", _init_no_better),
    Finding("finetune_image_below_zero_shot", "Table 5", "Fine-tuning the image encoder falls below zero-shot",
            f"{_t5('finetune_image_encoder')} vs {_t5('zeroshot')} on ImageNet, RN50, 16 shots", "finetuning",
            _pairwise(_zero_shot, lambda ev, exp: _role(ev, exp, "image_finetune"), "zero-shot vs fine-tuning")),
    Finding("coop_best_of_table5", "Table 5", "CoOp beats every other way to adapt CLIP of Table 5",
            f"{_t5('coop')}, then text bias {_t5('text_bias')}, text transform {_t5('text_transform_layer')}",
            "finetuning", _coop_best),
]:
    register_finding(_f)
