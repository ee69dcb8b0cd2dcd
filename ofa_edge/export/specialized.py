"""The arch to export when none is named: the first target of the last ``ofa-edge specialize``
(``specialized/last.json``, written by :func:`ofa_edge.search.specialize.write_outputs`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import OFAEdgeError
from ..fileio import read_user_json
from ..space.arch import Arch, load_arch

LAST_SPECIALIZED = Path("specialized") / "last.json"
NO_ARCH = "no arch to export: run `ofa-edge specialize` first, or pass --arch ARCH.json"


@dataclass(frozen=True)
class SpecializedTarget:
    arch: Arch
    arch_file: Path
    table: str | None
    budget_ms: float | None
    source: Path
    predictor: str | None = None  # the accuracy predictor the search used
    supernet: str | None = None  # the supernet searched, when specialize was given its file (or 'demo')
    supernet_fingerprint: str | None = None  # the supernet searched, always


def last_specialized(path: Path = LAST_SPECIALIZED) -> SpecializedTarget:
    """The first target of ``path``: its arch (from ``arch_file``, else the recorded arch), its
    latency table and budget. A missing or unusable record is one line saying what to do."""
    path = Path(path)
    if not path.exists():
        raise OFAEdgeError(f"{NO_ARCH} ({path} not found)")
    record: Any = read_user_json(path, "specialize record", OFAEdgeError, hint=NO_ARCH)
    targets = record.get("targets") if isinstance(record, dict) else None
    if not targets or not isinstance(targets[0], dict):
        raise OFAEdgeError(f"{path} lists no targets; {NO_ARCH}")
    target = targets[0]
    arch_file = Path(target.get("arch_file") or "")
    if not target.get("arch_file"):
        if "arch" not in target:
            raise OFAEdgeError(f"{path}: its first target has no arch_file; {NO_ARCH}")
        arch = Arch.from_dict(target["arch"])
    else:
        if not arch_file.is_absolute() and not arch_file.exists():
            arch_file = path.parent / arch_file  # relative to the record's folder
        arch = load_arch(arch_file)
    budget = target.get("budget_ms", record.get("budget_ms"))
    table = target.get("table", record.get("table"))
    predictor = record.get("predictor")
    supernet, fingerprint = record.get("supernet"), record.get("supernet_fingerprint")
    return SpecializedTarget(
        arch,
        arch_file,
        str(table) if table else None,
        float(budget) if isinstance(budget, (int, float)) and not isinstance(budget, bool) else None,
        path,
        str(predictor) if isinstance(predictor, str) and predictor else None,
        str(supernet) if isinstance(supernet, str) and supernet else None,
        str(fingerprint) if isinstance(fingerprint, str) and fingerprint else None,
    )
