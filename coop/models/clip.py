"""`load_clip`: open_clip models by name with a pretrained tag, a local checkpoint, or seeded random weights."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch
from torch import nn

from coop.io import torch_load_reason
from coop.models.checkpoint import compact_metadata, load_compact, seeded_model

CONFIG_DIR = Path(__file__).parent / "configs"
SHIPPED_DIR = Path(__file__).parent / "pretrained"  # the toy CLIPs' weights, made by `coop pretrain`
TOYWORLD = "toyworld"  # the tag of those weights
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
        import difflib

        models = open_clip.list_models()
        close = difflib.get_close_matches(name, models, n=4, cutoff=0.5)
        close += [m for m in models if name.lower().split("-")[0] in m.lower() and m not in close]
        close = close[:8]
        raise BackboneError(
            f"Unknown backbone {name!r}. Use an open_clip model name (e.g. RN50-quickgelu, ViT-B-16-quickgelu) "
            f"or a toy model (toy-rn, toy-vit){'; similar: ' + ', '.join(close) if close else ''}."
        )


def _is_path(pretrained: str) -> bool:
    return "/" in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors"))


def shipped_weights(name: str) -> Path:
    """The file behind the `toyworld` tag of a toy model."""
    path = SHIPPED_DIR / f"{name}.safetensors"
    if not path.is_file():
        shipped = sorted(p.stem for p in SHIPPED_DIR.glob("*.safetensors"))
        raise BackboneError(
            f"No toyworld weights for {name!r}: the tag exists for {', '.join(shipped) or 'no model'} (files in "
            f"{SHIPPED_DIR}). Pretrain one with `coop pretrain --model {name} --out FILE` and give that path, or "
            "use 'random'."
        )
    return path


def load_clip(
    name: str, pretrained: str | None = "random", device: str | torch.device = "cpu",
    init_seed: int = 0, cache_dir: str | None = None,
) -> Clip:
    """Build a frozen CLIP: `pretrained` is an open_clip tag (e.g. "openai", fetched through open_clip's
    cache), "toyworld" (a toy model's shipped weights, pretrained on the toy world), a local checkpoint path,
    or "random" (weights drawn from `init_seed`, identical in every job)."""
    _check_name(name)
    pretrained = pretrained or "random"
    if pretrained in RANDOM:
        model = seeded_model(name, init_seed, device)
        pretrained = "random"
    elif pretrained == TOYWORLD:
        model = _load_compact(name, shipped_weights(name), device)
    elif _is_path(pretrained) and compact_metadata(pretrained) is not None:
        model = _load_compact(name, Path(pretrained), device)
    elif _is_path(pretrained):
        if not Path(pretrained).is_file():
            raise BackboneError(
                f"Checkpoint for {name!r} not found: {pretrained}. Give the path of an existing checkpoint file "
                "(a state dict saved with torch.save, or .safetensors), an open_clip pretrained tag (e.g. openai), "
                "or 'random'; in the workflow, fix the backbone's `pretrained` in the config."
            )
        try:
            # weights_only: a pickle that would run code or build arbitrary objects is refused, never executed
            model = open_clip.create_model(name, pretrained=pretrained, device=device, weights_only=True)
        except torch.OutOfMemoryError:
            raise
        except Exception as e:  # UnpicklingError, a zip/safetensors error, or a state dict of another model
            raise BackboneError(
                f"Checkpoint {pretrained} cannot be loaded as {name!r} weights ({torch_load_reason(e)}). It "
                "must be a state dict of this model saved with torch.save (plain tensors only: it is loaded "
                "with weights_only=True, so pickled objects or code are refused) or a .safetensors file. Check "
                "that the path and the model name belong together, or re-download the checkpoint."
            ) from None
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


def _load_compact(name: str, path: Path, device: str | torch.device) -> nn.Module:
    meta = compact_metadata(path)
    if meta is None or meta.get("model") != name:
        raise BackboneError(
            f"Checkpoint {path} holds weights of {meta.get('model') if meta else 'an unknown model'!r}, not "
            f"{name!r}: give the checkpoint of this model, or fix the backbone's `model` in the config."
        )
    try:
        return load_compact(path, device)
    except Exception as e:  # noqa: BLE001 - a damaged file: say which and how to get a good one
        raise BackboneError(
            f"Checkpoint {path} cannot be read ({type(e).__name__}: {str(e)[:200]}). Regenerate it with "
            f"`coop pretrain --model {name} --out {path}`."
        ) from None
