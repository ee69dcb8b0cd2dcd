"""Where latency tables live and how a name finds one.

Two places: the tables shipped inside the package (read-only, measured on the developers'
machines) and the user's folder, ``./latency_tables/`` of the working directory (or
``$OFA_EDGE_TABLES``), where ``profile`` writes. A name (a file stem such as
``onnxruntime-cpu-fp32-mbv3-fmnist``) is looked up in the user's folder first, so a table profiled
on this machine takes precedence over a shipped one of the same name. A shipped table is never
written to: commands that would update one (calibrate, validate) write a copy in the user's folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from ..errors import OFAEdgeError

USER_TABLES_ENV = "OFA_EDGE_TABLES"


class TableNotFound(OFAEdgeError):
    """No table of that name or path."""


def shipped_tables_dir() -> Path:
    """The folder of the tables that ship inside the package."""
    return Path(str(files("ofa_edge.latency").joinpath("tables")))


def user_tables_dir() -> Path:
    """Where tables a user profiles go: ``$OFA_EDGE_TABLES`` or ``./latency_tables``."""
    return Path(os.environ.get(USER_TABLES_ENV) or "latency_tables")


def is_shipped(path: Path) -> bool:
    try:
        return Path(path).resolve().parent == shipped_tables_dir().resolve()
    except OSError:
        return False


def default_table_name(backend: str, device: str, precision: str, threads: int, space: str) -> str:
    """``BACKEND-DEVICE-PRECISION[-tN]-SPACE``: the name ``profile`` gives a table by default."""
    suffix = "" if threads == 1 else f"-t{threads}"
    return f"{backend}-{device.lower()}-{precision}{suffix}-{space}"


def user_table_path(name: str) -> Path:
    return user_tables_dir() / f"{name}.json"


def writable_path(path: Path) -> Path:
    """``path``, or for a shipped table the same name in the user's folder (copy on write)."""
    return user_table_path(Path(path).stem) if is_shipped(path) else Path(path)


def resolve_table_path(name_or_path: str | Path, space: str | None = None) -> Path:
    """A path (anything with a ``/`` or a ``.json`` suffix, or an existing file), or a table name:
    the user's folder first, then the shipped tables; with a ``space``, a name that is not found
    also tries ``NAME-SPACE`` (so ``note10`` finds ``note10-mbv3-w1.2`` for that space); last, a
    name that begins exactly one table's name followed by ``-`` finds that table."""
    text = str(name_or_path)
    path = Path(text)
    if path.exists() or path.suffix == ".json" or "/" in text:
        return path
    names = [text] + ([f"{text}-{space}"] if space else [])
    for name in names:
        for folder in (user_tables_dir(), shipped_tables_dir()):
            candidate = folder / f"{name}.json"
            if candidate.exists():
                return candidate
    stored = list_tables()
    # A device name alone ("note10") names the one table that starts with it.
    prefixed = {entry.name: entry.path for entry in stored if entry.name.startswith(f"{text}-")}
    if len(prefixed) == 1:
        return next(iter(prefixed.values()))
    known = ", ".join(sorted({entry.name for entry in stored})) or "none"
    raise TableNotFound(f"no latency table '{text}' (known: {known}; `ofa-edge tables list` shows them)")


def canonical_table_name(name_or_path: str | Path, space: str | None = None) -> str:
    """How later commands find the same table again: a name found as ``NAME-SPACE`` becomes that
    name; paths and names found as given stay as they are."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or "/" in text or text.endswith(".json") or Path(text).exists():
        return text
    return resolve_table_path(text, space).stem


@dataclass(frozen=True)
class StoredTable:
    name: str
    path: Path
    origin: str  # 'user' or 'shipped'
    shadowed: bool = False  # a shipped table hidden by a user table of the same name


def list_tables() -> list[StoredTable]:
    """The user's tables, then the shipped ones (marked when a user table of that name hides them)."""
    user = sorted(user_tables_dir().glob("*.json")) if user_tables_dir().is_dir() else []
    user_names = {p.stem for p in user}
    shipped = sorted(shipped_tables_dir().glob("*.json"))
    return [StoredTable(p.stem, p, "user") for p in user] + [
        StoredTable(p.stem, p, "shipped", p.stem in user_names) for p in shipped
    ]


def default_cpu_table(space: str) -> str:
    """The table of this machine's CPU with onnxruntime (fp32, 1 thread) for ``space``: the name
    ``profile`` gives it by default, so the user's own table of this CPU wins over the shipped one."""
    return default_table_name("onnxruntime", "CPU", "fp32", 1, space)
