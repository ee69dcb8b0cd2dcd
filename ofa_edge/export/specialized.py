"""What to export: the resolve stage of an export.

An arch named by the user is exported as asked. Otherwise the arch is a target of the last
``ofa-edge specialize`` (``specialized/last.json``, written by
:func:`ofa_edge.search.specialize.write_outputs`): the first whose table times the format being
exported, else the first; its table, budget, predictor and supernet fill what the request left
open (:func:`resolve_export`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import OFAEdgeError
from ..fileio import read_user_json
from ..latency.table import load_table, on_this_cpu
from .arch_input import (
    ExportArch,
    RequestedArch,
    check_supernet_takes,
    parse_arch,
    read_export_arch,
    requested_arch,
    stored_space,
)
from .config import ExportConfig

LAST_SPECIALIZED = Path("specialized") / "last.json"
NO_ARCH = "no arch to export: run `ofa-edge specialize` first, or pass --arch ARCH.json"


@dataclass(frozen=True)
class SpecializedTarget:
    arch: ExportArch
    arch_file: Path
    table: str | None
    budget_ms: float | None
    source: Path
    predictor: str | None = None  # the accuracy predictor the search used
    supernet: str | None = None  # the supernet searched, when specialize was given its file (or 'demo')
    supernet_fingerprint: str | None = None  # the supernet searched, always
    table_backend: dict[str, Any] | None = None  # the table's backend record, when the table loads

    def timing_for(self, backend: str) -> tuple[str | None, float | None, str | None]:
        """(table, budget in ms, note) for timing a file of ``backend`` against this target. A table
        of another backend cannot price the file: it is dropped (with a note), and its budget is
        kept only when that table was measured on this machine's CPU, where the file is timed."""
        recorded = self.table_backend
        # A table that no longer loads is passed on, for the export to say what is wrong with it.
        if self.table is None or recorded is None or recorded.get("backend") == backend:
            return self.table, self.budget_ms, None
        local = on_this_cpu(recorded.get("device"))
        note = (
            f"the arch was searched with table {self.table} ({recorded.get('backend')} on {recorded.get('device')}); "
            f"{backend} times this file on this machine, with no table to compare"
            + ("" if local or self.budget_ms is None else f" and not against the {self.budget_ms:g} ms budget")
        )
        return None, self.budget_ms if local else None, note


def last_specialized(path: Path = LAST_SPECIALIZED, backend: str | None = None) -> SpecializedTarget:
    """A target of ``path``, the first whose table was measured with ``backend`` (else the first):
    its arch (from ``arch_file``, else the recorded arch), its latency table and budget. A missing
    or unusable record is one line saying what to do."""
    path = Path(path)
    if not path.exists():
        raise OFAEdgeError(f"{NO_ARCH} ({path} not found)")
    record: Any = read_user_json(path, "specialize record", OFAEdgeError, hint=NO_ARCH)
    targets = record.get("targets") if isinstance(record, dict) else None
    if not targets or not isinstance(targets[0], dict):
        raise OFAEdgeError(f"{path} lists no targets; {NO_ARCH}")
    table_backends = [_table_backend(t.get("table")) if isinstance(t, dict) else None for t in targets]
    index = next((i for i, b in enumerate(table_backends) if backend and b and b.get("backend") == backend), 0)
    target = targets[index]
    arch_file = Path(target.get("arch_file") or "")
    if not target.get("arch_file"):
        if "arch" not in target:
            raise OFAEdgeError(f"{path}: its target {index + 1} has neither arch_file nor arch; {NO_ARCH}")
        arch = parse_arch(target["arch"])
    else:
        if not arch_file.is_absolute() and not arch_file.exists():
            arch_file = path.parent / arch_file  # relative to the record's folder
        arch = read_export_arch(arch_file).arch
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
        table_backends[index],
    )


def _table_backend(name: Any) -> dict[str, Any] | None:
    """The backend record of the table named ``name`` (None when it is gone or unreadable: the
    export then says so where it loads the table)."""
    if not isinstance(name, str) or not name:
        return None
    try:
        return dict(load_table(name).backend)
    except OFAEdgeError:
        return None


@dataclass(frozen=True)
class ResolvedExport:
    """An export request made whole: the arch, the config with its table, budget and supernet
    filled in, the accuracy predictor (for the closed loop), and notes for the user."""

    arch: ExportArch
    config: ExportConfig
    predictor: Path | None = None
    notes: list[str] = field(default_factory=list)


def resolve_export(
    config: ExportConfig, arch: ExportArch | str | Path | None = None, *, predictor: Path | None = None,
    record: Path = LAST_SPECIALIZED,
) -> ResolvedExport:  # fmt: skip
    """``arch`` as given (an arch object, an arch JSON path of any family or an official net; the
    supernet's space must take it, checked here when known without loading it), or the target of
    ``record`` that ``config``'s format is timed for; in the latter case the config's ``table``,
    ``budget_ms`` and ``supernet`` left at None, and ``predictor``, come from the record."""
    if arch is not None:
        supernet = config.supernet or "demo"
        requested = requested_arch(arch)
        _check_supernet_space(requested, supernet)
        return ResolvedExport(requested.arch, replace(config, supernet=supernet), predictor)
    target = last_specialized(record, backend=config.spec.backend)
    notes = [f"arch: target {target.table or 'with no table'} of {target.source} ({target.arch_file})"]
    table, budget_ms, note = target.timing_for(config.spec.backend)
    if config.table is not None:
        table = config.table
    elif note:
        notes.append(note)
    supernet = config.supernet or _searched_supernet(target)
    _check_searched(supernet, target)
    config = replace(config, table=table, supernet=supernet,
                     budget_ms=config.budget_ms if config.budget_ms is not None else budget_ms)  # fmt: skip
    if predictor is None and target.predictor:
        predictor = Path(target.predictor)
    return ResolvedExport(target.arch, config, predictor, notes)


def _check_supernet_space(requested: RequestedArch, supernet: str) -> None:
    """One line, before any export work, when the supernet's space does not take the arch
    (:func:`~.arch_input.check_supernet_takes`). An official net is checked even where that space
    is not recorded (the supernet is loaded for it): its layers are of one space, and from a
    supernet of another its arch would take other widths."""
    space = stored_space(supernet)
    if space is None and requested.official is not None:
        from ..nn.checkpoint import load_supernet

        space = load_supernet(supernet).space
    check_supernet_takes(requested, supernet, space)


def _searched_supernet(target: SpecializedTarget) -> str:
    """The supernet file a record's search scored (the demo when it names none); one line when
    that file is gone."""
    if target.supernet not in (None, "demo") and not Path(str(target.supernet)).is_file():
        raise OFAEdgeError(
            f"the arch of {target.source} was searched on supernet {target.supernet}, which is not there now: "
            f"pass --supernet, that checkpoint (fingerprint {target.supernet_fingerprint})"
        )
    return target.supernet or "demo"


def _check_searched(supernet: str, target: SpecializedTarget) -> None:
    """The arch of a specialize record belongs to the supernet that search scored: exporting it
    from another one (the demo, by default, after a search with your own predictor) would ship
    other weights under the search's numbers."""
    from ..nn.checkpoint import supernet_fingerprint

    if target.supernet_fingerprint is None:
        return
    fingerprint, _ = supernet_fingerprint(supernet)
    if fingerprint != target.supernet_fingerprint:
        raise OFAEdgeError(
            f"the arch of {target.source} was searched on supernet {target.supernet_fingerprint}, not on {supernet} "
            f"({fingerprint}): pass --supernet, the checkpoint its predictor belongs to"
        )
