"""Where each real dataset of the paper comes from: the table `SOURCES` and the instructions for files
that must be fetched by hand.

`SOURCES` maps a dataset name to a `DatasetSource`: its `SourceFile`s (URL, file name under
`<root>/.downloads/`, checksum, how the extracted archive is laid out in the dataset folder), or
instructions for a dataset fetched entirely by hand. URLs and md5s follow CoOp's DATASETS.md (archives as
recorded by torchvision 0.29). Files hosted only on Google Drive (all of CoOp's split JSON files) and the
licensed ImageNet family are marked manual: `instructions(name, root)` says what to fetch, from where, and
where to put it. A `sources` mapping (objects or plain dicts, as from YAML) adds to or overrides the table.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from coop.data.datasets import IMAGENET_CLASSNAMES_URL, DatasetError, expected_layout, get_dataset

DOWNLOADS = ".downloads"  # under the data root


@dataclass(frozen=True)
class SourceFile:
    """One file of a dataset: where it comes from and where its content goes.

    `layout` lists (path inside the extracted archive, path inside the dataset folder) moves; "" is the
    archive's top (as a source) or the dataset folder itself (as a destination: the source folder's
    children are moved into it). For a plain file the source path is "" (the file itself). Empty: the
    whole archive into the dataset folder, or a plain file under its own name.
    """

    url: str                          # download URL; for a manual file, the page to fetch it from
    filename: str                     # saved as <root>/.downloads/<filename>
    checksum: str | None = None       # "md5:<hex>" or "sha256:<hex>"; None = not known, not verified
    layout: tuple[tuple[str, str], ...] = ()
    inner: str | None = None          # an archive inside the archive: extract that one instead
    kind: str | None = None           # "zip" | "tar" | "file"; None = from the file name
    manual: str | None = None         # set when it must be fetched by hand: how (licence, Google Drive, ...)


@dataclass(frozen=True)
class DatasetSource:
    """How to obtain one dataset: its files, or (`manual`) instructions for the whole dataset."""

    files: tuple[SourceFile, ...] = ()
    manual: str | None = None         # the whole dataset is fetched by hand: these instructions
    note: str = ""


# ---------------------------------------------------------------------------------------------
# the table of sources (CoOp's DATASETS.md; URLs and md5s of archives as recorded by torchvision 0.29)

def _drive(file_id: str) -> str:
    return f"https://drive.google.com/file/d/{file_id}/view?usp=sharing"


_DRIVE = ("Hosted only on Google Drive (CoOp's link), which needs a browser: open the link, download the "
          "file, and save it under the name given.")


def _split_file(name: str, file_id: str) -> SourceFile:
    # CoOp's fixed split of dataset `name`, saved under the name the registry reads (its spec's split_file).
    # Their checksums are not published: None (not verified).
    return SourceFile(_drive(file_id), get_dataset(name).split_file, manual=_DRIVE)


_CLASSNAMES_SRC = f"CoOp's copy of CLIP's ImageNet class names, on Google Drive: {IMAGENET_CLASSNAMES_URL}"


def _variant_manual(folder: str, fetch: str, extract: str) -> str:
    return (
        f"ImageNet variants are not redistributed here; fetch them by hand (evaluation only).\n"
        f"  1. {fetch}\n"
        f"  2. {extract}\n"
        f"  3. Copy ROOT/imagenet/classnames.txt to ROOT/{folder}/classnames.txt (or download it: "
        f"{_CLASSNAMES_SRC}, needs a browser)."
    )


SOURCES: dict[str, DatasetSource] = {
    "caltech101": DatasetSource(files=(
        # The zip holds caltech-101/101_ObjectCategories.tar.gz (the archive CoOp names; its old URL at
        # www.vision.caltech.edu is gone). md5 of the zip from torchvision's Caltech101.
        SourceFile("https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip", "caltech-101.zip",
                   "md5:3138e1922a9193bfa496528edbbc45d0", inner="caltech-101/101_ObjectCategories.tar.gz",
                   layout=(("101_ObjectCategories", "101_ObjectCategories"),)),
        _split_file("caltech101", "1hyarUivQE36mY6jSomru6Fjd-JzwcCzN"),
    )),
    "oxford_pets": DatasetSource(files=(
        SourceFile("https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz", "oxford_pets_images.tar.gz",
                   "md5:5c4f3ee8e5d25df40f4fd59a7f44e54c", layout=(("images", "images"),)),
        SourceFile("https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz",
                   "oxford_pets_annotations.tar.gz", "md5:95a8c909bbe2e81eed6a22bccdf3f68f",
                   layout=(("annotations", "annotations"),)),
        _split_file("oxford_pets", "1501r8Ber4nNKvmlFVQZ8SeUHTcdTTEqs"),
    )),
    "oxford_flowers": DatasetSource(files=(
        SourceFile("https://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz", "102flowers.tgz",
                   "md5:52808999861908f626f3c1f4e79d11fa", layout=(("jpg", "jpg"),)),
        SourceFile("https://www.robots.ox.ac.uk/~vgg/data/flowers/102/imagelabels.mat", "imagelabels.mat",
                   "md5:e0620be6f572b9609742df49c70aed4d"),
        # cat_to_name.json (Google Drive, 1AkcxCXeK_RCGCEC_GvmWxjcjaNhu-at0) is only needed to rebuild the
        # split file; the split file already names every class.
        _split_file("oxford_flowers", "1Pp0sRXzZFZq15zVOzKjKBu4A9i01nozT"),
    )),
    "food101": DatasetSource(files=(
        SourceFile("http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz", "food-101.tar.gz",
                   "md5:85eeb15f3717b99a5da872d97d918f87", layout=(("food-101", ""),)),
        _split_file("food101", "1QK0tGi096I0Ba6kggatX1ee6dJFIcEJl"),
    )),
    "sun397": DatasetSource(files=(
        # CoOp also lists Partitions.zip; the split file replaces it, so it is not fetched.
        SourceFile("http://vision.princeton.edu/projects/2010/SUN/SUN397.tar.gz", "SUN397.tar.gz",
                   "md5:8ca2778205c41d23104230ba66911c7a", layout=(("SUN397", "SUN397"),)),
        _split_file("sun397", "1y2RD81BYuiyvebdN-JymPfyWYcd8_MUq"),
    )),
    "dtd": DatasetSource(files=(
        SourceFile("https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz", "dtd-r1.0.1.tar.gz",
                   "md5:fff73e5086ae6bdbea199a49dfb8a4c1", layout=(("dtd", ""),)),
        _split_file("dtd", "1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x"),
    )),
    "eurosat": DatasetSource(files=(
        # torchvision's mirror of EuroSAT.zip (RGB; holds 2750/<class>/); CoOp's madm.dfki.de URL is gone.
        SourceFile("https://huggingface.co/datasets/torchgeo/eurosat/resolve/"
                   "c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip", "EuroSAT.zip",
                   "md5:c8fa014336c82ac7804f0398fcb19387", layout=(("2750", "2750"),)),
        _split_file("eurosat", "1Ip7yaCWFi0eaOFUGga0lUdVi_DDQth1o"),
    )),
    "fgvc_aircraft": DatasetSource(files=(
        # No published checksum (torchvision's FGVCAircraft downloads it unverified): None.
        SourceFile("https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz",
                   "fgvc-aircraft-2013b.tar.gz", layout=(("fgvc-aircraft-2013b/data", ""),)),
    )),
    "stanford_cars": DatasetSource(manual=(
        "Stanford Cars must be fetched by hand: the original URLs (http://ai.stanford.edu/~jkrause/car196/) "
        "no longer serve the files, and the mirrors (e.g. Kaggle) need an account.\n"
        "  1. Get cars_train.tgz, cars_test.tgz, car_devkit.tgz and cars_test_annos_withlabels.mat (Kaggle "
        "dataset 'jessicali9530/stanford-cars-dataset' or another mirror of the original files).\n"
        "  2. Extract them into ROOT/stanford_cars/ so that it holds cars_train/, cars_test/, devkit/ and "
        "cars_test_annos_withlabels.mat.\n"
        f"  3. Download {get_dataset('stanford_cars').split_file} from " + _drive("1ObCFbaAgVu0I-k_Au-gIUcefirdAuizT")
        + " (Google Drive, needs a browser) into ROOT/stanford_cars/.")),
    "ucf101": DatasetSource(manual=(
        "UCF101 (middle video frames, prepared by CoOp) is hosted only on Google Drive (needs a browser).\n"
        "  1. Download UCF-101-midframes.zip from " + _drive("10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O")
        + " and extract it into ROOT/ucf101/ so that it holds ROOT/ucf101/UCF-101-midframes/<Class>/*.jpg.\n"
        f"  2. Download {get_dataset('ucf101').split_file} from " + _drive("1I0S0q91hJfsV9Gf4xDIjgDq4AqBNJb1y")
        + " into ROOT/ucf101/.")),
    "imagenet": DatasetSource(manual=(
        "ImageNet (ILSVRC-2012) needs an account and acceptance of its licence (non-commercial research).\n"
        "  1. At https://image-net.org/download-images download ILSVRC2012_img_train.tar "
        "(md5 1d675b47d978889d74fa0da5fadfb00e, 138 GB), ILSVRC2012_img_val.tar "
        "(md5 29b22e2961454d5413ddabcf34fc5622, 6.3 GB) and ILSVRC2012_devkit_t12.tar.gz "
        "(md5 fa75699e90414af021442c21a62c3abf; it has the val labels) into one folder D.\n"
        "  2. Unpack them into one folder per class: python -c \"import torchvision.datasets as d; "
        "d.ImageNet('D', split='train'); d.ImageNet('D', split='val')\" verifies the md5s and writes "
        "D/train/<wnid>/*.JPEG and D/val/<wnid>/*.JPEG (the val images sorted by the devkit's labels).\n"
        "  3. Move (or symlink) D/train and D/val to ROOT/imagenet/images/train and ROOT/imagenet/images/val.\n"
        f"  4. Download classnames.txt ({_CLASSNAMES_SRC}, needs a browser) to ROOT/imagenet/classnames.txt.")),
    "imagenetv2": DatasetSource(manual=_variant_manual(
        "imagenetv2",
        "Download imagenetv2-matched-frequency.tar.gz (see https://github.com/modestyachts/ImageNetV2; CoOp "
        "used https://s3-us-west-2.amazonaws.com/imagenetv2public/imagenetv2-matched-frequency.tar.gz).",
        "Extract it into ROOT/imagenetv2/, giving ROOT/imagenetv2/imagenetv2-matched-frequency-format-val/"
        "<0..999>/*.jpeg.")),
    "imagenet_sketch": DatasetSource(manual=_variant_manual(
        "imagenet-sketch",
        "Download ImageNet-Sketch (ImageNet-Sketch.zip) via https://github.com/HaohanWang/ImageNet-Sketch "
        "(Google Drive or Kaggle links there).",
        "Extract it and move its class folders so that they are ROOT/imagenet-sketch/images/<wnid>/*.JPEG "
        "(the zip's top folder, sketch/, becomes images/; 1000 folders).")),
    "imagenet_a": DatasetSource(manual=_variant_manual(
        "imagenet-adversarial",
        "Download imagenet-a.tar via https://github.com/hendrycks/natural-adv-examples "
        "(https://people.eecs.berkeley.edu/~hendrycks/imagenet-a.tar).",
        "Extract it into ROOT/imagenet-adversarial/, giving ROOT/imagenet-adversarial/imagenet-a/<wnid>/*.jpg "
        "(200 folders; its README.txt is ignored).")),
    "imagenet_r": DatasetSource(manual=_variant_manual(
        "imagenet-rendition",
        "Download imagenet-r.tar via https://github.com/hendrycks/imagenet-r "
        "(https://people.eecs.berkeley.edu/~hendrycks/imagenet-r.tar).",
        "Extract it into ROOT/imagenet-rendition/, giving ROOT/imagenet-rendition/imagenet-r/<wnid>/*.jpg "
        "(200 folders; its README.txt is ignored).")),
}


def _coerce_source(name: str, raw: Any) -> DatasetSource:
    """Accept DatasetSource objects or plain dicts (as read from YAML/JSON) in a `sources` table."""
    if isinstance(raw, DatasetSource):
        return raw
    if not isinstance(raw, Mapping):
        raise DatasetError(f"sources[{name!r}] must be a DatasetSource or a mapping, got {type(raw).__name__}.")
    files = []
    for i, f in enumerate(raw.get("files", ())):
        if isinstance(f, SourceFile):
            files.append(f)
            continue
        try:
            f = dict(f)
            f["layout"] = tuple(tuple(pair) for pair in f.get("layout", ()))
            files.append(SourceFile(**f))
        except (TypeError, ValueError) as e:
            raise DatasetError(f"sources[{name!r}].files[{i}] is malformed: {e}.") from None
    return DatasetSource(files=tuple(files), manual=raw.get("manual"), note=raw.get("note", ""))


def _source(name: str, sources: Mapping[str, Any] | None) -> DatasetSource:
    table = {**SOURCES, **(sources or {})}
    if name not in table:
        raise DatasetError(
            f"No download source is recorded for {name!r}. Datasets with sources: {', '.join(sorted(table))}."
        )
    return _coerce_source(name, table[name])


def instructions(name: str, root: str | Path = "data", *, sources: Mapping[str, Any] | None = None) -> str:
    """What to fetch by hand for dataset `name`, from where, and where to put it ("" if nothing)."""
    spec = get_dataset(name)
    src = _source(name, sources)
    root = Path(root)
    if src.manual:
        text = f"{name}: {src.manual}\nExpected layout under ROOT: {expected_layout(spec)}."
    else:
        manual = [f for f in src.files if f.manual]
        if not manual:
            return ""
        auto = [f.filename for f in src.files if not f.manual]
        lines = [f"{name}: fetch these files by hand and save them in ROOT/{DOWNLOADS}/:"]
        for f in manual:
            check = f" ({f.checksum})" if f.checksum else ""
            lines.append(f"  - {f.filename}{check} from {f.url}. {f.manual}")
        if auto:
            lines.append(f"  Then rerun `coop data prepare {name} --root {root}`: it downloads {', '.join(auto)} "
                         "and lays everything out.")
        else:
            lines.append(f"  Then rerun `coop data prepare {name} --root {root}` to lay them out.")
        text = "\n".join(lines)
    return text.replace("ROOT", str(root))
