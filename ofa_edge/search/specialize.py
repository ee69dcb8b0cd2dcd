"""Specialise a supernet for devices: the most accurate subnet under each device's budget.

One call handles several targets (a latency table each, with its own latency budget) with one
shared accuracy predictor and shared MACs/params budgets, and returns one :class:`Result` per
target: the arch, its predicted accuracy and latency, MACs, params, a per-stage summary, and the
accuracy/latency front the search saw under that budget.

Budgets are checked against the exact range of the space before searching: one below the
cheapest subnet is an error naming the feasible range; one above the dearest subnet constrains
nothing (a note says so, and the most accurate subnet is returned).
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from ..errors import OFAEdgeError
from ..fileio import atomic_write_bytes, atomic_write_text
from ..latency.store import canonical_table_name
from ..latency.table import LatencyTable, TableError, load_table
from ..space.arch import Arch, save_arch
from ..space.describe import describe_arch
from ..space.space import SearchSpace, get_space
from . import population as P
from .budget import format_count, format_ms
from .efficiency import CostModel, LatencyModel, macs_model, params_model
from .evolution import Budget, FeaturePredictor, Front, SearchResult, evolution_search

ALGORITHMS = ("evolution", "nsga2")
DEFAULT_GENERATIONS = {"evolution": 500, "nsga2": 200}
LAST_FORMAT = "ofa-edge-specialize/1"


@dataclass
class Target:
    """One device: a latency table (shipped name, path, or loaded table) and a latency budget
    (ms; None: no latency budget, the table only prices the result)."""

    table: str | Path | LatencyTable
    latency_ms: float | None = None

    def load(self, space: str | None = None) -> tuple[LatencyTable, str]:
        """The table (a name also finds ``NAME-SPACE``), and the name to show for it."""
        if isinstance(self.table, LatencyTable):
            return self.table, self.table.label
        name = canonical_table_name(self.table, space)
        return load_table(name), name


@dataclass
class Result:
    """The subnet chosen for one target."""

    table: str  # as the user named it
    table_label: str  # what the table measured (space, backend, device, precision, threads)
    arch: Arch
    accuracy: float  # predicted top-1 (%)
    latency_ms: float  # predicted by the table
    macs: int
    params: int
    summary: dict[str, Any]  # describe_arch: resolution, depths, per-stage kernels/expands
    front: Front | None
    space: SearchSpace
    latency_budget_ms: float | None = None
    macs_budget: int | None = None
    params_budget: int | None = None
    feasible_ms: tuple[float, float] = (0.0, 0.0)
    algorithm: str = "evolution"
    seed: int = 0
    evaluations: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def resolution(self) -> int:
        return self.arch.r

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "table_label": self.table_label,
            "budget_ms": self.latency_budget_ms,
            "macs_budget": self.macs_budget,
            "params_budget": self.params_budget,
            "feasible_ms": list(self.feasible_ms),
            "arch": self.arch.to_dict(),
            "accuracy": round(self.accuracy, 4),
            "latency_ms": self.latency_ms,
            "macs": self.macs,
            "params": self.params,
            "resolution": self.resolution,
            "depths": self.summary["depths"],
            "stages": self.summary["stages"],
            "algorithm": self.algorithm,
            "seed": self.seed,
            "evaluations": self.evaluations,
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
            "front": self.front.to_list(self.space) if self.front is not None else [],
        }


def make_targets(tables: Sequence[str | Path], budgets: Sequence[str]) -> list[Target]:
    """Targets from repeated ``--table`` and ``--budget`` values: paired in order, one budget for
    every table, or one table for every budget; no budget leaves targets without a latency budget."""
    from .budget import parse_latency

    limits = [parse_latency(b) for b in budgets]
    tables = list(tables)
    if not tables:
        raise OFAEdgeError("specialize needs at least one latency table")
    if not limits:
        return [Target(t) for t in tables]
    if len(limits) == 1:
        return [Target(t, limits[0]) for t in tables]
    if len(tables) == 1:
        return [Target(tables[0], limit) for limit in limits]
    if len(tables) != len(limits):
        raise OFAEdgeError(
            f"{len(limits)} --budget values for {len(tables)} --table values: give one budget per table "
            "(paired in order), one budget for every table, or several budgets for one table"
        )
    return [Target(t, limit) for t, limit in zip(tables, limits)]


def _space_of(predictor: Any, space: SearchSpace | str | None) -> SearchSpace:
    if space is not None and not isinstance(space, str):  # a space of any family
        return space
    if space is None and hasattr(getattr(predictor, "space", None), "genome"):
        return predictor.space
    name = space if space is not None else getattr(predictor, "space_name", None)
    if name is None:
        raise OFAEdgeError("specialize needs the search space: pass space= (the predictor does not name one)")
    return get_space(name)


def _two(lo: float, hi: float, fmt: Any) -> tuple[str, str]:
    """Two numbers formatted with enough digits to tell them apart."""
    for digits in (3, 4, 6, 9):
        a, b = fmt(lo, digits), fmt(hi, digits)
        if a != b or lo == hi:
            return a, b
    return a, b


def _check_budget(
    limit: float | None, model: CostModel, allowed: np.ndarray, what: str, where: str, notes: list[str]
) -> Budget | None:
    """The budget to search under, an error if nothing fits it, or None (and a note) if everything does."""
    if limit is None:
        return None
    lo, hi = model.range(allowed)
    unit = " ms" if model.unit == "ms" else ""

    def fmt(value: float, digits: int = 3) -> str:
        if model.unit == "ms":
            return f"{value:.{digits}g}"
        return format_count(value) if digits == 3 else f"{value:,.0f}"

    if limit < lo:
        shown, low = _two(limit, lo, fmt)
        _, high = _two(lo, hi, fmt)
        kind = "fastest" if model.unit == "ms" else "smallest"
        raise OFAEdgeError(
            f"{what} {shown}{unit} is below the {kind} subnet of {where} ({low}{unit}); "
            f"feasible: {fmt(lo)}-{high}{unit}"
        )
    if limit >= hi:
        kind = "slowest" if model.unit == "ms" else "largest"
        notes.append(
            f"{what} {fmt(limit)}{unit} is at or above the {kind} subnet of {where} ({fmt(hi)}{unit}): "
            "the whole space fits, so the most accurate subnet is returned"
        )
        return None
    return Budget(model, limit)


def specialize(
    predictor: FeaturePredictor,
    targets: Sequence[Target],
    *,
    space: SearchSpace | str | None = None,
    supernet: str | None = None,
    macs: int | None = None,
    params: int | None = None,
    seed: int = 0,
    algorithm: str = "evolution",
    population_size: int = 100,
    generations: int | None = None,
    resolutions: Sequence[int] | None = None,
) -> list[Result]:
    """The most accurate subnet (by ``predictor``) for each target, under its latency budget and
    the shared ``macs``/``params`` budgets. Every budget is checked before any search starts.

    ``space``: the predictor's search space (default: the one it names, ``predictor.space_name``).
    ``supernet``: the fingerprint of the supernet the archs are for; a predictor that records
    another one (``predictor.supernet``) is refused.
    ``algorithm``: ``evolution`` (the reference's, 100 x 500) or ``nsga2`` (pymoo, 100 x 200).
    """
    if algorithm not in ALGORITHMS:
        raise OFAEdgeError(f"unknown search algorithm '{algorithm}' (known: {', '.join(ALGORITHMS)})")
    if not targets:
        raise OFAEdgeError("specialize needs at least one target (a latency table)")
    for name, value in (("MACs", macs), ("params", params)):
        if value is not None and value <= 0:
            raise OFAEdgeError(f"a {name} budget must be positive, got {value}")
    recorded = getattr(predictor, "supernet", None)
    if supernet is not None and recorded is not None and recorded != supernet:
        raise OFAEdgeError(f"the accuracy predictor is for supernet {recorded}, not {supernet}")
    sp = _space_of(predictor, space)
    generations = DEFAULT_GENERATIONS[algorithm] if generations is None else generations

    # Check every target first: a bad one fails before any search runs.
    plans = []
    for target in targets:
        if target.latency_ms is not None and not target.latency_ms > 0:
            raise OFAEdgeError(f"a latency budget must be positive, got {target.latency_ms} ms")
        table, name = target.load(sp.name)
        try:
            model = LatencyModel(table, sp, name=name)
        except TableError as exc:
            raise TableError(f"latency table {name}: {exc}") from None
        allowed = model.resolution_indices
        if resolutions is not None:
            allowed = np.intersect1d(allowed, P.resolution_indices(sp, resolutions))
            if len(allowed) == 0:
                raise OFAEdgeError(
                    f"table {name} covers resolutions {', '.join(map(str, model.resolutions))}, "
                    f"none of the requested {', '.join(map(str, resolutions))}"
                )
        notes: list[str] = list(model.notes)
        if len(allowed) < len(sp.resolutions):
            notes.append(
                f"table {name} covers resolutions {', '.join(str(sp.resolutions[i]) for i in allowed)} "
                f"of the space's {len(sp.resolutions)}; searching those"
            )
        budgets = [
            b
            for b in (
                _check_budget(target.latency_ms, model, allowed, "budget", f"table {name}", notes),
                _check_budget(macs, macs_model(sp), allowed, "MACs budget", f"space {sp.name}", notes),
                _check_budget(params, params_model(sp), allowed, "params budget", f"space {sp.name}", notes),
            )
            if b is not None
        ]
        plans.append((target, table, name, model, allowed, budgets, notes))

    results = []
    for target, table, name, model, allowed, budgets, notes in plans:
        started = time.perf_counter()
        allowed_values = [sp.resolutions[i] for i in allowed]
        found: SearchResult
        # One BLAS thread: the predictor's small matrix products gain nothing from more, and with
        # a thread per core, work elsewhere on the machine slows the search many-fold (bench/search.py --busy).
        with threadpool_limits(limits=1):
            if algorithm == "nsga2":
                from .nsga import nsga2_search

                found = nsga2_search(sp, predictor, model, budgets, resolutions=allowed_values,
                                     population_size=population_size, generations=generations, seed=seed)  # fmt: skip
            else:
                found = evolution_search(sp, predictor, budgets, cost=model, resolutions=allowed_values,
                                         population_size=population_size, generations=generations,
                                         seed=seed)  # fmt: skip
        seconds = time.perf_counter() - started
        arch = found.arch
        if found.accuracy >= 100.0:
            clipped = ("predicted top-1 100%: the predictor's output is clipped there, so it extrapolates beyond its "
                       "data and the subnets it rates 100% tie; `export` scores the pick on test images")  # fmt: skip
            notes = [*notes, clipped]
        results.append(
            Result(
                table=name,
                table_label=table.label,
                arch=arch,
                accuracy=found.accuracy,
                latency_ms=table.predict(sp, arch),
                macs=sp.macs(arch),
                params=sp.params(arch),
                summary=describe_arch(sp, arch),
                front=found.front,
                space=sp,
                latency_budget_ms=target.latency_ms,
                macs_budget=macs,
                params_budget=params,
                feasible_ms=model.range(allowed),
                algorithm=algorithm,
                seed=seed,
                evaluations=found.evaluations,
                seconds=seconds,
                notes=notes,
            )
        )
    return results


# ----------------------------------------------------------------------- outputs
def plot_front(result: Result, path: Path) -> None:
    """A PNG of the target's accuracy/latency front, the chosen subnet and the budget, written atomically."""
    buffer = io.BytesIO()
    front_figure(result).savefig(buffer, format="png")
    atomic_write_bytes(Path(path), buffer.getvalue())


def front_figure(result: Result) -> Any:
    """The front's figure. Its latency axis spans the front and the chosen subnet (not 0 to the
    budget, where a loose budget squeezes the front into a sliver); a budget beyond the axis is
    marked at its right edge."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    costs = [result.latency_ms]
    if result.front is not None and len(result.front):
        ax.plot(result.front.cost, result.front.accuracy, "o-", ms=3.5, lw=1, color="tab:blue",
                label=f"Pareto front ({len(result.front)} subnets)")  # fmt: skip
        costs += [float(c) for c in result.front.cost]
    ax.plot([result.latency_ms], [result.accuracy], "*", ms=15, color="tab:red",
            label=f"chosen: {result.accuracy:.2f}% at {result.latency_ms:.3g} ms")  # fmt: skip
    low, high = min(costs), max(costs)
    pad = 0.06 * (high - low) or 0.06 * high
    budget = result.latency_budget_ms
    if budget is not None and low - pad <= budget <= high + 3 * pad:
        high = max(high, budget)
        ax.axvline(budget, ls="--", color="tab:gray", label=f"budget {budget:.3g} ms")
    elif budget is not None:
        ax.annotate(f"budget {budget:.3g} ms \u2192", xy=(0.99, 0.5), xycoords="axes fraction", ha="right",
                    fontsize=8, color="tab:gray")  # fmt: skip
    ax.set_xlim(low - pad, high + pad)
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel("predicted top-1 (%)")
    ax.set_title(f"{result.space.name} on {result.table}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def slug(text: str) -> str:
    """A table name or path as a file or folder name: the stem of a path, safe characters only."""
    stem = Path(text).stem if text.endswith(".json") or "/" in text else text
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("_") or "table"


def output_stem(result: Result) -> str:
    """A file name stem for a result: table, then its budgets (``onnxruntime-cpu-fp32-mbv3-fmnist-0.3ms``)."""
    parts = [slug(result.table)]
    if result.latency_budget_ms is not None:
        parts.append(f"{result.latency_budget_ms:g}ms")
    if result.macs_budget is not None:
        parts.append(f"macs{format_count(result.macs_budget)}")
    if result.params_budget is not None:
        parts.append(f"params{format_count(result.params_budget)}")
    return "-".join(parts)


def _can_plot(result: Result) -> bool:
    """Plots need matplotlib (the ``search`` extra); without it the result says so instead."""
    if importlib.util.find_spec("matplotlib") is not None:
        return True
    note = "no Pareto plot: matplotlib is missing (pip install 'ofa-edge[search]')"
    if note not in result.notes:
        result.notes.append(note)
    return False


def write_outputs(results: Sequence[Result], out: Path, record: dict[str, Any] | None = None,
                  plot: bool = True) -> dict[str, Any]:  # fmt: skip
    """Per result an arch JSON and a Pareto plot in ``out``, then ``out/last.json`` recording this
    specialisation (``record``: how it was asked for, plus every target's files and numbers), which
    a later command can read to take "the arch of the last specialize". Returns that record."""
    out = Path(out)
    used: set[str] = set()
    targets = []
    for result in results:
        stem, n = output_stem(result), 2
        while stem in used:
            stem, n = f"{output_stem(result)}-{n}", n + 1
        used.add(stem)
        arch_file = out / f"{stem}.json"
        save_arch(result.arch, arch_file)
        plot_file = out / f"{stem}.png" if plot and _can_plot(result) else None
        if plot_file is not None:
            plot_front(result, plot_file)
        entry = {
            "table": result.table,
            "table_label": result.table_label,
            "budget_ms": result.latency_budget_ms,
            "arch_file": str(arch_file.resolve()),
            "plot": str(plot_file.resolve()) if plot_file is not None else None,
            "arch": result.arch.to_dict(),
            "accuracy": round(result.accuracy, 4),
            "latency_ms": result.latency_ms,
            "macs": result.macs,
            "params": result.params,
        }
        targets.append(entry)
    last = {
        "format": LAST_FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "space": results[0].space.name if results else None,
        **(record or {}),
        "targets": targets,
        "arch_files": [t["arch_file"] for t in targets],
    }
    atomic_write_text(out / "last.json", json.dumps(last, indent=2) + "\n")
    return last


def format_budget(result: Result) -> str:
    parts = []
    if result.latency_budget_ms is not None:
        parts.append(format_ms(result.latency_budget_ms))
    if result.macs_budget is not None:
        parts.append(f"MACs {format_count(result.macs_budget)}")
    if result.params_budget is not None:
        parts.append(f"params {format_count(result.params_budget)}")
    return ", ".join(parts) or "none"
