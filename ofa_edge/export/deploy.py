"""Deploy: specialise, then export and verify, for one or several targets, in one call.

The chain the toolkit exists for: the most accurate subnet under each target's latency budget
(accuracy predictor + the target's latency table), extracted from the supernet, recalibrated,
converted to every requested format (fp32 and int8), verified against PyTorch, and timed with the
matching backend. With ``refit_rounds``, a subnet whose measurement misses its budget by more
than 10% teaches the table (its measurement becomes a calibration point, on a table calibrated
on this machine), and the search and export run again: the closed loop.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import OFAEdgeError
from ..host import cpu_identity
from ..latency.profiling import calibrate_table
from ..latency.store import default_cpu_table
from ..latency.table import LatencyTable, load_table
from ..search.efficiency import LatencyModel, feasible_range
from ..search.predictor import load_predictor
from ..search.specialize import Result, Target, specialize
from .formats import FORMATS, check_available, get_format
from .pipeline import ExportResult, export_subnet
from .refit import add_calibration_point

# Formats exported by default when their extra is installed (ONNX always: it is in the core).
DEFAULT_FORMATS = ("onnx", "openvino", "tflite")


@dataclass
class Deployment:
    """One target: the subnet chosen for it and its exported, verified files."""

    table: str
    budget_ms: float
    choice: Result
    exports: list[ExportResult] = field(default_factory=list)
    refits: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "budget_ms": self.budget_ms,
            "choice": {k: v for k, v in self.choice.to_dict().items() if k != "front"},
            "exports": [e.to_dict() for e in self.exports],
            "refits": self.refits,
            "notes": self.notes,
        }


def available_formats(int8: bool, wanted: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """The formats to export (``wanted``, or every default one whose extra is installed) and notes
    on the default formats left out. A wanted format that cannot run here is one error line."""
    if wanted:
        for name in wanted:
            check_available(get_format(name), int8)
        return list(dict.fromkeys(wanted)), []
    chosen, notes = [], []
    for name in DEFAULT_FORMATS:
        try:
            check_available(FORMATS[name], int8)
        except OFAEdgeError as exc:
            notes.append(f"{name} skipped: {exc}")
            continue
        chosen.append(name)
    return chosen, notes


def default_budget(table: LatencyTable, predictor_space: Any) -> float:
    """The middle of a table's feasible latency range (the budget when none is given)."""
    low, high = feasible_range(LatencyModel(table, predictor_space))
    return round((low + high) / 2, 4)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(text).stem).strip("-") or "target"


def deploy(
    budgets: Sequence[float] | None = None,
    tables: Sequence[str] | None = None,
    formats: Sequence[str] | None = None,
    *,
    int8: bool = True,
    supernet: str = "demo",
    predictor: str | Path | None = None,
    out_dir: str | Path = "deploy",
    test_images: int | None = None,
    threads: int | None = None,
    refit_rounds: int = 0,
    seed: int = 0,
    command: str | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> list[Deployment]:
    """Specialise the supernet for each target (a latency table and a budget in ms), then export
    each chosen subnet to every format, verified and timed.

    Defaults: the demo supernet and its shipped predictor; one target, this CPU's onnxruntime table
    (yours from ``ofa-edge profile`` when it exists, else the shipped one); the budget in the middle
    of that table's feasible range; ONNX, plus OpenVINO and TFLite when their extras are installed;
    fp32 and int8. Budgets pair with tables in order (one budget serves every table).
    """
    if refit_rounds < 0:
        raise OFAEdgeError(f"refit rounds must be 0 or more, got {refit_rounds}")
    model, fingerprint = load_predictor(predictor, supernet)
    space = model.space
    names = list(tables) if tables else [default_cpu_table(space.name)]
    loaded = [load_table(name) for name in names]
    if budgets:
        if len(budgets) not in (1, len(names)):
            raise OFAEdgeError(f"{len(budgets)} budgets for {len(names)} tables: give one, or one per table")
        limits = [float(b) for b in budgets] * (len(names) if len(budgets) == 1 else 1)
    else:
        limits = [default_budget(t, space) for t in loaded]
    chosen_formats, format_notes = available_formats(int8, formats)
    results = specialize(model, [Target(t, b) for t, b in zip(loaded, limits)], space=space,
                         supernet=fingerprint, seed=seed)  # fmt: skip
    deployments = []
    for name, table, budget, choice in zip(names, loaded, limits, results):
        deployment = Deployment(name, budget, choice, notes=[*format_notes, *choice.notes])
        if (warning := table.machine_warning()) is not None:
            deployment.notes.append(warning)
        folder = Path(out_dir) / _slug(name)
        table_ref: str | Path = name
        for round_ in range(refit_rounds + 1):
            progress(f"{name}: exporting {deployment.choice.arch.r} px subnet "
                     f"(predicted {deployment.choice.latency_ms:.3f} ms) to {', '.join(chosen_formats)}")  # fmt: skip
            deployment.exports = [
                export_subnet(
                    deployment.choice.arch, fmt, supernet=supernet, int8=int8, out_dir=folder, name=fmt,
                    test_images=test_images, threads=threads, table=table_ref if _matches(fmt, table, int8) else None,
                    budget_ms=budget, command=command, progress=progress,
                )
                for fmt in chosen_formats
            ]  # fmt: skip
            own = next((e for e in deployment.exports if get_format(e.format).backend == table.backend.get("backend")),
                       None)  # fmt: skip
            if own is None or not own.budget_missed or round_ == refit_rounds:
                break
            measured = own.file("fp32").latency["measured_ms"] if own.file("fp32").latency else None
            if measured is None:
                break
            table_ref, table = _refit(table_ref, table, space, deployment.choice.arch, measured, progress)
            deployment.refits.append({"round": round_ + 1, "arch": deployment.choice.arch.to_dict(),
                                      "measured_ms": measured, "table": str(table_ref)})  # fmt: skip
            deployment.choice = specialize(model, [Target(table, budget)], space=space, supernet=fingerprint,
                                           seed=seed)[0]  # fmt: skip
        deployments.append(deployment)
    return deployments


def _matches(fmt: str, table: LatencyTable, int8: bool) -> bool:
    """Whether ``table`` prices the file an export of ``fmt`` ships (its backend and precision)."""
    wanted = "int8" if int8 else "fp32"
    return get_format(fmt).backend == table.backend.get("backend") and table.backend.get("precision") == wanted


def _refit(
    table_ref: str | Path, table: LatencyTable, space: Any, arch: Any, measured_ms: float,
    progress: Callable[[str], None],
) -> tuple[Path, LatencyTable]:  # fmt: skip
    """The table with ``arch``'s measurement as a calibration point. A calibration made on another
    machine is first redone here (one calibration never mixes two machines' measurements)."""
    if table.calibration is None or table.calibration.host != cpu_identity():
        progress(f"refit: calibrating {table_ref} on this machine first")
        _, path = calibrate_table(table_ref, fresh=True, warn=progress)
        table_ref = path
    path, updated, warnings = add_calibration_point(table_ref, space, arch, measured_ms, source="deploy --refit")
    for warning in warnings:
        progress(warning)
    return path, updated
