"""The store: where every artefact of a benchmark lives, written once for the package and the workflow alike.

Each kind of artefact has one path pattern relative to the results folder (`RESULTS` unless a `root` is
given). `path(kind, **fields)` fills it in; a field given as a Snakemake wildcard ("{dataset}") stays one, so the
workflow builds its input and output patterns from the same table the package writes to.
Light: no torch or pandas (the workflow imports this at every parse).
"""
from __future__ import annotations

import glob
import hashlib
import json
import re
from pathlib import Path

from coop.defaults import CROP_MIN

RESULTS = "results"      # the results folder of a workflow run, and the CLI's default --cache-dir
FIGURES = "figures"      # the paper's figures (beside results/, as in the paper's repository layout)

PATTERNS = {
    # few-shot subsets that every method shares (coop.data.fewshot)
    "manifest": "fewshot/{dataset}/shots{shots}_seed{seed}.json",
    # test-transform image features of a split part ("test", or "fewshot": every subset's images) (coop.features)
    "features": "features/{dataset}/{backbone}/{part}.safetensors",
    # augmented training views of one subset (coop.views); {crop} is "" for the official crop_min, {key} a short
    # hash of what the views are made from (the subset, its images, the encoder, the transform: views_key)
    "views": "features/{dataset}/{backbone}/views/shots{shots}_seed{seed}{crop}_{key}.safetensors",
    # one run: metrics.json (written last), learned parameters, nearest words, its training checkpoint
    "run": "runs/{dataset}/{backbone}/{method}/{variant}/shots{shots}/seed{seed}",
    # the runs of a cell (every seed) evaluated on other datasets (coop.transfer)
    "transfer": "transfer/{dataset}/{backbone}/{method}/{variant}/shots{shots}.json",
    # toy CLIPs pretrained in this run (coop.pretrain)
    "pretrained": "pretrained/{model}.safetensors",
    # tables (CSV, and Markdown beside the paper's)
    "table": "tables/{name}.csv",
    "table_md": "tables/{name}.md",
}
CHECKPOINT = "checkpoint.pt"   # inside a run folder: kept while its job is unfinished
METRICS = "metrics.json"       # inside a run folder: its presence means the run is complete


def path(kind: str, root: str | Path = RESULTS, **fields) -> str:
    """The path of an artefact: `kind` is a key of PATTERNS; every field of its pattern must be given."""
    try:
        pattern = PATTERNS[kind]
    except KeyError:
        raise KeyError(f"unknown artefact kind {kind!r}; known: {', '.join(PATTERNS)}") from None
    return str(Path(root) / pattern.format(**fields))


def matching(kind: str, root: str | Path = RESULTS, **fields) -> list[Path]:
    """The artefacts of `kind` on disk whose given `fields` have those values (the other fields any), sorted."""
    escaped = {k: glob.escape(str(v)) for k, v in fields.items()}
    names = re.findall(r"{(\w+)}", PATTERNS[kind])
    pattern = PATTERNS[kind].format(**{n: escaped.get(n, "*") for n in names})
    return sorted(Path(p) for p in glob.glob(str(Path(glob.escape(str(root))) / pattern)))


def crop_suffix(crop_min: float) -> str:
    return "" if crop_min == CROP_MIN else f"_crop{crop_min:g}"


def manifest_path(root: str | Path, dataset: str, shots, seed) -> Path:
    return Path(path("manifest", root, dataset=dataset, shots=shots, seed=seed))


def manifest_fields(manifest: str | Path) -> tuple[int, int] | None:
    """(shots, seed) of a manifest file named by the "manifest" pattern, or None for another name."""
    name = PATTERNS["manifest"].rsplit("/", 1)[1]
    found = re.fullmatch(re.escape(name).replace(r"\{shots\}", r"(\d+)").replace(r"\{seed\}", r"(\d+)"),
                         Path(manifest).name)
    return (int(found[1]), int(found[2])) if found else None


def features_path(root: str | Path, dataset: str, backbone: str, part: str) -> Path:
    return Path(path("features", root, dataset=dataset, backbone=backbone, part=part))


VIEWS_KEY_LEN = 12   # hex digits of views_key in a view cache's name


def views_key(keys: dict) -> str:
    """The short hash in a view cache's name: of every key it must match (coop.views.view_keys), so that a new
    subset (an edited split file, regenerated data), encoder or transform makes a new file, never a clash."""
    text = json.dumps({str(k): str(v) for k, v in keys.items()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:VIEWS_KEY_LEN]


def views_path(root: str | Path, dataset: str, backbone: str, shots, seed, keys: dict,
               crop_min: float = CROP_MIN) -> Path:
    """The augmented-view cache of a few-shot subset, beside the backbone's feature caches: one per
    augmentation (crop_min) and per set of `keys` (`views_key`)."""
    return Path(path("views", root, dataset=dataset, backbone=backbone, shots=shots, seed=seed,
                     crop=crop_suffix(crop_min), key=views_key(keys)))


def other_views(views: str | Path) -> list[Path]:
    """The view caches of the same cell (dataset, backbone, shots, seed, crop) as the file `views` but of other
    keys (made from an earlier subset, encoder or transform), and one named before views had keys."""
    views = Path(views)
    cell = views.name[:-len(".safetensors")].rsplit("_", 1)[0]
    same = re.compile(re.escape(cell) + rf"(_[0-9a-f]{{{VIEWS_KEY_LEN}}})?\.safetensors")
    folder = views.parent
    return sorted(p for p in folder.iterdir() if p != views and same.fullmatch(p.name)) if folder.is_dir() else []


def run_dir(root: str | Path, dataset: str, backbone: str, method: str, variant: str, shots, seed) -> Path:
    return Path(path("run", root, dataset=dataset, backbone=backbone, method=method, variant=variant, shots=shots,
                     seed=seed))


def cell_from_dataset(dataset: str, backbone: str, method: str, variant: str, shots) -> str:
    """A cell's run-folder path from the dataset field up to its seed number ("toy_shapes/toy-rn/coop/end/
    shots16/seed"): what the workflow's wildcard constraints match to tell one cell's jobs apart."""
    tail = "{dataset}" + PATTERNS["run"].split("{dataset}", 1)[1].split("{seed}", 1)[0]
    return tail.format(dataset=dataset, backbone=backbone, method=method, variant=variant, shots=shots)


def run_file(root: str | Path, dataset: str, backbone: str, method: str, variant: str, shots, seed,
             name: str = METRICS) -> str:
    return str(run_dir(root, dataset, backbone, method, variant, shots, seed) / name)


def checkpoint_path(run_folder: str | Path) -> Path:
    """A run's training checkpoint: kept while its job is unfinished, deleted once every seed of it is done."""
    return Path(run_folder) / CHECKPOINT


def transfer_path(root: str | Path, dataset: str, backbone: str, method: str, variant: str, shots) -> str:
    return path("transfer", root, dataset=dataset, backbone=backbone, method=method, variant=variant, shots=shots)


def feature_keys(dataset: str, backbone: str, model: str, pretrained, part: str) -> dict[str, str]:
    """The keys a feature cache must match: split, transform and weights included (the weights as
    coop.models.names parses them: "random" for every spelling of random weights)."""
    from coop.models.names import canonical_pretrained

    return {"dataset": dataset, "part": part, "backbone": backbone, "model": model,
            "pretrained": canonical_pretrained(pretrained, model), "transform": "test"}
