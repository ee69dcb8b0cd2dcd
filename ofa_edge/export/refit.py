"""Closing the loop between export and search: a measured latency becomes a calibration point of
the latency table that predicted it.

Only the table update lives here; re-searching with the refitted table and exporting again
(``--refit``, bounded rounds) is the search stage's job. A shipped table is never modified: the
updated table is a copy under the user's ``latency_tables/`` folder (same name, so it is found
first from then on); a user's own table is updated in place (atomically).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..host import cpu_identity
from ..latency.store import is_shipped, resolve_table_path, writable_path
from ..latency.table import Calibration, LatencyTable, load_table, on_this_cpu
from ..latency.units import arch_units
from ..space.arch import Arch
from ..space.space import SearchSpace


def add_calibration_point(
    table: str | Path, space: SearchSpace, arch: Arch, measured_ms: float, source: str = "export"
) -> tuple[Path, LatencyTable, list[str]]:
    """Append (``arch``, ``measured_ms``) to the calibration points of ``table`` (a name or path),
    refit its calibration, and save it where the user may write (a shipped table: a copy in the
    user's folder). Returns (where it was saved, the updated table, warnings)."""
    source_path = resolve_table_path(table)
    loaded = load_table(source_path)
    loaded.check_space(space)
    arch = space.validate(arch)
    warnings: list[str] = []
    if loaded.calibration is None:
        loaded.calibration = Calibration(host=cpu_identity())
    calibration = loaded.calibration
    here = cpu_identity()
    if calibration.host and calibration.host != here and on_this_cpu(loaded.backend.get("device")):
        warnings.append(f"the table's calibration points were measured on '{calibration.host}', this point on '{here}'")
    point: dict[str, Any] = {
        "arch": arch.to_dict(),
        "sum_ms": loaded.unit_sum(space, arch),
        "units": len(arch_units(space, arch)),
        "measured_ms": float(measured_ms),
        "source": source,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    calibration.points.append(point)
    calibration.refit()
    out = writable_path(source_path)
    if is_shipped(source_path):
        warnings.append(f"{source_path.name} ships with ofa-edge: the updated copy is {out}")
    loaded.save(out)
    return out, loaded, warnings
