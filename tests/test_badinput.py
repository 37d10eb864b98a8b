"""Bad input as a user meets it: through the `coop` CLI (or snakemake), one test per case.

Each test checks that the call fails with exit code 2 (nonzero for snakemake), that the message names the
problem and the fix, that `coop` prints no Python traceback, and that nothing computed before is lost: a
finished run folder at the `--out` location (metrics.json + prompt.safetensors), a feature cache and a few-shot
manifest in the cache folder stay byte-identical. Untrusted files (a feature cache or learned prompt that is
really a pickle, a pickled checkpoint, archives whose members escape) are refused and never unpickled.

Most cases fail before torch is imported (well under a second each); the cases that need CLIP (a backbone, an
image to decode) take about 5 s.
"""
import hashlib
import io
import json
import shutil
import stat
import subprocess
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from coop.data.datasets import DatasetError, Item, get_dataset, split_path

pytestmark = pytest.mark.badinput


# ---------------------------------------------------------------------------------------------
# helpers

def _coop(coop_bin: str, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([coop_bin, "--threads", "1", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def _user_error(proc: subprocess.CompletedProcess, *phrases: str) -> str:
    """Exit code 2, a one-paragraph `error: ...` message (stderr's last line) holding every phrase, and no
    traceback. (Lines before it are log lines, e.g. open_clip's note on random weights.)"""
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    msg = proc.stderr.strip().splitlines()[-1]
    assert msg.startswith("error: "), proc.stderr
    print(msg)  # shown with pytest -s: the messages a user gets
    for phrase in phrases:
        assert phrase in msg, f"{phrase!r} not in {msg!r}"
    return msg


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class Results:
    """Results computed before the bad call: a finished coop run (at `run`, given as --out), a test-feature
    cache and a few-shot manifest under the cache folder `cache`. `unchanged()` asserts that every one of
    them is still there, byte for byte."""

    def __init__(self, tmp_path: Path, dataset: str = "toy_shapes"):
        from safetensors.numpy import save_file

        from coop.data.fewshot import items_hash
        from coop.features import save_features

        self.cache = tmp_path / "results"
        self.run = self.cache / "runs" / dataset / "toy-rn" / "coop" / "default" / "shots1" / "seed1"
        self.run.mkdir(parents=True)
        (self.run / "metrics.json").write_text(json.dumps(
            {"dataset": dataset, "backbone": "toy-rn", "model": "toy-rn", "pretrained": "random", "init_seed": 0,
             "method": "coop", "variant": "default", "shots": 1, "seed": 1, "params": {"n_ctx": 4},
             "accuracy": 42.0, "macro_f1": 40.0}, indent=2))
        save_file({"ctx": np.random.default_rng(0).normal(size=(4, 128)).astype(np.float32)},
                  str(self.run / "prompt.safetensors"))
        items = [Item(f"c{i}/test_0000.png", i, f"c{i}") for i in range(3)]
        save_features(self.cache / "features" / dataset / "toy-rn" / "test.safetensors",
                      np.ones((3, 8), np.float32), items, {"dataset": dataset, "part": "test"})
        train = [[it.path, it.label, it.classname] for it in items]
        manifest = self.cache / "fewshot" / dataset / "shots1_seed1.json"
        manifest.parent.mkdir(parents=True)
        manifest.write_text(json.dumps({"dataset": dataset, "shots": 1, "seed": 1, "classnames": ["c0", "c1", "c2"],
                                        "train": train, "val": [], "hash": items_hash(items)}))
        self.before = _snapshot(self.cache)
        assert len(self.before) == 4

    def unchanged(self) -> None:
        after = _snapshot(self.cache)
        assert {k: after.get(k) for k in self.before} == self.before
        assert not [k for k in after if k.endswith(".tmp")]  # no half-written file left behind


@pytest.fixture
def results(tmp_path) -> Results:
    return Results(tmp_path)


def _run(coop_bin, results: Results, data_root: Path, *args) -> subprocess.CompletedProcess:
    """`coop run` with --out at the finished run's folder and --cache-dir at the results that hold its cache."""
    return _coop(coop_bin, "run", "--data-root", data_root, "--cache-dir", results.cache, "--out", results.run,
                 *args)


class _Evil:
    """Unpickling this creates `marker`: the proof that a file was unpickled (code ran)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _pickle_bomb(path: Path, marker: Path) -> None:
    """Write a torch.save file whose loading with pickle would create `marker`; check that it really would."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"ctx": _Evil(marker), "features": _Evil(marker)}, path)
    torch.load(io.BytesIO(path.read_bytes()), weights_only=False)  # the payload is live: unpickling runs code ...
    assert marker.exists()
    marker.unlink()  # ... so from here on, the marker's presence would mean that the code under test unpickled it


# ---------------------------------------------------------------------------------------------
# datasets

def test_missing_dataset_folder(coop_bin, tmp_path, results):
    data = tmp_path / "data"
    data.mkdir()
    proc = _run(coop_bin, results, data, "--dataset", "toy_shapes", "--method", "linear_probe", "--shots", "1",
                "--seed", "1")
    _user_error(proc, "Dataset folder for 'toy_shapes' not found", str(data / "toy_shapes"),
                f"coop data toy --dataset toy_shapes --root {data}")
    results.unchanged()


def test_missing_split_file(coop_bin, tmp_path, results):
    data = tmp_path / "data"
    (data / "toy_shapes" / "images").mkdir(parents=True)
    (data / "toy_shapes" / "images" / "mine.txt").write_text("keep me")
    proc = _run(coop_bin, results, data, "--dataset", "toy_shapes", "--method", "linear_probe", "--shots", "1",
                "--seed", "1")
    _user_error(proc, "Split file for 'toy_shapes' not found", "split_zhou_ToyShapes.json",
                f"move {data / 'toy_shapes'} away", f"coop data toy --dataset toy_shapes --root {data}")
    results.unchanged()
    assert (data / "toy_shapes" / "images" / "mine.txt").read_text() == "keep me"


def _write_split(data: Path, dataset: str, content: str) -> Path:
    path = split_path(data, get_dataset(dataset))
    path.parent.mkdir(parents=True)
    path.write_text(content)
    return path


def test_split_file_that_is_not_json(coop_bin, tmp_path, results):
    data = tmp_path / "data"
    path = _write_split(data, "dtd", '{"train": [["banded/a.jpg", 0, "banded"],')  # a truncated download
    proc = _run(coop_bin, results, data, "--dataset", "dtd", "--method", "linear_probe", "--shots", "1",
                "--seed", "1")
    _user_error(proc, f"Malformed split file {path}: it is not JSON",
                f"Download split_zhou_DescribableTextures.json again and replace {path}",
                f"coop data prepare dtd --root {data}")
    results.unchanged()


def test_split_file_item_that_is_not_path_label_classname(coop_bin, tmp_path, results):
    data = tmp_path / "data"
    entries = [["circle/a.png", 0, "circle"], ["square/b.png", "1", "square"]]  # a label given as a string
    path = _write_split(data, "toy_shapes", json.dumps({"train": entries, "val": [], "test": []}))
    proc = _run(coop_bin, results, data, "--dataset", "toy_shapes", "--method", "linear_probe", "--shots", "1",
                "--seed", "1")
    _user_error(proc, f"{path}:train[1] is ['square/b.png', '1', 'square']",
                "each entry must be [relative_path (str), label (int >= 0), classname (str)]",
                "Fix that entry", f"coop data toy --dataset toy_shapes --root {data}")
    results.unchanged()


def test_split_file_label_out_of_range(coop_bin, tmp_path, results):
    data = tmp_path / "data"
    entries = [["circle/a.png", 0, "circle"], ["square/b.png", 1, "square"], ["star/c.png", 7, "star"]]
    path = _write_split(data, "toy_shapes", json.dumps({"train": entries, "val": [], "test": entries}))
    proc = _run(coop_bin, results, data, "--dataset", "toy_shapes", "--method", "linear_probe", "--shots", "1",
                "--seed", "1")
    _user_error(proc, f"{path}: labels must be 0..n-1 without gaps", "the 3 classes use labels up to 7",
                "label out of range", "missing [2, 3, 4, 5, 6]", f"coop data toy --dataset toy_shapes --root {data}")
    results.unchanged()


def test_split_file_path_that_leaves_the_dataset(coop_bin, tmp_path, results):
    data = tmp_path / "data"
    entries = [["circle/a.png", 0, "circle"], ["../../../etc/passwd", 1, "square"]]
    path = _write_split(data, "toy_shapes", json.dumps({"train": entries, "val": [], "test": []}))
    proc = _run(coop_bin, results, data, "--dataset", "toy_shapes", "--method", "linear_probe", "--shots", "1",
                "--seed", "1")
    _user_error(proc, f"{path}:train[1] has the image path '../../../etc/passwd'", "leaves the dataset's image folder",
                "Fix that entry")
    results.unchanged()


def test_image_that_fails_to_decode(coop_bin, toy_root, tmp_path, results):
    data = tmp_path / "data"
    shutil.copytree(toy_root / "toy_textures", data / "toy_textures")
    spec = get_dataset("toy_textures")
    split = json.loads(split_path(data, spec).read_text())
    bad = data / "toy_textures" / spec.image_dir / split["test"][2][0]
    png = bad.read_bytes()
    bad.write_bytes(png[: len(png) // 2])  # a truncated copy
    proc = _run(coop_bin, results, data, "--dataset", "toy_textures", "--method", "zeroshot")
    _user_error(proc, f"Image cannot be decoded: {bad}", "image file is truncated",
                "coop data toy --dataset", "delete the file and remove its entry from the split file")
    results.unchanged()
    assert not (results.cache / "features" / "toy_textures").exists()  # no partial feature cache


def test_unknown_dataset(coop_bin, toy_root, results):
    proc = _run(coop_bin, results, toy_root, "--dataset", "imagenett", "--method", "zeroshot")
    _user_error(proc, "Unknown dataset 'imagenett'", "Known datasets:", "imagenet,", "toy_shapes")
    results.unchanged()


def test_shots_above_what_a_class_has(coop_bin, toy_root, results):
    proc = _run(coop_bin, results, toy_root, "--dataset", "toy_shapes", "--method", "linear_probe",
                "--shots", "16", "--seed", "1")
    _user_error(proc, "10 classes have fewer than 16 training images", "'circle' has 4",
                "Use at most 4 shots", "--allow-fewer",
                f"--out <cache-dir>/fewshot/toy_shapes/shots16_seed1.json")
    results.unchanged()
    assert not (results.cache / "fewshot" / "toy_shapes" / "shots16_seed1.json").exists()


# ---------------------------------------------------------------------------------------------
# backbones and methods

def test_unknown_backbone(coop_bin, toy_root, results):
    proc = _run(coop_bin, results, toy_root, "--dataset", "toy_textures", "--method", "zeroshot",
                "--backbone", "RN5O")
    _user_error(proc, "Unknown backbone 'RN5O'", "Use an open_clip model name (e.g. RN50-quickgelu",
                "similar: RN50")  # a typo of RN50
    results.unchanged()


def test_checkpoint_path_that_does_not_exist(coop_bin, toy_root, tmp_path, results):
    ckpt = tmp_path / "weights" / "toy-rn.pt"
    proc = _run(coop_bin, results, toy_root, "--dataset", "toy_textures", "--method", "zeroshot",
                "--pretrained", ckpt)
    _user_error(proc, f"Checkpoint for 'toy-rn' not found: {ckpt}", "Give the path of an existing checkpoint file",
                "an open_clip pretrained tag", "'random'")
    results.unchanged()


def test_unknown_method(coop_bin, toy_root, results):
    proc = _run(coop_bin, results, toy_root, "--dataset", "toy_shapes", "--method", "lp")
    _user_error(proc, "Unknown method 'lp'", "Known methods:", "linear_probe", "`coop list`")
    results.unchanged()


@pytest.mark.parametrize("method, setting, phrase", [
    ("coop", "lr=-1", "lr must be > 0, got -1.0"),
    ("coop", "batch_size=0", "batch_size must be >= 1, got 0"),
    ("coop", "epochs=0", "epochs must be >= 1 (or none for the official schedule by shots), got 0"),
    ("coop", "num_workers=-2", "num_workers must be >= 0, got -2"),
    ("text_bias", "lr=nan", "lr must be > 0, got nan"),
    ("linear_probe", "C=0", "C must be > 0"),
    ("linear_probe", "search_steps=-1", "search_steps must be >= 0, got -1"),
])
def test_bad_method_value_fails_before_anything_is_loaded(coop_bin, toy_root, results, method, setting, phrase):
    """Values that used to reach torch (a traceback after CLIP loaded) or be ignored (epochs=0 trained the
    default schedule): one line from the method's own validation, and nothing logged before it (no data, no
    CLIP was loaded)."""
    proc = _run(coop_bin, results, toy_root, "--dataset", "toy_shapes", "--method", method, "--shots", "1",
                "--seed", "1", "--set", setting)
    _user_error(proc, phrase)
    assert proc.stdout == "", proc.stdout
    results.unchanged()


# ---------------------------------------------------------------------------------------------
# the config, through snakemake

def test_config_value_of_the_wrong_type(tmp_path):
    from workflow_util import TINY, snakemake

    results = Results(tmp_path / "work")
    fewshot = {**TINY["experiments"]["fewshot"], "shots": "1, 2"}  # a string, not a list
    proc = snakemake(tmp_path / "work", "--cores", "1", config={**TINY, "experiments": {"fewshot": fewshot}},
                     timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-2000:]
    assert "error: config: experiments.fewshot.shots: '1, 2' is not of type 'array'" in proc.stderr  # names the key
    assert "Traceback" not in out
    results.unchanged()


def test_shots_above_the_toy_class_size_stop_the_dry_run(tmp_path):
    """The dry run used to accept it and the job failed after its inputs were built: now the parse stops,
    naming the experiment key, the class size and both fixes, before any job (nothing is generated)."""
    from workflow_util import TINY, snakemake

    work = tmp_path / "work"
    work.mkdir()
    fewshot = {**TINY["experiments"]["fewshot"], "shots": [1, 8]}  # toy_world.n_train is 4
    proc = snakemake(work, "-n", config={**TINY, "experiments": {"fewshot": fewshot}}, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert ("experiments.fewshot.shots: 8 shots asked, but the toy dataset 'toy_shapes' has 4 training images "
            "per class (toy_world.n_train)") in out, out[-2000:]
    assert "Lower the shots to at most 4, or raise toy_world.n_train to at least 8" in out
    assert not (work / "data").exists()


def test_smallest_class_of_a_split_file_on_disk(tmp_path):
    """A split_json dataset on disk: counted from its split file's train entries (an independent count)."""
    from coop.data.datasets import DatasetSpec
    from coop.data.shots_check import check_shots, smallest_class

    spec = DatasetSpec("my_set", "my_set", "split.json", "", "a {}.")
    folder = tmp_path / "my_set"
    folder.mkdir()
    train = [[f"a{i}.png", 0, "ant"] for i in range(5)] + [[f"b{i}.png", 1, "bee"] for i in range(3)]
    (folder / "split.json").write_text(json.dumps({"train": train, "val": [], "test": []}))
    assert smallest_class(tmp_path, spec, {}) == ("bee", 3)
    check_shots(tmp_path, spec, 3, {}, "experiments.x.shots")  # fits
    with pytest.raises(DatasetError, match="4 shots asked, but class 'bee' of 'my_set' has 3 training images"):
        check_shots(tmp_path, spec, 4, {}, "experiments.x.shots")
    assert smallest_class(tmp_path / "elsewhere", spec, {}) is None  # not on disk yet: left to the job


# ---------------------------------------------------------------------------------------------
# untrusted files: caches, learned prompts and checkpoints are never unpickled

def test_feature_cache_that_is_a_pickle(coop_bin, toy_root, tmp_path, results):
    marker = tmp_path / "PWNED"
    cache = results.cache / "features" / "toy_textures" / "toy-rn" / "test.safetensors"
    _pickle_bomb(cache, marker)
    bomb = cache.read_bytes()
    proc = _run(coop_bin, results, toy_root, "--dataset", "toy_textures", "--method", "linear_probe",
                "--shots", "1", "--seed", "1")
    _user_error(proc, f"Unreadable feature cache {cache}", "pickle", "never unpickled", "Delete it and rerun")
    assert not marker.exists()
    assert cache.read_bytes() == bomb  # reported, not silently deleted
    results.unchanged()


def _pickled_prompt_run(results: Results, marker: Path) -> Path:
    prompt = results.run / "prompt.safetensors"
    prompt.unlink()
    _pickle_bomb(prompt, marker)
    results.before = _snapshot(results.cache)  # the bomb is part of what must stay as it is
    return prompt


def test_transfer_refuses_a_prompt_that_is_a_pickle(coop_bin, toy_root, tmp_path, results):
    marker = tmp_path / "PWNED"
    prompt = _pickled_prompt_run(results, marker)
    out = results.cache / "transfer.json"
    proc = _coop(coop_bin, "transfer", "--run-dir", results.run, "--target", "toy_shapes_sketch", "--data-root",
                 toy_root, "--cache-dir", results.cache, "--out", out)
    _user_error(proc, f"{prompt} (the learned parameters of a coop run) is not a readable safetensors file",
                "pickle", "never unpickled", f"Train that run again: move {results.run} away")
    assert not marker.exists() and not out.exists()
    results.unchanged()


def test_interpret_refuses_a_prompt_that_is_a_pickle(coop_bin, toy_root, tmp_path, results):
    marker = tmp_path / "PWNED"
    prompt = _pickled_prompt_run(results, marker)
    out = results.run / "nearest_words.json"
    proc = _coop(coop_bin, "interpret", "--run-dir", results.run, "--data-root", toy_root, "--out", out)
    _user_error(proc, f"{prompt} (the learned parameters of a coop run) is not a readable safetensors file",
                "never unpickled", "Train that run again")
    assert not marker.exists() and not out.exists()
    results.unchanged()


def test_checkpoint_that_is_a_malicious_pickle(coop_bin, toy_root, tmp_path, results):
    marker = tmp_path / "PWNED"
    ckpt = tmp_path / "weights" / "toy-rn.pt"
    _pickle_bomb(ckpt, marker)
    proc = _run(coop_bin, results, toy_root, "--dataset", "toy_textures", "--method", "zeroshot",
                "--pretrained", ckpt)
    _user_error(proc, f"Checkpoint {ckpt} cannot be loaded as 'toy-rn' weights",
                "a pickle that holds more than tensors", "weights_only=True", "re-download the checkpoint")
    assert not marker.exists()
    results.unchanged()


# ---------------------------------------------------------------------------------------------
# untrusted archives: members that would land outside the target folder are refused
# (tests/test_prepare.py::test_unsafe_archives_are_refused covers tar '..', absolute, symlink, link ladder,
# hard link and device members, and zip '..' and absolute members, through a download)

def _zip(members: list[tuple[str, bytes, int | None]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("2750/ok.txt", b"ok")
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.create_system = 3  # unix: the mode is in the high bits of external_attr
                info.external_attr = mode << 16
            z.writestr(info, data)
    return buf.getvalue()


def _tar(members: list[tarfile.TarInfo]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        ok = tarfile.TarInfo("2750/ok.txt")
        ok.size = 2
        t.addfile(ok, io.BytesIO(b"ok"))
        for info in members:
            t.addfile(info, io.BytesIO(b"evil") if info.isfile() else None)
    return buf.getvalue()


def _link(name: str, target: str, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = (tarfile.LNKTYPE if hard else tarfile.SYMTYPE), target
    return info


def _file(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 4
    return info


def _archives(outside: Path) -> dict[str, tuple[str, bytes, str]]:
    """name -> (file name, bytes, what the refusal says)."""
    link = stat.S_IFLNK | 0o777
    return {
        "zip_symlink_up": ("evil.zip", _zip([("2750/link", b"../../outside", link)]),
                           "member '2750/link' is a symbolic link to '../../outside', outside the target"),
        "zip_symlink_absolute": ("evil.zip", _zip([("2750/link", str(outside).encode(), link)]),
                                 f"is a symbolic link to '{outside}', outside the target"),
        "zip_dotdot_nested": ("evil.zip", _zip([("2750/../../evil.txt", b"evil", None)]),
                              "member '2750/../../evil.txt' would be written outside the target folder"),
        "zip_backslash_dotdot": ("evil.zip", _zip([("..\\..\\evil.txt", b"evil", None)]),
                                 "would be written outside the target folder"),
        "zip_drive_letter": ("evil.zip", _zip([("C:/evil.txt", b"evil", None)]), "has an absolute path"),
        "tar_symlink_absolute": ("evil.tar.gz", _tar([_link("2750/link", str(outside))]),
                                 f"member '2750/link' is a symbolic link to '{outside}', outside the target"),
        "tar_symlink_then_write_through_it": (
            "evil.tar.gz", _tar([_link("2750/up", "../.."), _file("2750/up/evil.txt")]),
            "member '2750/up' is a symbolic link to '../..', outside the target"),
        "tar_hardlink_absolute": ("evil.tar.gz", _tar([_link("2750/hard", str(outside / "secret.txt"), hard=True)]),
                                  "is a hard link to"),
        "tar_dotdot_after_dot": ("evil.tar.gz", _tar([_file("./2750/./../../evil.txt")]),
                                 "would be written outside the target folder"),
    }


@pytest.mark.parametrize("case", list(_archives(Path("/x"))))
def test_archive_member_escaping_the_target_is_refused(tmp_path, case):
    from coop.data.prepare import DatasetSource, SourceFile, UnsafeArchiveError, prepare

    root = tmp_path / "deep" / "data"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    filename, data, message = _archives(outside)[case]
    (root / ".downloads").mkdir(parents=True)
    (root / ".downloads" / filename).write_bytes(data)  # picked up as if downloaded, checksum verified
    sources = {"eurosat": DatasetSource(files=(SourceFile("https://example.invalid/" + filename, filename,
                                                          "sha256:" + hashlib.sha256(data).hexdigest()),))}
    with pytest.raises(UnsafeArchiveError) as e:
        prepare("eurosat", root, sources=sources, log=lambda s: None)
    msg = str(e.value)
    assert message in msg, msg
    assert "delete it and download it again from the official source" in msg
    assert isinstance(e.value, DatasetError)  # a user error: the CLI reports it with exit code 2
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file() or p.is_symlink())
    assert files == [f"deep/data/.downloads/{filename}", "outside/secret.txt"]  # nothing extracted anywhere
    assert (outside / "secret.txt").read_text() == "secret"
