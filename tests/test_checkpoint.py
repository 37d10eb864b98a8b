"""Training checkpoints: a run continued from one equals an uninterrupted run; foreign or crafted files are
never used."""
import json
import pickle
import subprocess

import pytest
import torch
from torch import nn

from coop.train import (CheckpointError, Checkpointing, NonFiniteLossError, TrainConfig, fit, load_checkpoint,
                        save_checkpoint)


class Data(torch.utils.data.Dataset):
    """Random 'images' with a random augmentation drawn from torch's global RNG, like the real transform."""

    def __init__(self, n: int = 20, crash_after: int | None = None):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 6, generator=g)
        self.y = torch.randint(0, 3, (n,), generator=g)
        self.calls, self.crash_after = 0, crash_after

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        self.calls += 1
        if self.crash_after is not None and self.calls > self.crash_after:
            raise KeyboardInterrupt("killed mid-epoch")
        return self.x[i] + 0.1 * torch.randn(6), int(self.y[i])


def train(tmp_path, epochs=7, crash_after=None, key="run-a", every=2, log=None):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 3))
    ck = Checkpointing(tmp_path / "checkpoint.pt", model, key, every=every)
    cfg = TrainConfig(epochs=epochs, batch_size=8, lr=0.1)
    history = fit(model, list(model.parameters()), Data(crash_after=crash_after), cfg,
                  generator=torch.Generator().manual_seed(3), log=log or (lambda m: None), checkpoint=ck)
    return model, history


def test_continued_run_equals_uninterrupted(tmp_path):
    ref, ref_history = train(tmp_path / "ref")
    # 20 items, batches of 8 with drop_last: 16 items per epoch; crash in epoch 6 (after checkpoint at 4)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "cut", crash_after=16 * 5 + 3)
    assert load_checkpoint(tmp_path / "cut/checkpoint.pt")["epoch"] == 4
    logs = []
    model, history = train(tmp_path / "cut", log=logs.append)
    assert any("resumed from" in m and "epoch 4/7" in m for m in logs)
    assert history == ref_history
    for a, b in zip(model.parameters(), ref.parameters()):
        assert torch.equal(a, b)
    # the final checkpoint is complete: a rerun trains nothing and gives the same model
    logs.clear()
    again, history = train(tmp_path / "cut", crash_after=0, log=logs.append)
    assert history == ref_history and any("epoch 7/7" in m for m in logs)
    assert torch.equal(again[0].weight, ref[0].weight)


def test_checkpoint_of_another_run_is_ignored(tmp_path):
    train(tmp_path, key="run-a")
    logs = []
    model, history = train(tmp_path, key="run-b", log=logs.append)
    assert any("belongs to another run" in m for m in logs) and len(history) == 7
    assert load_checkpoint(tmp_path / "checkpoint.pt")["key"] == "run-b"


def test_checkpoint_is_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"format": 1, "epoch": 1})

    def crash(obj, f):
        open(f, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        save_checkpoint(path, {"format": 1, "epoch": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


class Exploit:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.badinput
def test_crafted_checkpoint_is_not_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": 1, "payload": Exploit(marker)}, path)
    with pytest.raises(CheckpointError, match="not a valid training checkpoint.*Delete it"):
        load_checkpoint(path)
    path.write_bytes(pickle.dumps(Exploit(marker)))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.badinput
def test_crafted_checkpoint_stops_the_run_with_the_fix(tmp_path, toy_root, coop_bin):
    """Through the CLI: exit 2, the file and the fix named, nothing created by the payload."""
    out = tmp_path / "run"
    out.mkdir()
    marker = tmp_path / "pwned"
    torch.save({"format": 1, "payload": Exploit(marker)}, out / "checkpoint.pt")
    proc = subprocess.run([coop_bin, "--threads", "1", "run", "--dataset", "toy_shapes", "--method", "coop",
                           "--shots", "1", "--seed", "1", "--set", "epochs=1", "--set", "n_ctx=2",
                           "--data-root", str(toy_root), "--cache-dir", str(tmp_path / "cache"), "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "checkpoint.pt is not a valid training checkpoint" in proc.stderr and "Delete it" in proc.stderr
    assert "Traceback" not in proc.stderr and not marker.exists() and not (out / "metrics.json").exists()


@pytest.mark.badinput
def test_nonfinite_fp16_loss_stops_with_the_fix_and_keeps_results(tmp_path, toy_root, coop_bin):
    """Pure fp16 with a learning rate that overflows: exit 2 naming the problem and the fix; the runs already
    finished (another seed's folder, the test feature cache) are untouched."""
    cache = tmp_path / "cache"
    done = tmp_path / "runs/seed1"
    base = [coop_bin, "--threads", "1", "run", "--dataset", "toy_shapes", "--method", "coop", "--shots", "1",
            "--set", "n_ctx=2", "--data-root", str(toy_root), "--cache-dir", str(cache)]
    ok = subprocess.run(base + ["--seed", "1", "--set", "epochs=1", "--out", str(done)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-2000:]
    before = {p: p.read_bytes() for p in [*done.iterdir(), *cache.rglob("*.safetensors")]}
    proc = subprocess.run(base + ["--seed", "2", "--set", "epochs=3", "--set", "precision=fp16", "--set", "lr=6e4",
                                  "--out", str(tmp_path / "runs/seed2")], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "precision=fp16" in proc.stderr and "use precision=amp or fp32, or lower lr" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs/seed2/metrics.json").exists()
    assert {p: p.read_bytes() for p in before} == before
    assert json.loads((done / "metrics.json").read_text())["seed"] == 1


def test_nonfinite_loss_raises():
    model = nn.Linear(6, 3)
    with torch.no_grad():
        model.weight.fill_(float("inf"))
    with pytest.raises(NonFiniteLossError, match="use precision=amp or fp32"):
        fit(model, list(model.parameters()), Data(), TrainConfig(epochs=1, batch_size=8), log=None)
