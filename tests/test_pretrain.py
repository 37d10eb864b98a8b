"""Contrastive pretraining of the tiny CLIPs: deterministic, loadable by load_clip, untouched token rows kept."""
import subprocess

import pytest
import torch
from safetensors.torch import load_file

from coop.models import load_clip
from coop.pretrain import PretrainConfig, draw_batch, lr_factor, pretrain, save_pretrained

TINY = dict(steps=3, batch_size=8, warmup_steps=1)


def test_batches_are_deterministic_and_varied():
    cfg = PretrainConfig(**TINY)
    x1, c1 = draw_batch(0, cfg, 32)
    x2, c2 = draw_batch(0, cfg, 32)
    assert torch.equal(x1, x2) and c1 == c2
    x3, c3 = draw_batch(1, cfg, 32)
    assert not torch.equal(x1, x3) and c1 != c3
    assert x1.shape == (8, 3, 32, 32) and len(set(c1)) > 1
    assert -3 < float(x1.min()) < 0 < float(x1.max()) < 3  # CLIP-normalised


def test_schedule_warms_up_then_decays_to_zero():
    cfg = PretrainConfig(steps=100, warmup_steps=10)
    assert lr_factor(0, cfg) == pytest.approx(0.1) and lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0) and lr_factor(55, cfg) == pytest.approx(0.5)
    assert lr_factor(100, cfg) == pytest.approx(0.0, abs=1e-12)


def test_pretraining_is_deterministic_and_loads_as_a_checkpoint(tmp_path):
    cfg = PretrainConfig(**TINY)
    a, losses_a = pretrain(cfg, log=lambda m: None)
    b, losses_b = pretrain(cfg, log=lambda m: None)
    assert losses_a == losses_b and all(l > 0 for l in losses_a)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    path = tmp_path / "toy-rn.safetensors"
    save_pretrained(a, path, cfg, losses_a)
    clip = load_clip("toy-rn", str(path))
    loaded = clip.model.state_dict()
    assert all(torch.equal(loaded[k], sa[k]) for k in sa)
    # it learned something: not the seeded random initialisation
    rand = load_clip("toy-rn", "random").model.state_dict()
    assert not torch.equal(rand["visual.conv1.weight"], sa["visual.conv1.weight"])


def test_token_rows_no_caption_uses_stay_at_their_initial_values():
    cfg = PretrainConfig(**TINY)
    torch.manual_seed(cfg.seed)
    import open_clip

    init = open_clip.create_model(cfg.model, pretrained=None).token_embedding.weight.detach().clone()
    model, _ = pretrain(cfg, log=lambda m: None)
    changed = (model.token_embedding.weight != init).any(dim=1)
    assert 0 < int(changed.sum()) < 2000  # the toy world's words only, of 49408 rows


def test_cli_writes_a_checkpoint_with_its_config(tmp_path, coop_bin):
    out = tmp_path / "ck.safetensors"
    proc = subprocess.run([coop_bin, "--threads", "1", "pretrain", "--model", "toy-rn", "--steps", "2",
                           "--batch-size", "4", "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "final loss" in proc.stdout and out.is_file()
    from safetensors import safe_open

    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    assert '"steps": 2' in meta["config"] and meta["generator"] == "coop.pretrain"
    assert "logit_scale" in load_file(str(out))
