"""The closed loop: export, measure, and when the measurement is over budget teach the table and
search again.

A latency table predicts, it does not measure: the search goes to the subnets the table prices
cheapest, so its errors there are one-sided (a subnet the table underestimates looks like a
bargain). After an export, the file's own backend has measured the chosen subnet; when that
measurement is over the budget, it becomes a calibration point of the table (calibrated on this
machine), the search runs again on the refitted table, and the new choice is exported. Bounded by
``rounds``; the last export stands even when still over (its card and summary say by how much).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..host import cpu_identity
from ..latency.profiling import calibrate_table
from ..latency.table import LatencyTable
from ..search.specialize import Result, Target, specialize
from ..space.arch import Arch
from ..space.space import SearchSpace
from .formats import get_format
from .pipeline import ExportResult
from .refit import add_calibration_point


@dataclass
class LoopOutcome:
    """What the loop ended with: the arch exported last, its exports, the search result that chose
    it (None when no search ran again), and one record per refit round."""

    arch: Arch
    exports: list[ExportResult]
    choice: Result | None = None
    refits: list[dict[str, Any]] = field(default_factory=list)


def own_export(exports: list[ExportResult], table: LatencyTable) -> ExportResult | None:
    """The export timed by the table's own backend (the one whose measurement can teach it)."""
    return next((e for e in exports if get_format(e.format).backend == table.backend.get("backend")), None)


def measured_over_budget(export: ExportResult | None, table: LatencyTable) -> float | None:
    """The measurement (ms) of the file in the table's precision when it is over the export's
    budget, else None."""
    latency = export.latency if export is not None else None
    if not latency or latency.get("budget_ms") is None:
        return None
    measurement = latency.get("per_precision", {}).get(table.backend.get("precision"))
    if not measurement:
        return None
    measured = float(measurement["median_ms"])
    return measured if measured > latency["budget_ms"] else None


def export_within_budget(
    arch: Arch,
    export: Callable[[Arch, str | Path], list[ExportResult]],
    *,
    table_ref: str | Path,
    table: LatencyTable,
    budget_ms: float,
    predictor: Any,
    space: SearchSpace,
    supernet: str | None,
    rounds: int,
    seed: int = 0,
    progress: Callable[[str], None] = lambda message: None,
) -> LoopOutcome:
    """``export(arch, table_ref)`` (it exports and times ``arch`` against the table named
    ``table_ref``); then, up to ``rounds`` times while the measurement of the table's backend is
    over ``budget_ms``: refit the table with it, search again with ``predictor``, export again."""
    outcome = LoopOutcome(arch, export(arch, table_ref))
    for round_ in range(1, rounds + 1):
        measured = measured_over_budget(own_export(outcome.exports, table), table)
        if measured is None:
            break
        progress(f"refit {round_}/{rounds}: measured {measured:.3f} ms is over the {budget_ms:g} ms budget; "
                 "teaching the table and searching again")  # fmt: skip
        table_ref, table = _refit(table_ref, table, space, outcome.arch, measured, progress)
        outcome.refits.append({"round": round_, "arch": outcome.arch.to_dict(), "measured_ms": measured,
                               "table": str(table_ref)})  # fmt: skip
        outcome.choice = specialize(predictor, [Target(table, budget_ms)], space=space, supernet=supernet,
                                    seed=seed)[0]  # fmt: skip
        outcome.arch = outcome.choice.arch
        outcome.exports = export(outcome.arch, table_ref)
    return outcome


def _refit(
    table_ref: str | Path, table: LatencyTable, space: SearchSpace, arch: Arch, measured_ms: float,
    progress: Callable[[str], None],
) -> tuple[Path, LatencyTable]:  # fmt: skip
    """The table with ``arch``'s measurement as a calibration point. A calibration made on another
    machine is first redone here (one calibration never mixes two machines' measurements)."""
    if table.calibration is None or table.calibration.host != cpu_identity():
        progress(f"refit: calibrating {table_ref} on this machine first")
        _, path = calibrate_table(table_ref, fresh=True, warn=progress)
        table_ref = path
    path, updated, warnings = add_calibration_point(table_ref, space, arch, measured_ms, source="--refit")
    for warning in warnings:
        progress(warning)
    return path, updated
