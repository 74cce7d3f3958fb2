"""Downloads are verified and atomic, against a local HTTP server."""

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from resclaims.datasets.download import DownloadError, fetch

PAYLOAD = b"resclaims test payload\n" * 1000
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = PAYLOAD
        if self.path == "/corrupt":
            body = PAYLOAD[:-1] + b"!"
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        if self.path == "/drop":
            self.wfile.write(body[: len(body) // 2])  # then close: a dropped connection
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_download_verifies_and_places_the_file(server, tmp_path):
    dest = fetch(f"{server}/ok", tmp_path / "f.bin", checksum=SHA256, progress=False)
    assert dest.read_bytes() == PAYLOAD and leftovers(tmp_path) == ["f.bin"]
    assert fetch(f"{server}/never-asked", dest, checksum=SHA256, progress=False) == dest  # verified copy is kept


def test_wrong_checksum_leaves_nothing(server, tmp_path):
    with pytest.raises(DownloadError, match="does not match"):
        fetch(f"{server}/corrupt", tmp_path / "f.bin", checksum=SHA256, progress=False)
    assert leftovers(tmp_path) == []


def test_dropped_connection_leaves_nothing(server, tmp_path):
    with pytest.raises(DownloadError):
        fetch(f"{server}/drop", tmp_path / "f.bin", checksum=SHA256, progress=False)
    assert leftovers(tmp_path) == []


def test_refused_connection_says_what_to_do(tmp_path):
    with pytest.raises(DownloadError, match="--data-dir"):
        fetch("http://127.0.0.1:9/none", tmp_path / "f.bin", checksum=SHA256, progress=False, timeout=2)
    assert leftovers(tmp_path) == []


def test_md5_is_supported(server, tmp_path):
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    assert fetch(f"{server}/ok", tmp_path / "f.bin", checksum=md5, algorithm="md5", progress=False).exists()
