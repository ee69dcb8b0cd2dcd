"""Named weights fetched on request: ``weights fetch`` from a local HTTP server (resume, checksum,
HTTP and connection failures as one line), ``weights list``, and names in other commands."""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from ofa_edge import OFAMobileNetV3, get_space
from ofa_edge.hub.cache import NotFetched, find_weights
from ofa_edge.hub.registry import get_entry
from ofa_edge.nn.checkpoint import load_supernet
from tests.test_checkpoint import official_name
from tests.test_cli_safety import _one_error, run

NAME = "ofa_mbv3_d234_e346_k357_w1.0"


# ------------------------------------------------------------------- the server
@dataclass
class Served:
    """What the server serves and what it saw."""

    body: bytes
    cut_after: int | None = None  # close the connection after this many bytes, on the next request only
    ranges: list[str | None] = field(default_factory=list)


class RangeHandler(BaseHTTPRequestHandler):
    """Serves ``/NAME`` with ``Range: bytes=N-`` support; anything else is 404."""

    def do_GET(self) -> None:
        served: Served = self.server.served  # type: ignore[attr-defined]
        served.ranges.append(self.headers.get("Range"))
        if self.path != f"/{NAME}":
            self.send_error(404)
            return
        start = _range_start(self.headers.get("Range"))
        if start and start >= len(served.body):
            self.send_error(416)
            return
        payload = served.body[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(served.body) - 1}/{len(served.body)}")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        cut, served.cut_after = served.cut_after, None
        self.wfile.write(payload if cut is None else payload[:cut])
        self.close_connection = True  # a cut transfer ends here, short of its Content-Length

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass


def _range_start(header: str | None) -> int:
    match = re.fullmatch(r"bytes=(\d+)-", header or "")
    return int(match[1]) if match else 0


@pytest.fixture(scope="module")
def official_bytes() -> bytes:
    """A randomly initialised mbv3-w1.0 supernet in the official file format."""
    torch.manual_seed(0)
    net = OFAMobileNetV3(get_space("mbv3-w1.0"))
    buffer = io.BytesIO()
    torch.save({"state_dict": {official_name(k): v for k, v in net.state_dict().items()}}, buffer)
    return buffer.getvalue()


@pytest.fixture
def server(official_bytes) -> Iterator[tuple[str, Served]]:
    """(base URL, state) of a server on 127.0.0.1 serving the official-format file."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.served = Served(official_bytes)  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.served  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("OFA_EDGE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fetch(capsys, url: str, sha256: str, *extra: str) -> tuple[int, str, str]:
    return run(capsys, "weights", "fetch", NAME, "--url", f"{url}/{NAME}", "--sha256", sha256, *extra)


# ---------------------------------------------------------------------- fetch
def test_fetch_then_list_and_load_by_name(home, server, official_bytes, capsys):
    url, served = server
    code, out, err = _fetch(capsys, url, _sha256(official_bytes), "--json")
    assert code == 0, err
    result = json.loads(out)
    path = home / "weights" / NAME
    assert result["status"] == "present" and result["path"] == str(path) and result["sha256"] == _sha256(official_bytes)
    assert path.read_bytes() == official_bytes and sorted(p.name for p in path.parent.iterdir()) == [NAME]
    assert served.ranges == [None]

    code, out, _ = run(capsys, "weights", "list", "--json")
    rows = {row["name"]: row for row in json.loads(out)["weights"]}
    assert code == 0 and rows[NAME]["status"] == "present" and rows["demo"]["status"] == "bundled"
    assert rows["ofa_mbv3_d234_e346_k357_w1.2"]["status"] == "absent"
    code, out, _ = run(capsys, "weights", "list")
    assert code == 0 and "present" in out and "absent" in out

    assert find_weights(NAME) == path
    assert load_supernet(NAME).space.name == "mbv3-w1.0"

    code, _, err = _fetch(capsys, url, _sha256(official_bytes))  # already here: checked, not downloaded again
    assert code == 0 and served.ranges == [None] and _sha256(official_bytes) in err


def test_an_interrupted_fetch_keeps_its_part_and_the_rerun_resumes(home, server, official_bytes, capsys):
    url, served = server
    served.cut_after = 1_000_003
    code, _, err = _fetch(capsys, url, _sha256(official_bytes))
    line = _one_error(code, err)
    part = home / "weights" / f"{NAME}.part"
    kept = part.stat().st_size
    assert 0 < kept <= 1_000_003 and f"{kept} bytes kept in {part}" in line and "run the same command again" in line
    assert not (home / "weights" / NAME).exists()  # nothing half-written at the final path

    code, _, err = _fetch(capsys, url, _sha256(official_bytes))
    assert code == 0, err
    assert served.ranges == [None, f"bytes={kept}-"]
    assert (home / "weights" / NAME).read_bytes() == official_bytes
    assert sorted(p.name for p in part.parent.iterdir()) == [NAME]


def test_a_corrupted_file_is_refused_and_nothing_is_kept(home, server, official_bytes, capsys):
    url, served = server
    damaged = bytearray(official_bytes)
    damaged[len(damaged) // 2] ^= 0xFF
    served.body = bytes(damaged)
    code, _, err = _fetch(capsys, url, _sha256(official_bytes))
    line = _one_error(code, err)
    assert _sha256(official_bytes) in line and _sha256(bytes(damaged)) in line and "refused" in line
    assert not list((home / "weights").iterdir())


def test_a_file_that_is_not_a_supernet_is_removed(home, server, capsys):
    url, served = server
    served.body = b"<html>a login page</html>"
    code, _, err = _fetch(capsys, url, _sha256(served.body))
    assert "it does not load as a mbv3-w1.0 supernet" in _one_error(code, err)
    assert not list((home / "weights").iterdir())


def test_http_404_is_one_line(home, server, capsys):
    url, _ = server
    code, _, err = run(capsys, "weights", "fetch", NAME, "--url", f"{url}/elsewhere/{NAME}")
    line = _one_error(code, err)
    assert "HTTP 404" in line and f"{url}/elsewhere/{NAME}" in line
    assert not list((home / "weights").iterdir())


def test_a_refused_connection_is_one_line(home, capsys):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, err = run(capsys, "weights", "fetch", NAME, "--url", f"http://127.0.0.1:{port}/{NAME}")
    line = _one_error(code, err)
    assert f"cannot reach 127.0.0.1:{port}" in line and "refused" in line.lower()


def test_bad_fetch_arguments_are_one_line(home, capsys):
    code, _, err = run(capsys, "weights", "fetch", NAME, "--sha256", "abc")
    assert "64 hexadecimal digits" in _one_error(code, err)
    code, _, err = run(capsys, "weights", "fetch", NAME, "--url", f"ftp://mirror/{NAME}")
    assert "starts with http:// or https://" in _one_error(code, err)
    code, _, err = run(capsys, "weights", "fetch", "demo")
    assert "ships with the package" in _one_error(code, err)
    code, _, err = run(capsys, "weights", "fetch", "nope")
    assert "no weights named 'nope'" in _one_error(code, err)


# ------------------------------------------------------- names in other commands
def test_an_absent_name_elsewhere_says_how_to_fetch_and_downloads_nothing(home, capsys, monkeypatch):
    import requests

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("only 'weights fetch' may download")

    monkeypatch.setattr(requests.Session, "request", no_network)
    arch = get_space("mbv3-w1.0").max_arch(224).to_dict()
    Path("a.json").write_text(json.dumps(arch))
    code, _, err = run(capsys, "export", "--format", "onnx", "--arch", "a.json", "--supernet", NAME, "-o", "exp")
    line = _one_error(code, err)
    assert f"ofa-edge weights fetch {NAME}" in line and get_entry(NAME).url in line
    assert str(home / "weights" / NAME) in line
    with pytest.raises(NotFetched):
        load_supernet(NAME)
    assert not (home / "weights").exists() and not Path("exp").exists()
