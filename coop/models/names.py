"""Backbone names and weights, parsed once: what a model name and a `pretrained` value mean, and a backbone's
default weights. Light (no torch, no open_clip at import), so the workflow and the CLI parse names cheaply.

A model name is, as in open_clip's `create_model`:
  * a built-in name: open_clip's model configs or this repo's (`coop/models/configs/*.json`: toy-rn, toy-vit);
  * a model-config JSON of the user's own: `/path/my-clip.json` or `config:/path/my-clip` (open_clip's model
    config: embed_dim, vision_cfg, text_cfg; optionally beside them, or in open_clip_config.json's layout
    {"model_cfg": ..., "preprocess_cfg": ...}, a "preprocess_cfg" with size/mean/std/interpolation/resize_mode);
  * `local-dir:/path`: a folder with open_clip_config.json and its weights (e.g. open_clip_model.safetensors);
  * `hf-hub:org/repo`: the same on the Hugging Face Hub (through its local cache; offline only if cached).

A `pretrained` value is "random" (also "none" or ""; seeded initial weights), "toyworld" (a toy model's shipped
weights), an open_clip tag (openai, laion2b_s34b_b79k, ...), a local checkpoint path, or "bundled" (the
weights that a local-dir/hf-hub model carries). None means the backbone's default (`default_pretrained`).
"""
from __future__ import annotations

import difflib
import importlib.util
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CONFIG_DIR = Path(__file__).parent / "configs"  # the toy world's tiny CLIPs
SHIPPED_DIR = Path(__file__).parent / "pretrained"  # their weights, made by `coop pretrain` (the toyworld tag)
TOYWORLD = "toyworld"
BUNDLED = "bundled"
RANDOM = ("random", "none", "")
HF_HUB, LOCAL_DIR, CONFIG = "hf-hub:", "local-dir:", "config:"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
# open_clip's _find_checkpoint_in_dir: the weights file a local-dir folder loads, in its order of preference
DIR_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin",
               "open_clip_pytorch_model.pth", "model.safetensors", "pytorch_model.bin", "pytorch_model.pth",
               "model.pth")
PREPROCESS_KEYS = ("size", "mode", "mean", "std", "interpolation", "resize_mode", "fill_color")  # PreprocessCfg
INTERPOLATIONS, RESIZE_MODES = ("bicubic", "bilinear", "random"), ("shortest", "longest", "squash")


class BackboneError(ValueError):
    """An unknown model name, a bad model config, a pretrained value that does not fit, or missing weights."""


@dataclass(frozen=True)
class ModelRef:
    kind: str       # "builtin" | "config" | "local-dir" | "hf-hub"
    value: str      # the built-in name, the config file, the folder, or the hub repo id
    canonical: str  # the name in cache keys and results: the name, the config path, "local-dir:P", "hf-hub:ID"
    file: str | None  # the local file that defines the model (config JSON, open_clip_config.json), if any

    @property
    def toy(self) -> bool:
        """One of this repo's tiny CLIPs (coop/models/configs/)."""
        return self.kind == "builtin" and (CONFIG_DIR / f"{self.value}.json").is_file()


@dataclass(frozen=True)
class Weights:
    kind: str       # "random" | "toyworld" | "tag" | "checkpoint" | "bundled"
    value: str      # the tag or the checkpoint path as given; "" for random
    file: str | None  # the local file the weights are read from (a workflow input), if any
    canonical: str  # for cache keys and results: "random", "toyworld", the tag, the path, "bundled"


@lru_cache(maxsize=1)
def _builtin_configs() -> dict[str, Path]:
    """name -> config file of open_clip's registry and this repo's configs, as open_clip registers them (a JSON
    with embed_dim, vision_cfg and text_cfg), found without importing open_clip."""
    spec = importlib.util.find_spec("open_clip")
    dirs = [Path(p) / "model_configs" for p in (spec.submodule_search_locations or [])] if spec else []
    out = {}
    for d in dirs + [CONFIG_DIR]:
        for f in sorted(d.glob("*.json")):
            try:
                cfg = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(cfg, dict) and all(k in cfg for k in ("embed_dim", "vision_cfg", "text_cfg")):
                out[f.stem] = f
    return out


def builtin_names() -> list[str]:
    return sorted(_builtin_configs())


def parse_model(name: str | ModelRef) -> ModelRef:
    """What a model name refers to (see the module docstring); a BackboneError for an unknown name."""
    if isinstance(name, ModelRef):
        return name
    name = str(name or "").strip()
    for prefix, kind in ((HF_HUB, "hf-hub"), (LOCAL_DIR, "local-dir")):
        if name.startswith(prefix):
            value = name[len(prefix):].strip()
            if not value:
                raise BackboneError(f"Backbone {name!r} names no {'folder' if kind == 'local-dir' else 'repo'}: "
                                    f"write {prefix}{'/path/to/folder' if kind == 'local-dir' else 'org/repo'}.")
            file = str(Path(value).expanduser() / "open_clip_config.json") if kind == "local-dir" else None
            return ModelRef(kind, value, prefix + value, file)
    if name.startswith(CONFIG) or name.endswith(".json"):
        value = name[len(CONFIG):].strip() if name.startswith(CONFIG) else name
        return ModelRef("config", value, value, str(Path(value).expanduser()))
    if name in _builtin_configs():
        return ModelRef("builtin", name, name, str(_builtin_configs()[name]))
    models = builtin_names()
    close = difflib.get_close_matches(name, models, n=4, cutoff=0.5)
    close += [m for m in models if name and name.lower().split("-")[0] in m.lower() and m not in close]
    close = close[:8]
    raise BackboneError(
        f"Unknown backbone {name!r}. Use an open_clip model name (e.g. RN50-quickgelu, ViT-B-16-quickgelu) "
        f"or a toy model (toy-rn, toy-vit){'; similar: ' + ', '.join(close) if close else ''}. A model of your "
        "own: the path of its model-config JSON (e.g. a copy of coop/models/configs/toy-rn.json), "
        "local-dir:/folder (open_clip_config.json + weights) or hf-hub:org/repo."
    )


def _is_path(pretrained: str) -> bool:
    return "/" in pretrained or "\\" in pretrained or pretrained.endswith(CHECKPOINT_SUFFIXES)


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


def dir_weights(folder: str | Path) -> Path | None:
    """The weights file open_clip loads from a local-dir folder (its preferred names first), or None."""
    folder = Path(folder).expanduser()
    found = sorted(p for ext in ("*.safetensors", "*.bin", "*.pth") for p in folder.glob(ext))
    preferred = [folder / n for n in DIR_WEIGHTS if (folder / n) in found]
    found.sort(key=lambda p: p.suffix != ".safetensors")
    return (preferred or found or [None])[0]


def default_pretrained(model: str | ModelRef) -> str:
    """A backbone's default weights, the one place that decides them: a toy model's `toyworld` weights, an
    open_clip model's `openai` weights where open_clip has them, a local-dir/hf-hub model's own ("bundled").
    Any other model has no default (random weights are never chosen silently): a BackboneError asks for one."""
    ref = parse_model(model)
    if ref.kind in ("local-dir", "hf-hub"):
        return BUNDLED
    if ref.toy:
        shipped_weights(ref.value)
        return TOYWORLD
    if ref.kind == "config":
        raise BackboneError(
            f"Backbone {ref.canonical!r} (a model config of your own) has no default weights: give --pretrained "
            "with a checkpoint of this architecture (a state dict, .pt or .safetensors), or 'random' for seeded "
            "initial weights; in the workflow, set the backbone's `pretrained`."
        )
    from open_clip.pretrained import list_pretrained_tags_by_model  # only here: it imports torch

    tags = list_pretrained_tags_by_model(ref.value)
    if "openai" in tags:
        return "openai"
    raise BackboneError(
        f"Backbone {ref.value!r} has no default weights (open_clip has no 'openai' weights for it): give "
        f"--pretrained with one of open_clip's tags for it ({', '.join(tags) or 'none'}), a local checkpoint "
        "path, or 'random'; in the workflow, set the backbone's `pretrained`."
    )


def parse_pretrained(pretrained: str | None, model: str | ModelRef) -> Weights:
    """What `pretrained` means for `model` (None: the model's default). Checks what needs no torch: a tag is
    checked against open_clip's list by load_clip, a checkpoint path's existence when it is loaded (in the
    workflow another rule may write it)."""
    ref = parse_model(model)
    if pretrained is None:
        pretrained = default_pretrained(ref)
    pretrained = str(pretrained).strip()
    if pretrained in RANDOM:
        return Weights("random", "", None, "random")
    if pretrained == BUNDLED or ref.kind in ("local-dir", "hf-hub"):
        if pretrained != BUNDLED:
            raise BackboneError(
                f"Backbone {ref.canonical!r} carries its own weights, so --pretrained {pretrained!r} does not "
                f"apply: leave it unset (or '{BUNDLED}') for them, or give 'random' for seeded initial weights. "
                "Other weights: a built-in name or a model-config JSON with --pretrained PATH."
            )
        if ref.kind not in ("local-dir", "hf-hub"):
            raise BackboneError(f"'{BUNDLED}' weights come with local-dir:/hf-hub: models, not {ref.canonical!r}: "
                                "give an open_clip tag, a checkpoint path, or 'random'.")
        file = dir_weights(ref.value) if ref.kind == "local-dir" and Path(ref.value).expanduser().is_dir() else None
        return Weights("bundled", "", str(file) if file else None, BUNDLED)
    if pretrained == TOYWORLD:
        name = ref.value if ref.kind == "builtin" else ref.canonical
        return Weights("toyworld", TOYWORLD, str(shipped_weights(name)), TOYWORLD)
    if _is_path(pretrained):
        return Weights("checkpoint", pretrained, pretrained, pretrained)
    if ref.kind == "config":
        raise BackboneError(
            f"Pretrained {pretrained!r} for {ref.canonical!r}: open_clip's tags belong to its built-in model "
            "names, not to a model config of your own. Give a checkpoint path of this architecture, or 'random'."
        )
    return Weights("tag", pretrained, None, pretrained)


def canonical_pretrained(pretrained: str | None, model: str | ModelRef) -> str:
    """The string that cache keys and results record for `pretrained` of `model`."""
    return parse_pretrained(pretrained, model).canonical


def _problem(path: str, problem: str, fix: str) -> BackboneError:
    return BackboneError(f"Model config {path}: {problem}. {fix}")


def read_model_config(model: str | ModelRef) -> tuple[dict, dict]:
    """(model_cfg, preprocess_cfg) of a config-JSON or local-dir model, checked before any weights are read:
    a BackboneError names the file, the problem and the fix."""
    ref = parse_model(model)
    if ref.kind not in ("config", "local-dir"):
        raise ValueError(f"{ref.canonical!r} is not defined by a local config file")
    path = ref.file
    example = "see coop/models/configs/toy-rn.json for one that works"
    if ref.kind == "local-dir" and not Path(ref.value).expanduser().is_dir():
        raise BackboneError(f"Backbone folder not found: {ref.value} (from {ref.canonical!r}). Give an existing "
                            "folder holding open_clip_config.json and the weights (e.g. open_clip_model.safetensors).")
    if not Path(path).is_file():
        raise _problem(path, "file not found", "Give the path of an existing JSON file (for local-dir: the folder "
                       "must hold open_clip_config.json, e.g. as written by open_clip's push_to_hf_hub)")
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise _problem(path, f"unreadable ({type(e).__name__}: {e})", "Give a readable JSON file") from None
    except ValueError as e:
        raise _problem(path, f"not valid JSON ({e})", f"Fix the JSON syntax; {example}") from None
    if not isinstance(raw, dict):
        raise _problem(path, f"holds a {type(raw).__name__}, not a JSON object", example[0].upper() + example[1:])
    if ref.kind == "local-dir" and "model_cfg" not in raw:
        raise _problem(path, "has no 'model_cfg'", 'Write it as {"model_cfg": {...}, "preprocess_cfg": {...}}, '
                       "the layout open_clip reads from a local-dir folder")
    model_cfg = raw["model_cfg"] if "model_cfg" in raw else {k: v for k, v in raw.items() if k != "preprocess_cfg"}
    pp = raw.get("preprocess_cfg", {})
    if not isinstance(model_cfg, dict):
        raise _problem(path, f"'model_cfg' is a {type(model_cfg).__name__}, not an object", example)
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in model_cfg]
    if missing:
        raise _problem(path, f"missing {', '.join(repr(k) for k in missing)}",
                       f"An open_clip model config needs embed_dim, vision_cfg and text_cfg; {example}")
    if not _positive_int(model_cfg["embed_dim"]):
        raise _problem(path, f"'embed_dim' is {model_cfg['embed_dim']!r}, not a positive integer",
                       f"Give the joint embedding width, e.g. 128; {example}")
    for key in ("vision_cfg", "text_cfg"):
        if not isinstance(model_cfg[key], dict):
            raise _problem(path, f"{key!r} is a {type(model_cfg[key]).__name__}, not an object",
                           f"Write {key} as an object of the tower's settings (layers, width, ...); {example}")
    size = model_cfg["vision_cfg"].get("image_size", 224)
    if not (_positive_int(size) or (isinstance(size, list) and len(size) == 2 and all(map(_positive_int, size)))):
        raise _problem(path, f"vision_cfg.image_size is {size!r}", "Give an integer (e.g. 224) or [height, width]")
    return model_cfg, _check_preprocess(path, pp)


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _check_preprocess(path: str, pp) -> dict:
    fix = ('e.g. "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "interpolation": "bicubic", '
           '"resize_mode": "shortest"}')
    if not isinstance(pp, dict):
        raise _problem(path, f"'preprocess_cfg' is a {type(pp).__name__}, not an object", f"Write it as {fix}")
    unknown = sorted(set(pp) - set(PREPROCESS_KEYS))
    if unknown:
        raise _problem(path, f"preprocess_cfg has unknown keys {unknown}", f"Known: {', '.join(PREPROCESS_KEYS)}")
    for key in ("mean", "std"):
        v = pp.get(key)
        if v is None:
            continue
        vals = [v] * 3 if isinstance(v, (int, float)) and not isinstance(v, bool) else v
        if not (isinstance(vals, list) and len(vals) == 3 and all(isinstance(x, (int, float))
                                                                 and not isinstance(x, bool) for x in vals)):
            raise _problem(path, f"preprocess_cfg.{key} is {v!r}", f"Give three numbers (R, G, B), {fix}")
        if key == "std" and min(vals) <= 0:
            raise _problem(path, f"preprocess_cfg.std is {v!r}", "Every std must be > 0")
    for key, allowed in (("interpolation", INTERPOLATIONS), ("resize_mode", RESIZE_MODES), ("mode", ("RGB",))):
        if pp.get(key) is not None and pp[key] not in allowed:
            raise _problem(path, f"preprocess_cfg.{key} is {pp[key]!r}", f"Use one of {', '.join(allowed)}")
    return dict(pp)
