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


def test_search_grid_then_bisection_and_choice_independent_of_test_labels():
    tx, ty = _blobs(4, 0)
    vx, vy = _blobs(4, 1)
    c, tried = search_c(tx, ty, vx, vy, steps=8)
    assert [t[0] for t in tried[:7]] == list(C_GRID)
    assert len(tried) == 7 + 2 * 8
    best_grid_acc = max(a for _, a in tried[:7])
    chosen_acc = dict(tried)[c]
    assert chosen_acc >= best_grid_acc
    # the bisection stays within one decade of the grid's best
    grid_best = max(tried[:7], key=lambda t: t[1])[0]
    assert all(grid_best / 10 - 1e-12 <= t[0] <= grid_best * 10 + 1e-12 for t in tried[7:])
    assert search_c(tx, ty, vx, vy, steps=8)[0] == c  # deterministic


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
        assert protocol.as_dict() == {"imagenet_listing": "sorted", "lp_c_selection": "test", "lp_subset": "own"}
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
