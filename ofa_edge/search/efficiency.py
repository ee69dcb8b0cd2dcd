"""Efficiency of whole populations: predicted latency from a table, MACs and params, vectorised.

Each model is additive over a subnet's blocks (see :class:`~ofa_edge.search.population.SlotCost`)
followed by an affine map: a latency table's calibration ``scale(r) * sum + c * units + b`` (the
scale ``a + d * (r - r0)`` fixed per resolution ``r``), the identity for MACs and params. That
structure gives, besides fast prediction, the exact cheapest and dearest subnet of the space: at
one resolution each used slot adds ``scale(r) * cost + c`` independently of the others, so the
best choice per slot, then the best depth per stage, then the best resolution, is optimal.
(The min/max arch is not always the extreme: with a negative per-unit term a cheap block can
cost less than nothing.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import OFAEdgeError
from ..latency.table import LatencyTable, TableError
from ..latency.units import arch_units
from ..space.space import SearchSpace
from . import population as P
from .population import Population, SlotCost


@dataclass(eq=False)
class CostModel:
    """A per-arch cost of a space, vectorised over populations.

    ``predict(pop)`` is ``(a + d * (r - r0)) * sum + c * units + b`` with the sum from ``cost`` and
    ``r`` the input resolution; resolutions the
    model cannot price (a table without them) predict ``inf``. ``what``/``unit`` name it in messages.
    """

    space: SearchSpace
    cost: SlotCost
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
        total = self.cost.values(self.space, pop)
        if self.affine:
            total = self.scales[pop.r] * total + self.c * self.cost.unit_counts(self.space, pop) + self.b
        if not self.covered.all():
            total = np.where(self.covered[pop.r], total, np.inf)
        return total

    def extreme(self, minimise: bool = True, resolutions: np.ndarray | None = None) -> Population:
        """The single cheapest (``minimise``) or dearest arch of the space, exactly.

        ``resolutions``: allowed resolution indices (default: those the model covers).
        """
        space = self.space
        allowed = self.resolution_indices if resolutions is None else np.asarray(resolutions)
        allowed = allowed[self.covered[allowed]]
        if len(allowed) == 0:
            raise OFAEdgeError(f"{self.source} covers none of the allowed resolutions")
        sign = 1.0 if minimise else -1.0
        # what one used slot adds, per (resolution, slot, kernel, expand), signed so that lower is better
        scales = self.scales[allowed][:, None, None, None]
        per_choice = sign * (scales * self.cost.slot[allowed].astype(float) + (self.c if self.affine else 0.0))
        n_r, slots, n_k, n_e = per_choice.shape
        flat = per_choice.reshape(n_r, slots, n_k * n_e)
        best_choice = np.argmin(flat, axis=2)  # (n_r, slots)
        best_value = np.take_along_axis(flat, best_choice[..., None], axis=2)[..., 0]
        totals = np.zeros(n_r)
        best_depth = np.zeros((n_r, space.num_stages), dtype=np.intp)
        for stage, slots in enumerate(space.stage_slots):
            prefix = np.cumsum(best_value[:, slots.start : slots.stop], axis=1)  # the first d blocks
            by_depth = prefix[:, np.asarray(space.stage_depths(stage)) - 1]  # (n_r, n_depth)
            best_depth[:, stage] = np.argmin(by_depth, axis=1)
            totals += np.take_along_axis(by_depth, best_depth[:, stage, None], axis=1)[:, 0]
        # the fixed parts (head + tail, their units) per resolution, signed
        fixed = self.cost.head[allowed].sum(axis=1) + self.cost.tail[allowed].sum(axis=1)
        fixed = fixed.astype(float)
        if self.affine:
            fixed = self.scales[allowed] * fixed + self.c * self.cost.fixed_units + self.b
        best_r = int(np.argmin(sign * fixed + totals))
        choice = best_choice[best_r]
        return Population.from_parts(
            (choice // n_e)[None, :].astype(np.intp),
            (choice % n_e)[None, :].astype(np.intp),
            best_depth[best_r][None, :].astype(np.intp),
            np.array([allowed[best_r]], dtype=np.intp),
        )

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
        n_r, n_k, n_e = len(space.resolutions), len(space.kernel_choices), len(space.expand_choices)
        slot = np.full((n_r, space.num_slots, n_k, n_e), np.nan)
        head = np.full((n_r, 2), np.nan)
        head_units = len(arch_units(pricing, space.max_arch())) - 2 - space.num_slots  # after the slots
        tail = np.full((n_r, head_units), np.nan)
        fixed_units = 0
        measured = set(table.resolutions)
        for (ri, ki, ei), arch in P._reference_archs(space).items():
            if arch.r not in measured:  # no entries there: stays uncovered (NaN)
                continue
            units = arch_units(pricing, arch)  # stem, first block, one block per slot, 4 head units
            entries = [table.entry(u.key, arch.r) for u in units]
            values = [e["median_ms"] if e is not None else np.nan for e in entries]
            head[ri] = values[:2]
            slot[ri, :, ki, ei] = values[2 : 2 + space.num_slots]
            tail[ri] = values[2 + space.num_slots :]
            fixed_units = len(units) - space.num_slots
        covered = ~(np.isnan(slot).any(axis=(1, 2, 3)) | np.isnan(head).any(axis=1) | np.isnan(tail).any(axis=1))
        if not covered.any():
            raise TableError(f"table ({table.label}) has no complete resolution of space {space.name}")
        # uncovered resolutions: zeros so that sums stay finite; predict() masks them to inf
        cost = SlotCost(np.nan_to_num(head), np.nan_to_num(slot), np.nan_to_num(tail), fixed_units)
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
