"""Linear probe: scikit-learn logistic regression on image features; C searched on the few-shot val set only."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coop import protocol
from coop.data.datasets import Item
from coop.methods.base import MethodResult, RunContext
from coop.methods.registry import Cost, Method, MethodError, register
from coop.progress import Progress

C_GRID = (1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6)


@dataclass
class LinearProbeConfig:
    max_iter: int = 1000
    search_steps: int = 8       # bisection steps in log10(C) after the grid
    C: float | None = None      # fix C and skip the search

    def validate(self) -> None:
        if self.max_iter < 1:
            raise MethodError(f"max_iter must be >= 1, got {self.max_iter}")
        if self.search_steps < 0:
            raise MethodError(f"search_steps must be >= 0, got {self.search_steps}")
        if self.C is not None and not self.C > 0:
            raise MethodError(f"C must be > 0 (or none to search it on the validation split), got {self.C}")


def _fit(x: np.ndarray, y: np.ndarray, c: float, max_iter: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(solver="lbfgs", C=c, max_iter=max_iter, random_state=0).fit(x, y)


def _val_acc(clf, x: np.ndarray, y: np.ndarray) -> float:
    return float((clf.predict(x) == y).mean())


def search_c(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
             max_iter: int = 1000, steps: int = 8, log=None,
             rule: str | None = None) -> tuple[float, list[tuple[float, float]]]:
    """Pick C by validation accuracy: the grid, then `steps` of bisection in log10 space around its best.

    `rule` (default: the protocol's `lp_c_rule`) says which C is kept: "last_step", the official one, is the winner
    of the last bisection step (of its two candidates, the smaller C on a tie; the grid's best with no steps);
    "best_seen" is the C of the best validation accuracy over the whole search (the first one on a tie).
    Only train and val data come in, so the choice can never see test labels. Returns (C, [(C, acc), ...]).
    With `log`, progress lines (fits done of len(C_GRID) + 2 * steps, rate, ETA) at a steady interval.
    """
    rule = rule or protocol.current().lp_c_rule
    if rule not in protocol.CHOICES["lp_c_rule"]:
        raise MethodError(f"linear probe C rule {rule!r}: choose one of {', '.join(protocol.CHOICES['lp_c_rule'])}")
    progress = Progress("linear probe C search", total=len(C_GRID) + 2 * steps, unit="fits", log=log) if log else None

    def acc_of(c: float) -> float:
        acc = _val_acc(_fit(train_x, train_y, c, max_iter), val_x, val_y)
        if progress:
            progress.update(1, extra=f"C = {c:.3g}: val acc {100 * acc:.1f}%")
        return acc

    tried = [(c, acc_of(c)) for c in C_GRID]
    best_c, best_acc = max(tried, key=lambda t: t[1])  # ties keep the first (largest C) in grid order
    last_c, last_acc = best_c, best_acc
    lo, hi = np.log10(best_c) - 1, np.log10(best_c) + 1
    for _ in range(steps):
        acc_lo = acc_of(10 ** lo)
        acc_hi = acc_of(10 ** hi)
        tried += [(10 ** lo, acc_lo), (10 ** hi, acc_hi)]
        mid = (lo + hi) / 2
        if acc_lo < acc_hi:
            lo, end, acc = mid, hi, acc_hi
        else:
            hi, end, acc = mid, lo, acc_lo
        last_c, last_acc = 10 ** end, acc
        if acc > best_acc:
            best_c, best_acc = last_c, acc
    if rule == "last_step":
        best_c, best_acc = last_c, last_acc
    if progress:
        progress.done(extra=f"C = {best_c:.3g} ({rule.replace('_', ' ')}): val acc {100 * best_acc:.1f}%")
    return float(best_c), tried


def probe_logits(coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray, features: np.ndarray,
                 n_classes: int) -> np.ndarray:
    """Scores of a fitted probe over all `n_classes`; classes it never saw get -inf."""
    scores = features.astype(np.float64) @ coef.T + intercept
    if len(classes) == 2:  # binary problems store one score: that of the second class
        scores = np.concatenate([-scores, scores], axis=1)
    logits = np.full((len(features), n_classes), -np.inf)
    logits[:, classes] = scores
    return logits


def numpy_subset(items: list[Item], shots: int, seed: int) -> list[Item]:
    """The official probe's own draw: numpy's RandomState(seed), `shots` images per label in label order."""
    rng = np.random.RandomState(seed)
    by_label: dict[int, list[Item]] = {}
    for it in items:
        by_label.setdefault(it.label, []).append(it)
    out = []
    for label in sorted(by_label):
        group = by_label[label]
        picks = rng.choice(len(group), min(shots, len(group)), replace=False)
        out.extend(group[i] for i in sorted(picks))
    return out


def _training_data(ctx: RunContext) -> tuple[np.ndarray, np.ndarray]:
    if protocol.current().lp_subset == "shared":
        return ctx.fewshot.select(ctx.items("train"))
    from coop.features import extract_features

    items = numpy_subset(ctx.split.train, ctx.shots, ctx.seed)
    feats = extract_features(ctx.clip, items, ctx.image_root, device=ctx.device).numpy()
    return feats, np.array([it.label for it in items], dtype=np.int64)


def _probe(ctx: RunContext, cfg: LinearProbeConfig) -> MethodResult:
    train_x, train_y = _training_data(ctx)
    if protocol.current().lp_c_selection == "test":  # the official code's flaw on ImageNet, kept on request
        val_x, val_y = ctx.test.features, ctx.test.labels
    else:
        val_x, val_y = ctx.fewshot.select(ctx.items("val"))
    if cfg.C is not None:
        c, tried = cfg.C, []
    else:
        c, tried = search_c(train_x, train_y, val_x, val_y, cfg.max_iter, cfg.search_steps, log=ctx.log)
    rule = protocol.current().lp_c_rule.replace("_", " ") if cfg.C is None else "fixed"
    ctx.log(f"linear probe: C = {c:.3g} ({rule}) after {len(tried)} fits on {len(train_y)} train / {len(val_y)} "
            "val images")
    clf = _fit(train_x, train_y, c, cfg.max_iter)
    weights = {"coef": clf.coef_, "intercept": clf.intercept_, "classes": clf.classes_.astype(np.int64)}
    logits = probe_logits(**weights, features=ctx.test.features, n_classes=len(ctx.classnames))
    return MethodResult(logits, info={"C": c, "c_search": [[float(a), float(b)] for a, b in tried]},
                        artifacts={"linear_probe.safetensors": {k: np.ascontiguousarray(v) for k, v in weights.items()}})


def classifier(ctx: RunContext, cfg: LinearProbeConfig, run_dir):
    """The fitted probe of a finished run, read from its linear_probe.safetensors."""
    from safetensors.numpy import load_file

    w = load_file(str(Path(run_dir) / "linear_probe.safetensors"))
    return lambda features: probe_logits(w["coef"], w["intercept"], w["classes"], features, len(ctx.classnames))


def train(ctxs: list[RunContext], cfg: LinearProbeConfig) -> list[MethodResult]:
    """One probe per seed, each on its own few-shot subset (cached features: nothing to share but the data)."""
    return [_probe(c, cfg) for c in ctxs]


METHOD = register(Method(
    name="linear_probe", config=LinearProbeConfig, train=train, few_shot=True, needs_images=False,
    description="logistic regression on image features, C searched on the few-shot val set",
    display_name="Linear probe CLIP", paper_role="linear_probe",
    style={"marker": "s", "linestyle": "--", "markersize": 5}, order=3,
    classifier=classifier, classifier_file="linear_probe.safetensors", classifier_keys=("coef", "intercept", "classes"),
    cost=Cost(step="probe", views=False),  # features are cached: a CPU-bound search over C
))
