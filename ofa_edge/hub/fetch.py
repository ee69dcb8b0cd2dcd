"""Downloading named weights into the cache folder (``ofa-edge weights fetch``).

pooch does the cache bookkeeping: it hands the downloader a temporary file beside the final one,
checks the sha256, and renames the file into place only when it matches (a mismatch deletes it),
so nothing half-written ever sits at the final path. pooch's own HTTP downloader restarts from
byte 0 after a dropped connection; ours keeps ``<file>.part`` in the cache folder and asks for the
rest (``Range: bytes=N-``) on the next run. Every failure is one :class:`FetchError` line.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import Interrupted, OFAEdgeError
from ..fileio import exclusive
from .cache import cached_path, weights_dir
from .registry import WeightsEntry

CHUNK = 1 << 16
# (connect, read) seconds: a dead host fails fast; a stalled transfer keeps its .part and says so.
TIMEOUT = (15, 60)
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class FetchError(OFAEdgeError):
    """A download that failed; the message says why and what was kept."""


def part_path(entry: WeightsEntry) -> Path:
    """The partial download of ``entry``, kept between runs so the next one resumes."""
    return weights_dir() / (entry.filename + ".part")


def fetch(entry: WeightsEntry, *, url: str | None = None, sha256: str | None = None, progress: bool = True) -> Path:
    """Download ``entry`` (from ``url``, a mirror, when given) into the cache folder; its path.

    ``sha256`` (else the registry's, where known) must match, or the file is refused and removed.
    A file already in the cache (and matching) is not downloaded again.
    """
    import pooch

    source = url or entry.url
    if source is None:
        raise FetchError(f"{entry.name} ships with the package ({entry.bundled}); there is nothing to fetch")
    if urlsplit(source).scheme not in ("http", "https"):
        raise FetchError(f"a download address starts with http:// or https://, got {source}")
    digest = _checked_sha256(sha256 or entry.sha256)
    downloader = ResumingDownloader(part_path(entry), label=entry.name, progress=progress)
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)  # pooch logs each step on stderr; our messages say what matters
    try:
        with exclusive(cached_path(entry), "the weights file"):
            found = pooch.retrieve(source, known_hash=f"sha256:{digest}" if digest else None, fname=entry.filename,
                                   path=weights_dir(), downloader=downloader, progressbar=False)  # fmt: skip
    except OFAEdgeError:
        raise
    except ValueError as exc:  # pooch's checksum refusal; it has deleted the file
        if downloader.sha256 is None:  # not a refusal: something else pooch rejected
            raise FetchError(f"cannot fetch {source}: {' '.join(str(exc).split())}") from None
        raise FetchError(
            f"{source} gave a file with sha256 {downloader.sha256}, not the expected {digest}: "
            "refused and removed (a damaged mirror or a wrong --sha256)"
        ) from None
    except OSError as exc:
        raise FetchError(f"cannot write to {weights_dir()}: {exc.strerror or exc}") from None
    finally:
        logger.setLevel(level)
    return Path(found)


def _checked_sha256(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.removeprefix("sha256:")
    if not _SHA256.fullmatch(value):
        raise FetchError(f"a sha256 is 64 hexadecimal digits, got {value!r}")
    return value.lower()


class ResumingDownloader:
    """A pooch downloader that resumes: it streams into a persistent ``.part`` file (appending when
    the server honours ``Range``, starting over when it does not) and, once complete, moves it onto
    the temporary file pooch checks and renames into place."""

    def __init__(self, part: Path, label: str, progress: bool = True) -> None:
        self.part = part
        self.label = label
        self.progress = progress
        self.sha256: str | None = None  # of the completed file, for a checksum refusal's message

    def __call__(self, url: str, output_file: str, pooch: Any) -> None:
        import requests

        try:
            response, start = self._open(url)
        except requests.RequestException as exc:
            raise _unreachable(url, exc) from None
        try:
            with response:
                self._stream(response, start)
        except requests.exceptions.ChunkedEncodingError:  # urllib3's IncompleteRead: counts that mislead
            raise FetchError(f"download of {url} interrupted (the connection closed early): {self._kept()}") from None
        except OSError as exc:  # requests' errors are OSErrors too: a stalled connection, a full disk
            raise FetchError(f"download of {url} interrupted ({_reason(exc)}): {self._kept()}") from None
        except KeyboardInterrupt:
            raise Interrupted(f"download of {url} stopped: {self._kept()}") from None
        from pooch import file_hash

        self.sha256 = file_hash(str(self.part))
        os.replace(self.part, output_file)

    def _open(self, url: str) -> tuple[Any, int]:
        """The response to stream, and the byte it starts at (the .part's size when resuming)."""
        import requests

        start = self.part.stat().st_size if self.part.is_file() else 0
        # identity: byte offsets must be those of the file, not of a compressed stream.
        headers = {"Accept-Encoding": "identity"} | ({"Range": f"bytes={start}-"} if start else {})
        response = requests.get(url, headers=headers, stream=True, timeout=TIMEOUT)
        if start and (response.status_code == 416 or not _resumes_at(response, start)):
            # The .part is not a prefix of what the server has now (or the server ignored Range
            # in a way we cannot append to): start over rather than splice two files.
            response.close()
            self.part.unlink()
            return self._open(url)
        if response.status_code not in (200, 206):
            response.close()
            raise FetchError(f"HTTP {response.status_code} {response.reason or ''} from {url}".replace("  ", " "))
        return response, start if response.status_code == 206 else 0

    def _stream(self, response: Any, start: int) -> None:
        total = _total_size(response, start)
        with self.part.open("ab" if start else "wb") as handle, _bar(self.progress, self.label, total, start) as done:
            for chunk in response.iter_content(CHUNK):
                handle.write(chunk)
                done(len(chunk))
        size = self.part.stat().st_size
        if total is not None and size < total:  # a server that closed early without an error
            raise ConnectionError(f"the connection closed at byte {size} of {total}")

    def _kept(self) -> str:
        kept = self.part.stat().st_size if self.part.is_file() else 0
        return f"{kept} bytes kept in {self.part}; run the same command again to resume"


def _resumes_at(response: Any, start: int) -> bool:
    """Whether a response to ``Range: bytes=start-`` can be appended to (206 from ``start``) or
    replaces the file (200); anything else cannot be used as it is."""
    if response.status_code == 206:
        return response.headers.get("Content-Range", "").startswith(f"bytes {start}-")
    return True


def _total_size(response: Any, start: int) -> int | None:
    if response.status_code == 206:
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length", "")
    return int(length) if length.isdigit() else None


@contextmanager
def _bar(enabled: bool, label: str, total: int | None, done: int) -> Iterator[Callable[[int], None]]:
    """A byte-counting progress bar on stderr (only on a terminal: a log file gets the summary)."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())  # fmt: skip
    progress = Progress(*columns, console=console, disable=not (enabled and console.is_terminal))
    task = progress.add_task(label, total=total, completed=done)
    with progress:
        yield lambda n: progress.advance(task, n)


def _unreachable(url: str, exc: BaseException) -> FetchError:
    import requests

    if isinstance(exc, requests.ConnectionError):
        return FetchError(f"cannot reach {_host_port(url)}: {_reason(exc)} (fetching {url})")
    return FetchError(f"cannot fetch {url}: {_reason(exc)}")


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return f"{parts.hostname}:{port}"


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests/urllib3 error, in a few words (their own messages nest
    the whole chain and object reprs)."""
    inner: BaseException = exc
    while True:
        nested = [getattr(inner, "reason", None), inner.__cause__, *inner.args]
        deeper = next((e for e in nested if isinstance(e, BaseException) and e is not inner), None)
        if deeper is None:
            break
        inner = deeper
    if isinstance(inner, OSError) and inner.strerror:
        return inner.strerror
    text = " ".join(str(inner).split()) or type(inner).__name__
    # urllib3 prefixes a connection object's repr: "<urllib3.connection.X object at 0x..>: reason"
    return re.sub(r"^<[^>]*>:\s*", "", text)
