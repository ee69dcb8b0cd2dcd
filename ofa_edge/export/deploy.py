"""Deploy: specialise, then export and verify, for one or several targets, in one call.

The chain the toolkit exists for: the most accurate subnet under each target's latency budget
(accuracy predictor + the target's latency table), extracted from the supernet, recalibrated,
converted to every requested format (fp32 and int8), verified against PyTorch, and timed with the
matching backend. With ``refit_rounds``, a subnet measured over its budget teaches the table
(its measurement becomes a calibration point, on a table calibrated on this machine), and the
search and export run again: the closed loop (:mod:`ofa_edge.export.closed_loop`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from ..convert.tensorrt import Trtexec
from ..errors import OFAEdgeError
from ..latency.profiling import default_table
from ..latency.store import canonical_table_name
from ..latency.table import LatencyTable, load_table, on_this_cpu
from ..search.efficiency import LatencyModel, feasible_range
from ..search.predictor import load_predictor, predictor_supernet
from ..search.specialize import Result, Target, slug, specialize
from ..train.evaluate import SupernetScorer, trained_data
from .arch_input import ExportArch
from .closed_loop import export_within_budget
from .config import ExportConfig
from .formats import FORMATS, check_available, get_format
from .pipeline import ExportResult, export_subnet, report_reading

# A first deploy exports ONNX (the core's format, priced by the default table), checks it on the
# first 2000 test images, and refits the default target's table when a file misses its budget.
DEFAULT_FORMATS = ("onnx",)
DEFAULT_TEST_IMAGES = 2000
DEFAULT_REFIT_ROUNDS = 2


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


def available_formats(
    int8: bool, wanted: Sequence[str] | None = None, trtexec: Trtexec | None = None
) -> tuple[list[str], list[str]]:
    """The formats to export (``wanted``, or every default one whose extra is installed) and notes
    on the default formats left out. A wanted format that cannot run here is one error line."""
    if wanted:
        for name in wanted:
            check_available(get_format(name), int8, trtexec)
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


def deploy(
    budgets: Sequence[float] | None = None,
    tables: Sequence[str] | None = None,
    formats: Sequence[str] | None = None,
    *,
    int8: bool = True,
    supernet: str | None = None,
    predictor: str | Path | None = None,
    out_dir: str | Path = "deploy",
    data: str | None = None,
    data_dir: Path | None = None,
    test_images: int | None = DEFAULT_TEST_IMAGES,
    threads: int | None = None,
    backend_options: dict[str, Any] | None = None,
    refit_rounds: int | None = None,
    seed: int = 0,
    command: str | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> list[Deployment]:
    """Specialise the supernet for each target (a latency table and a budget in ms), then export
    each chosen subnet to every format, verified and timed.

    Defaults: the demo supernet and its shipped predictor (with only ``predictor``, the supernet
    file it was trained on); one target, this CPU's onnxruntime table (yours from ``ofa-edge
    profile`` when it exists, else the shipped one; one measured on another CPU makes this CPU be
    profiled first, see :func:`~ofa_edge.latency.profiling.table_for_this_cpu`), with
    ``refit_rounds`` 2 (0 for tables you name); the budget in the middle of that table's feasible
    range; ONNX; fp32 and int8; the first 2000 test images (None: all) of the data the supernet
    was trained on (``data``: another). Budgets pair with tables in order (one budget serves every
    table).

    Each file is timed where its target's table was measured when the table's backend times that
    format (a phone over adb, with ``backend_options`` as for ``profile``: they go to the backends
    of targets measured elsewhere), else on this machine.
    A target measured elsewhere (a phone, a GPU) exports by default only the format its backend
    times; other formats asked for are exported and verified but not timed.
    """
    if refit_rounds is not None and refit_rounds < 0:
        raise OFAEdgeError(f"refit rounds must be 0 or more, got {refit_rounds}")
    if supernet is None:
        supernet = predictor_supernet(predictor)
    model = load_predictor(predictor, supernet)
    if data is None:
        trained_data(supernet)  # an official supernet: one line asking for --data, before any search
    base = ExportConfig(int8=int8, supernet=supernet, out_dir=out_dir, test_images=test_images, threads=threads,
                        backend_options=backend_options, command=command)  # fmt: skip
    base.validate()
    notes: list[str] = []
    if tables:
        names = list(tables)
    else:
        name, note = default_table(supernet, model.space.name, progress=_stage_progress(progress), warn=progress)
        names, notes = [name], [note] if note else []
    names = [canonical_table_name(name, model.space.name) for name in names]
    loaded = [load_table(name) for name in names]
    if refit_rounds is None:  # the loop refits with measurements: none are taken for an imported table
        refit_rounds = 0 if tables or any(_imported(t) for t in loaded) else DEFAULT_REFIT_ROUNDS
    limits = _budgets(budgets, loaded, model.space)
    trtexec = Trtexec.from_options(backend_options)  # for tensorrt files: -O trtexec=PATH, gpu=N
    chosen_formats, format_notes = available_formats(int8, formats, trtexec)
    notes += format_notes
    if (warning := model.ranking_warning()) is not None:
        notes.append(warning)
    if backend_options and not any(_remote(t) for t in loaded):
        notes.append(f"backend options {', '.join(backend_options)} ignored: every target is timed on this "
                     "CPU, and they are for a phone or GPU target's backend")  # fmt: skip
    progress(f"searching the most accurate subnet under {', '.join(f'{b:.3g} ms' for b in limits)}")
    results = specialize(model, [Target(t, b) for t, b in zip(loaded, limits)], space=model.space,
                         supernet=model.checked_supernet, seed=seed)  # fmt: skip
    # One supernet and one read of the data for every export of every target.
    progress(f"loading supernet {supernet} and {data or 'the data it was trained on'}")
    scorer = SupernetScorer.open(supernet, data, data_dir, "test", progress=partial(report_reading, progress))
    deployments = []
    for name, table, budget, choice in zip(names, loaded, limits, results):
        formats_here, target_notes = _target_formats(table, chosen_formats, int8, explicit=bool(formats),
                                                     trtexec=trtexec)  # fmt: skip
        deployment = Deployment(name, budget, choice, notes=[*notes, *target_notes, *choice.notes])
        if (warning := table.machine_warning()) is not None:
            deployment.notes.append(warning)
        config = replace(base, out_dir=Path(out_dir) / slug(name), budget_ms=budget)
        export_all = partial(_export_formats, label=name, formats=formats_here, config=config, scorer=scorer,
                             progress=progress)  # fmt: skip
        outcome = export_within_budget(
            choice.arch, export_all, table_ref=name, table=table, budget_ms=budget, predictor=model,
            space=model.space, supernet=model.checked_supernet, rounds=refit_rounds, seed=seed,
            backend_options=backend_options if _remote(table) else None, progress=progress,
        )  # fmt: skip
        deployment.exports, deployment.refits = outcome.exports, outcome.refits
        deployment.choice = outcome.choice or choice
        deployments.append(deployment)
    return deployments


def _stage_progress(progress: Callable[[str], None]) -> Callable[[int, int, str], None]:
    """A profile's (done, total, what) progress as a line per stage, not per block."""

    def report(done: int, total: int, what: str) -> None:
        if done == total and total:
            progress(f"measured {total} models on this CPU")

    return report


def _budgets(budgets: Sequence[float] | None, tables: list[LatencyTable], space: Any) -> list[float]:
    """One budget per table: the given ones (one serves all), else the middle of each table's range."""
    if not budgets:
        return [default_budget(t, space) for t in tables]
    if len(budgets) not in (1, len(tables)):
        raise OFAEdgeError(f"{len(budgets)} budgets for {len(tables)} tables: give one, or one per table")
    return [float(b) for b in budgets] * (len(tables) if len(budgets) == 1 else 1)


def _remote(table: LatencyTable) -> bool:
    """Whether ``table`` was measured somewhere other than this machine's CPU (a phone, a GPU)."""
    return not on_this_cpu(table.backend.get("device"))


def _imported(table: LatencyTable) -> bool:
    """Whether ``table`` was imported (the OFA authors' note10 tables): no backend here times it."""
    return table.backend.get("backend") == "imported"


def _target_formats(
    table: LatencyTable, formats: list[str], int8: bool, explicit: bool, trtexec: Trtexec | None = None
) -> tuple[list[str], list[str]]:
    """The formats to export for ``table``'s target, and notes. A target measured elsewhere gets,
    unless formats were asked for, only the format its backend times (files it cannot time would
    be timed on this CPU and read as the target's)."""
    if not _remote(table):
        return formats, []
    where = f"{table.backend.get('device')} ({table.backend.get('backend')})"
    if _imported(table):
        return formats, [f"table {table.label} was imported: its device cannot time files here, so they are "
                         "exported and verified, not timed"]  # fmt: skip
    timed = [f for f in formats if _matches(f, table, int8)]
    if explicit:
        return formats, [f"{f} files cannot be timed on {where}: exported and verified, not timed"
                         for f in formats if f not in timed]  # fmt: skip
    if not timed:
        own = next((name for name, spec in FORMATS.items() if spec.backend == table.backend.get("backend")), None)
        if own is None:
            raise OFAEdgeError(f"no export format is timed by backend {table.backend.get('backend')} of {where}")
        check_available(FORMATS[own], int8, trtexec)
        timed = [own]
    return timed, [f"target {where}: exporting {', '.join(timed)}, the format its backend times"]


def _export_formats(
    arch: ExportArch, table_ref: str | Path, *, label: str, formats: list[str], config: ExportConfig,
    scorer: SupernetScorer, progress: Callable[[str], None],
) -> list[ExportResult]:  # fmt: skip
    """``arch`` exported to each of ``formats`` in ``config.out_dir``. A file the table prices (its
    backend and precision) is timed where the table was measured and compared with it; others are
    timed on this machine when the target is this machine, else not at all."""
    progress(f"{label}: exporting the {arch.r} px subnet to {', '.join(formats)}")
    table = load_table(table_ref)
    results = []
    for fmt in formats:
        matched = _matches(fmt, table, config.int8)
        timed = matched or not _remote(table)
        results.append(export_subnet(arch, replace(
            config, format=fmt, name=fmt, table=table_ref if matched else None,
            backend_options=config.backend_options if matched and _remote(table) else None,
            measure_latency=timed, budget_ms=config.budget_ms if timed else None,
        ), scorer=scorer, progress=progress))  # fmt: skip
    return results


def _matches(fmt: str, table: LatencyTable, int8: bool) -> bool:
    """Whether ``table`` prices a file an export of ``fmt`` writes (its backend, and fp32 or, with
    ``int8``, int8: the export compares that file's measurement with the table)."""
    written = ("fp32", "int8") if int8 else ("fp32",)
    return get_format(fmt).backend == table.backend.get("backend") and table.backend.get("precision") in written
