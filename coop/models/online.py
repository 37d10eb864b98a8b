"""Weights fetched over the network (an open_clip tag such as "openai", an hf-hub: model): read from the local
cache when they are there; when they are not and the server cannot be reached, fail within seconds (a 3 s
probe instead of the download client's retries, about a minute of tracebacks) with one message naming the
cache folder and the offline alternatives (a local checkpoint path, a local-dir: folder)."""
from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from coop.models.names import BackboneError, ModelRef, Weights

PROBE_SECONDS = 3.0


def _reachable(host: str) -> str | None:
    """None when `host`:443 accepts a connection within PROBE_SECONDS, else why not."""
    try:
        socket.create_connection((host, 443), timeout=PROBE_SECONDS).close()
        return None
    except OSError as e:
        return f"{host} cannot be reached ({e})"


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _hub_host() -> str:
    from huggingface_hub import constants

    return urlparse(constants.ENDPOINT).hostname or "huggingface.co"


@contextlib.contextmanager
def _hub_cache_only():
    from unittest import mock

    from huggingface_hub import constants

    with mock.patch.object(constants, "HF_HUB_OFFLINE", True):
        yield


@contextlib.contextmanager
def hub_access(ref: ModelRef, cache_dir: str | None):
    """Around loading an hf-hub: model: from the local cache alone when HF_HUB_OFFLINE is set or the Hub cannot
    be reached; offline, a model that is not in the cache fails at once with the fix."""
    if ref.kind != "hf-hub":
        yield
        return
    import huggingface_hub

    why = "HF_HUB_OFFLINE is set" if _hub_offline() else _reachable(_hub_host())
    cached = huggingface_hub.try_to_load_from_cache(ref.value, "open_clip_config.json", cache_dir=cache_dir)
    if why and not isinstance(cached, str):
        raise BackboneError(hf_hub_message(ref, cache_dir, f"{why} and it is not in the cache"))
    if not why:
        yield
        return
    with _hub_cache_only():
        yield


def hf_hub_message(ref: ModelRef, cache_dir: str | None, why: str) -> str:
    from huggingface_hub import constants

    return (f"Backbone {ref.canonical!r} cannot be loaded: {why}. The Hub's files are cached in "
            f"{cache_dir or constants.HF_HUB_CACHE} (HF_HUB_CACHE); download them there on a machine with "
            f"internet (e.g. `huggingface-cli download {ref.value}`), or put open_clip_config.json and the weights "
            "in a folder and use local-dir:/that/folder, or use a built-in name (or a model-config JSON) with "
            "--pretrained /path/to/checkpoint.")


def _tag_source(model: str, tag: str, cache_dir: str | None) -> tuple[str, str, bool]:
    """(where open_clip downloads tag `tag` of `model` from, the cache folder it keeps it in, whether it is
    there). open_clip prefers the Hub copy when the config has one (open_clip.pretrained.download_pretrained)."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, tag) or {}
    if cfg.get("file"):
        return cfg["file"], str(Path(cfg["file"]).parent), Path(cfg["file"]).is_file()
    if cfg.get("hf_hub"):
        import huggingface_hub
        from huggingface_hub import constants

        repo, filename = os.path.split(cfg["hf_hub"])
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if filename.endswith(".bin"):
            names.insert(0, filename[:-4] + ".safetensors")
        cached = any(isinstance(huggingface_hub.try_to_load_from_cache(repo, n, cache_dir=cache_dir), str)
                     for n in names)
        return f"hf-hub {repo}", cache_dir or constants.HF_HUB_CACHE, cached
    url = cfg.get("url", "")
    folder = cache_dir or os.path.expanduser("~/.cache/clip")
    return url, folder, bool(url) and (Path(folder) / os.path.basename(url)).is_file()


@contextlib.contextmanager
def tag_access(ref: ModelRef, weights: Weights, cache_dir: str | None):
    """Around loading an open_clip pretrained tag (e.g. RN50 "openai"): when the weights are not in the cache,
    check that their server answers before open_clip's download retries begin."""
    if weights.kind != "tag":
        yield
        return
    source, folder, cached = _tag_source(ref.value, weights.value, cache_dir)
    if cached:
        with (_hub_cache_only() if source.startswith("hf-hub ") else contextlib.nullcontext()):
            yield
        return
    if source.startswith("hf-hub "):
        why = "HF_HUB_OFFLINE is set" if _hub_offline() else _reachable(_hub_host())
    else:
        why = _reachable(urlparse(source).hostname or "") if source else None
    if why:
        raise BackboneError(
            f"Pretrained weights {weights.value!r} of {ref.canonical!r} are not in the cache ({folder}) and cannot "
            f"be downloaded: {why}. Download them on a machine with internet (e.g. run the same command there, "
            f"with the cache folder shared or copied here), or pass a local checkpoint: --pretrained "
            "/path/to/weights.pt (in the workflow: the backbone's `pretrained` in the config)."
        )
    yield
