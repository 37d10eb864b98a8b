import pytest
import torch

from coop.methods.coop import CoOpClassifier, PromptLearner
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
