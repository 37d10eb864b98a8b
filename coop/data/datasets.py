"""The dataset registry: `get_dataset(name) -> DatasetSpec` for the built-in datasets (the paper's real
datasets and the generated toy ones) and for those registered from a config (`register_datasets`).

This module also re-exports the dataset API, so `from coop.data.datasets import ...` gives everything:

    coop.data.specs           DatasetSpec, Item, Split, DatasetError, the split-file rule and path helpers
    coop.data.readers         read_split (split_json and image_folder layouts)
    coop.data.official_layouts  the ImageNet, ImageNet-variant and FGVC-Aircraft layouts
    coop.data.folders         sorted, hidden-skipping, image-only folder listings
    coop.data.dataset_config  dataset_from_config, check_dataset_on_disk (datasets defined by config)
"""
from __future__ import annotations

import os  # noqa: F401  (coop.data.datasets.os: the readers list folders with os.scandir)
from typing import Any, Mapping

from coop.data.dataset_config import (
    CONFIG_KEYS,
    CONFIG_LAYOUTS,
    check_dataset_on_disk,
    dataset_from_config,
)
from coop.data.folders import IMAGE_EXTENSIONS
from coop.data.official_layouts import IMAGENET_CLASSNAMES_URL, read_classnames
from coop.data.readers import read_split
from coop.data.specs import (
    READERS,
    DatasetError,
    DatasetSpec,
    Item,
    Split,
    ToyDatasetExistsError,
    dataset_dir,
    expected_layout,
    image_root,
    split_path,
    zhou_split_file,
)


def _real(name: str, folder: str, split_name: str, image_dir: str, template: str) -> DatasetSpec:
    return DatasetSpec(name, folder, zhou_split_file(split_name), image_dir, template)


# Folders and split files of the official protocol (docs/PROTOCOL.md); templates from the paper's Table 6.
_REAL = [
    _real("caltech101", "caltech-101", "Caltech101", "101_ObjectCategories", "a photo of a {}."),
    _real("oxford_pets", "oxford_pets", "OxfordPets", "images", "a photo of a {}, a type of pet."),
    _real("stanford_cars", "stanford_cars", "StanfordCars", "", "a photo of a {}."),
    _real("oxford_flowers", "oxford_flowers", "OxfordFlowers", "jpg", "a photo of a {}, a type of flower."),
    _real("food101", "food-101", "Food101", "images", "a photo of {}, a type of food."),
    _real("sun397", "sun397", "SUN397", "SUN397", "a photo of a {}."),
    _real("dtd", "dtd", "DescribableTextures", "images", "{} texture."),
    _real("eurosat", "eurosat", "EuroSAT", "2750", "a centered satellite photo of {}."),
    _real("ucf101", "ucf101", "UCF101", "UCF-101-midframes", "a photo of a person doing {}."),
]


_PHOTO = "a photo of a {}."
_REAL += [
    DatasetSpec("imagenet", "imagenet", "classnames.txt", "images", _PHOTO, reader="imagenet",
                duplicate_classnames=True),
    DatasetSpec("fgvc_aircraft", "fgvc_aircraft", "variants.txt", "images",
                "a photo of a {}, a type of aircraft.", reader="fgvc"),
    # Evaluation-only renderings of ImageNet's classes (paper Table 6: "a photo of a {}.").
    DatasetSpec("imagenetv2", "imagenetv2", "classnames.txt", "imagenetv2-matched-frequency-format-val",
                _PHOTO, reader="imagenet_variant", source="imagenet", duplicate_classnames=True),
    DatasetSpec("imagenet_sketch", "imagenet-sketch", "classnames.txt", "images", _PHOTO,
                reader="imagenet_variant", source="imagenet", duplicate_classnames=True),
    DatasetSpec("imagenet_a", "imagenet-adversarial", "classnames.txt", "imagenet-a", _PHOTO,
                reader="imagenet_variant", source="imagenet", duplicate_classnames=True),
    DatasetSpec("imagenet_r", "imagenet-rendition", "classnames.txt", "imagenet-r", _PHOTO,
                reader="imagenet_variant", source="imagenet", duplicate_classnames=True),
]


def _registry() -> dict[str, DatasetSpec]:
    from coop.data.toyworld import TOY_DATASETS

    specs = {s.name: s for s in _REAL}
    for toy in TOY_DATASETS.values():
        specs[toy.name] = DatasetSpec(
            toy.name, toy.name, zhou_split_file(toy.split_name), "images", toy.template, toy=True,
            source=getattr(toy, "source", None),
        )
    return specs


DATASETS: dict[str, DatasetSpec] = _registry()
BUILTIN_DATASETS: frozenset[str] = frozenset(DATASETS)  # names a config dataset may not take


def get_dataset(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise DatasetError(
            f"Unknown dataset {name!r}. Known datasets: {', '.join(sorted(DATASETS))}."
        ) from None


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add a dataset (normally one from `dataset_from_config`) to the registry: `get_dataset(spec.name)`
    then returns it. Registering an equal spec again is a no-op; a built-in name, or a name registered
    with a different definition, is refused."""
    if spec.name in BUILTIN_DATASETS:
        raise DatasetError(
            f"Dataset {spec.name!r} cannot be registered: it is a built-in dataset. Rename the config entry "
            f"(datasets.{spec.name}), e.g. to 'my_{spec.name}'."
        )
    old = DATASETS.get(spec.name)
    if old is not None and old != spec:
        raise DatasetError(
            f"Dataset {spec.name!r} is already registered with a different definition ({old}). Give the "
            f"config entry datasets.{spec.name} another name, or call unregister_dataset({spec.name!r}) first."
        )
    DATASETS[spec.name] = spec
    return spec


def unregister_dataset(name: str) -> None:
    """Remove a registered (non-built-in) dataset; unknown names are ignored."""
    if name in BUILTIN_DATASETS:
        raise DatasetError(f"Dataset {name!r} is built in and cannot be unregistered.")
    DATASETS.pop(name, None)


def register_datasets(block: Mapping[str, Any] | None) -> list[DatasetSpec]:
    """Validate and register every entry of a config's `datasets:` block ({name: entry}); return the specs.

    All entries are validated before any is registered, so a bad entry registers none. Files on disk are
    not looked at: call `check_dataset_on_disk(root, spec)` for that.
    """
    if block is None:
        return []
    if not isinstance(block, Mapping):
        raise DatasetError(
            f"The config's 'datasets' must be a mapping of dataset name to entry, got {type(block).__name__}. "
            "Write it as `datasets:` followed by indented `<name>: {folder: ..., layout: ..., template: ...}`."
        )
    specs = [dataset_from_config(name, entry) for name, entry in block.items()]
    for spec in specs:
        register_dataset(spec)
    return specs


__all__ = [
    "BUILTIN_DATASETS", "CONFIG_KEYS", "CONFIG_LAYOUTS", "DATASETS", "IMAGENET_CLASSNAMES_URL",
    "IMAGE_EXTENSIONS", "READERS", "DatasetError", "DatasetSpec", "Item", "Split", "ToyDatasetExistsError",
    "check_dataset_on_disk", "dataset_dir", "dataset_from_config", "expected_layout", "get_dataset",
    "image_root", "read_classnames", "read_split", "register_dataset", "register_datasets", "split_path",
    "unregister_dataset", "zhou_split_file",
]
