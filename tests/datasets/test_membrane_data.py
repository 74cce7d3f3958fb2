"""Finding, downloading, verifying and decoding the membrane labels.

Downloads go to a local HTTP server on 127.0.0.1 (an ephemeral port, in a thread)
that serves small generated PNGs; the pinned checksums are passed in. Nothing
here touches the internet.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resclaims.datasets import FETCHERS, DataError, DataUnavailable, membrane
from resclaims.datasets.download import DownloadError
from resclaims.datasets.membrane import LABELS, decode, load, sums_digest

N = 4  # generated label images


def write_labels(folder: Path, n: int = N, size: int = 8) -> dict[str, str]:
    """Write n binary 8-bit PNGs like the membrane labels; return their SHA-256 by name."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    checksums = {}
    for i in range(n):
        pixels = np.where(rng.random((size, size)) > 0.22, 255, 0).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"{i}.png")
        checksums[f"{i}.png"] = hashlib.sha256((folder / f"{i}.png").read_bytes()).hexdigest()
    return checksums


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


class Server:
    """A static file server on 127.0.0.1 that counts requests; ``drop`` files are cut off mid-body."""

    def __init__(self, root: Path, drop: frozenset[str] = frozenset()) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                server.requests.append(self.path)
                name = self.path.rsplit("/", 1)[-1]
                if name in drop:
                    body = (root / name).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                super().do_GET()

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/label/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A folder served as <url>/label/N.png, with the pinned checksums of its files."""
    root = tmp_path / "server"
    return root, write_labels(root / "label")


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused, as offline."""
    httpd = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    port = httpd.server_address[1]
    httpd.server_close()
    return f"http://127.0.0.1:{port}/label/"


# -- the user's data dir -----------------------------------------------------------------
def test_loads_from_the_data_dir_decoded_once(tmp_path):
    checksums = write_labels(tmp_path / LABELS)
    first = load(tmp_path, checksums=checksums, base_url=closed_port_url())
    assert first.images.shape == (N, 1, 8, 8) and first.images.dtype == np.float32
    assert set(np.unique(first.images)) == {0.0, 1.0}
    assert not first.images.flags.writeable
    assert first.source == "data dir" and first.folder == tmp_path / LABELS
    assert first.sha256_of_sums == sums_digest(checksums)
    assert load(tmp_path, checksums=checksums).images is first.images  # decoded once per process
    raw = np.stack([decode(tmp_path / LABELS / f"{i}.png") for i in range(N)])
    np.testing.assert_array_equal(first.images[:, 0], raw.astype(np.float32) / 255)


def test_data_dir_file_with_wrong_checksum_is_an_error_naming_it(tmp_path):
    checksums = write_labels(tmp_path / LABELS)
    checksums["2.png"] = "0" * 64
    with pytest.raises(DataError, match=r"2\.png: SHA-256 .* does not match"):
        load(tmp_path, checksums=checksums)


def test_data_dir_missing_file_is_an_error_naming_it(tmp_path):
    checksums = write_labels(tmp_path / LABELS)
    (tmp_path / LABELS / "3.png").unlink()
    with pytest.raises(DataError, match=r"3\.png: missing"):
        load(tmp_path, checksums=checksums)


def test_non_binary_label_is_an_error_naming_it(tmp_path):
    checksums = write_labels(tmp_path / LABELS)
    path = tmp_path / LABELS / "1.png"
    Image.fromarray(np.full((8, 8), 128, dtype=np.uint8), mode="L").save(path)
    checksums["1.png"] = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(DataError, match=r"1\.png: not binary, has pixel values \[128\]"):
        load(tmp_path, checksums=checksums)


@pytest.mark.parametrize("content", [b"not a png at all", "rgb"])
def test_undecodable_or_colour_label_is_an_error_naming_it(tmp_path, content):
    checksums = write_labels(tmp_path / LABELS)
    path = tmp_path / LABELS / "0.png"
    if content == "rgb":
        Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8), mode="RGB").save(path)
    else:
        path.write_bytes(content)
    checksums["0.png"] = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(DataError, match=r"0\.png: (cannot decode|PIL mode RGB)"):
        load(tmp_path, checksums=checksums)


# -- the download cache --------------------------------------------------------------------
def test_downloads_into_the_cache_verified_then_reuses_it(tmp_path, served):
    root, checksums = served
    cache = tmp_path / "cache"
    with Server(root) as server:
        got = load(None, cache=cache, base_url=server.url, checksums=checksums)
        assert got.source == "download cache" and got.folder == cache / LABELS
        assert leftovers(cache / LABELS) == sorted(checksums)
        assert len(server.requests) == N
        load(tmp_path / "no-membrane-here", cache=cache, base_url=server.url, checksums=checksums)
        assert len(server.requests) == N  # verified files in the cache are not fetched again


def test_a_data_dir_without_membrane_falls_back_to_the_cache(tmp_path):
    (tmp_path / "data").mkdir()
    checksums = write_labels(tmp_path / "cache" / LABELS)
    got = load(tmp_path / "data", cache=tmp_path / "cache", base_url=closed_port_url(), checksums=checksums)
    assert got.source == "download cache"


def test_corrupt_cached_file_is_downloaded_again(tmp_path, served):
    root, checksums = served
    cache = tmp_path / "cache"
    write_labels(cache / LABELS)
    (cache / LABELS / "1.png").write_bytes(b"garbage")
    with Server(root) as server:
        load(None, cache=cache, base_url=server.url, checksums=checksums)
        assert [r.rsplit("/", 1)[-1] for r in server.requests] == ["1.png"]
    assert hashlib.sha256((cache / LABELS / "1.png").read_bytes()).hexdigest() == checksums["1.png"]


def test_served_file_with_wrong_checksum_is_refused_and_not_kept(tmp_path, served):
    root, checksums = served
    (root / "label" / "2.png").write_bytes(b"tampered")
    cache = tmp_path / "cache"
    with Server(root) as server, pytest.raises(DownloadError, match=r"2\.png: sha256 .* does not match the pinned"):
        load(None, cache=cache, base_url=server.url, checksums=checksums)
    assert leftovers(cache / LABELS) == ["0.png", "1.png"]  # the verified files before it; nothing partial


def test_dropped_connection_leaves_no_partial_file(tmp_path, served):
    root, checksums = served
    cache = tmp_path / "cache"
    with Server(root, drop=frozenset({"0.png"})) as server, pytest.raises(DownloadError, match=r"0\.png"):
        membrane.fetch(cache, base_url=server.url, checksums=checksums)
    assert leftovers(cache / LABELS) == []


def test_offline_without_data_is_unavailable_with_what_to_do(tmp_path):
    with pytest.raises(DataUnavailable) as error:
        load(None, cache=tmp_path / "cache", base_url=closed_port_url(), checksums={"0.png": "0" * 64})
    message = str(error.value)
    assert "--data-dir" in message and "RESCLAIMS_DATA" in message
    assert "python -m resclaims fetch-data membrane" in message
    assert leftovers(tmp_path / "cache" / LABELS) == []


def test_fetch_data_command_knows_membrane():
    module, function = FETCHERS["membrane"].split(":")
    assert getattr(__import__(module, fromlist=[function]), function) is membrane.fetch


def test_real_labels_when_a_data_dir_is_given(settings):
    """With --data-dir or RESCLAIMS_DATA holding the real labels: all 30 verify and decode to (30, 1, 512, 512)."""
    if settings.data_dir is None or not (settings.data_dir / LABELS).is_dir():
        pytest.skip("no membrane labels under --data-dir / RESCLAIMS_DATA")
    got = load(settings.data_dir)
    assert got.images.shape == (30, 1, 512, 512) and got.source == "data dir"
    assert 0.15 < float((got.images == 0).mean()) < 0.3  # about 22% black (data README)
