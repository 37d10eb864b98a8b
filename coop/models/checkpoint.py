"""Compact checkpoints of the toy CLIPs: the token rows that training never touched are regenerated from the seed.

A tiny CLIP's 49408-row token table is most of its size, but pretraining on the toy world's captions changes
only the few hundred rows of the words they use (the table has no weight decay, so every other row keeps its
seeded initial value). A compact file stores every other tensor whole, and of the token table only the changed
rows and their indices; `load_compact` rebuilds the seeded initial model and writes the stored values over it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from coop.io import atomic_path

FORMAT = "coop-compact-1"
META_KEY = "coop"  # all metadata as one sorted JSON string: safetensors writes several keys in random order
SPARSE_KEYS = ("token_embedding.weight",)  # tensors stored as (changed rows, their values)


def seeded_model(name, seed: int, device: str | torch.device = "cpu") -> nn.Module:
    """Model `name` (any name of coop.models.names) with weights drawn from `seed`, nothing loaded (no tower's
    base weights either); the global random state is left as it was."""
    from coop.models.clip import create_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return create_model(name, pretrained=None, device=device, load_weights=False, pretrained_text=False)


def state_fingerprint(state: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_compact(state: dict[str, torch.Tensor], path: str | Path, meta: dict[str, str]) -> None:
    """Write `state` compactly; `meta` must name the "model" and its "init_seed" (the initialisation to rebuild)."""
    from safetensors.torch import save_file

    init = seeded_model(meta["model"], int(meta["init_seed"])).state_dict()
    out = {}
    for k, v in state.items():
        v = v.detach().cpu().contiguous()
        if k in SPARSE_KEYS:
            rows = torch.nonzero((v != init[k]).any(dim=1)).flatten()
            out[f"{k}:rows"], out[f"{k}:values"] = rows.contiguous(), v[rows].contiguous()
        else:
            out[k] = v
    with atomic_path(path) as tmp:
        save_file(out, str(tmp), metadata={META_KEY: json.dumps({**meta, "format": FORMAT}, sort_keys=True)})


def compact_metadata(path: str | Path) -> dict[str, str] | None:
    """The metadata of a compact checkpoint, or None for any other file."""
    if not str(path).endswith(".safetensors"):
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get(META_KEY, "{}"))
    except Exception:  # noqa: BLE001 - not a readable safetensors file: the ordinary loader reports it
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None


def load_compact(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The model a compact checkpoint describes: its seeded initialisation with the stored tensors written over."""
    from safetensors.torch import load_file

    meta = compact_metadata(path)
    if meta is None:
        raise ValueError(f"{path} is not a compact coop checkpoint")
    model = seeded_model(meta["model"], int(meta["init_seed"]), device)
    stored = load_file(str(path))
    state = model.state_dict()
    for k in SPARSE_KEYS:
        rows, values = stored.pop(f"{k}:rows"), stored.pop(f"{k}:values")
        state[k][rows] = values.to(state[k].device)
    missing, unexpected = sorted(set(state) - set(stored) - set(SPARSE_KEYS)), sorted(set(stored) - set(state))
    if missing or unexpected:
        raise ValueError(f"{path} does not fit {meta['model']!r}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for k, v in stored.items():
        state[k].copy_(v)
    return model
