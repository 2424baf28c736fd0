"""Registry downloads against a local HTTP server (127.0.0.1 only), mirrors and file:// URLs."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
import zipfile
from pathlib import Path

import pytest

from adaptau_cli.base.errors import DataError, UserError
from adaptau_cli.base.settings import PreprocessConfig
from adaptau_cli.data import registry
from adaptau_cli.data.prepare import prepare
from adaptau_cli.data.registry import Entry, RemoteFile

TRAIN = "0 1 2 3\n1 2 3 4\n2 0 1 4\n"
TEST = "0 4\n1 0\n2 3\n"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/www on an ephemeral 127.0.0.1 port; yields (base_url, folder)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", www
    finally:
        httpd.shutdown()
        httpd.server_close()


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def lightgcn_entry(base: str, train_sha: str | None = None) -> Entry:
    return Entry(name="toy", kind="download", format="lightgcn", description="toy", files=(
        RemoteFile("train.txt", (f"{base}/toy/train.txt",), sha256=train_sha or sha(TRAIN), size=len(TRAIN)),
        RemoteFile("test.txt", (f"{base}/toy/test.txt",), sha256=sha(TEST))))


def publish(www: Path) -> None:
    (www / "toy").mkdir(parents=True, exist_ok=True)
    (www / "toy" / "train.txt").write_text(TRAIN)
    (www / "toy" / "test.txt").write_text(TEST)


def test_download_verifies_caches_and_prepares(server, monkeypatch, adaptau_home):
    base, www = server
    publish(www)
    monkeypatch.setitem(registry.REGISTRY, "toy", lightgcn_entry(base))
    result = prepare(PreprocessConfig(dataset="toy"))
    ds = result.dataset
    assert (ds.n_users, ds.n_items) == (3, 5)
    assert len(ds.splits["train"]) == 9 and len(ds.splits["test"]) == 3
    cached = adaptau_home / "downloads" / "toy"
    assert sorted(p.name for p in cached.iterdir()) == ["test.txt", "train.txt"]
    assert (cached / "train.txt").read_text() == TRAIN
    assert ds.manifest["source"]["kind"] == "registry"
    # the cache is used: it works with the server's files gone
    (www / "toy" / "train.txt").unlink()
    again = prepare(PreprocessConfig(dataset="toy"), force=True)
    assert again.dataset.fingerprint == ds.fingerprint


def test_wrong_checksum_fails_and_leaves_no_file(server, monkeypatch, adaptau_home):
    base, www = server
    publish(www)
    monkeypatch.setitem(registry.REGISTRY, "toy", lightgcn_entry(base, train_sha="0" * 64))
    with pytest.raises(DataError, match=r"failed verification \(sha256 [0-9a-f]{64}, expected 0{64}\)"):
        prepare(PreprocessConfig(dataset="toy"))
    folder = adaptau_home / "downloads" / "toy"
    assert not folder.exists() or list(folder.iterdir()) == []
    assert not (adaptau_home / "datasets").exists() or list((adaptau_home / "datasets").iterdir()) == []


def test_size_mismatch_and_missing_file(server, tmp_path, adaptau_home):
    base, www = server
    publish(www)
    rf = RemoteFile("train.txt", (f"{base}/toy/train.txt",), sha256=sha(TRAIN), size=len(TRAIN) + 1)
    with pytest.raises(DataError, match="size"):
        registry.download(rf, tmp_path / "dl" / "train.txt")
    assert list((tmp_path / "dl").iterdir()) == []
    missing = RemoteFile("x.txt", (f"{base}/nope.txt",), sha256=sha(""))
    with pytest.raises(UserError, match="could not download x.txt.*404"):
        registry.download(missing, tmp_path / "dl" / "x.txt")
    assert list((tmp_path / "dl").iterdir()) == []


def test_second_url_is_tried(server, tmp_path):
    base, www = server
    publish(www)
    rf = RemoteFile("train.txt", (f"{base}/missing/train.txt", f"{base}/toy/train.txt"), sha256=sha(TRAIN))
    assert registry.download(rf, tmp_path / "train.txt").read_text() == TRAIN


def test_zip_member_with_md5(server, monkeypatch, adaptau_home):
    base, www = server
    ratings = "1::10::5::100\n1::11::3::101\n2::10::4::102\n2::12::5::103\n3::11::2::104\n3::12::4::105\n"
    with zipfile.ZipFile(www / "ml-toy.zip", "w") as zf:
        zf.writestr("ml-toy/ratings.dat", ratings)
        zf.writestr("ml-toy/movies.dat", "10::A::Comedy\n")
    md5 = hashlib.md5((www / "ml-toy.zip").read_bytes()).hexdigest()
    entry = Entry(name="ml-toy", kind="download", format="movielens", description="toy", files=(
        RemoteFile("ml-toy.zip", (f"{base}/ml-toy.zip",), md5=md5, member="ml-toy/ratings.dat"),))
    monkeypatch.setitem(registry.REGISTRY, "ml-toy", entry)
    ds = prepare(PreprocessConfig(dataset="ml-toy", min_rating=4, split="loo-last")).dataset
    assert ds.user_ids.tolist() == [1, 2, 3]
    assert sum(len(s) for s in ds.splits.values()) == 4                  # ratings >= 4
    assert (adaptau_home / "downloads" / "ml-toy" / "ratings.dat").read_text() == ratings


def test_mirror_folder_and_file_urls(tmp_path, monkeypatch, adaptau_home):
    mirror = tmp_path / "mirror"
    publish(mirror)                                            # mirror/toy/train.txt, mirror/toy/test.txt
    offline = lightgcn_entry("http://127.0.0.1:9")             # nothing listens there
    monkeypatch.setitem(registry.REGISTRY, "toy", offline)
    ds = prepare(PreprocessConfig(dataset="toy", mirror=str(mirror))).dataset
    assert len(ds.splits["train"]) == 9
    assert not (adaptau_home / "downloads" / "toy").exists()   # mirrored files are read in place
    # the environment variable is what the CLI maps to --mirror; a bad mirror copy fails clearly
    (mirror / "toy" / "test.txt").write_text("0 1\n")
    with pytest.raises(DataError, match="is not the registry's test.txt"):
        prepare(PreprocessConfig(dataset="toy", mirror=str(mirror)), force=True)
    with pytest.raises(UserError, match="mirror folder not found"):
        prepare(PreprocessConfig(dataset="toy", mirror=str(tmp_path / "none")))
    # file:// URLs download like any other
    monkeypatch.setitem(registry.REGISTRY, "toy", lightgcn_entry((tmp_path / "www2").as_uri()))
    publish(tmp_path / "www2")
    assert prepare(PreprocessConfig(dataset="toy")).dataset.fingerprint == ds.fingerprint


def test_unreachable_without_mirror_is_a_user_error(monkeypatch):
    monkeypatch.setitem(registry.REGISTRY, "toy", lightgcn_entry("http://127.0.0.1:9"))
    with pytest.raises(UserError, match="could not download train.txt") as err:
        prepare(PreprocessConfig(dataset="toy"))
    assert "--mirror" in err.value.one_line()


def test_registry_entries_are_complete():
    for name in ("ml-100k", "ml-1m", "gowalla", "yelp2018", "amazon-book", "synthetic", "synthetic-tiny"):
        entry = registry.get_entry(name)
        assert entry.name == name
        for rf in entry.files:
            kind, digest = rf.checksum
            assert len(digest) == {"sha256": 64, "md5": 32}[kind]
            assert all(url.startswith("https://") for url in rf.urls)
    assert registry.get_entry("ML-1M").name == "ml-1m"
    with pytest.raises(UserError, match="unknown dataset 'ml-20m'"):
        registry.get_entry("ml-20m")


def test_mirror_from_environment(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    publish(mirror)
    monkeypatch.setitem(registry.REGISTRY, "toy", lightgcn_entry("http://127.0.0.1:9"))
    monkeypatch.setenv("ADAPTAU_MIRROR", str(mirror))
    assert len(prepare(PreprocessConfig(dataset="toy")).dataset.splits["test"]) == 3
