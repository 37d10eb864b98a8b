import pytest
import torch

from coop.models.prompt import CoOpClassifier, PromptLearner
from coop.models.text import TextEncoder, encode_texts

NAMES = ["circle", "five pointed star", "crescent moon"]


def test_encode_texts_equals_open_clip(clip):
    texts = [f"a photo of a {n}." for n in NAMES]
    ours = encode_texts(clip.model, clip.tokenizer, texts)
    ref = clip.model.encode_text(clip.tokenizer(texts))
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("init", [None, "a photo of a"])
@pytest.mark.parametrize("position", ["end", "middle", "front"])
@pytest.mark.parametrize("csc", [False, True])
def test_cut_sequence_is_exact(clip, position, csc, init):
    """Every CoOp variant: unified / class-specific x end / middle / front x random / word init."""
    torch.manual_seed(0)
    learner = PromptLearner(clip.model, clip.tokenizer, NAMES, n_ctx=8, csc=csc, position=position, init=init)
    full = CoOpClassifier(clip.model, learner, cut_text=False).text_features()
    cut = CoOpClassifier(clip.model, learner, cut_text=True).text_features()
    torch.testing.assert_close(cut, full, atol=1e-5, rtol=1e-5)
    assert int(learner.eot.max()) + 1 < 77


def test_text_encoder_gradient_reaches_context(clip):
    learner = PromptLearner(clip.model, clip.tokenizer, NAMES, n_ctx=4)
    enc = TextEncoder(clip.model)
    enc(learner(), learner.eot).sum().backward()
    assert learner.ctx.grad is not None and learner.ctx.grad.abs().sum() > 0
    assert all(p.grad is None for p in clip.model.parameters())


@pytest.mark.parametrize("init", [None, "a photo of a"])
@pytest.mark.parametrize("position", ["end", "middle", "front"])
@pytest.mark.parametrize("csc", [False, True])
def test_shared_prefix_is_exact(clip, position, csc, init):
    """The positions every prompt shares, encoded once (with the cut), give the features and the context
    gradient of the full 77-token path, for every CoOp variant."""
    torch.manual_seed(0)
    learner = PromptLearner(clip.model, clip.tokenizer, NAMES, n_ctx=8, csc=csc, position=position, init=init)
    shared = {(False, "end"): 1 + learner.n_ctx, (False, "middle"): 1 + learner.n_ctx // 2}.get((csc, position), 1)
    assert learner.shared_prefix == shared
    prompts = learner()
    assert all(torch.equal(prompts[i, :shared], prompts[0, :shared]) for i in range(len(NAMES)))
    out = {}
    for fast in (False, True):
        feats = CoOpClassifier(clip.model, learner, cut_text=fast, share_prefix=fast).text_features()
        out[fast] = feats, torch.autograd.grad(feats.square().sum(), learner.ctx)[0]
    torch.testing.assert_close(out[True][0], out[False][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[True][1], out[False][1], atol=1e-3, rtol=1e-5)  # gradients are ~300 in size


def test_shared_prefix_per_group(clip):
    """Stacked prompt groups (fused seeds), each with its own prefix, equal each group encoded alone."""
    learners = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        learners.append(PromptLearner(clip.model, clip.tokenizer, NAMES, n_ctx=4))
    enc = TextEncoder(clip.model)
    p = learners[0].shared_prefix
    with torch.no_grad():
        together = enc(torch.cat([lr() for lr in learners]), torch.cat([lr.eot for lr in learners]), p, groups=3)
        alone = torch.cat([enc(lr(), lr.eot, p) for lr in learners])
        full = torch.cat([TextEncoder(clip.model, cut=False, share_prefix=False)(lr(), lr.eot) for lr in learners])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)  # batching rounds differently
    torch.testing.assert_close(together, full, atol=1e-5, rtol=1e-5)
