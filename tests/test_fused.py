"""Fused seeds (coop.methods.coop.FusedCoOp + coop.train.fit_seeds) end where each seed trained alone ends."""
import pytest
import torch
from torch import nn

from coop.models.prompt import CoOpClassifier, FusedCoOp, PromptLearner
from coop.train import Checkpointing, SeedTraining, TrainConfig, fit, fit_seeds
from coop.views import ViewData

NAMES = ["circle", "five pointed star", "crescent moon", "square"]
SEEDS = (1, 2, 3)
SIZES = {1: 40, 2: 26, 3: 10}  # 16-batches per epoch: 2, 1 (drop last), 1 (one partial batch)


def _views(seed, epochs, dim=128):
    g = torch.Generator().manual_seed(100 + seed)
    n = SIZES[seed]
    return ViewData(torch.randn(epochs, n, dim, generator=g), torch.arange(n) % len(NAMES))


def _learner(clip, seed, **kw):
    torch.manual_seed(seed)
    return PromptLearner(clip.model, clip.tokenizer, NAMES, n_ctx=4, **kw)


def _alone(clip, seed, cfg, **kw):
    learner = _learner(clip, seed, **kw)
    clf = CoOpClassifier(clip.model, learner, visual=nn.Identity()).train()
    hist = fit(clf, [learner.ctx], _views(seed, cfg.epochs), cfg, generator=torch.Generator().manual_seed(seed),
               log=None)
    return hist, learner.ctx.detach().clone()


class Crash(Exception):
    pass


def _fused(clip, cfg, checkpoints=None, crash_at=None, **kw):
    learners = [_learner(clip, s, **kw) for s in SEEDS]
    fused = FusedCoOp(clip.model, learners)
    calls = []

    def losses(*args):
        calls.append(1)
        if len(calls) == crash_at:
            raise Crash
        return fused.losses(*args)

    runs = [SeedTraining([lr.ctx], _views(s, cfg.epochs), torch.Generator().manual_seed(s),
                         Checkpointing(checkpoints[i], lr, "key", every=1) if checkpoints else None, None)
            for i, (s, lr) in enumerate(zip(SEEDS, learners))]
    hists = fit_seeds(losses, runs, cfg)
    return hists, [lr.ctx.detach().clone() for lr in learners]


# Stacking the seeds' prompts gives the text encoder's matrix products and attention more rows, which can change
# how the CPU kernels block and sum them: on our machine most variants agree bit for bit, the middle position
# to the last float32 bit (1e-7). Hence a tolerance far below any training effect instead of torch.equal.
TOL = dict(atol=1e-6, rtol=1e-5)


def _close(a, b):
    torch.testing.assert_close(torch.as_tensor(a), torch.as_tensor(b), **TOL)


@pytest.fixture
def one_thread():
    """Deterministic CPU settings: one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("kw", [{}, {"csc": True}, {"position": "middle"}, {"position": "front", "csc": True},
                                {"init": "a photo of a"}])
def test_each_fused_seed_equals_the_seed_alone(clip, kw, one_thread):
    cfg = TrainConfig(epochs=4, batch_size=16, lr=0.01)  # 5x the official lr: rounding is not blown up
    hists, ctxs = _fused(clip, cfg, **kw)
    for seed, hist, ctx in zip(SEEDS, hists, ctxs):
        ref_hist, ref_ctx = _alone(clip, seed, cfg, **kw)
        assert len(hist) == cfg.epochs
        _close(hist, ref_hist)
        _close(ctx, ref_ctx)
        assert not torch.equal(ctx, _learner(clip, seed, **kw).ctx)  # it trained
    assert not torch.allclose(ctxs[0], ctxs[1])  # each seed its own init and data


def test_fused_seeds_resume_from_their_own_checkpoints(clip, tmp_path, one_thread):
    cfg = TrainConfig(epochs=4, batch_size=16, lr=0.5)  # 2 steps per epoch (seed 1 has 2 batches)
    paths = [tmp_path / f"seed{s}.pt" for s in SEEDS]
    ref_hists, ref_ctxs = _fused(clip, cfg)
    with pytest.raises(Crash):  # killed in epoch 3: every seed saved epoch 2
        _fused(clip, cfg, checkpoints=paths, crash_at=5)
    at_epoch2 = {k: paths[k].read_bytes() for k in (0, 2)}
    with pytest.raises(Crash):  # resumed, killed in epoch 4: every seed saved epoch 3
        _fused(clip, cfg, checkpoints=paths, crash_at=3)
    for k, data in at_epoch2.items():  # as if the kill came between the seeds' saves: seeds at 2, 3, 2
        paths[k].write_bytes(data)
    hists, ctxs = _fused(clip, cfg, checkpoints=paths)
    for h, c, rh, rc in zip(hists, ctxs, ref_hists, ref_ctxs):
        _close(h, rh)
        _close(c, rc)


@pytest.mark.parametrize("method,artifact,key", [("coop", "prompt", "ctx"), ("text_bias", "text_bias", "bias"),
                                                ("text_transform", "text_transform", "weight")])
def test_coop_run_fuses_seeds_and_matches_sequential_runs(toy_root, tmp_path, one_thread, method, artifact, key):
    """`coop run --seed 1 2 3` (fused) writes, per seed, what `--sequential` (each seed alone) writes."""
    import json

    from safetensors.torch import load_file

    from coop.experiment import run_seeds

    params = {"epochs": 3, "n_ctx": 4} if method == "coop" else {"epochs": 3, "lr": 0.5}
    kw = dict(dataset="toy_shapes", method=method, shots=2, backbone="toy-rn", data_root=toy_root,
              params=params, log=lambda s: None)
    fused = run_seeds(list(SEEDS), str(tmp_path / "f/seed{seed}"), cache_dir=tmp_path / "c1", **kw)
    alone = run_seeds(list(SEEDS), str(tmp_path / "s/seed{seed}"), fuse=False, cache_dir=tmp_path / "c2", **kw)
    for seed, f, a in zip(SEEDS, fused, alone):
        assert f["fused_seeds"] == list(SEEDS) and "fused_seeds" not in a
        for field in ("accuracy", "macro_f1", "manifest_hash"):
            assert f[field] == a[field], field
        _close(f["loss_history"], a["loss_history"])
        ctx_f, ctx_a = (load_file(str(tmp_path / f"{d}/seed{seed}/{artifact}.safetensors"))[key] for d in "fs")
        _close(ctx_f, ctx_a)
        assert json.loads((tmp_path / f"f/seed{seed}/metrics.json").read_text())["seed"] == seed
        assert not (tmp_path / f"f/seed{seed}/checkpoint.pt").exists()
    assert fused[0]["loss_history"] != fused[1]["loss_history"]


# Fused variants (coop.methods.coop.train_variants): learners of several variants x seeds over one text encoder,
# one pass per shared-prefix length; each must end where its variant's seed trained alone (fit, one learner).
VARIANTS = [{}, {"csc": True}, {"position": "middle"}, {"position": "front", "csc": True},
            {"init": "a photo of a"}, {"position": "middle", "n_ctx": 8}]


def test_each_fused_variant_equals_the_variant_alone(clip, one_thread):
    cfg = TrainConfig(epochs=3, batch_size=16, lr=0.01)
    units = [(kw, s) for kw in VARIANTS for s in (1, 3)]
    learners = []
    for kw, s in units:
        kw = {"n_ctx": 4, **kw}
        torch.manual_seed(s)
        learners.append(PromptLearner(clip.model, clip.tokenizer, NAMES, **kw))
    fused = FusedCoOp(clip.model, learners)
    runs = [SeedTraining([lr.ctx], _views(s, cfg.epochs), torch.Generator().manual_seed(s), None, None)
            for (_, s), lr in zip(units, learners)]
    hists = fit_seeds(fused.losses, runs, cfg)
    # three passes per step: prefix 1 (CSC, front), 5 (end, init, middle with 8), 3 (middle with 4)
    assert sorted({lr.shared_prefix for lr in learners}) == [1, 3, 5]
    for (kw, s), hist, lr in zip(units, hists, learners):
        kw = {"n_ctx": 4, **kw}
        n_ctx = kw.pop("n_ctx")
        ref_hist, ref_ctx = _alone_ctx(clip, s, cfg, n_ctx, **kw)
        _close(hist, ref_hist)
        _close(lr.ctx.detach(), ref_ctx)


def _alone_ctx(clip, seed, cfg, n_ctx, **kw):
    torch.manual_seed(seed)
    learner = PromptLearner(clip.model, clip.tokenizer, NAMES, n_ctx=n_ctx, **kw)
    clf = CoOpClassifier(clip.model, learner, visual=nn.Identity()).train()
    hist = fit(clf, [learner.ctx], _views(seed, cfg.epochs), cfg, generator=torch.Generator().manual_seed(seed),
               log=None)
    return hist, learner.ctx.detach().clone()


CELL_VARIANTS = {"end": {"n_ctx": 4, "epochs": 3}, "csc": {"n_ctx": 4, "csc": True, "epochs": 3},
                 "middle": {"n_ctx": 4, "class_token_position": "middle", "epochs": 3},
                 "photo": {"init": "a photo of a", "epochs": 3, "crop_min": 0.5}}


def test_coop_run_fuses_variants_and_matches_separate_runs(toy_root, tmp_path, one_thread):
    """`coop run --variants` (one job) writes, per variant and seed, what a job of that variant alone writes."""
    from safetensors.torch import load_file

    from coop.experiment import run_seeds, run_variants

    kw = dict(dataset="toy_shapes", method="coop", shots=2, backbone="toy-rn", data_root=toy_root,
              log=lambda s: None)
    fused = run_variants(CELL_VARIANTS, [1, 2], str(tmp_path / "f/{variant}/seed{seed}"), cache_dir=tmp_path / "c1",
                         **kw)
    assert [(r["variant"], r["seed"]) for r in fused] == [(v, s) for v in CELL_VARIANTS for s in (1, 2)]
    for v, params in CELL_VARIANTS.items():
        alone = run_seeds([1, 2], str(tmp_path / f"s/{v}/seed{{seed}}"), cache_dir=tmp_path / "c2", variant=v,
                          params=params, **kw)
        for f, a in zip([r for r in fused if r["variant"] == v], alone):
            assert f["fused_variants"] == list(CELL_VARIANTS) and f["fused_seeds"] == [1, 2]
            assert f["params"] == a["params"] and f["manifest_hash"] == a["manifest_hash"]
            assert (f["accuracy"], f["macro_f1"]) == (a["accuracy"], a["macro_f1"])
            _close(f["loss_history"], a["loss_history"])
            ctx_f, ctx_a = (load_file(str(tmp_path / f"{d}/{v}/seed{f['seed']}/prompt.safetensors"))["ctx"]
                            for d in "fs")
            _close(ctx_f, ctx_a)
            assert not (tmp_path / f"f/{v}/seed{f['seed']}/checkpoint.pt").exists()


@pytest.mark.badinput
@pytest.mark.parametrize("method,variants,out,message", [
    ("coop", {"a": {"lr": 0.002}, "b": {"lr": 0.01}}, "{variant}/seed{seed}", "a | b cannot train in one job"),
    ("coop", {"a": {}, "b": {"csc": True}}, "seed{seed}", "--out must contain {variant}"),
    ("linear_probe", {"a": {}, "b": {}}, "{variant}/seed{seed}", "declares no train_variants"),
    ("coop", {"a": {"n_ctx": 0}}, "{variant}/seed{seed}", "n_ctx must be >= 1"),
])
def test_variants_that_cannot_train_together_are_refused_before_clip_loads(toy_root, tmp_path, method, variants,
                                                                          out, message):
    from coop.experiment import run_variants
    from coop.methods.registry import MethodError

    with pytest.raises(MethodError, match=message.replace("|", r"\|")):
        run_variants(variants, [1], str(tmp_path / out), dataset="toy_shapes", method=method, shots=1,
                     backbone="toy-rn", data_root=toy_root, cache_dir=tmp_path / "c", log=lambda s: None)
    assert not (tmp_path / "c").exists()  # nothing read or written: refused at once
