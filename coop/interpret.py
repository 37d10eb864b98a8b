"""Interpreting learned context (the paper's Table 4): the vocabulary token nearest to each context vector,
by Euclidean distance in the token-embedding table of the backbone that learned it."""
from __future__ import annotations

from pathlib import Path

import torch

from coop.data.datasets import get_dataset, read_split
from coop.io import read_json, write_json


def token_text(tokenizer, token_id: int) -> str:
    """A BPE token as text ("</w>" marks a word end)."""
    return tokenizer.decoder[token_id].replace("</w>", "")


def nearest_tokens(ctx: torch.Tensor, table: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of ctx (N, D): the k nearest rows of table (V, D) -> (distances, ids), each (N, k)."""
    dist = torch.cdist(ctx.float(), table.float())
    d, idx = dist.topk(k, dim=1, largest=False)
    return d, idx


def nearest_words(run_dir: str | Path, data_root: str | Path = "data", k: int = 1) -> dict:
    from safetensors.torch import load_file

    from coop.models.clip import load_clip

    run_dir = Path(run_dir)
    m = read_json(run_dir / "metrics.json")
    ctx = load_file(str(run_dir / "prompt.safetensors"))["ctx"]
    clip = load_clip(m["model"], m["pretrained"], init_seed=m.get("init_seed", 0))
    table = clip.model.token_embedding.weight.detach()
    csc = ctx.dim() == 3
    classnames = read_split(data_root, get_dataset(m["dataset"])).classnames if csc else [None]
    flat = ctx.reshape(-1, ctx.shape[-1])
    dist, ids = nearest_tokens(flat, table, k)
    n_ctx = ctx.shape[-2]
    rows = []
    for r in range(flat.shape[0]):
        rows.append({
            "index": r % n_ctx + 1, "class": classnames[r // n_ctx],
            "token": token_text(clip.tokenizer, int(ids[r, 0])), "distance": round(float(dist[r, 0]), 4),
            "alternatives": [token_text(clip.tokenizer, int(i)) for i in ids[r, 1:]],
        })
    keys = ("dataset", "backbone", "method", "variant", "shots", "seed")
    return {key: m[key] for key in keys} | {"csc": csc, "n_ctx": n_ctx, "nearest": rows}


def write_nearest_words(run_dir, out, **kw) -> dict:
    record = nearest_words(run_dir, **kw)
    write_json(out, record)
    return record
