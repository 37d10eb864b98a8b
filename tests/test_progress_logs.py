"""Progress lines of the long loops (training, the linear probe's C search, toy CLIP pretraining) in a job's log:
done/total counted in the loop's own units, rate and ETA, at most one line per COOP_PROGRESS_SECONDS plus the
final one. The expected counts are worked out from the loops' documented sizes (batches per epoch with the
official drop_last rule, the C grid plus two fits per bisection step, the pretraining steps), not read from
the code under test."""
import re

import numpy as np
import pytest
import torch
from torch import nn

from coop.methods.linear_probe import C_GRID, search_c
from coop.pretrain import PretrainConfig, pretrain
from coop.train import SeedTraining, TrainConfig, fit, fit_seeds

LINE = re.compile(r"^(?P<what>[^:]+): (?P<done>\d+)/(?P<total>\d+) (?P<unit>\w+) \((?P<pct>\d+)%\), "
                  r"(?P<rate>[\d.e+-]+) (?P=unit)/s, elapsed [^,]+(?:, ETA (?P<eta>[^,]+))?(?:, (?P<extra>.*))?$")


class Data(torch.utils.data.Dataset):
    def __init__(self, n: int):
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])

    def set_epoch(self, epoch):
        pass


def progress_lines(logs, what):
    out = [LINE.match(m) for m in logs if m.startswith(what + ":")]
    assert all(out), [m for m in logs if m.startswith(what + ":")]
    return out


def _fit(n, epochs, batch_size=8):
    logs = []
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    fit(model, list(model.parameters()), Data(n), TrainConfig(epochs=epochs, batch_size=batch_size, lr=0.1),
        log=logs.append)
    return logs


def test_training_logs_every_step_at_interval_zero(monkeypatch):
    monkeypatch.setenv("COOP_PROGRESS_SECONDS", "0")
    # 20 items in batches of 8, the last incomplete batch dropped: 2 steps per epoch, 3 epochs: 6 steps
    logs = _fit(20, 3)
    lines = progress_lines(logs, "training")
    # a line at every step before the last; the last step's line is the final one
    assert [int(m["done"]) for m in lines] == [1, 2, 3, 4, 5, 6]
    assert {int(m["total"]) for m in lines} == {6} and {m["unit"] for m in lines} == {"steps"}
    assert all(m["eta"] for m in lines[:-1]) and lines[-1]["eta"] is None and lines[-1]["pct"] == "100"
    assert lines[2]["extra"].startswith("epoch 2/3, batch loss ")
    assert lines[-1]["extra"].startswith("final loss ")
    # the per-epoch lines that users and tests read are still there
    assert [m.split(" lr ")[0] for m in logs if m.startswith("epoch ")] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]


def test_training_lines_are_rate_limited(monkeypatch):
    monkeypatch.setenv("COOP_PROGRESS_SECONDS", "3600")
    # 5 items, fewer than a batch: one batch of 5 per epoch (no drop), 4 epochs: 4 steps
    lines = progress_lines(_fit(5, 4), "training")
    assert [(int(m["done"]), int(m["total"])) for m in lines] == [(1, 4), (4, 4)]  # the first and the final


def test_fused_training_counts_steps_of_the_longest_seed(monkeypatch):
    monkeypatch.setenv("COOP_PROGRESS_SECONDS", "0")
    logs = []
    torch.manual_seed(0)
    heads = [nn.Linear(6, 3) for _ in range(2)]
    # seed A: 20 items -> 2 steps per epoch; seed B: 30 items -> 3; a fused step serves both: 3 per epoch
    seeds = [SeedTraining(list(h.parameters()), Data(n), torch.Generator().manual_seed(k), log=logs.append)
             for k, (h, n) in enumerate(zip(heads, (20, 30)))]

    def losses(active, xs, ys):
        return [nn.functional.cross_entropy(heads[k](x), y) for k, x, y in zip(active, xs, ys)]

    fit_seeds(losses, seeds, TrainConfig(epochs=2, batch_size=8, lr=0.1))
    lines = progress_lines(logs, "training")
    assert [int(m["done"]) for m in lines] == [1, 2, 3, 4, 5, 6] and {int(m["total"]) for m in lines} == {6}
    assert lines[0]["extra"].startswith("epoch 1/2, 2 seeds") and lines[2]["extra"].startswith("epoch 1/2, 1 seeds")


def test_c_search_counts_its_fits(monkeypatch):
    monkeypatch.setenv("COOP_PROGRESS_SECONDS", "0")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((12, 4)).astype(np.float32), np.repeat(np.arange(3), 4)
    logs = []
    c, tried = search_c(x, y, x, y, steps=2, log=logs.append)
    total = len(C_GRID) + 2 * 2
    lines = progress_lines(logs, "linear probe C search")
    assert [int(m["done"]) for m in lines] == list(range(1, total + 1))
    assert {m["unit"] for m in lines} == {"fits"} and lines[0]["extra"].startswith(f"C = {C_GRID[0]:.3g}: val acc")
    assert lines[-1]["extra"].startswith(f"C = {c:.3g} (last step): val acc")
    assert search_c(x, y, x, y, steps=2) == (c, tried)  # without a log: silent and the same choice


def test_pretraining_progress(monkeypatch):
    monkeypatch.setenv("COOP_PROGRESS_SECONDS", "3600")
    logs = []
    pretrain(PretrainConfig(steps=3, batch_size=8, warmup_steps=1), log=logs.append)
    lines = progress_lines(logs, "pretraining toy-rn")
    assert [(int(m["done"]), int(m["total"])) for m in lines] == [(1, 3), (3, 3)]
    assert lines[0]["eta"] and lines[0]["extra"].startswith("loss ")
    assert re.match(r"step 3/3, final loss \d+\.\d{4}$", lines[-1]["extra"])


@pytest.mark.parametrize("value", ["0", "3600"])
def test_interval_only_changes_how_often_not_the_result(monkeypatch, value):
    monkeypatch.setenv("COOP_PROGRESS_SECONDS", value)
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    history = fit(model, list(model.parameters()), Data(20), TrainConfig(epochs=3, batch_size=8, lr=0.1),
                  log=lambda m: None)
    torch.manual_seed(0)
    ref = nn.Linear(6, 3)
    assert history == fit(ref, list(ref.parameters()), Data(20), TrainConfig(epochs=3, batch_size=8, lr=0.1),
                          log=None)
