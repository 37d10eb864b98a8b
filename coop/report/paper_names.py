"""The paper's names of datasets and backbones: the one table of them, and the lookups that read it.

`PAPER_DATASETS` (real dataset key -> the dataset name the paper's CSVs use, which is also paper Table 6's
name), `TABLE1_COLUMNS` (real key -> Table 1's column), `PAPER_BACKBONES` (real open_clip key -> the
paper's backbone name) and the aliases built from them (any spelling of a key or a paper name, compared
lower case without punctuation). A toy dataset or backbone stands in for a real one through a
`paper_names` mapping ({"datasets": {ours: real}, "backbones": {ours: real}}, identity where missing;
taken from exp["paper_names"] when not given). A name the mapping leaves as it is, is the paper's own
(`is_paper_own`): only there is ours a reproduction of the paper's number, and a table prints their difference;
a stand-in's paper number is the role it plays (`stand_ins`), not a target. Pure Python: the data checks import
it without pandas.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = [
    "PAPER_DATASETS",
    "PAPER_BACKBONES",
    "TABLE1_COLUMNS",
    "ANALYSIS_BACKBONE",
    "FEWSHOT_DATASETS",
    "paper_names_of",
    "is_paper_own",
    "stand_ins",
    "real_dataset",
    "real_backbone",
    "paper_dataset",
    "paper_backbone",
    "table1_column",
]

# Real dataset keys -> the dataset names of the paper CSVs (and of paper Table 6).
PAPER_DATASETS = {
    "imagenet": "ImageNet",
    "caltech101": "Caltech101",
    "oxford_pets": "OxfordPets",
    "stanford_cars": "StanfordCars",
    "oxford_flowers": "Flowers102",
    "food101": "Food101",
    "fgvc_aircraft": "FGVCAircraft",
    "sun397": "SUN397",
    "dtd": "DTD",
    "eurosat": "EuroSAT",
    "ucf101": "UCF101",
    "imagenetv2": "ImageNetV2",
    "imagenet_sketch": "ImageNetSketch",
    "imagenet_a": "ImageNetA",
    "imagenet_r": "ImageNetR",
}
# Real dataset keys -> Table 1's column names.
TABLE1_COLUMNS = {
    "imagenet": "imagenet",
    "imagenetv2": "imagenet_v2",
    "imagenet_sketch": "imagenet_sketch",
    "imagenet_a": "imagenet_a",
    "imagenet_r": "imagenet_r",
}
# Real (open_clip) backbone keys -> the backbone names of the paper CSVs.
PAPER_BACKBONES = {
    "RN50-quickgelu": "RN50",
    "RN101-quickgelu": "RN101",
    "ViT-B-32-quickgelu": "ViT-B/32",
    "ViT-B-16-quickgelu": "ViT-B/16",
}
# The backbone of the paper's single-backbone analyses (Tables 3 and 5, Fig. 1).
ANALYSIS_BACKBONE = "RN50"
# The paper's 11 few-shot datasets (Fig. 3; Table 3 averages over them): every dataset of PAPER_DATASETS but
# the domain-shift targets of Table 1.
FEWSHOT_DATASETS = tuple(k for k in PAPER_DATASETS if k not in TABLE1_COLUMNS or k == "imagenet")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


_DATASET_ALIASES = {
    **{_norm(k): k for k in PAPER_DATASETS},
    **{_norm(v): k for k, v in PAPER_DATASETS.items()},
    **{_norm(v): k for k, v in TABLE1_COLUMNS.items()},
}
_BACKBONE_ALIASES = {
    **{_norm(k): v for k, v in PAPER_BACKBONES.items()},
    **{_norm(k.removesuffix("-quickgelu")): v for k, v in PAPER_BACKBONES.items()},
    **{_norm(v): v for v in PAPER_BACKBONES.values()},
}


def paper_names_of(exp: Mapping | None, paper_names: Mapping | None) -> Mapping:
    """`paper_names` when given, else the experiment's "paper_names" (empty: identity)."""
    if paper_names is not None:
        return paper_names
    return (exp or {}).get("paper_names") or {}


def is_paper_own(paper_names: Mapping | None, datasets=(), backbones=()) -> bool:
    """Whether each of our `datasets` and `backbones` is the paper's own, not a stand-in for one: a name that
    `paper_names` maps to itself (or not at all). A toy dataset mapped to ImageNet is not; "imagenet" is."""
    return (all(real_dataset(d, paper_names) == str(d) for d in datasets)
            and all(real_backbone(b, paper_names) == str(b) for b in backbones))


def stand_ins(paper_names: Mapping | None, datasets=(), backbones=()) -> list[tuple[str, str]]:
    """(ours, the paper's name) of each of `datasets` and `backbones` that stands in for one of the paper's,
    in the order given: e.g. [("toy_shapes", "ImageNet"), ("toy-rn", "RN50")]."""
    out = [(str(d), paper_dataset(d, paper_names)) for d in datasets if not is_paper_own(paper_names, [d])]
    out += [(str(b), paper_backbone(b, paper_names)) for b in backbones
            if not is_paper_own(paper_names, backbones=[b])]
    return list(dict.fromkeys((ours, name) for ours, name in out if name))


def real_dataset(dataset: str, paper_names: Mapping | None = None) -> str:
    """The real dataset key our `dataset` stands in for (itself when unmapped)."""
    return str(((paper_names or {}).get("datasets") or {}).get(dataset, dataset))


def real_backbone(backbone: str, paper_names: Mapping | None = None) -> str:
    """The real backbone key our `backbone` stands in for (itself when unmapped)."""
    return str(((paper_names or {}).get("backbones") or {}).get(backbone, backbone))


def _canonical_dataset(dataset: str, paper_names: Mapping | None) -> str | None:
    return _DATASET_ALIASES.get(_norm(real_dataset(dataset, paper_names)))


def paper_dataset(dataset: str, paper_names: Mapping | None = None) -> str:
    """The paper's name of our `dataset` ("ImageNet", "DTD", ...; Table 6's row name), "" when it has none.
    Without `paper_names`, `dataset` is a real key (or any spelling of one): paper_dataset("oxford_flowers")
    is "Flowers102"."""
    key = _canonical_dataset(dataset, paper_names)
    return PAPER_DATASETS.get(key, "") if key else ""


def table1_column(dataset: str, paper_names: Mapping | None = None) -> str:
    """Table 1's column name of our `dataset` ("imagenet", "imagenet_v2", ...), "" when none."""
    key = _canonical_dataset(dataset, paper_names)
    return TABLE1_COLUMNS.get(key, "") if key else ""


def paper_backbone(backbone: str, paper_names: Mapping | None = None) -> str:
    """The paper's name of our `backbone` ("RN50", "ViT-B/16", ...), "" when it has none."""
    return _BACKBONE_ALIASES.get(_norm(real_backbone(backbone, paper_names)), "")
