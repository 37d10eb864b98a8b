"""CLIP's text path from token embeddings, so prompts can carry learned vectors.

The attention mask is causal, so nothing after the last end-of-text token reaches any EOT feature: running
the encoder only up to the longest EOT position (`cut=True`) gives the same features for less work.
"""
from __future__ import annotations

import torch
from torch import nn


def tokenize(tokenizer, texts: list[str]) -> torch.Tensor:
    return tokenizer(texts)


class TextEncoder(nn.Module):
    """x + positional embedding -> causal transformer -> ln_final -> EOT token -> text projection."""

    def __init__(self, clip_model: nn.Module, cut: bool = True):
        super().__init__()
        self.transformer = clip_model.transformer
        self.positional_embedding = clip_model.positional_embedding
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        self.register_buffer("attn_mask", clip_model.attn_mask, persistent=False)
        self.cut = cut

    @property
    def dtype(self) -> torch.dtype:
        return self.positional_embedding.dtype

    def forward(self, prompts: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        """prompts: (N, 77, D) token embeddings; eot: (N,) index of each EOT token."""
        n = int(eot.max()) + 1 if self.cut else prompts.shape[1]
        x = prompts[:, :n] + self.positional_embedding[:n].to(prompts.dtype)
        x = self.transformer(x, attn_mask=self.attn_mask[:n, :n].to(prompts.dtype))
        x = self.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot]
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection(x)
        return x @ self.text_projection.to(x.dtype)


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
