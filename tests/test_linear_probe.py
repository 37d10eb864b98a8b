import inspect

import pytest

import numpy as np

from coop.methods.linear_probe import C_GRID, search_c


def _blobs(n_per_class, seed, noise=2.0):
    rng = np.random.default_rng(seed)
    centers = np.eye(3, 8) * 3
    x = np.concatenate([centers[c] + noise * rng.standard_normal((n_per_class, 8)) for c in range(3)])
    y = np.repeat(np.arange(3), n_per_class)
    return x.astype(np.float32), y


def test_search_sees_only_train_and_val():
    params = list(inspect.signature(search_c).parameters)
    assert params[:4] == ["train_x", "train_y", "val_x", "val_y"] and "test" not in " ".join(params)


def official_c(acc_of, steps=8):
    """The C that lpclip/linear_probe.py (the official CoOp repository) ends with, transcribed as written there: a
    grid, np.argmax over it, then `steps` calls of its binary_search, whose bounds go to log10 and back with
    np.power; the result of the run is that of the last step (`test_acc_step_list[:, -1]`)."""
    search_list = [1e6, 1e4, 1e2, 1, 1e-2, 1e-4, 1e-6]
    acc_list = [acc_of(c) for c in search_list]
    c_peak = search_list[int(np.argmax(acc_list))]
    c_left, c_right = 1e-1 * c_peak, 1e1 * c_peak
    c_final = None
    for _ in range(steps):
        acc_left, acc_right = acc_of(c_left), acc_of(c_right)
        if acc_left < acc_right:
            c_final = c_right
            c_left = 0.5 * (np.log10(c_right) + np.log10(c_left))
            c_right = np.log10(c_right)
        else:
            c_final = c_left
            c_right = 0.5 * (np.log10(c_right) + np.log10(c_left))
            c_left = np.log10(c_left)
        c_left, c_right = np.power(10, c_left), np.power(10, c_right)
    return c_final


def _sklearn_val_acc(tx, ty, vx, vy):
    from sklearn.linear_model import LogisticRegression

    return lambda c: float((LogisticRegression(solver="lbfgs", max_iter=1000, penalty="l2", C=c, random_state=0)
                            .fit(tx, ty).predict(vx) == vy).mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_search_keeps_the_c_the_official_probe_ends_with(seed):
    """On real fits, the default rule picks the C of the official search (a reference transcribed from lpclip,
    fitting its own models), and the grid and bisection try the same Cs in the same order."""
    tx, ty = _blobs(4, 10 * seed)
    vx, vy = _blobs(4, 10 * seed + 1)
    asked = []
    acc = _sklearn_val_acc(tx, ty, vx, vy)
    expected = official_c(lambda c: (asked.append(c), acc(c))[1])
    c, tried = search_c(tx, ty, vx, vy, steps=8)
    assert c == pytest.approx(expected, rel=1e-9)
    assert [t[0] for t in tried] == pytest.approx(asked, rel=1e-9) and len(tried) == 7 + 2 * 8
    assert [t[0] for t in tried[:7]] == list(C_GRID)
    assert search_c(tx, ty, vx, vy, steps=8)[0] == c  # deterministic


def _step_curves(n, seed=0):
    """Random step-shaped validation accuracies over log10(C), quantised to quarters (many ties)."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        edges, levels = np.sort(rng.uniform(-7, 7, 6)), rng.integers(0, 5, 7) / 4
        yield lambda c, edges=edges, levels=levels: float(levels[np.searchsorted(edges, np.log10(c))])


def _fits_as(monkeypatch, acc):
    from coop.methods import linear_probe

    monkeypatch.setattr(linear_probe, "_fit", lambda x, y, c, max_iter: c)  # the "model" is its C
    monkeypatch.setattr(linear_probe, "_val_acc", lambda clf, x, y: acc(clf))


def test_both_rules_on_accuracy_curves_with_ties(monkeypatch):
    """On 200 random accuracy curves, "last_step" equals the official reference and "best_seen" is the C of the
    highest accuracy tried, the first one on a tie."""
    differ = 0
    for acc in _step_curves(200):
        _fits_as(monkeypatch, acc)
        last, tried = search_c(None, None, None, None, steps=8, rule="last_step")
        best, _ = search_c(None, None, None, None, steps=8, rule="best_seen")
        assert last == pytest.approx(official_c(acc), rel=1e-9)
        top = max(a for _, a in tried)
        assert best == next(c for c, a in tried if a == top)
        differ += not np.isclose(last, best)
    assert differ > 20  # the rules are not the same rule


def test_the_rule_follows_the_protocol_switch(monkeypatch):
    from coop import protocol

    acc = next(a for a in _step_curves(200) if not np.isclose(official_c(a), max(
        (a(c), -i, c) for i, c in enumerate(C_GRID))[2]))  # one where the last step's winner is not the grid's best
    _fits_as(monkeypatch, acc)
    default, tried = search_c(None, None, None, None)
    assert default == pytest.approx(official_c(acc), rel=1e-9)
    try:
        protocol.configure({"lp_c_rule": "best_seen"})
        best = search_c(None, None, None, None)[0]
    finally:
        protocol.configure({})
    assert acc(best) == max(a for _, a in tried) and not np.isclose(best, default)
    with pytest.raises(protocol.ProtocolError, match="last_step, best_seen"):
        protocol.configure({"lp_c_rule": "best"})


def test_run_ignores_test_labels_when_choosing_c(toy_root):
    from coop.data.datasets import get_dataset, read_split
    from coop.data.fewshot import make_manifest
    from coop.features import Features
    from coop.methods.base import RunContext
    from coop.methods.linear_probe import LinearProbeConfig, train

    spec = get_dataset("toy_shapes")
    split = read_split(toy_root, spec)
    manifest = make_manifest("toy_shapes", split, 2, 1)
    rng = np.random.default_rng(0)
    pool = {it.path: rng.standard_normal(16).astype(np.float32) + it.label for it in split.train + split.val}
    paths = sorted(pool)
    fewshot = Features(np.stack([pool[p] for p in paths]), np.zeros(len(paths), np.int64), paths, {})
    test_x = rng.standard_normal((30, 16)).astype(np.float32)

    def ctx_with(test_labels):
        return RunContext(spec=spec, classnames=split.classnames, image_root=toy_root, shots=2, seed=1,
                          manifest=manifest, test=Features(test_x, test_labels, [], {}),
                          load_clip=lambda: None, load_fewshot=lambda: fewshot, log=lambda s: None)

    a = train([ctx_with(np.arange(30) % 10)], LinearProbeConfig())[0]
    b = train([ctx_with(np.zeros(30, np.int64))], LinearProbeConfig())[0]
    assert a.info["C"] == b.info["C"] and np.array_equal(a.logits, b.logits)
    assert a.logits.shape == (30, 10)


def test_official_switches(toy_root):
    """lp_c_selection=test (the official ImageNet flaw) lets test labels choose C; lp_subset=own draws with numpy."""
    from coop import protocol
    from coop.data.datasets import get_dataset, read_split
    from coop.methods.linear_probe import numpy_subset

    split = read_split(toy_root, get_dataset("toy_shapes"))
    a = numpy_subset(split.train, 2, 1)
    assert a == numpy_subset(split.train, 2, 1) and a != numpy_subset(split.train, 2, 2)
    assert len(a) == 20 and sorted({it.label for it in a}) == list(range(10))
    try:
        protocol.configure({"lp_c_selection": "test", "lp_subset": "own"})
        assert protocol.as_dict() == {"imagenet_listing": "sorted", "lp_c_selection": "test", "lp_subset": "own",
                                      "lp_c_rule": "last_step"}
    finally:
        protocol.configure({})
    assert protocol.current().lp_c_selection == "val"


@pytest.mark.badinput
def test_unknown_protocol_switch():
    from coop import protocol

    with pytest.raises(protocol.ProtocolError, match="choose one of val, test"):
        protocol.configure({"lp_c_selection": "train"})
    with pytest.raises(protocol.ProtocolError, match="Unknown protocol switch 'lp_c'"):
        protocol.configure({"lp_c": "val"})
