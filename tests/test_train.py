import math

import pytest
import torch
from torch import nn

from coop.train import NonFiniteLossError, TrainConfig, _batches, epochs_for_shots, fit, lr_at_epoch


@pytest.mark.parametrize("max_epoch", [50, 100, 200])
def test_lr_follows_protocol_formula(max_epoch):
    cfg = TrainConfig(epochs=max_epoch)
    assert lr_at_epoch(0, cfg) == 1e-5
    for e in range(1, max_epoch):
        assert lr_at_epoch(e, cfg) == pytest.approx(0.001 * (1 + math.cos(math.pi * (e - 1) / max_epoch)), abs=1e-15)
    assert lr_at_epoch(1, cfg) == pytest.approx(0.002)


def test_lr_is_what_the_optimizer_uses():
    seen = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(2, 2))

        def forward(self, x):
            return x @ self.w

    model = Probe()
    data = [(torch.randn(2), i % 2) for i in range(4)]
    cfg = TrainConfig(epochs=5, batch_size=4)
    orig = torch.optim.SGD.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return orig(self, *a, **k)

    torch.optim.SGD.step = spy
    try:
        fit(model, [model.w], data, cfg, log=None)
    finally:
        torch.optim.SGD.step = orig
    assert seen == [lr_at_epoch(e, cfg) for e in range(5)]


def test_epochs_by_shots():
    assert [epochs_for_shots(k) for k in (1, 2, 4, 8, 16)] == [50, 100, 100, 200, 200]
    assert epochs_for_shots(16, "imagenet") == 50


def test_drop_last_only_with_a_full_batch():
    g = torch.Generator().manual_seed(0)
    assert [len(b) for b in _batches(20, 32, g)] == [20]          # fewer than 32 images: keep them
    assert [len(b) for b in _batches(70, 32, g)] == [32, 32]      # drop the incomplete last batch
    assert sorted(torch.cat(_batches(20, 32, g)).tolist()) == list(range(20))


def test_fit_learns_and_nan_is_a_clear_error():
    torch.manual_seed(0)
    x = torch.randn(64, 5)
    y = (x[:, 0] > 0).long()
    model = nn.Linear(5, 2)
    data = list(zip(x, y.tolist()))
    hist = fit(model, list(model.parameters()), data, TrainConfig(epochs=30, lr=0.5), log=None)
    assert hist[-1] < hist[0] * 0.7
    with torch.no_grad():
        model.weight.fill_(float("inf"))
    with pytest.raises(NonFiniteLossError, match="precision=amp or fp32"):
        fit(model, list(model.parameters()), data, TrainConfig(epochs=1), log=None)
