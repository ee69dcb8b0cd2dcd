"""Efficiency of whole populations: predicted latency from a table, MACs and params, vectorised.

Each model is additive over the terms of a subnet (see :class:`~ofa_edge.search.population.TermCost`)
followed by an affine map: a latency table's calibration ``scale(r) * sum + c * units + b`` (the
scale ``a + d * (r - r0)`` fixed per resolution ``r``), the identity for MACs and params. That
structure gives, besides fast prediction, the exact cheapest and dearest subnet of the space: once
the resolution and the genes that decide which terms run or that several terms read are fixed
(few enough to enumerate), each running term adds ``scale(r) * cost + c`` and picks its own other
genes independently of the rest. (The min/max arch is not always the extreme: with a negative
per-unit term a cheap block can cost less than nothing.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import OFAEdgeError
from ..latency.table import LatencyTable, TableError
from ..latency.units import arch_units
from ..space.genome import enumerate_rows
from ..space.space import SearchSpace
from . import population as P
from .population import Population, TermCost


@dataclass(eq=False)
class CostModel:
    """A per-arch cost of a space, vectorised over populations.

    ``predict(pop)`` is ``(a + d * (r - r0)) * sum + c * units + b`` with the sum from ``cost`` and
    ``r`` the input resolution; resolutions the
    model cannot price (a table without them) predict ``inf``. ``what``/``unit`` name it in messages.
    """

    space: SearchSpace
    cost: TermCost
    what: str
    unit: str
    source: str
    a: float = 1.0
    b: float = 0.0
    c: float = 0.0
    d: float = 0.0
    r0: float = 0.0
    affine: bool = False
    covered: np.ndarray = field(default=None)  # type: ignore[assignment]  # (n_res,) bool

    def __post_init__(self) -> None:
        if self.covered is None:
            self.covered = np.ones(len(self.space.resolutions), dtype=bool)

    @property
    def resolutions(self) -> tuple[int, ...]:
        """The resolutions this model can price."""
        return tuple(r for r, ok in zip(self.space.resolutions, self.covered) if ok)

    @property
    def scales(self) -> np.ndarray:
        """The multiplier of the summed cost at each resolution of the space (``(n_res,)``)."""
        if not self.affine:
            return np.ones(len(self.space.resolutions))
        return self.a + self.d * (np.asarray(self.space.resolutions, float) - self.r0)

    @property
    def resolution_indices(self) -> np.ndarray:
        return np.flatnonzero(self.covered)

    def predict(self, pop: Population) -> np.ndarray:
        running = self.cost.genome.active(pop.genes)
        total = self.cost.values(pop, running)
        if self.affine:
            total = self.scales[pop.r] * total + self.c * running.sum(axis=1) + self.b
        if not self.covered.all():
            total = np.where(self.covered[pop.r], total, np.inf)
        return total

    def extreme(self, minimise: bool = True, resolutions: np.ndarray | None = None) -> Population:
        """The single cheapest (``minimise``) or dearest arch of the space, exactly.

        ``resolutions``: allowed resolution indices (default: those the model covers).
        """
        allowed = self.resolution_indices if resolutions is None else np.asarray(resolutions)
        allowed = allowed[self.covered[allowed]]
        if len(allowed) == 0:
            raise OFAEdgeError(f"{self.source} covers none of the allowed resolutions")
        genome = self.cost.genome
        shared = list(genome.shared_columns)
        rows = enumerate_rows(genome.counts, shared)  # every choice of the shared genes
        genes = np.zeros((len(rows), len(genome.counts)), dtype=np.intp)
        genes[:, shared] = rows
        running = genome.active(genes)  # (combos, terms): the shared genes decide it
        sign = 1.0 if minimise else -1.0
        totals = np.zeros((len(allowed), len(rows)))
        picks = []
        scales = self.scales[allowed]
        for t, (term, values) in enumerate(zip(genome.terms, self.cost.term_tables())):
            best, pick = self._best_private(term.columns, values[allowed], scales, shared, sign)
            at = tuple(rows[:, shared.index(c)] for c in term.columns[1:] if c in shared)
            value = best[(slice(None), *at)] if at else best[:, None]
            totals += np.where(running[:, t], value, 0.0)
            picks.append((term.columns, pick, at))
        r_best, combo = np.unravel_index(np.argmin(totals), totals.shape)
        chosen = genes[combo].copy()
        chosen[-1] = allowed[r_best]
        for t, (columns, pick, at) in enumerate(picks):
            private = [c for c in columns[1:] if c not in shared]
            if private and running[combo, t]:
                flat = pick[(r_best, *(a[combo] for a in at))]
                chosen[private] = np.unravel_index(flat, [genome.counts[c] for c in private])
        return Population(chosen[None, :])

    def _best_private(self, columns: tuple[int, ...], values: np.ndarray, scales: np.ndarray,
                      shared: list[int], sign: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """A term's best signed value (and the flat index of its private genes that gives it)
        for each resolution and choice of its shared genes. ``values``: (resolutions, ...), the
        resolutions those of ``scales``."""
        keep = [i for i, c in enumerate(columns[1:], 1) if c in shared]
        drop = [i for i, c in enumerate(columns[1:], 1) if c not in shared]
        moved = np.moveaxis(values.astype(float), [0, *keep, *drop], range(values.ndim))
        flat = moved.reshape(*moved.shape[: 1 + len(keep)], -1)
        scale = scales.reshape(-1, *([1] * (flat.ndim - 1))) if self.affine else 1.0
        signed = sign * (scale * flat + (self.c if self.affine else 0.0))
        pick = np.argmin(signed, axis=-1)
        return np.take_along_axis(signed, pick[..., None], axis=-1)[..., 0], pick

    def range(self, resolutions: np.ndarray | None = None) -> tuple[float, float]:
        """(cheapest, dearest) predicted value over the space (at the allowed resolutions)."""
        lo = self.predict(self.extreme(True, resolutions))[0]
        hi = self.predict(self.extreme(False, resolutions))[0]
        return float(lo), float(hi)


def feasible_range(
    model: CostModel, space: SearchSpace | None = None, resolutions: Sequence[int] | None = None
) -> tuple[float, float]:
    """(min, max) of ``model`` over its space, exactly (at ``resolutions``, values; default every
    resolution the model covers). ``space``, if given, must be the model's."""
    if space is not None and space != model.space:
        raise OFAEdgeError(f"{model.source} prices space {model.space.name}, not {space.name}")
    indices = None if resolutions is None else P.resolution_indices(model.space, resolutions)
    return model.range(indices)


def macs_model(space: SearchSpace) -> CostModel:
    return CostModel(space, P.macs_cost(space), "MACs", "", f"space {space.name}")


def params_model(space: SearchSpace) -> CostModel:
    return CostModel(space, P.params_cost(space), "params", "", f"space {space.name}")


class LatencyModel(CostModel):
    """Predicted latency (ms) of populations from a :class:`LatencyTable`, equal to
    ``table.predict(space, arch)`` for every arch (bit for bit: the units are summed in the same
    order, then the same calibration applies)."""

    def __init__(self, table: LatencyTable, space: SearchSpace, name: str | None = None,
                 calibrated: bool = True) -> None:  # fmt: skip
        pricing = table.pricing_space(space)  # the table's own classifier may price another's
        self.notes = [note] if (note := table.classifier_note(space)) is not None else []
        self.table = table
        self.name = name or table.label
        measured = set(table.resolutions)

        def unit_values(arch: object) -> list[float] | None:
            if arch.r not in measured:  # type: ignore[attr-defined]  # no entries: stays uncovered (NaN)
                return None
            entries = [table.entry(u.key, arch.r) for u in arch_units(pricing, arch)]  # type: ignore[attr-defined]
            return [e["median_ms"] if e is not None else np.nan for e in entries]

        values = P.term_table(space, unit_values, dtype=float, fill=np.nan)
        terms = TermCost(space.genome, values).term_tables()
        covered = ~np.any([np.isnan(t.reshape(len(t), -1)).any(axis=1) for t in terms], axis=0)
        if not covered.any():
            raise TableError(f"table ({table.label}) has no complete resolution of space {space.name}")
        # uncovered resolutions: zeros so that sums stay finite; predict() masks them to inf
        cost = TermCost(space.genome, np.nan_to_num(values))
        cal = table.calibration if calibrated else None
        super().__init__(
            space,
            cost,
            "latency",
            "ms",
            f"table {self.name}",
            a=cal.a if cal else 1.0,
            b=cal.b if cal else 0.0,
            c=cal.c if cal else 0.0,
            d=cal.d if cal else 0.0,
            r0=cal.r0 if cal else 0.0,
            affine=cal is not None,
            covered=covered,
        )
