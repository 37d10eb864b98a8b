"""Interpreting learned context (the paper's Table 4): the vocabulary token nearest to each context vector,
by Euclidean distance in the token-embedding table of the backbone that learned it."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from coop.data.datasets import get_dataset, read_split
from coop.io import write_json

if TYPE_CHECKING:  # torch is imported where it is used: a bad run folder is reported without it
    import torch


def token_text(tokenizer, token_id: int) -> str:
    """A BPE token as text, decoded as CLIP's tokenizer decodes (open_clip's SimpleTokenizer.decode): the
    token's byte-level characters back to bytes (`byte_decoder`), those bytes as UTF-8, the word-end mark
    "</w>" dropped. A token holding part of a character's bytes shows U+FFFD for them (errors="replace")."""
    chars = tokenizer.decoder[token_id]
    text = bytearray(tokenizer.byte_decoder[c] for c in chars).decode("utf-8", errors="replace")
    return text.replace("</w>", "")


def nearest_tokens(ctx: torch.Tensor, table: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of ctx (N, D): the k nearest rows of table (V, D) -> (distances, ids), each (N, k)."""
    import torch

    dist = torch.cdist(ctx.float(), table.float())
    d, idx = dist.topk(k, dim=1, largest=False)
    return d, idx


def nearest_words(run_dir: str | Path, data_root: str | Path = "data", k: int = 1) -> dict:
    from coop.features import CacheError
    from coop.methods.registry import MethodError, all_methods, get_method
    from coop.transfer import read_run, read_run_file, rerun_hint

    run_dir = Path(run_dir)
    m = read_run(run_dir)
    info = get_method(m["method"])
    if not info.interpretable:
        able = ", ".join(n for n, i in all_methods().items() if i.interpretable)
        raise MethodError(f"{run_dir} is a {m['method']} run, which learns no context of token embeddings; nearest "
                          f"words are read from the learned context of a run of {able}: give the folder of one.")
    ctx = read_run_file(run_dir, m, info.classifier_file, framework="pt").get("ctx")
    if ctx is None or ctx.dim() not in (2, 3) or not ctx.is_floating_point():
        raise CacheError(f"{run_dir / info.classifier_file} holds no context tensor 'ctx' of shape (n_ctx, dim) "
                         f"or (classes, n_ctx, dim). {rerun_hint(run_dir)}")
    from coop.models.clip import load_clip  # torch and open_clip: only once the run's files are known good

    clip = load_clip(m["model"], m["pretrained"], init_seed=m.get("init_seed", 0))
    table = clip.model.token_embedding.weight.detach()
    if ctx.shape[-1] != table.shape[1]:
        raise CacheError(f"{run_dir / info.classifier_file} holds context vectors of width {ctx.shape[-1]}, but "
                         f"{m['model']}'s token embeddings have width {table.shape[1]}: the prompt file and the "
                         f"run's metrics.json do not belong together. {rerun_hint(run_dir)}")
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
