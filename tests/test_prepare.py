"""`coop.data.prepare`: downloads with resume, checksums, safe extraction, layout, `check`.

Everything is served by a small HTTP server on 127.0.0.1 (random port, Range support) that the
fixture shuts down; it also stops by itself after a minute. No other network is used.
"""
import hashlib
import io
import json
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from coop.data.datasets import DatasetError, get_dataset, read_split
from coop.data.prepare import (
    SOURCES,
    DatasetSource,
    DatasetStatus,
    SourceFile,
    UnsafeArchiveError,
    check,
    download,
    extract,
    instructions,
    prepare,
)

CLASSES = ["banded", "blotchy", "braided"]
TIMEOUT = 5.0  # seconds, every request of the code under test


class _Handler(BaseHTTPRequestHandler):
    """Serves server.files {path: bytes}; honours "Range: bytes=N-"; records (path, Range) per request."""

    timeout = TIMEOUT  # socket timeout of each connection
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        start = 0
        if rng and not srv.ignore_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        if self.path in srv.cut_once:  # announce everything, send half, drop the connection
            srv.cut_once.discard(self.path)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.files, srv.requests, srv.cut_once, srv.ignore_range = {}, [], set(), False
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    watchdog = threading.Timer(60.0, srv.shutdown)  # bounded even if the teardown never runs
    watchdog.daemon = True
    watchdog.start()
    try:
        yield srv
    finally:
        watchdog.cancel()
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)
        assert not thread.is_alive()


def _png(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buf, format="PNG")
    return buf.getvalue()


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _dtd_archive() -> tuple[bytes, bytes]:
    """A miniature dtd-r1.0.1.tar.gz (dtd/images/<class>/*.png, dtd/labels/) and its split JSON."""
    members, split = {}, {"train": [], "val": [], "test": []}
    for c, name in enumerate(CLASSES):
        for i, part in enumerate(["train", "train", "val", "test"]):
            rel = f"{name}/{name}_{i:04d}.png"
            members[f"dtd/images/{rel}"] = _png((40 * c, 80, 20 * i))
            split[part].append([rel, c, name])
    members["dtd/labels/labels_joint_anno.txt"] = b"whatever\n"
    # padding, so that the archive is big enough to be cut and resumed in pieces
    members["dtd/imdb/imdb.bin"] = hashlib.sha256(b"x").digest() * 2000
    return _tar(members), json.dumps(split).encode()


def _sha256(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def _md5(b: bytes) -> str:
    return "md5:" + hashlib.md5(b).hexdigest()


@pytest.fixture
def dtd(server):
    """Serve the miniature DTD; return (sources table, archive bytes, split bytes)."""
    archive, split = _dtd_archive()
    server.files["/dtd-r1.0.1.tar.gz"] = archive
    server.files["/split.json"] = split
    sources = {"dtd": DatasetSource(files=(
        SourceFile(f"{server.base}/dtd-r1.0.1.tar.gz", "dtd-r1.0.1.tar.gz", _sha256(archive),
                   layout=(("dtd", ""),)),
        SourceFile(f"{server.base}/split.json", "split_zhou_DescribableTextures.json", _md5(split)),
    ))}
    return sources, archive, split


def _quiet(_msg):
    pass


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name not in (".downloads",))


def test_prepare_downloads_verifies_and_lays_out(tmp_path, server, dtd):
    sources, archive, _ = dtd
    root = tmp_path / "data"
    log = []
    path = prepare("dtd", root, sources=sources, log=log.append, timeout=TIMEOUT)
    assert path == root / "dtd"
    split = read_split(root, get_dataset("dtd"))
    assert split.classnames == CLASSES
    assert (len(split.train), len(split.val), len(split.test)) == (6, 3, 3)
    assert all((root / "dtd" / "images" / it.path).is_file() for it in split.train + split.val + split.test)
    assert (root / "dtd" / "labels" / "labels_joint_anno.txt").is_file()  # the archive's top folder merged in
    assert (root / ".downloads" / "dtd-r1.0.1.tar.gz").read_bytes() == archive
    assert not list((root / ".downloads").glob("*.part"))
    assert _leftovers(root) == ["dtd"]  # no temporary folder left
    assert any("prepared" in m and "3 classes" in m for m in log)

    n = len(server.requests)
    log.clear()
    assert prepare("dtd", root, sources=sources, log=log.append, timeout=TIMEOUT) == path
    assert len(server.requests) == n and "already prepared" in log[0]


@pytest.mark.badinput
def test_prepare_into_the_empty_folder_snakemake_made(tmp_path, server, dtd):
    """Snakemake makes the folder of a job's output before the job: an empty dataset folder is absent (it used
    to say "exists but is not a valid dtd dataset" and advise the command that had just failed)."""
    sources, _, _ = dtd
    (tmp_path / "dtd").mkdir()
    prepare("dtd", tmp_path, sources=sources, log=_quiet, timeout=TIMEOUT)
    assert read_split(tmp_path, get_dataset("dtd")).classnames == CLASSES
    mine = tmp_path / "root2" / "dtd"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")  # a folder with something in it is never replaced
    with pytest.raises(DatasetError, match="exists but is not a valid dtd dataset"):
        prepare("dtd", tmp_path / "root2", sources=sources, log=_quiet, timeout=TIMEOUT)
    assert (mine / "notes.txt").read_text() == "mine"


def test_sources_may_be_plain_dicts(tmp_path, server, dtd):
    sources, _, _ = dtd
    as_dicts = {"dtd": {"files": [
        {"url": f.url, "filename": f.filename, "checksum": f.checksum, "layout": [list(p) for p in f.layout]}
        for f in sources["dtd"].files
    ]}}
    prepare("dtd", tmp_path, sources=as_dicts, log=_quiet, timeout=TIMEOUT, keep_downloads=False)
    assert read_split(tmp_path, get_dataset("dtd")).classnames == CLASSES
    assert not list((tmp_path / ".downloads").iterdir())  # keep_downloads=False


def test_resume_continues_a_partial_file_with_a_range_request(tmp_path, server, dtd):
    sources, archive, _ = dtd
    downloads = tmp_path / ".downloads"
    downloads.mkdir()
    n = len(archive) // 3
    (downloads / "dtd-r1.0.1.tar.gz.part").write_bytes(archive[:n])
    log = []
    prepare("dtd", tmp_path, sources=sources, log=log.append, timeout=TIMEOUT)
    assert ("/dtd-r1.0.1.tar.gz", f"bytes={n}-") in server.requests
    assert (downloads / "dtd-r1.0.1.tar.gz").read_bytes() == archive  # and it verified
    assert any("resuming" in m for m in log)
    assert read_split(tmp_path, get_dataset("dtd")).classnames == CLASSES


def test_interrupted_transfer_is_resumed(tmp_path, server, dtd):
    sources, archive, _ = dtd
    server.cut_once.add("/dtd-r1.0.1.tar.gz")
    prepare("dtd", tmp_path, sources=sources, log=_quiet, timeout=TIMEOUT, retries=2)
    ranges = [r for p, r in server.requests if p == "/dtd-r1.0.1.tar.gz"]
    assert ranges[0] is None and ranges[1] == f"bytes={len(archive) // 2}-"
    assert (tmp_path / "dtd").is_dir()


def test_complete_part_file_and_a_server_that_ignores_ranges(tmp_path, server, dtd):
    _, archive, _ = dtd
    dest = tmp_path / "a.tar.gz"
    dest.with_name("a.tar.gz.part").write_bytes(archive)  # complete already: the server answers 416
    download(f"{server.base}/dtd-r1.0.1.tar.gz", dest, timeout=TIMEOUT, log=_quiet)
    assert dest.read_bytes() == archive
    server.ignore_range = True  # a 200 answer to a Range request: start over, do not append
    dest.unlink()
    dest.with_name("a.tar.gz.part").write_bytes(archive[:100])
    download(f"{server.base}/dtd-r1.0.1.tar.gz", dest, timeout=TIMEOUT, log=_quiet)
    assert dest.read_bytes() == archive


@pytest.mark.badinput
def test_checksum_mismatch_is_a_clear_error_and_installs_nothing(tmp_path, server, dtd):
    sources, archive, split = dtd
    server.files["/dtd-r1.0.1.tar.gz"] = archive[:-10] + b"corrupted!"  # wrong bytes, same length
    with pytest.raises(DatasetError) as e:
        prepare("dtd", tmp_path, sources=sources, log=_quiet, timeout=TIMEOUT)
    msg = str(e.value)
    bad = tmp_path / ".downloads" / "dtd-r1.0.1.tar.gz"
    assert f"Checksum mismatch for {bad}" in msg
    assert f"expected sha256 {hashlib.sha256(archive).hexdigest()}" in msg
    assert f"got {hashlib.sha256(server.files['/dtd-r1.0.1.tar.gz']).hexdigest()}" in msg
    assert f"Delete {bad} and rerun" in msg
    assert _leftovers(tmp_path) == []  # no dataset folder, no temporary folder
    # following the advice fixes it
    server.files["/dtd-r1.0.1.tar.gz"] = archive
    bad.unlink()
    prepare("dtd", tmp_path, sources=sources, log=_quiet, timeout=TIMEOUT)
    assert _leftovers(tmp_path) == ["dtd"]


@pytest.mark.badinput
def test_archive_that_does_not_give_the_layout_installs_nothing(tmp_path, server, dtd):
    sources, _, _ = dtd
    archive, split = sources["dtd"].files
    # the split file lands elsewhere: the staged folder fails read_split, so nothing is installed
    misplaced = SourceFile(split.url, split.filename, split.checksum, layout=(("", "elsewhere/split.json"),))
    with pytest.raises(DatasetError, match="do not form a valid dataset, so nothing was installed.*Split file"):
        prepare("dtd", tmp_path, sources={"dtd": DatasetSource(files=(archive, misplaced))}, log=_quiet,
                timeout=TIMEOUT)
    assert _leftovers(tmp_path) == []
    # the archive's top folder is not the one the table names
    wrong_top = SourceFile(archive.url, "other.tar.gz", None, layout=(("textures", ""),))
    with pytest.raises(DatasetError, match="expected 'textures' in the archive"):
        prepare("dtd", tmp_path, sources={"dtd": DatasetSource(files=(wrong_top, split))}, log=_quiet,
                timeout=TIMEOUT)
    assert _leftovers(tmp_path) == []


def test_safe_links_and_dot_members_are_extracted(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        d = tarfile.TarInfo(".")
        d.type = tarfile.DIRTYPE
        t.addfile(d)
        f = tarfile.TarInfo("./a/b.txt")
        f.size = 2
        t.addfile(f, io.BytesIO(b"hi"))
        link = tarfile.TarInfo("./a/link")
        link.type, link.linkname = tarfile.SYMTYPE, "b.txt"
        t.addfile(link)
        up = tarfile.TarInfo("c/up")
        up.type, up.linkname = tarfile.SYMTYPE, "../a"
        t.addfile(up)
    archive = tmp_path / "ok.tar"
    archive.write_bytes(buf.getvalue())
    extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "a" / "link").read_text() == "hi"
    assert (tmp_path / "out" / "c" / "up" / "b.txt").read_text() == "hi"
    with pytest.raises(FileExistsError):  # always a fresh folder
        extract(archive, tmp_path / "out")


@pytest.mark.badinput
def test_http_error_is_clear(tmp_path, server, dtd):
    sources, _, _ = dtd
    del server.files["/split.json"]
    with pytest.raises(DatasetError, match=r"Downloading .*/split.json failed: HTTP 404.*save it as"):
        prepare("dtd", tmp_path, sources=sources, log=_quiet, timeout=TIMEOUT)
    assert _leftovers(tmp_path) == []


def _evil_tar(kind: str, outside: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        ok = tarfile.TarInfo("dtd/images/ok.txt")
        ok.size = 2
        t.addfile(ok, io.BytesIO(b"ok"))
        if kind == "dotdot":
            info = tarfile.TarInfo("dtd/../../evil.txt")
        elif kind == "absolute":
            info = tarfile.TarInfo(str(outside / "evil_abs.txt"))
        elif kind == "symlink":
            info = tarfile.TarInfo("dtd/link")
            info.type = tarfile.SYMTYPE
            info.linkname = "../../outside_dir"
        elif kind == "chain":  # each link looks harmless on paper; together they climb out
            ladder = tarfile.TarInfo("dtd/a")
            ladder.type, ladder.linkname = tarfile.SYMTYPE, "."
            t.addfile(ladder)
            info = tarfile.TarInfo("dtd/a/a/l")
            info.type = tarfile.SYMTYPE
            info.linkname = "../../x"
        elif kind == "hardlink":
            info = tarfile.TarInfo("dtd/hard")
            info.type = tarfile.LNKTYPE
            info.linkname = "../secret.txt"
        elif kind == "device":
            info = tarfile.TarInfo("dtd/null")
            info.type = tarfile.CHRTYPE
        if info.type == tarfile.REGTYPE:
            info.size = 4
            t.addfile(info, io.BytesIO(b"evil"))
        else:
            t.addfile(info)
    return buf.getvalue()


def _evil_zip(kind: str, outside: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("2750/ok.txt", b"ok")
        name = "../evil.txt" if kind == "dotdot" else str(outside / "evil_abs.txt")
        z.writestr(zipfile.ZipInfo(name), b"evil")
    return buf.getvalue()


@pytest.mark.badinput
@pytest.mark.parametrize("fmt, kind, message", [
    ("tar", "dotdot", r"member 'dtd/../../evil.txt' would be written outside the target folder"),
    ("tar", "absolute", r"member '/.*evil_abs.txt' has an absolute path"),
    ("tar", "symlink", r"member 'dtd/link' is a symbolic link to '../../outside_dir', outside the target"),
    ("tar", "chain", r"member 'dtd/a/a/l' is a symbolic link to '../../x', outside the target"),
    ("tar", "hardlink", r"member 'dtd/hard' is a hard link to '../secret.txt', outside"),
    ("tar", "device", r"member 'dtd/null' is a device or special file"),
    ("zip", "dotdot", r"member '../evil.txt' would be written outside"),
    ("zip", "absolute", r"member '/.*evil_abs.txt' has an absolute path"),
])
def test_unsafe_archives_are_refused(tmp_path, server, fmt, kind, message):
    root = tmp_path / "deep" / "data"
    root.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    data = _evil_tar(kind, outside) if fmt == "tar" else _evil_zip(kind, outside)
    name = f"evil.{'tar.gz' if fmt == 'tar' else 'zip'}"
    server.files[f"/{name}"] = data
    sources = {"dtd": DatasetSource(files=(SourceFile(f"{server.base}/{name}", name, _sha256(data)),))}
    with pytest.raises(UnsafeArchiveError, match=message) as e:
        prepare("dtd", root, sources=sources, log=_quiet, timeout=TIMEOUT)
    assert "delete it and download it again" in str(e.value).lower()
    assert isinstance(e.value, DatasetError)
    assert _leftovers(root) == []  # no dataset folder, no temporary folder
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == [f"deep/data/.downloads/{name}"]  # nothing outside, nothing half-extracted


def test_check_reports_present_valid_and_missing(tmp_path, server, dtd):
    sources, _, _ = dtd
    prepare("dtd", tmp_path, sources=sources, log=_quiet, timeout=TIMEOUT)
    (tmp_path / "fgvc_aircraft").mkdir()  # present but broken
    statuses = check(tmp_path)
    assert all(isinstance(s, DatasetStatus) for s in statuses)
    by_name = {s.name: s for s in statuses}
    assert not any(n.startswith("toy_") for n in by_name)
    assert {"imagenet", "caltech101", "fgvc_aircraft", "imagenet_a", "ucf101"} <= set(by_name)
    assert len(by_name) == 15
    d = by_name["dtd"]
    assert (d.present, d.valid) == (True, True)
    assert "6 train / 3 val / 3 test images, 3 classes" in d.message
    assert "differs from paper Table 6" in d.message  # a miniature copy
    f = by_name["fgvc_aircraft"]
    assert (f.present, f.valid) == (True, False) and "variants.txt" in f.message
    m = by_name["imagenet"]
    assert (m.present, m.valid) == (False, False) and "coop data prepare imagenet" in m.message


@pytest.mark.badinput
@pytest.mark.parametrize("name, needles", [
    ("imagenet", ["image-net.org", "ILSVRC2012_img_train.tar", "1d675b47d978889d74fa0da5fadfb00e",
                  "imagenet/images/train", "classnames.txt", "drive.google.com"]),
    ("imagenet_r", ["imagenet-r.tar", "imagenet-rendition/imagenet-r/<wnid>", "classnames.txt"]),
    ("ucf101", ["UCF-101-midframes.zip", "split_zhou_UCF101.json", "drive.google.com"]),
    ("stanford_cars", ["cars_train", "split_zhou_StanfordCars.json"]),
])
def test_manual_dataset_gives_instructions(tmp_path, name, needles):
    with pytest.raises(DatasetError) as e:
        prepare(name, tmp_path, log=_quiet)
    msg = str(e.value)
    for needle in needles:
        assert needle in msg
    assert str(tmp_path) in msg
    assert not (tmp_path / ".downloads").exists() and _leftovers(tmp_path) == []


@pytest.mark.badinput
def test_drive_split_file_is_fetched_by_hand_then_picked_up(tmp_path, server, dtd):
    sources, _, split = dtd
    # the default table: the archive is public, the split file is only on Google Drive
    with pytest.raises(DatasetError) as e:
        prepare("dtd", tmp_path, log=_quiet)
    msg = str(e.value)
    assert "split_zhou_DescribableTextures.json" in msg and "drive.google.com" in msg
    assert f"{tmp_path}/.downloads" in msg and "dtd-r1.0.1.tar.gz" in msg
    assert server.requests == []  # nothing downloaded before the manual step is done
    assert instructions("dtd", tmp_path) in msg
    assert instructions("fgvc_aircraft", tmp_path) == ""  # nothing by hand
    # the user saves the split file where the instructions say; the archive comes from the local server
    (tmp_path / ".downloads").mkdir()
    (tmp_path / ".downloads" / "split_zhou_DescribableTextures.json").write_bytes(split)
    table = {"dtd": DatasetSource(files=(sources["dtd"].files[0], SOURCES["dtd"].files[1]))}
    assert table["dtd"].files[1].manual
    prepare("dtd", tmp_path, sources=table, log=_quiet, timeout=TIMEOUT)
    assert read_split(tmp_path, get_dataset("dtd")).classnames == CLASSES
    assert [p for p, _ in server.requests] == ["/dtd-r1.0.1.tar.gz"]


@pytest.mark.badinput
def test_existing_invalid_folder_is_not_overwritten(tmp_path):
    (tmp_path / "dtd").mkdir()
    (tmp_path / "dtd" / "mine.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="exists but is not a valid dtd dataset.*move it away"):
        prepare("dtd", tmp_path, log=_quiet)
    assert (tmp_path / "dtd" / "mine.txt").read_text() == "keep me"


@pytest.mark.badinput
def test_toy_and_unknown_names(tmp_path):
    with pytest.raises(DatasetError, match="toy dataset"):
        prepare("toy_shapes", tmp_path, log=_quiet)
    with pytest.raises(DatasetError, match="Unknown dataset 'imagenett'"):
        prepare("imagenett", tmp_path, log=_quiet)


def test_source_table_covers_every_real_dataset():
    from coop.data.datasets import DATASETS

    real = {n for n, s in DATASETS.items() if not s.toy}
    assert set(SOURCES) == real
    for name, src in SOURCES.items():
        assert src.manual or src.files, name
        for f in src.files:
            assert f.url.startswith(("http://", "https://")) and f.filename
            assert f.checksum is None or f.checksum.split(":")[0] in ("md5", "sha256")
