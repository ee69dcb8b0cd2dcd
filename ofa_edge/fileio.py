"""File I/O shared by every stage: atomic writes (a reader, or a killed run, never sees a
half-written file) and reads of user-named files whose every failure is one clear error line."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import OFAEdgeError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync it, then rename it over ``path``.

    A path that names a folder, or a folder that cannot be written, is one :class:`OFAEdgeError`
    line, and nothing is left behind."""
    path = Path(path)
    if path.is_dir():
        raise OFAEdgeError(f"{path} is a folder; give a file name to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OFAEdgeError(f"cannot write {path}: {exc.strerror}") from None
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def read_user_file(path: Path, what: str, error: type[OFAEdgeError]) -> bytes:
    """The bytes of a file the user named; a missing or unreadable file is one ``error`` line."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from None


def read_user_json(path: Path, what: str, error: type[OFAEdgeError], hint: str = "") -> Any:
    """A JSON file the user named, parsed; every problem is one ``error`` line (``hint`` appended)."""
    text = read_user_file(path, what, error)
    suffix = f"; {hint}" if hint else ""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}){suffix}") from None
    except UnicodeDecodeError:
        raise error(f"{path} is not valid JSON (not UTF-8 text){suffix}") from None


def safetensors_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file's header, from the file's first bytes (the
    8-byte little-endian header length, then the JSON header). Raises ValueError when ``data`` is
    not the start of a safetensors file."""
    if len(data) < 8:
        raise ValueError("shorter than a safetensors header")
    length = int.from_bytes(data[:8], "little")
    if len(data) < 8 + length:
        raise ValueError("truncated safetensors header")
    header = json.loads(data[8 : 8 + length])
    if not isinstance(header, dict):
        raise ValueError("safetensors header is not a JSON object")
    return header.get("__metadata__") or {}


def read_safetensors_metadata(path: Path) -> dict[str, str]:
    """:func:`safetensors_metadata` of a file, reading only its header."""
    with open(path, "rb") as handle:
        head = handle.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else 0
        # Another format's first 8 bytes (a torch.save zip starts 'PK') read as a length of
        # petabytes: reading that much would fail with MemoryError before the JSON could say no,
        # so the length is checked against the file's size first.
        if length > os.fstat(handle.fileno()).st_size - len(head):
            raise ValueError("not a safetensors file: its header length exceeds the file")
        return safetensors_metadata(head + handle.read(length))


def check_output_folder(folder: Path) -> None:
    """One line when ``folder`` cannot take output: a file where a folder is needed, or a folder
    that cannot be created or written. Checked before any work; nothing is created here."""
    folder = Path(folder)
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None:  # a relative path under a missing cwd: let the write say so
        return
    if not existing.is_dir():
        raise OFAEdgeError(f"cannot write to {folder}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        if existing == folder:
            raise OFAEdgeError(f"cannot write to {folder}: the folder is not writable")
        raise OFAEdgeError(f"cannot create {folder}: {existing} is not writable")


def check_output_file(path: Path) -> None:
    """One line when ``path`` cannot be written: a folder in its place, or a parent folder that
    cannot be created or written. Checked before any work; nothing is created here."""
    path = Path(path)
    if path.is_dir():
        raise OFAEdgeError(f"cannot write to {path}: it is a folder, not a file")
    check_output_folder(path.parent)


class Busy(OFAEdgeError):
    """Another process is writing the file or folder this one would write."""


@contextmanager
def exclusive(target: Path, what: str) -> Iterator[None]:
    """Hold the one-writer lock of ``target`` (a table, a run folder) for the block: a second
    process that asks for it stops with one line naming the holder. The lock is the kernel's
    (``flock`` on ``TARGET.lock``), so a killed holder's lock is free again at once."""
    target = Path(target)
    lock_path = target.with_name(target.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = _acquire(lock_path, target, what)
    try:
        os.ftruncate(handle, 0)
        os.write(handle, f"pid {os.getpid()}: {_command()}\n".encode())
        yield
    finally:
        lock_path.unlink(missing_ok=True)  # while still held: a waiting opener then sees the file gone
        os.close(handle)


def _acquire(lock_path: Path, target: Path, what: str) -> int:
    import fcntl

    while True:
        handle = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(handle, 4096).decode(errors="replace").strip() or "pid unknown"
            os.close(handle)
            raise Busy(f"{what} {target} is being written by another process ({holder}): wait for it to "
                       "finish, or stop it") from None  # fmt: skip
        # The holder before us may have removed the file after we opened it: lock the current one.
        try:
            if os.stat(lock_path).st_ino == os.fstat(handle).st_ino:
                return handle
        except FileNotFoundError:
            pass
        os.close(handle)


def _command() -> str:
    import shlex
    import sys

    return shlex.join(["ofa-edge" if sys.argv and sys.argv[0].endswith("ofa-edge") else sys.argv[0], *sys.argv[1:]])
