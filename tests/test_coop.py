import pytest
import torch

from coop.models.prompt import CoOpClassifier, PromptLearner

NAMES = ["circle", "five pointed star", "crescent moon"]


def _learner(clip, **kw):
    torch.manual_seed(0)
    learner = PromptLearner(clip.model, clip.tokenizer, NAMES, **kw)
    with torch.no_grad():  # mark every context vector so positions can be read back
        learner.ctx.copy_(torch.arange(learner.ctx.numel(), dtype=torch.float32).view_as(learner.ctx) + 1000)
    return learner


def _word_embeddings(clip, text):
    tokens = clip.tokenizer([text])
    return clip.model.token_embedding(tokens)[0], int(tokens.argmax())


@pytest.mark.parametrize("csc", [False, True])
def test_end_position(clip, csc):
    m = 4
    learner = _learner(clip, n_ctx=m, csc=csc, position="end")
    prompts = learner()
    for i, name in enumerate(NAMES):
        ctx = learner.ctx[i] if csc else learner.ctx
        ref, eot = _word_embeddings(clip, f"X X X X {name}.")
        assert torch.equal(prompts[i, 0], ref[0])                      # SOS
        assert torch.equal(prompts[i, 1:1 + m], ctx)                   # context
        assert torch.equal(prompts[i, 1 + m:], ref[1 + m:])            # class, ".", EOT, padding
        assert eot == int(learner.eot[i])
    if not csc:
        assert learner.ctx.shape == (m, 128)
    else:
        assert learner.ctx.shape == (3, m, 128)
        assert not torch.equal(prompts[0, 1:1 + m], prompts[1, 1:1 + m])


@pytest.mark.parametrize("csc", [False, True])
def test_middle_and_front_positions(clip, csc):
    m, half = 4, 2
    for position in ("middle", "front"):
        learner = _learner(clip, n_ctx=m, csc=csc, position=position)
        prompts = learner()
        for i, name in enumerate(NAMES):
            ctx = learner.ctx[i] if csc else learner.ctx
            ref, eot = _word_embeddings(clip, f"X X X X {name}.")
            n = len(clip.tokenizer.encode(name))
            name_emb, rest = ref[1 + m:1 + m + n], ref[1 + m + n:]
            if position == "middle":
                expected = torch.cat([ref[:1], ctx[:half], name_emb, ctx[half:], rest])
            else:
                expected = torch.cat([ref[:1], name_emb, ctx, rest])
            assert torch.equal(prompts[i], expected)
            assert int(learner.eot[i]) == eot  # same EOT position in every layout


def test_word_init_matches_hand_crafted_prompt(clip):
    learner = PromptLearner(clip.model, clip.tokenizer, NAMES, n_ctx=16, init="a photo of a")
    assert learner.n_ctx == 4 and learner.ctx.shape == (4, 128)
    ours = CoOpClassifier(clip.model, learner).text_features()
    ref = clip.model.encode_text(clip.tokenizer([f"a photo of a {n}." for n in NAMES]))
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_random_init_statistics(clip):
    torch.manual_seed(0)
    learner = PromptLearner(clip.model, clip.tokenizer, NAMES * 20, n_ctx=16, csc=True)
    ctx = learner.ctx.detach()
    assert abs(float(ctx.std()) - 0.02) < 0.001 and abs(float(ctx.mean())) < 0.001


def test_classifier_keeps_clip_frozen_and_in_eval(clip):
    learner = PromptLearner(clip.model, clip.tokenizer, NAMES, n_ctx=4)
    model = CoOpClassifier(clip.model, learner).train()
    assert not model.visual.training and model.learner.training
    before = {k: v.clone() for k, v in clip.model.state_dict().items()}
    opt = torch.optim.SGD([learner.ctx], lr=0.1)
    logits = model(torch.randn(4, 3, 32, 32))
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 0])).backward()
    opt.step()
    after = clip.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["learner.ctx"]
    assert float(logits.detach().abs().max()) <= float(clip.model.logit_scale.exp()) + 1e-3  # cosine x scale


class _LabelVisual(torch.nn.Module):
    """Stands in for a pretrained image tower: an image's pixel (0, 0, 0) holds its class, which maps to a
    fixed random embedding (plus noise), so a good prompt can separate the classes."""

    def __init__(self, n_cls, dim, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("protos", torch.randn(n_cls, dim, generator=g))

    def forward(self, x):
        label = x[:, 0, 0, 0].round().long()
        return self.protos[label] + 0.1 * torch.randn(len(x), self.protos.shape[1])


@pytest.mark.parametrize("csc", [False, True])
def test_coop_training_learns(clip, csc):
    import copy

    from coop.train import TrainConfig, fit

    model = copy.deepcopy(clip.model)
    model.visual = _LabelVisual(len(NAMES), 128)
    torch.manual_seed(0)
    learner = PromptLearner(model, clip.tokenizer, NAMES, n_ctx=4, csc=csc)
    clf = CoOpClassifier(model, learner)
    data = [(torch.full((3, 4, 4), float(i % 3)), i % 3) for i in range(48)]
    x = torch.stack([d[0] for d in data])
    y = torch.tensor([d[1] for d in data])

    def accuracy():
        with torch.no_grad():
            return float((clf.eval()(x).argmax(1) == y).float().mean())

    before = accuracy()
    hist = fit(clf.train(), [learner.ctx], data, TrainConfig(epochs=60, lr=0.5, batch_size=16), log=None)
    # a shared context must separate classes through their names alone, so it learns more slowly
    assert hist[-1] < hist[0] * (0.5 if csc else 0.7)
    assert accuracy() == 1.0 and before < 1.0


def test_evaluation_reads_cached_test_features_and_encodes_the_classes_once(toy_root, tmp_path, monkeypatch):
    """Training reads the view cache and evaluation the test-feature cache: once both exist, a CoOp run never
    runs the image encoder, and it runs the text encoder once per training step plus once for evaluation."""
    from coop.experiment import run_experiment
    from coop.models.text import TextEncoder

    kw = dict(dataset="toy_shapes", method="coop", shots=2, seed=1, backbone="toy-rn", data_root=toy_root,
              cache_dir=tmp_path, params={"epochs": 3, "n_ctx": 4}, log=lambda s: None)
    first = run_experiment(out=tmp_path / "a", **kw)  # builds the caches
    calls = {"text": 0, "image": 0}
    real = TextEncoder.forward

    def text_forward(self, *a, **k):
        calls["text"] += 1
        return real(self, *a, **k)

    monkeypatch.setattr(TextEncoder, "forward", text_forward)
    import open_clip

    monkeypatch.setattr(open_clip.CLIP, "encode_image", lambda *a, **k: calls.__setitem__("image", 1))
    second = run_experiment(out=tmp_path / "b", **kw)
    steps = 3  # 10 classes x 2 shots = 20 images: one (partial) batch of 32 per epoch
    assert calls == {"text": steps + 1, "image": 0}
    assert second["accuracy"] == first["accuracy"] and second["loss_history"] == first["loss_history"]
