"""The closed loop: export, measure, and when the measurement is over budget teach the table and
search again.

A latency table predicts, it does not measure: the search goes to the subnets the table prices
cheapest, so its errors there are one-sided (a subnet the table underestimates looks like a
bargain). After an export, the file's own backend has measured the chosen subnet; when that
measurement is over the budget:

* it becomes a calibration point of the table (calibrated on this machine), which corrects the
  table everywhere a little;
* the next search aims under the budget by the miss (the new target is the last one x budget /
  measured, never above the budget): a table's error at one subnet is shared by its neighbours,
  which one more point among dozens barely moves (measured here: with the refit alone, two
  rounds left subnets 3-6% over);

then the new choice is exported and measured. Bounded by ``rounds``; the last export stands even
when still over (its card and summary say by how much).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import OFAEdgeError
from ..host import cpu_identity
from ..latency.profiling import calibrate_table
from ..latency.table import LatencyTable, load_table
from ..search.efficiency import LatencyModel
from ..search.specialize import Result, Target, specialize
from ..space.arch import Arch
from ..space.space import SearchSpace
from .arch_input import ExportArch
from .formats import get_format
from .pipeline import ExportResult, export_subnet
from .refit import add_calibration_point
from .specialized import ResolvedExport


@dataclass
class LoopOutcome:
    """What the loop ended with: the arch exported last, its exports, the search result that chose
    it (None when no search ran again), and one record per refit round."""

    arch: ExportArch
    exports: list[ExportResult]
    choice: Result | None = None
    refits: list[dict[str, Any]] = field(default_factory=list)


def own_export(exports: list[ExportResult], table: LatencyTable) -> ExportResult | None:
    """The export timed by the table's own backend (the one whose measurement can teach it)."""
    return next((e for e in exports if get_format(e.format).backend == table.backend.get("backend")), None)


def measured_latency(export: ExportResult | None, table: LatencyTable) -> float | None:
    """The measurement (ms) of the exported file in the table's precision, when it was timed."""
    latency = export.latency if export is not None else None
    measurement = (latency or {}).get("per_precision", {}).get(table.backend.get("precision"))
    return float(measurement["median_ms"]) if measurement else None


def search_until_within_budget(
    arch: Arch,
    measure: Callable[[Arch, str | Path], float | None],
    *,
    table_ref: str | Path,
    table: LatencyTable,
    budget_ms: float,
    predictor: Any,
    space: SearchSpace,
    supernet: str | None,
    rounds: int,
    seed: int = 0,
    measured_on: Callable[[], str] = cpu_identity,
    backend_options: dict[str, Any] | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> LoopOutcome:
    """The loop itself: ``measure(arch, table_ref)`` gives ``arch``'s latency (ms) on the table's
    backend and precision (None: it cannot be measured, the loop stops). Up to ``rounds`` times
    while that is over ``budget_ms``: refit the table with it, search again under a target
    tightened by the miss, measure the new choice. ``exports`` of the outcome stay empty.
    ``measured_on()``: the device the last measurement ran on, as backends describe it (this CPU,
    or a phone's serial and model); a calibration made on another is redone there first, with
    ``backend_options`` (a phone's, as for ``profile``)."""
    outcome = LoopOutcome(arch, [])
    target = budget_ms
    measured = measure(arch, table_ref)
    for round_ in range(1, rounds + 1):
        if measured is None or measured <= budget_ms:
            break
        table_ref, table = _refit(table_ref, table, space, outcome.arch, measured, measured_on(), backend_options,
                                  progress)  # fmt: skip
        predicted = table.predict(space, outcome.arch)
        # Aim under the budget by the miss: the last search aimed at ``target`` and measured
        # ``measured``, so aiming at target x budget / measured lands on the budget if the table
        # errs by the same factor around the new choice. Never under the cheapest subnet.
        target = max(min(budget_ms, target * budget_ms / measured), LatencyModel(table, space).range()[0])
        progress(
            f"refit {round_}/{rounds}: measured {measured:.3f} ms is over the {budget_ms:g} ms budget "
            f"(the table now predicts {predicted:.3f} ms); searching again under {target:.3f} ms"
        )
        outcome.refits.append({"round": round_, "arch": outcome.arch.to_dict(), "measured_ms": measured,
                               "predicted_ms": predicted, "search_target_ms": target,
                               "table": str(table_ref)})  # fmt: skip
        outcome.choice = specialize(predictor, [Target(table, target)], space=space, supernet=supernet,
                                    seed=seed)[0]  # fmt: skip
        outcome.arch = outcome.choice.arch
        measured = measure(outcome.arch, table_ref)
    return outcome


def export_within_budget(
    arch: ExportArch, export: Callable[[ExportArch, str | Path], list[ExportResult]], *, table: LatencyTable,
    **loop: Any,
) -> LoopOutcome:
    """``export(arch, table_ref)`` (it exports and times ``arch`` against the table named
    ``table_ref``), in :func:`search_until_within_budget`'s loop (``loop``: its other keyword
    arguments): the measurement is that of the export timed by the table's backend, in the
    table's precision. The outcome holds the exports of the last arch."""
    exports: list[ExportResult] = []

    def measure(candidate: ExportArch, ref: str | Path) -> float | None:
        exports[:] = export(candidate, ref)
        return measured_latency(own_export(exports, table), table)

    def measured_on() -> str:
        own = own_export(exports, table)
        return str(((own.latency if own else None) or {}).get("backend", {}).get("device_detail") or cpu_identity())

    outcome = search_until_within_budget(arch, measure, table=table, measured_on=measured_on, **loop)
    outcome.exports = exports
    return outcome


def export_with_refit(
    resolved: ResolvedExport, rounds: int = 0, seed: int = 0, progress: Callable[[str], None] = lambda message: None
) -> tuple[ExportResult, list[dict[str, Any]]]:
    """The export of ``resolved``; with ``rounds``, in the closed loop (its table, budget and
    predictor from the request or the specialize record). Returns the last export and one record
    per refit round."""
    config = resolved.config
    if rounds == 0:
        return export_subnet(resolved.arch, config, progress=progress), []
    if config.table is None or config.budget_ms is None:
        raise OFAEdgeError("--refit needs a latency table and a budget: pass --table and --budget, or export the "
                           "arch of `ofa-edge specialize --budget ...`")  # fmt: skip
    from ..search.predictor import load_predictor

    predictor = load_predictor(resolved.predictor, config.supernet)

    def export(arch: ExportArch, table_ref: str | Path) -> list[ExportResult]:
        return [export_subnet(arch, replace(config, table=table_ref), progress=progress)]

    outcome = export_within_budget(
        resolved.arch, export, table_ref=config.table, table=load_table(config.table), budget_ms=config.budget_ms,
        predictor=predictor, space=predictor.space, supernet=predictor.checked_supernet, rounds=rounds, seed=seed,
        backend_options=dict(config.backend_options or {}) or None, progress=progress,
    )  # fmt: skip
    return outcome.exports[0], outcome.refits


def _refit(
    table_ref: str | Path, table: LatencyTable, space: SearchSpace, arch: Arch, measured_ms: float, measured_on: str,
    backend_options: dict[str, Any] | None, progress: Callable[[str], None],
) -> tuple[Path, LatencyTable]:  # fmt: skip
    """The table with ``arch``'s measurement as a calibration point. A calibration made on another
    device than ``measured_on`` is first redone there (one calibration never mixes two devices'
    measurements)."""
    if table.calibration is None or table.calibration.host != measured_on:
        progress(f"refit: calibrating {table_ref} on {measured_on} first")
        _, path = calibrate_table(table_ref, fresh=True, options=backend_options, warn=progress)
        table_ref = path
    path, updated, warnings = add_calibration_point(table_ref, space, arch, measured_ms, source="--refit")
    for warning in warnings:
        progress(warning)
    return path, updated
