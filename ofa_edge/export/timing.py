"""Timing exported files against a latency table and a budget.

:func:`plan_timing` runs before the slow part of an export: it loads the table, decides which
precision's file the table prices, and builds (and checks) the timing backends, so a table of the
wrong backend or a device this machine lacks is one line at once. :func:`time_files` then times
every written file, interleaved, and :func:`latency_summary` compares the priced file with the
table's prediction and the budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from ..errors import OFAEdgeError
from ..latency.profiling import require_available, timing_setting_warnings
from ..latency.table import LatencyTable, load_table, on_this_cpu
from ..profilers.base import Backend, Measurement, time_interleaved
from .arch_input import AnySpace, ExportArch
from .config import BUDGET_TOLERANCE, ExportConfig


@dataclass
class TimingPlan:
    """How an export's files are timed: one backend per written precision, the table they are
    compared with (if any) and the precision whose file it prices."""

    precision: str  # the file compared with the table and the budget
    threads: int = 1  # inference threads: the config's, else the table's, else 1
    table: LatencyTable | None = None
    backends: dict[str, Backend] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def plan_timing(config: ExportConfig) -> TimingPlan:
    """The timing plan of ``config``; one line for a table that cannot price these files or a
    backend that cannot run here."""
    from ..profilers import make_backend

    spec, written = config.spec, config.precisions
    plan = TimingPlan(precision=written[-1])
    device, threads = config.device, config.threads
    if config.table is not None:
        plan.table = lut = load_table(config.table)
        if lut.backend.get("backend") != spec.backend:
            raise OFAEdgeError(f"table ({lut.label}) is for backend {lut.backend.get('backend')}, but {spec.name} "
                               f"files are timed with {spec.backend}: pass a {spec.backend} table")  # fmt: skip
        # A table prices files of one precision: an fp32 table (the default search's) compares the
        # fp32 file of an --int8 export; an int8 table needs the int8 file.
        plan.precision = str(lut.backend.get("precision"))
        if plan.precision not in written:
            hint = f": add --{plan.precision}" if plan.precision in ("int8", "fp16") else ""
            raise OFAEdgeError(f"table ({lut.label}) prices {plan.precision} files and this export writes "
                               f"{' and '.join(written)}{hint}")  # fmt: skip
        device = device if device is not None else lut.backend.get("device")
        threads = threads if threads is not None else int(lut.backend.get("threads") or 1)
    plan.threads = threads or 1
    if not config.measure_latency:
        return plan
    for p in written:
        plan.backends[p] = make_backend(spec.backend, device, threads=plan.threads, precision=p,
                                        **dict(config.backend_options or {}))  # fmt: skip
        require_available(plan.backends[p])  # e.g. an OpenVINO device this machine does not have
    if plan.table is not None:
        plan.warnings += _table_fit_warnings(plan.table, plan.backends[plan.precision])
    return plan


def _table_fit_warnings(lut: LatencyTable, backend: Backend) -> list[str]:
    """Raises when ``lut`` was measured with another backend set-up than ``backend``'s; warns
    where its timing settings or its phone differ."""
    info = backend.describe()
    lut.check_request(backend=info.backend, device=info.device, precision=info.precision, threads=info.threads)
    warnings = timing_setting_warnings(lut.backend, info)
    if not on_this_cpu(info.device) and info.device_detail != lut.backend.get("device_detail"):
        warnings.append(f"table {lut.label} was measured on '{lut.backend.get('device_detail')}', these files "
                        f"on '{info.device_detail}': its prediction may not hold there")  # fmt: skip
    return warnings


def time_files(
    plan: TimingPlan, files: dict[str, Path], config: ExportConfig, progress: Callable[[str], None]
) -> dict[str, Measurement]:
    """Each file's measurement, its timing passes interleaved with the others'."""
    info = plan.backends[plan.precision].describe()
    threads = f" with {info.threads} thread(s)" if info.threads else ""
    progress(f"timing on {config.spec.backend} ({info.device}){threads}")
    timing = config.timing
    measures = [partial(plan.backends[p].measure, path, timing.warmup, timing.runs) for p, path in files.items()]
    return dict(zip(files, time_interleaved(measures, timing.rounds)))


def latency_summary(
    plan: TimingPlan, measured: dict[str, Measurement], config: ExportConfig, space: AnySpace, arch: ExportArch
) -> dict[str, Any]:
    """The priced file's latency against the table's prediction and the budget, with every
    precision's measurement and the reduced precisions' speed-up over fp32."""
    shipped, info = measured[plan.precision], plan.backends[plan.precision].describe()
    summary: dict[str, Any] = {
        "precision": plan.precision, "measured_ms": shipped.median_ms, "p10_ms": shipped.p10_ms,
        "p90_ms": shipped.p90_ms, "statistic": shipped.statistic, "threads": info.threads,
        "backend": info.to_dict(), "timing": config.timing.to_dict(),
        "per_precision": {p: m.to_dict() for p, m in measured.items()},
        "table": None, "predicted_ms": None, "prediction_error": None, "budget_ms": config.budget_ms,
        "over_budget": None, "budget_missed": False, "message": None,
    }  # fmt: skip
    for p in ("fp16", "int8"):
        if p in measured:
            summary[f"{p}_speedup"] = measured["fp32"].median_ms / measured[p].median_ms
    if plan.table is not None:
        predicted = plan.table.predict(space, arch)
        summary.update(table=str(config.table), predicted_ms=predicted,
                       prediction_error=(shipped.median_ms - predicted) / predicted)  # fmt: skip
    if config.budget_ms is not None:
        summary["over_budget"] = over = shipped.median_ms / config.budget_ms - 1
        if over > BUDGET_TOLERANCE:
            summary["budget_missed"] = True
            predicted_note = f"; the table predicted {summary['predicted_ms']:.3f} ms" if plan.table else ""
            summary["message"] = (
                f"measured {shipped.median_ms:.3f} ms on {info.backend} ({info.threads or '-'} thread(s)) misses the "
                f"{config.budget_ms:g} ms budget by {over:.0%} (more than {BUDGET_TOLERANCE:.0%}){predicted_note}"
            )
    return summary
