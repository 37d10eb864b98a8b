"""The modules of the Table 5 baselines (coop.methods.text_heads, coop.methods.finetune_image): learned heads on
the zero-shot text features, the classifier around them, and the image-tower fine-tuning classifier."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().float().cpu().numpy())


class TextBias(nn.Module):
    """text + bias; bias (n_cls, D) per class, or (D,) shared by all classes; zero at init."""

    artifact = "text_bias.safetensors"

    def __init__(self, n_cls: int, dim: int, shared: bool = False):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(dim if shared else (n_cls, dim)))

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return text + self.bias

    def tensors(self) -> dict[str, np.ndarray]:
        return {"bias": to_numpy(self.bias)}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            self.bias.copy_(tensors["bias"])


class TextTransform(nn.Module):
    """text @ weight.T + bias, a D x D linear layer initialised to the identity (bias 0)."""

    artifact = "text_transform.safetensors"

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        with torch.no_grad():
            self.linear.weight.copy_(torch.eye(dim))
            self.linear.bias.zero_()

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return self.linear(text)

    def tensors(self) -> dict[str, np.ndarray]:
        return {"weight": to_numpy(self.linear.weight), "bias": to_numpy(self.linear.bias)}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            self.linear.weight.copy_(tensors["weight"])
            self.linear.bias.copy_(tensors["bias"])


class TextHeadClassifier(nn.Module):
    """Frozen image encoder + (zero-shot text features -> learned head) -> CLIP's scaled cosine logits."""

    def __init__(self, visual: nn.Module, text: torch.Tensor, head: nn.Module, logit_scale: torch.Tensor):
        super().__init__()
        self.visual = visual
        self.head = head
        self.register_buffer("text", text, persistent=False)  # (n_cls, D) normalised zero-shot features
        self.logit_scale = logit_scale

    def text_features(self) -> torch.Tensor:
        # Normalised AFTER the bias / linear layer: the classifier stays a cosine classifier.
        return F.normalize(self.head(self.text), dim=-1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            img = F.normalize(self.visual(images), dim=-1)
        return self.logit_scale.exp() * img @ self.text_features().t().to(img.dtype)

    def train(self, mode: bool = True):
        super().train(mode)
        self.visual.eval()  # the frozen encoder stays in eval mode (BatchNorm statistics too)
        return self


class FinetuneImageClassifier(nn.Module):
    """Trainable image encoder + fixed normalised zero-shot text classifier -> scaled cosine logits."""

    def __init__(self, visual: nn.Module, text: torch.Tensor, logit_scale: torch.Tensor, bn_train: bool = False):
        super().__init__()
        self.visual = visual
        self.register_buffer("text", text, persistent=False)
        self.logit_scale = logit_scale
        self.bn_train = bn_train

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        img = F.normalize(self.visual(images), dim=-1)
        return self.logit_scale.exp() * img @ self.text.t().to(img.dtype)

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.bn_train:  # keep the pretrained running statistics (FinetuneImageConfig)
            for m in self.visual.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self


class ImageEncoder(nn.Module):
    """Just enough of a CLIP model for `extract_features`: `encode_image` with a given image tower."""

    def __init__(self, visual: nn.Module, embed_dim: int):
        super().__init__()
        self.visual = visual
        self.register_buffer("text_projection", torch.empty(0, embed_dim), persistent=False)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.visual(images)
