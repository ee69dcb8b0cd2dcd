"""User-facing errors.

Everything a user can get wrong (a bad arch file, a checkpoint for another space, an unknown
preset) raises :class:`OFAEdgeError` with a message that fits on one line. The CLI prints that
line to stderr and exits non-zero; library users can catch the one type.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class OFAEdgeError(ValueError):
    """A problem with the user's input, explained in one line."""


class ArchError(OFAEdgeError):
    """An architecture config that does not fit the search space."""


class CheckpointError(OFAEdgeError):
    """A weights file that cannot be loaded safely or does not fit the network."""


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
