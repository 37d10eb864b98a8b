"""`load_clip`: open_clip models by name with a pretrained tag, a local checkpoint, or seeded random weights."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch
from torch import nn

CONFIG_DIR = Path(__file__).parent / "configs"
RANDOM = ("random", "none", "")
open_clip.add_model_config(CONFIG_DIR)  # the toy world's tiny CLIPs, e.g. "toy-rn", "toy-vit"


class BackboneError(ValueError):
    """An unknown model name, pretrained tag or missing checkpoint."""


@dataclass
class Clip:
    model: nn.Module       # open_clip CLIP, frozen and in eval mode
    tokenizer: object      # open_clip tokenizer for this model
    name: str              # open_clip model name
    pretrained: str        # tag, checkpoint path, or "random"
    image_size: int


def _check_name(name: str) -> None:
    if name not in open_clip.list_models():
        close = [m for m in open_clip.list_models() if name.lower().split("-")[0] in m.lower()][:8]
        raise BackboneError(
            f"Unknown backbone {name!r}. Use an open_clip model name (e.g. RN50-quickgelu, ViT-B-16-quickgelu) "
            f"or a toy model (toy-rn, toy-vit){'; similar: ' + ', '.join(close) if close else ''}."
        )


def _is_path(pretrained: str) -> bool:
    return "/" in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors"))


def load_clip(
    name: str, pretrained: str | None = "random", device: str | torch.device = "cpu",
    init_seed: int = 0, cache_dir: str | None = None,
) -> Clip:
    """Build a frozen CLIP: `pretrained` is an open_clip tag (e.g. "openai", fetched through open_clip's
    cache), a local checkpoint path, or "random" (weights drawn from `init_seed`, identical in every job)."""
    _check_name(name)
    pretrained = pretrained or "random"
    if pretrained in RANDOM:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            model = open_clip.create_model(name, pretrained=None, device=device)
        pretrained = "random"
    elif _is_path(pretrained):
        if not Path(pretrained).is_file():
            raise BackboneError(f"Checkpoint for {name!r} not found: {pretrained}. Check the backbone's path.")
        model = open_clip.create_model(name, pretrained=pretrained, device=device, weights_only=True)
    else:
        tags = open_clip.list_pretrained_tags_by_model(name)
        if pretrained not in tags:
            raise BackboneError(
                f"Unknown pretrained tag {pretrained!r} for {name!r}; open_clip knows: {', '.join(tags) or 'none'}. "
                "Or give a local checkpoint path, or 'random'."
            )
        model = open_clip.create_model(name, pretrained=pretrained, device=device, cache_dir=cache_dir)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    return Clip(model, open_clip.get_tokenizer(name), name, str(pretrained), size)
