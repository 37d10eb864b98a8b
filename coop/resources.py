"""What each GPU job of the workflow asks a cluster for, modelled from the work it does (no Snakemake, no torch).

A job's request (`Request`: host memory, GPU memory, runtime, disk) is the sum of terms, each a count of the
job's work times a cost per unit:

* **Backbone** (`backbone_shape`, from the model's config JSON: ours in coop/models/configs, open_clip's in its
  package): feature dimension D, image size, the text and image towers' widths and depths, hence their
  parameter counts and the FLOPs of encoding one image or one prompt token.
* **Data** (`coop.data.sizes.data_shape`): classes, train / val / test images; a subset has classes x shots
  training images.
* **Method** (its `Cost` declaration, `coop.methods.registry`): what one training step does (`Cost.step`:
  the text encoder over every class prompt, a small head, the image encoder over a batch, the linear probe's C
  search, or nothing), and whether it reads the augmented-view cache.
* **Schedule**: epochs (the method's parameters, else the official schedule by shots, coop.schedule), batch
  size, seeds trained in the job.

Runtime = start-up (imports, CLIP load) + FLOPs / the device's effective FLOP/s; memory = the process's base
(interpreter, torch, CUDA context) + model weights + the largest arrays the job holds at once. The view cache is
built and read in a streaming fashion (coop.views): a batch of decoded images and the batch's views of every
epoch, one epoch of every seed's views while training, not the whole epochs x images x D array. Each sum is
multiplied by a safety margin (MEM_MARGIN, TIME_MARGIN) and rounded up.

The device constants (`Device`) are estimates for a current data-centre GPU in fp32 (GPU): the throughput is
set so that the official code's ImageNet CoOp (RN50, 16 shots, 77 tokens for every class prompt at each step, 200
epochs) takes about the 14 h 40 min that a third party reports on one RTX 3090 (docs/PROTOCOL.md, "Known costs"),
and the base memory is what a PyTorch process with a CUDA context holds on the host (2-3 GB). `coop bench-scale`
measures a CPU profile on the machine it runs on and compares the model's requests with the measured peaks.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024
F32 = 4
MEM_MARGIN = 1.3        # host and GPU memory asked = modelled x this
TIME_MARGIN = 1.5       # runtime asked = modelled x this (then whole minutes, at least MIN_MINUTES)
MIN_MINUTES = 5
VIEW_BATCH = 256        # images encoded at once when views are built (coop.views) and features extracted
DECODED_IMAGE_MB = 0.6  # a decoded full-size photo (ImageNet averages about 400 x 350 x 3 bytes) with PIL overhead
PROMPT_TOKENS = 22      # tokens the cut text encoder runs per CoOp prompt: SOS, M = 16 context, the class name
                        # (about 3 BPE tokens), ".", EOT (coop.models.text stops at the longest EOT)
ACTIVATION_FLOATS = 24  # floats that one token saves per transformer layer and width unit for the backward pass
PROBE_FITS = 23         # the linear probe's C search: 7 grid values + 2 x 8 bisection steps (coop.methods.linear_probe)
PROBE_ITERATIONS = 300  # L-BFGS iterations per fit, typical (the cap is 1000)
CPU_PROBE_FLOPS = 2e10  # scikit-learn's L-BFGS on the host, FLOP/s (runs on the CPU in every profile)


@dataclass(frozen=True)
class Device:
    name: str
    flops: float          # effective FLOP/s of the encoders' forward/backward passes
    base_mb: float        # host memory of a process that imported torch and open_clip (and made a CUDA context)
    startup_s: float      # imports, model load, data listing: the fixed cost of a job
    gpu_base_mb: float    # GPU memory of the context and allocator before any tensor
    prep_s: float         # seconds of decoding and transforming one image (or augmenting one view) on the host


# prep_s: a full-size JPEG decoded, resized and cropped by PIL on one core, about 4 ms.
GPU = Device("gpu", flops=30e12, base_mb=3000, startup_s=60, gpu_base_mb=1000, prep_s=0.004)
CPU = Device("cpu", flops=2e10, base_mb=700, startup_s=10, gpu_base_mb=0, prep_s=0.004)
DEVICES = {d.name: d for d in (GPU, CPU)}


@dataclass(frozen=True)
class Request:
    """First-attempt cluster request of a job."""
    mem_mb: int
    gpu_mem_mb: int
    runtime: int         # minutes
    disk_mb: int
    minutes: float = 0.0  # the modelled runtime before margin and rounding (for splitting and reports)


# ------------------------------------------------------------------------------------------------- backbones
@dataclass(frozen=True)
class BackboneShape:
    dim: int
    image_size: int
    text_width: int
    text_layers: int
    vocab: int
    context: int
    vision: str                 # "vit" | "resnet"
    vision_width: int
    vision_layers: int          # blocks (a ResNet: the sum over its stages)
    patch: int = 0

    @property
    def text_params(self) -> float:
        return 12 * self.text_width ** 2 * self.text_layers + (self.vocab + self.context) * self.text_width

    @property
    def vision_params(self) -> float:
        if self.vision == "vit":
            return 12 * self.vision_width ** 2 * self.vision_layers + 3 * self.patch ** 2 * self.vision_width
        # ResNet: scaled from CLIP's RN50 (38.3 M parameters at width 64 with 3+4+6+3 blocks)
        return 38.3e6 * (self.vision_width / 64) ** 2 * self.vision_layers / 16

    @property
    def params(self) -> float:
        return self.text_params + self.vision_params

    @property
    def image_flops(self) -> float:
        """FLOPs of encoding one image (forward)."""
        if self.vision == "vit":
            tokens = (self.image_size // self.patch) ** 2 + 1
            return 2 * 12 * self.vision_width ** 2 * self.vision_layers * tokens
        # CLIP RN50: 8.2 GFLOP at 224 px; scales with pixels, width^2 and depth
        return 8.2e9 * (self.image_size / 224) ** 2 * (self.vision_width / 64) ** 2 * self.vision_layers / 16

    def text_flops(self, prompts: int, tokens: int = PROMPT_TOKENS) -> float:
        """FLOPs of encoding `prompts` prompts of `tokens` tokens (forward)."""
        return 2 * 12 * self.text_width ** 2 * self.text_layers * prompts * tokens


def _config_file(model: str) -> Path | None:
    from coop.models.names import CONFIG_DIR, parse_model

    ref = parse_model(model)
    if ref.kind in ("config", "local-dir"):
        return Path(ref.file).expanduser()
    if ref.kind == "builtin":
        ours = CONFIG_DIR / f"{ref.value}.json"
        if ours.is_file():
            return ours
        import importlib.util

        spec = importlib.util.find_spec("open_clip")
        for folder in spec.submodule_search_locations if spec else []:
            path = Path(folder) / "model_configs" / f"{ref.value}.json"
            if path.is_file():
                return path
    return None


def backbone_shape(model: str) -> BackboneShape:
    """The shape of backbone `model` from its config JSON; an hf-hub model (no local file) is taken as
    ViT-B/16-sized."""
    path = _config_file(model)
    cfg = json.loads(path.read_text()) if path is not None and path.is_file() else {}
    cfg = cfg.get("model_cfg", cfg)
    vision, text = cfg.get("vision_cfg", {}), cfg.get("text_cfg", {})
    layers = vision.get("layers", 12)
    resnet = isinstance(layers, (list, tuple))
    return BackboneShape(
        dim=int(cfg.get("embed_dim", 512)), image_size=int(vision.get("image_size", 224)),
        text_width=int(text.get("width", 512)), text_layers=int(text.get("layers", 12)),
        vocab=int(text.get("vocab_size", 49408)), context=int(text.get("context_length", 77)),
        vision="resnet" if resnet else "vit", vision_width=int(vision.get("width", 768)),
        vision_layers=int(sum(layers) if resnet else layers), patch=0 if resnet else int(vision.get("patch_size", 16)),
    )


# ------------------------------------------------------------------------------------------------- requests
def asked_minutes(minutes: float) -> int:
    """The runtime asked for `minutes` of modelled work: the margin, whole minutes, at least MIN_MINUTES."""
    return max(MIN_MINUTES, math.ceil(minutes * TIME_MARGIN))


def _request(device: Device, seconds: float, host_bytes: float, gpu_bytes: float, disk_bytes: float) -> Request:
    minutes = (device.startup_s + seconds) / 60
    return Request(
        mem_mb=math.ceil((device.base_mb + host_bytes / MB) * MEM_MARGIN),
        gpu_mem_mb=math.ceil((device.gpu_base_mb + gpu_bytes / MB) * MEM_MARGIN) if device.gpu_base_mb else 0,
        runtime=asked_minutes(minutes),
        disk_mb=max(1, math.ceil(disk_bytes / MB * MEM_MARGIN)),
        minutes=minutes,
    )


def _image_batch_bytes(b: BackboneShape, decoded_mb: float) -> float:
    """A batch of decoded images and its transformed tensor."""
    return VIEW_BATCH * (decoded_mb * MB + 3 * b.image_size ** 2 * F32)


def feature_request(b: BackboneShape, images: int, device: Device = GPU,
                    decoded_mb: float = DECODED_IMAGE_MB) -> Request:
    """Test-transform features of `images` images (`coop features`): encoded in batches, kept as (N, D)."""
    feats = images * b.dim * F32
    host = b.params * F32 + _image_batch_bytes(b, decoded_mb) + 2 * feats  # the list of batches, then the array
    gpu = b.params * F32 + VIEW_BATCH * 3 * b.image_size ** 2 * F32 * 8    # the tower's activations, no grad
    seconds = images * (b.image_flops / device.flops + device.prep_s)
    return _request(device, seconds, host, gpu, feats)


@dataclass(frozen=True)
class RunWork:
    """What one run job trains and evaluates."""
    classes: int
    shots: int
    seeds: int
    epochs: int
    test: int
    batch_size: int = 32
    step: str = "text_encoder"   # Cost.step of the method
    views: bool = True           # reads the augmented-view cache
    distinct_views: int = 2      # views per image worth encoding: 2 (flips) with crop_min 1.0, else epochs
    templates: int = 1           # prompts per class encoded once (zero-shot: 1; the ensemble: 7 or 8)
    prompt_tokens: int = PROMPT_TOKENS  # tokens per learned prompt (M + 6)


def run_request(b: BackboneShape, w: RunWork, device: Device = GPU,
                decoded_mb: float = DECODED_IMAGE_MB) -> Request:
    """A run job (`coop run`): view cache of each seed, training of every seed (fused), evaluation."""
    n = w.classes * w.shots                                  # training images of one seed's subset
    steps = w.epochs * math.ceil(n / w.batch_size) if n else 0
    test_feats = w.test * b.dim * F32
    logits = w.test * w.classes * 8                          # float64 scores for the metrics
    host = b.params * F32 + test_feats + 2 * logits
    gpu = b.params * F32 + w.classes * w.templates * b.dim * F32
    flops = b.text_flops(w.classes * w.templates, 12)        # class text features of hand-made prompts, once
    disk = w.seeds * w.test * 8                              # predictions and metrics
    prep = 0.0                                                # host seconds preparing images
    if w.views and n:
        encodes = n * min(w.distinct_views, w.epochs)
        flops += w.seeds * encodes * b.image_flops
        prep += w.seeds * n * (w.epochs + 1) * device.prep_s  # decoded once, augmented every epoch
        build = _image_batch_bytes(b, decoded_mb) + VIEW_BATCH * w.epochs * b.dim * F32 + n * 2 * b.dim * F32
        train = w.seeds * 2 * n * b.dim * F32                 # one epoch of every seed's views, and the next
        host += max(build, train)
        disk += w.seeds * w.epochs * n * b.dim * F32
    if w.step == "text_encoder":                              # CoOp: every class prompt through the text tower
        flops += w.seeds * steps * 3 * b.text_flops(w.classes, w.prompt_tokens)
        gpu += w.seeds * w.classes * w.prompt_tokens * b.text_width * b.text_layers * ACTIVATION_FLOATS * F32
    elif w.step == "image_encoder":                           # fine-tune the image tower on augmented batches
        flops += w.seeds * steps * 3 * w.batch_size * b.image_flops
        prep += w.seeds * steps * w.batch_size * device.prep_s
        host += _image_batch_bytes(b, decoded_mb) / VIEW_BATCH * w.batch_size * 4  # loader prefetch
        gpu += w.seeds * 4 * b.vision_params * F32 + w.batch_size * b.image_flops / 100
        disk += w.seeds * 3 * b.vision_params * F32           # its checkpoint: weights and optimiser state
    elif w.step == "head":
        flops += w.seeds * steps * 6 * w.batch_size * b.dim * w.classes
    elif w.step == "probe":
        val = w.classes * min(w.shots, 4)
        fit = PROBE_ITERATIONS * 4 * n * b.dim * w.classes
        seconds_cpu = w.seeds * PROBE_FITS * (fit + val * b.dim * w.classes * 2) / CPU_PROBE_FLOPS
        host += (n + val) * b.dim * 8 * 3 + w.classes * b.dim * 8 * 20   # float64 copies, L-BFGS history
        return _request(device, flops / device.flops + prep + seconds_cpu, host, gpu, disk)
    return _request(device, flops / device.flops + prep, host, gpu, disk)


def transfer_request(b: BackboneShape, classes: int, test_images: int, runs: int, device: Device = GPU) -> Request:
    """Finished runs re-evaluated on other datasets' cached test features (`coop transfer`)."""
    host = b.params * F32 + test_images * b.dim * F32 + 2 * test_images * classes * 8
    seconds = runs * b.text_flops(classes) / device.flops
    return _request(device, seconds, host, b.params * F32 + classes * b.dim * F32, test_images * 8)


def interpret_request(b: BackboneShape, device: Device = GPU) -> Request:
    """Nearest vocabulary words of each learned context vector (`coop interpret`)."""
    host = b.params * F32 + 2 * b.vocab * b.text_width * F32
    return _request(device, 0.0, host, b.params * F32, 1 * MB)


# ------------------------------------------------------------------------------------------------- limits
class ResourceError(ValueError):
    """A job that no attempt can fit inside the configured partition limits."""


def attempt_runtime(first: int, attempt: int, cap: int | None = None) -> int:
    """Minutes that attempt `attempt` asks: the first request times the attempt (a job killed at its time
    limit gets more), never above the partition limit `cap`."""
    minutes = first * max(1, attempt)
    return min(minutes, cap) if cap else minutes


def seed_groups(seeds: list[int], request_for, max_runtime: int | None, max_gpu_mem_mb: int | None = None) -> list[list[int]]:
    """The seeds of one cell as jobs: all in one (fused) when that job's first request fits `max_runtime` and
    `max_gpu_mem_mb`, else one job per seed. `request_for(n)` is the Request of a job training n seeds. A single
    seed that does not fit either is a ResourceError."""
    def fits(req: Request) -> bool:
        return (not max_runtime or req.runtime <= max_runtime) and (not max_gpu_mem_mb or req.gpu_mem_mb <= max_gpu_mem_mb)

    if fits(request_for(len(seeds))):
        return [list(seeds)]
    one = request_for(1)
    if fits(one):
        return [[s] for s in seeds]
    raise ResourceError(f"{one.runtime} min and {one.gpu_mem_mb} MB of GPU memory for one seed")
