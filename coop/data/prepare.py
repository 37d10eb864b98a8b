"""Download, verify and lay out the real datasets of the paper, and check what is on disk.

`prepare(name, root)` fetches the publicly downloadable files of one dataset into `root/.downloads/`
(resuming partial `*.part` files with HTTP Range requests), verifies their checksums, extracts the
archives into a hidden temporary folder beside the target, moves the extracted files into the layout
that `read_split` expects (PROTOCOL.md, "Data"), checks it with `read_split`, and only then renames the
folder into place: a failure leaves no half-made dataset folder behind. Archive members whose paths
would land outside the extraction folder (absolute paths, `..`, links pointing outside, device files)
are refused before anything of them is written.

Files that cannot be fetched automatically (ImageNet and its variants by licence; everything hosted
only on Google Drive, which includes all of CoOp's `split_zhou_*.json` files) come with instructions:
`prepare` raises a DatasetError that says what to fetch, from where, and where to put each file.
Files put into `root/.downloads/` by hand are picked up (and verified) on the next run.

`check(root)` reports, for every real dataset, whether its folder is present and readable.
"""
from __future__ import annotations

import csv
import hashlib
import http.client
import os
import re
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Mapping

from coop.data.datasets import (
    DATASETS,
    IMAGENET_CLASSNAMES_URL,
    DatasetError,
    Split,
    dataset_dir,
    expected_layout,
    get_dataset,
    read_split,
)

DOWNLOADS = ".downloads"  # under the data root
USER_AGENT = "coop-bench/0.1 (+urllib)"
CHUNK = 1 << 20


class UnsafeArchiveError(DatasetError):
    """An archive member would be written outside the extraction folder."""


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


@dataclass(frozen=True)
class DatasetStatus:
    name: str
    present: bool                     # its folder exists under the data root
    valid: bool                       # read_split succeeds
    message: str                      # the error, or the counts of images and classes


# ---------------------------------------------------------------------------------------------
# the table of sources (CoOp's DATASETS.md; URLs and md5s of archives as recorded by torchvision 0.29)

def _drive(file_id: str) -> str:
    return f"https://drive.google.com/file/d/{file_id}/view?usp=sharing"


_DRIVE = ("Hosted only on Google Drive (CoOp's link), which needs a browser: open the link, download the "
          "file, and save it under the name given.")


def _split_file(split_name: str, file_id: str) -> SourceFile:
    # CoOp's fixed splits. Their checksums are not published: None (not verified).
    return SourceFile(_drive(file_id), f"split_zhou_{split_name}.json", manual=_DRIVE)


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
        _split_file("Caltech101", "1hyarUivQE36mY6jSomru6Fjd-JzwcCzN"),
    )),
    "oxford_pets": DatasetSource(files=(
        SourceFile("https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz", "oxford_pets_images.tar.gz",
                   "md5:5c4f3ee8e5d25df40f4fd59a7f44e54c", layout=(("images", "images"),)),
        SourceFile("https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz",
                   "oxford_pets_annotations.tar.gz", "md5:95a8c909bbe2e81eed6a22bccdf3f68f",
                   layout=(("annotations", "annotations"),)),
        _split_file("OxfordPets", "1501r8Ber4nNKvmlFVQZ8SeUHTcdTTEqs"),
    )),
    "oxford_flowers": DatasetSource(files=(
        SourceFile("https://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz", "102flowers.tgz",
                   "md5:52808999861908f626f3c1f4e79d11fa", layout=(("jpg", "jpg"),)),
        SourceFile("https://www.robots.ox.ac.uk/~vgg/data/flowers/102/imagelabels.mat", "imagelabels.mat",
                   "md5:e0620be6f572b9609742df49c70aed4d"),
        # cat_to_name.json (Google Drive, 1AkcxCXeK_RCGCEC_GvmWxjcjaNhu-at0) is only needed to rebuild the
        # split file; the split file already names every class.
        _split_file("OxfordFlowers", "1Pp0sRXzZFZq15zVOzKjKBu4A9i01nozT"),
    )),
    "food101": DatasetSource(files=(
        SourceFile("http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz", "food-101.tar.gz",
                   "md5:85eeb15f3717b99a5da872d97d918f87", layout=(("food-101", ""),)),
        _split_file("Food101", "1QK0tGi096I0Ba6kggatX1ee6dJFIcEJl"),
    )),
    "sun397": DatasetSource(files=(
        # CoOp also lists Partitions.zip; the split file replaces it, so it is not fetched.
        SourceFile("http://vision.princeton.edu/projects/2010/SUN/SUN397.tar.gz", "SUN397.tar.gz",
                   "md5:8ca2778205c41d23104230ba66911c7a", layout=(("SUN397", "SUN397"),)),
        _split_file("SUN397", "1y2RD81BYuiyvebdN-JymPfyWYcd8_MUq"),
    )),
    "dtd": DatasetSource(files=(
        SourceFile("https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz", "dtd-r1.0.1.tar.gz",
                   "md5:fff73e5086ae6bdbea199a49dfb8a4c1", layout=(("dtd", ""),)),
        _split_file("DescribableTextures", "1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x"),
    )),
    "eurosat": DatasetSource(files=(
        # torchvision's mirror of EuroSAT.zip (RGB; holds 2750/<class>/); CoOp's madm.dfki.de URL is gone.
        SourceFile("https://huggingface.co/datasets/torchgeo/eurosat/resolve/"
                   "c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip", "EuroSAT.zip",
                   "md5:c8fa014336c82ac7804f0398fcb19387", layout=(("2750", "2750"),)),
        _split_file("EuroSAT", "1Ip7yaCWFi0eaOFUGga0lUdVi_DDQth1o"),
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
        "  3. Download split_zhou_StanfordCars.json from " + _drive("1ObCFbaAgVu0I-k_Au-gIUcefirdAuizT")
        + " (Google Drive, needs a browser) into ROOT/stanford_cars/.")),
    "ucf101": DatasetSource(manual=(
        "UCF101 (middle video frames, prepared by CoOp) is hosted only on Google Drive (needs a browser).\n"
        "  1. Download UCF-101-midframes.zip from " + _drive("10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O")
        + " and extract it into ROOT/ucf101/ so that it holds ROOT/ucf101/UCF-101-midframes/<Class>/*.jpg.\n"
        "  2. Download split_zhou_UCF101.json from " + _drive("1I0S0q91hJfsV9Gf4xDIjgDq4AqBNJb1y")
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


# ---------------------------------------------------------------------------------------------
# checksums and downloads

def file_checksum(path: str | Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _parse_checksum(checksum: str) -> tuple[str, str]:
    algo, sep, value = checksum.partition(":")
    if not sep:  # a bare hex digest: md5 (32) or sha256 (64)
        algo, value = {32: "md5", 64: "sha256"}.get(len(checksum), "?"), checksum
    algo = algo.lower()
    if algo not in ("md5", "sha1", "sha256", "sha512") or not re.fullmatch(r"[0-9a-fA-F]+", value):
        raise DatasetError(f"Checksum {checksum!r} is not 'md5:<hex>' or 'sha256:<hex>'.")
    return algo, value.lower()


def verify(path: Path, checksum: str | None, url: str, name: str, root: Path) -> None:
    """Raise if `path` does not match `checksum` (no check when the checksum is not known)."""
    if not checksum:
        return
    algo, expected = _parse_checksum(checksum)
    actual = file_checksum(path, algo)
    if actual != expected:
        raise DatasetError(
            f"Checksum mismatch for {path} (from {url}): expected {algo} {expected}, got {actual}. The file is "
            "corrupt or not what the source table expects (an HTML error page, a changed archive). Delete "
            f"{path} and rerun `coop data prepare {name} --root {root}` to download it again."
        )


def _total_from_content_range(value: str | None) -> int | None:
    m = re.fullmatch(r"bytes (?:\d+-\d+|\*)/(\d+)", (value or "").strip())
    return int(m.group(1)) if m else None


def download(url: str, dest: Path, *, timeout: float = 60.0, retries: int = 3,
             log: Callable[[str], None] = print) -> Path:
    """Fetch `url` to `dest`, via `dest.part`, continuing a partial `.part` file with a Range request.

    Interrupted transfers are retried (`retries` times, resuming); every request has `timeout`
    seconds for connecting and for each read. Returns `dest`; it is not verified here.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    for attempt in range(retries + 1):
        offset = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": USER_AGENT}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
        except urllib.error.HTTPError as e:
            e.close()
            if e.code == 416 and offset:  # nothing left to fetch: the part file is complete (or too long)
                if _total_from_content_range(e.headers.get("Content-Range")) == offset:
                    last_error = None
                    break
                log(f"  {part.name} does not fit the file on the server; starting over")
                part.unlink()
                last_error = OSError("the partial file did not fit the file on the server")
                continue
            if e.code >= 500 and attempt < retries:
                last_error = e
                time.sleep(min(2 ** attempt, 10))
                continue
            raise DatasetError(
                f"Downloading {url} failed: HTTP {e.code} {e.reason}. The URL may have moved: fetch the file by "
                f"hand, save it as {dest}, and rerun."
            ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            last_error = e
            if attempt < retries:
                time.sleep(min(2 ** attempt, 10))
                continue
            break
        with resp:
            if offset and resp.status == 206:
                start = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
                if not start or int(start.group(1)) != offset:
                    resp.close()
                    raise DatasetError(
                        f"Downloading {url}: the server answered the resume request for byte {offset} with "
                        f"Content-Range {resp.headers.get('Content-Range')!r}. Delete {part} and rerun."
                    )
                mode = "ab"
                log(f"  resuming {dest.name} at {offset / 1e6:.1f} MB")
            else:
                if offset:
                    log(f"  the server ignored the resume request; downloading {dest.name} from the start")
                offset, mode = 0, "wb"
            length = resp.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else None
            done = offset
            next_report = 0.0
            try:
                with open(part, mode) as f:
                    while chunk := resp.read(CHUNK):
                        f.write(chunk)
                        done += len(chunk)
                        if total and done / total >= next_report:
                            log(f"  {dest.name}: {done / 1e6:.1f} of {total / 1e6:.1f} MB")
                            next_report = done / total + 0.1
            except (OSError, http.client.HTTPException) as e:  # reset or timed out: resume from what we have
                last_error = e
                if attempt < retries:
                    time.sleep(min(2 ** attempt, 10))
                    continue
                break
        if total is not None and done != total:
            last_error = OSError(f"got {done} of {total} bytes")
            if attempt < retries and done > offset:
                continue
            break
        last_error = None
        break
    if last_error is not None:
        raise DatasetError(
            f"Downloading {url} failed: {last_error}. Check the network and rerun: the download resumes from "
            f"{part}. Or fetch the file by hand and save it as {dest}."
        )
    os.replace(part, dest)
    return dest


# ---------------------------------------------------------------------------------------------
# safe extraction

def archive_kind(filename: str) -> str:
    n = filename.lower()
    if n.endswith(".zip"):
        return "zip"
    if n.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")):
        return "tar"
    return "file"


def _inside(dest: Path, rel: str) -> bool:
    """Whether `rel` (a path relative to the resolved folder `dest`) stays inside `dest` (or is `dest`).

    Links already on disk are followed (os.path.realpath), so a link extracted earlier cannot be used
    as a ladder ("a" -> ".", then "a/a/l" -> "../../x").
    """
    path = os.path.realpath(os.path.join(str(dest), rel))
    return path == str(dest) or path.startswith(str(dest) + os.sep)


def _check_name(archive: Path, name: str, dest: Path) -> None:
    posix = name.replace("\\", "/")
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix):
        raise UnsafeArchiveError(
            f"Refusing to extract {archive}: member {name!r} has an absolute path. The archive is damaged or "
            "malicious; delete it and download it again from the official source."
        )
    if ".." in PurePosixPath(posix).parts or not _inside(dest, posix):
        raise UnsafeArchiveError(
            f"Refusing to extract {archive}: member {name!r} would be written outside the target folder "
            "('..' in its path). The archive is damaged or malicious; delete it and download it again from "
            "the official source."
        )


def _check_link(archive: Path, name: str, target: str, dest: Path, hard: bool) -> None:
    # A symlink's target is relative to the link's folder; a hard link's to the archive's top.
    base = "" if hard else os.path.dirname(name.replace("\\", "/"))
    if target.startswith("/") or not _inside(dest, os.path.join(base, target)):
        raise UnsafeArchiveError(
            f"Refusing to extract {archive}: member {name!r} is a {'hard' if hard else 'symbolic'} link to "
            f"{target!r}, outside the target folder. The archive is damaged or malicious; delete it and download "
            "it again from the official source."
        )


_FILTER_ERROR = getattr(tarfile, "FilterError", ())  # Python >= 3.11.4


def extract(archive: Path, dest: Path, kind: str | None = None) -> None:
    """Extract `archive` into the new folder `dest`, refusing members that would escape it.

    Every member is checked before it is written; on a refusal the caller removes `dest` (prepare
    extracts into a temporary folder only).
    """
    kind = kind or archive_kind(archive.name)
    dest.mkdir(parents=True, exist_ok=False)
    dest = dest.resolve()
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as z:
                infos = z.infolist()
                for info in infos:  # the central directory lists every member: check all before writing
                    _check_name(archive, info.filename, dest)
                    if stat.S_ISLNK(info.external_attr >> 16):
                        _check_link(archive, info.filename, z.read(info).decode("utf-8", "replace"), dest, False)
                z.extractall(dest)  # zipfile writes symlink members as small text files
        elif kind == "tar":
            data_filter = getattr(tarfile, "data_filter", None)  # Python >= 3.11.4: a second line of defence
            with tarfile.open(archive, "r|*") as t:  # streaming: one pass over a compressed archive
                for m in t:
                    _check_name(archive, m.name, dest)
                    if m.issym() or m.islnk():
                        _check_link(archive, m.name, m.linkname, dest, m.islnk())
                    elif not (m.isfile() or m.isdir()):
                        raise UnsafeArchiveError(
                            f"Refusing to extract {archive}: member {m.name!r} is a device or special file. "
                            "The archive is damaged or malicious; delete it and download it again from the official "
                            "source."
                        )
                    if data_filter is not None:
                        t.extract(m, dest, filter="data")
                    else:  # directory modes are not applied (a read-only folder would block its files)
                        t.extract(m, dest, set_attrs=not m.isdir())
        else:
            raise DatasetError(f"{archive} is not a zip or tar archive (kind {kind!r}).")
    except _FILTER_ERROR as e:  # refused by tarfile's data filter after our own checks passed
        raise UnsafeArchiveError(f"Refusing to extract {archive}: {e}. Delete it and download it again.") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as e:
        raise DatasetError(
            f"{archive} is not a readable {kind} archive ({e}). Delete it and download it again."
        ) from None


def _move(src: Path, dst: Path, what: str) -> None:
    if not src.exists() and not src.is_symlink():
        raise DatasetError(f"{what}: expected {src.name!r} in the archive, found no such path. The archive's "
                           "layout differs from the one recorded in the source table.")
    if src.is_dir() and dst.is_dir():  # merge (e.g. an archive's top folder into the dataset folder)
        for child in sorted(src.iterdir()):
            _move(child, dst / child.name, what)
        return
    if dst.exists():
        raise DatasetError(f"{what}: {dst.name!r} comes from two sources; fix the layout in the source table.")
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)


# ---------------------------------------------------------------------------------------------
# prepare and check

def _summary(split: Split) -> str:
    val = f"{len(split.val)} val"
    if not split.val and split.train:
        val += " (few-shot val drawn from unused train images)"
    return (f"{len(split.train)} train / {val} / {len(split.test)} test images, "
            f"{len(split.classnames)} classes")


def prepare(name: str, root: str | Path, *, sources: Mapping[str, Any] | None = None,
            log: Callable[[str], None] = print, timeout: float = 60.0, retries: int = 3,
            keep_downloads: bool = True) -> Path:
    """Download, verify, extract and lay out dataset `name` under `root`; return its folder.

    `sources` adds to / overrides the built-in table SOURCES ({name: DatasetSource or dict}). An
    already valid dataset folder is left alone. Raises DatasetError with instructions for whatever
    must be fetched by hand, and on any failure leaves no dataset folder and no temporary folder.
    """
    spec = get_dataset(name)
    if spec.toy:
        raise DatasetError(f"{name!r} is a toy dataset: generate it with `coop data toy --dataset {name}`.")
    root = Path(root)
    src = _source(name, sources)
    target = dataset_dir(root, spec)
    if target.exists() or target.is_symlink():
        try:
            split = read_split(root, spec)
        except DatasetError as e:
            raise DatasetError(
                f"{target} exists but is not a valid {name} dataset: {e} Fix it, or move it away and rerun "
                f"`coop data prepare {name} --root {root}` to build it from scratch."
            ) from None
        log(f"{name}: already prepared at {target} ({_summary(split)})")
        return target
    if src.manual:
        raise DatasetError(instructions(name, root, sources=sources))
    downloads = root / DOWNLOADS
    missing = [f for f in src.files if f.manual and not (downloads / f.filename).is_file()]
    if missing:
        raise DatasetError(instructions(name, root, sources=sources))

    paths = []
    for f in src.files:
        path = downloads / f.filename
        if path.is_file():
            log(f"{name}: using {path}")
        else:
            log(f"{name}: downloading {f.url} -> {path}")
            download(f.url, path, timeout=timeout, retries=retries, log=log)
        verify(path, f.checksum, f.url, name, root)
        paths.append(path)

    root.mkdir(parents=True, exist_ok=True)
    stale = sorted(root.glob(f".{spec.folder}.*.partial"))
    if stale:
        log(f"{name}: note: {', '.join(map(str, stale))} left by an interrupted run; delete them to free space")
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.folder}.", suffix=".partial", dir=root))
    try:
        staging = tmp / spec.folder
        staging.mkdir()
        for i, (f, path) in enumerate(zip(src.files, paths)):
            kind = f.kind or archive_kind(f.filename)
            what = f"{name}: {f.filename}"
            if kind == "file":
                for s, dst in f.layout or (("", f.filename),):
                    if s or not dst or not _inside(staging.resolve(), dst):
                        raise DatasetError(f"{what}: a plain file's layout must be ('', <path in the dataset>).")
                    (staging / dst).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, staging / dst)
                continue
            log(f"{name}: extracting {path.name}")
            out = tmp / f"x{i}"
            extract(path, out, kind)
            if f.inner:
                inner = out / f.inner
                if not _inside(out.resolve(), f.inner) or not inner.is_file():
                    raise DatasetError(f"{what}: expected the archive {f.inner!r} inside it, found none.")
                log(f"{name}: extracting {f.inner}")
                out = tmp / f"x{i}_inner"
                extract(inner, out)
            for s, dst in f.layout or (("", ""),):
                if s and not _inside(out.resolve(), s):
                    raise DatasetError(f"{what}: layout source {s!r} leaves the archive.")
                if dst and not _inside(staging.resolve(), dst):
                    raise DatasetError(f"{what}: layout destination {dst!r} leaves the dataset folder.")
                _move(out / s if s else out, staging / dst if dst else staging, what)
        try:
            split = read_split(tmp, spec)
        except DatasetError as e:
            raise DatasetError(
                f"{name}: the downloaded files do not form a valid dataset, so nothing was installed: {e}"
            ) from None
        os.rename(staging, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not keep_downloads:
        for f, path in zip(src.files, paths):
            if not f.manual:
                path.unlink(missing_ok=True)
    log(f"{name}: prepared {target} ({_summary(split)})")
    return target


# Paper Table 6 names of the registered datasets (counts in coop/report/paper/table6_datasets.csv).
_TABLE6_NAMES = {
    "imagenet": "ImageNet", "caltech101": "Caltech101", "oxford_pets": "OxfordPets",
    "stanford_cars": "StanfordCars", "oxford_flowers": "Flowers102", "food101": "Food101",
    "fgvc_aircraft": "FGVCAircraft", "sun397": "SUN397", "dtd": "DTD", "eurosat": "EuroSAT",
    "ucf101": "UCF101", "imagenetv2": "ImageNetV2", "imagenet_sketch": "ImageNetSketch",
    "imagenet_a": "ImageNetA", "imagenet_r": "ImageNetR",
}


def _table6() -> dict[str, dict[str, str]]:
    path = Path(__file__).resolve().parent.parent / "report" / "paper" / "table6_datasets.csv"
    try:
        with open(path, newline="") as f:
            return {row["dataset"]: row for row in csv.DictReader(f)}
    except (OSError, KeyError, csv.Error):
        return {}


def _compare_table6(name: str, split: Split, table: dict[str, dict[str, str]]) -> str:
    row = table.get(_TABLE6_NAMES.get(name, ""))
    if not row:
        return ""
    got = {"classes": len(split.classnames), "train": len(split.train), "val": len(split.val),
           "test": len(split.test)}
    diff = [f"{k} {got[k]} (paper {row[k]})" for k in got if row.get(k) and int(row[k]) != got[k]]
    return f"; differs from paper Table 6: {', '.join(diff)}" if diff else "; matches paper Table 6"


def check(root: str | Path) -> list[DatasetStatus]:
    """For every registered real dataset: is its folder present, and does `read_split` read it?"""
    root = Path(root)
    table = _table6()
    out = []
    for spec in DATASETS.values():
        if spec.toy or spec.name.startswith("toy_"):
            continue
        folder = dataset_dir(root, spec)
        if not folder.is_dir():
            out.append(DatasetStatus(spec.name, False, False,
                                     f"missing: {folder} (run `coop data prepare {spec.name} --root {root}`)"))
            continue
        try:
            split = read_split(root, spec)
        except DatasetError as e:
            out.append(DatasetStatus(spec.name, True, False, str(e)))
            continue
        note = f"; evaluation only, classes of {spec.source}" if spec.source else ""
        message = _summary(split) + note + _compare_table6(spec.name, split, table)
        out.append(DatasetStatus(spec.name, True, True, message))
    return out


__all__ = [
    "SOURCES", "DatasetSource", "DatasetStatus", "SourceFile", "UnsafeArchiveError", "archive_kind", "check",
    "download", "extract", "file_checksum", "instructions", "prepare", "verify",
]
