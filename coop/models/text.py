"""CLIP's text path from token embeddings, so prompts can carry learned vectors.

The attention mask is causal, so nothing after the last end-of-text token reaches any EOT feature: running
the encoder only up to the longest EOT position (`cut=True`) gives the same features for less work. For the same
reason, the hidden states of leading positions that every prompt of a group shares (SOS and a unified context
before the class name: CoOp's default layout) are the same in every prompt: `prefix` computes them once per
group, and the rest of each prompt attends to them (`share_prefix=True`, exact up to float rounding).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def tokenize(tokenizer, texts: list[str]) -> torch.Tensor:
    return tokenizer(texts)


class TextEncoder(nn.Module):
    """x + positional embedding -> causal transformer -> ln_final -> EOT token -> text projection."""

    def __init__(self, clip_model: nn.Module, cut: bool = True, share_prefix: bool = True):
        super().__init__()
        self.transformer = clip_model.transformer
        self.positional_embedding = clip_model.positional_embedding
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        self.register_buffer("attn_mask", clip_model.attn_mask, persistent=False)
        self.cut = cut
        self.share_prefix = share_prefix and _plain_blocks(self.transformer)

    @property
    def dtype(self) -> torch.dtype:
        return self.positional_embedding.dtype

    def forward(self, prompts: torch.Tensor, eot: torch.Tensor, prefix: int = 0, groups: int = 1) -> torch.Tensor:
        """prompts: (N, 77, D) token embeddings; eot: (N,) index of each EOT token. With `prefix` > 1 (and
        `share_prefix`), the N rows are `groups` consecutive groups whose prompts share their first `prefix`
        embeddings (the caller guarantees it), computed once per group."""
        n = int(eot.max()) + 1 if self.cut else prompts.shape[1]
        x = prompts[:, :n] + self.positional_embedding[:n].to(prompts.dtype)
        if self.share_prefix and 1 < prefix <= int(eot.min()) and x.shape[0] > groups:
            x = self._shared_forward(x, prefix, groups)
            x = self.ln_final(x)
            x = x[torch.arange(x.shape[0], device=x.device), eot - prefix]
        else:
            x = self.transformer(x, attn_mask=self.attn_mask[:n, :n].to(prompts.dtype))
            x = self.ln_final(x)
            x = x[torch.arange(x.shape[0], device=x.device), eot]
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection(x)
        return x @ self.text_projection.to(x.dtype)

    def _shared_forward(self, x: torch.Tensor, prefix: int, groups: int) -> torch.Tensor:
        """The transformer with the shared prefix of each group computed once: returns the hidden states of
        the positions after the prefix, (N, n - prefix, D)."""
        rows = x.shape[0] // groups
        p = x[::rows, :prefix]                    # (groups, P, D): each group's first prompt carries the prefix
        s = x[:, prefix:]                         # (N, S, D)
        size = s.shape[1]
        causal = torch.ones(size, size, dtype=torch.bool, device=x.device).tril()
        mask = torch.cat([torch.ones(size, prefix, dtype=torch.bool, device=x.device), causal], dim=1)
        for block in self.transformer.resblocks:
            attn = block.attn
            heads = attn.num_heads
            qp, kp, vp = _heads(F.linear(block.ln_1(p), attn.in_proj_weight, attn.in_proj_bias), heads)
            qs, ks, vs = _heads(F.linear(block.ln_1(s), attn.in_proj_weight, attn.in_proj_bias), heads)
            # every row of a group attends to its group's prefix keys and values, then causally to its own
            kp_rows, vp_rows = kp.repeat_interleave(rows, dim=0), vp.repeat_interleave(rows, dim=0)
            ap = F.scaled_dot_product_attention(qp, kp, vp, is_causal=True)
            as_ = F.scaled_dot_product_attention(qs, torch.cat([kp_rows, ks], 2), torch.cat([vp_rows, vs], 2),
                                                 attn_mask=mask)
            p = p + block.ls_1(attn.out_proj(_merge(ap)))
            s = s + block.ls_1(attn.out_proj(_merge(as_)))
            p = p + block.ls_2(block.mlp(block.ln_2(p)))
            s = s + block.ls_2(block.mlp(block.ln_2(s)))
        return s


def _plain_blocks(transformer: nn.Module) -> bool:
    """Whether every block is open_clip's plain pre-norm block (what `_shared_forward` re-implements)."""
    from open_clip.transformer import ResidualAttentionBlock

    def plain(b: nn.Module) -> bool:
        return (type(b) is ResidualAttentionBlock and isinstance(b.attn, nn.MultiheadAttention)
                and b.attn._qkv_same_embed_dim and not hasattr(b, "ln_1_kv"))

    blocks = list(getattr(transformer, "resblocks", []))
    return bool(blocks) and bool(getattr(transformer, "batch_first", False)) and all(plain(b) for b in blocks)


def _heads(qkv: torch.Tensor, heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, T, 3D) -> q, k, v of shape (B, heads, T, D / heads)."""
    b, t, _ = qkv.shape
    return qkv.view(b, t, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)


def _merge(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, T, d) -> (B, T, heads * d)."""
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


@torch.no_grad()
def encode_texts(clip_model: nn.Module, tokenizer, texts: list[str], cut: bool = True,
                 batch_size: int = 1000) -> torch.Tensor:
    """Unnormalised text features of plain strings through the same path CoOp uses."""
    enc = TextEncoder(clip_model, cut=cut)
    device = clip_model.positional_embedding.device
    out = []
    for i in range(0, len(texts), batch_size):
        tokens = tokenize(tokenizer, texts[i:i + batch_size]).to(device)
        emb = clip_model.token_embedding(tokens).to(enc.dtype)
        out.append(enc(emb, tokens.argmax(dim=-1)))
    return torch.cat(out)
