"""`load_clip`: open_clip models by name (built-in, a model-config JSON of one's own, local-dir:, hf-hub:) with
a pretrained tag, a local checkpoint, the toy world's weights, the weights a folder carries, or seeded random
weights. What names and `pretrained` values mean is decided in coop.models.names."""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path

import open_clip
import torch
from torch import nn

from coop.io import torch_load_reason
from coop.models.checkpoint import compact_metadata, load_compact, seeded_model
from coop.models.names import (  # noqa: F401 - re-exported: the names that used to live here
    CONFIG_DIR, RANDOM, SHIPPED_DIR, TOYWORLD, BackboneError, ModelRef, Weights, parse_model, parse_pretrained,
    read_model_config, shipped_weights,
)
from coop.models.online import hf_hub_message, hub_access, tag_access
from coop.models.transforms import Preprocess

open_clip.add_model_config(CONFIG_DIR)  # the toy world's tiny CLIPs, e.g. "toy-rn", "toy-vit"
_REGISTERED: dict[str, tuple[str, dict]] = {}  # config file content hash -> (open_clip name, preprocess_cfg)
_REGISTRY_DIR: tempfile.TemporaryDirectory | None = None


@dataclass
class Clip:
    model: nn.Module       # open_clip CLIP, frozen and in eval mode
    tokenizer: object      # open_clip tokenizer for this model
    name: str              # the model's canonical name (ModelRef.canonical: what cache keys record)
    pretrained: str        # Weights.canonical: tag, checkpoint path, "toyworld", "bundled" or "random"
    image_size: int
    preprocess: Preprocess  # the model's open_clip preprocess config (size, mean, std, interpolation, ...)


def _check_open_clip_cfg(path: str, cfg: dict) -> None:
    """What open_clip's constructors would reject (unknown keys, a tower config of the wrong type), said before
    any weights are read."""
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    known = {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu", "init_logit_scale", "init_logit_bias",
             "nonscalar_logit_scale", "output_dict", "custom_text", "multimodal_cfg"}
    for key, keys in ((None, set(cfg)), ("vision_cfg", set(cfg["vision_cfg"])), ("text_cfg", set(cfg["text_cfg"]))):
        allowed = known if key is None else {f.name for f in fields(CLIPVisionCfg if key == "vision_cfg"
                                                                     else CLIPTextCfg)}
        unknown = sorted(keys - allowed)
        if unknown:
            import difflib

            hints = [f"{u!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(u, allowed, 1)) else repr(u)
                     for u in unknown]
            raise BackboneError(
                f"Model config {path}: unknown {'key' if key is None else key + ' key'}"
                f"{'s' if len(unknown) > 1 else ''} {', '.join(hints)}, which open_clip rejects. Use open_clip's "
                f"names ({', '.join(sorted(allowed))}); see coop/models/configs/toy-rn.json for one that works."
            )


def open_clip_name(model: str | ModelRef) -> tuple[str, dict]:
    """The name open_clip knows `model` by, and the preprocess values its config file sets. A model-config
    JSON of one's own is checked and registered under a name of its content (never its file name, so it cannot
    shadow a built-in of the same name)."""
    global _REGISTRY_DIR
    ref = parse_model(model)
    if ref.kind == "builtin":
        return ref.value, {}
    if ref.kind == "hf-hub":
        return f"hf-hub:{ref.value}", {}
    model_cfg, pp = read_model_config(ref)
    _check_open_clip_cfg(ref.file, model_cfg)
    if ref.kind == "local-dir":
        return f"local-dir:{Path(ref.value).expanduser()}", {}  # open_clip reads the folder's preprocess_cfg
    digest = hashlib.sha256(json.dumps(model_cfg, sort_keys=True).encode()).hexdigest()[:12]
    if digest not in _REGISTERED:
        if _REGISTRY_DIR is None:
            _REGISTRY_DIR = tempfile.TemporaryDirectory(prefix="coop-model-configs-")
        name = f"coop-config-{Path(ref.file).stem.replace('/', '-')}-{digest}"
        path = Path(_REGISTRY_DIR.name) / f"{name}.json"
        path.write_text(json.dumps(model_cfg))
        open_clip.add_model_config(path)
        _REGISTERED[digest] = (name, pp)
    name, _ = _REGISTERED[digest]
    return name, pp


def create_model(model: str | ModelRef, pretrained: str | None = None, **kw) -> nn.Module:
    """open_clip.create_model for any model name of coop.models.names, the preprocess values of a config file
    applied (open_clip reads them itself only from local-dir/hf-hub folders). Without `pretrained`, open_clip's
    "No pretrained weights loaded ... Model initialized randomly" warning is dropped: the caller then draws
    seeded weights or writes its own over them (the toy world's), and the run records which."""
    name, pp = open_clip_name(model)
    if pretrained is not None or kw.get("require_pretrained"):
        return open_clip.create_model(name, pretrained=pretrained, force_preprocess_cfg=pp or None, **kw)
    with _without_random_init_warning():
        return open_clip.create_model(name, pretrained=None, force_preprocess_cfg=pp or None, **kw)


class _DropRandomInitWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Model initialized randomly" not in record.getMessage()


@contextlib.contextmanager
def _without_random_init_warning():
    """open_clip warns through the root logger (logging.warning): filter that one message while it runs."""
    drop = _DropRandomInitWarning()
    root = logging.getLogger()  # a record logged on the root logger passes the root's own filters
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def get_tokenizer(model: str | ModelRef, cache_dir: str | None = None):
    return open_clip.get_tokenizer(open_clip_name(model)[0], cache_dir=cache_dir)


def load_clip(
    name: str | ModelRef, pretrained: str | None = None, device: str | torch.device = "cpu",
    init_seed: int = 0, cache_dir: str | None = None,
) -> Clip:
    """Build a frozen CLIP. `name` is any model name of coop.models.names (a built-in name, a model-config
    JSON, local-dir:/folder, hf-hub:org/repo); `pretrained` an open_clip tag (e.g. "openai", fetched through
    open_clip's cache), "toyworld" (a toy model's shipped weights, pretrained on the toy world), a local
    checkpoint path, "bundled" (a local-dir/hf-hub model's own weights), "random" (weights drawn from
    `init_seed`, identical in every job), or None: the backbone's default (names.default_pretrained)."""
    ref = parse_model(name)
    weights = parse_pretrained(pretrained, ref)
    open_clip_name(ref)  # a bad config file is reported here, before any weights are read
    with hub_access(ref, cache_dir), tag_access(ref, weights, cache_dir):
        model = _build(ref, weights, device, init_seed, cache_dir)
        tokenizer = get_tokenizer(ref, cache_dir)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    pp = Preprocess.from_open_clip(model.visual.preprocess_cfg)
    return Clip(model, tokenizer, ref.canonical, weights.canonical, pp.hw[0], pp)


def _build(ref: ModelRef, weights: Weights, device, init_seed: int, cache_dir: str | None) -> nn.Module:
    if weights.kind == "random":
        return seeded_model(ref, init_seed, device)
    if weights.kind == "toyworld" or (weights.kind == "checkpoint" and compact_metadata(weights.value)):
        return _load_compact(ref, Path(weights.file), device)
    if weights.kind == "checkpoint":
        if not Path(weights.value).is_file():
            raise BackboneError(
                f"Checkpoint for {ref.canonical!r} not found: {weights.value}. Give the path of an existing "
                "checkpoint file (a state dict saved with torch.save, or .safetensors), an open_clip pretrained tag "
                "(e.g. openai), or 'random'; in the workflow, fix the backbone's `pretrained` in the config."
            )
        try:
            # weights_only: a pickle that would run code or build arbitrary objects is refused, never executed
            return create_model(ref, weights.value, device=device, weights_only=True)
        except torch.OutOfMemoryError:
            raise
        except Exception as e:  # UnpicklingError, a zip/safetensors error, or a state dict of another model
            raise BackboneError(
                f"Checkpoint {weights.value} cannot be loaded as {ref.canonical!r} weights ({torch_load_reason(e)}). "
                "It must be a state dict of this model saved with torch.save (plain tensors only: it is loaded "
                "with weights_only=True, so pickled objects or code are refused) or a .safetensors file. Check "
                "that the path and the model name belong together, or re-download the checkpoint."
            ) from None
    if weights.kind == "tag":
        tags = open_clip.list_pretrained_tags_by_model(ref.value)
        if weights.value not in tags:
            raise BackboneError(
                f"Unknown pretrained tag {weights.value!r} for {ref.canonical!r}; open_clip knows: "
                f"{', '.join(tags) or 'none'}. Or give a local checkpoint path, or 'random'."
            )
        return create_model(ref, weights.value, device=device, cache_dir=cache_dir)
    return _load_bundled(ref, weights, device, cache_dir)  # the weights of a local-dir folder or a hub repo


def _load_bundled(ref: ModelRef, weights: Weights, device, cache_dir: str | None) -> nn.Module:
    if ref.kind == "local-dir" and weights.file is None:
        raise BackboneError(
            f"No weights in {ref.value} (from {ref.canonical!r}): open_clip looks for "
            "open_clip_model.safetensors (or open_clip_pytorch_model.bin, model.safetensors, ...) beside "
            "open_clip_config.json. Put the weights there, or give --pretrained random for seeded initial weights."
        )
    try:
        return create_model(ref, device=device, cache_dir=cache_dir, weights_only=True, require_pretrained=True)
    except torch.OutOfMemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - a hub error, a damaged file, or weights of another architecture
        if ref.kind == "hf-hub":
            raise BackboneError(hf_hub_message(ref, cache_dir, f"{type(e).__name__}: {str(e)[:300]}")) from None
        raise BackboneError(
            f"Weights {weights.file} cannot be loaded as {ref.canonical!r} ({torch_load_reason(e)}). They must be "
            "a state dict of the model that open_clip_config.json describes (.safetensors, or plain tensors saved "
            "with torch.save); check that the folder's files belong together."
        ) from None


def _load_compact(ref: ModelRef, path: Path, device: str | torch.device) -> nn.Module:
    name = ref.canonical
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
