"""Populations of archs as integer gene arrays, and everything the search does to them at once.

A :class:`Population` of ``n`` archs of a space holds choice *indices* (not values):

* ``ks``: (n, num_slots) index into ``space.kernel_choices`` per block slot,
* ``e``:  (n, num_slots) index into ``space.expand_choices`` per block slot,
* ``d``:  (n, num_stages) index into each stage's depth choices (``space.stage_depths``),
* ``r``:  (n,) index into ``space.resolutions``.

Sampling, mutation, crossover, the predictor encoding and MACs/params counts work on whole
populations with numpy (no Python loop over archs), and agree exactly with the scalar
:class:`~ofa_edge.space.SearchSpace` methods (``sample``-like distributions; ``encode``,
``macs`` and ``params`` bit for bit).

Costs are additive over blocks: a block's MACs, params or latency depend only on its slot (which
fixes its stride, input channels and input size for a resolution), its kernel and its expand
ratio. :class:`SlotCost` holds those per-(resolution, slot, kernel, expand) values plus the fixed
part (stem, first block, head) per resolution; a population's cost is one gather and one sum.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..space.arch import Arch
from ..space.space import BlockSpec, SearchSpace


@dataclass(frozen=True)
class Population:
    """``n`` archs as one (n, 2 * num_slots + num_stages + 1) integer array of choice indices:
    kernel per slot, expand per slot, depth per stage, resolution (see the module docstring)."""

    genes: np.ndarray
    num_slots: int
    num_stages: int

    @property
    def ks(self) -> np.ndarray:
        return self.genes[:, : self.num_slots]

    @property
    def e(self) -> np.ndarray:
        return self.genes[:, self.num_slots : 2 * self.num_slots]

    @property
    def d(self) -> np.ndarray:
        return self.genes[:, 2 * self.num_slots : 2 * self.num_slots + self.num_stages]

    @property
    def r(self) -> np.ndarray:
        return self.genes[:, -1]

    def __len__(self) -> int:
        return len(self.genes)

    def take(self, index: np.ndarray | Sequence[int] | slice) -> Population:
        """The archs at ``index`` (an index array, a boolean mask or a slice), as a new population."""
        return Population(self.genes[index], self.num_slots, self.num_stages)

    @staticmethod
    def concat(parts: Sequence[Population]) -> Population:
        return Population(np.concatenate([p.genes for p in parts]), parts[0].num_slots, parts[0].num_stages)

    @staticmethod
    def from_parts(ks: np.ndarray, e: np.ndarray, d: np.ndarray, r: np.ndarray) -> Population:
        genes = np.concatenate([ks, e, d, np.asarray(r)[:, None]], axis=1).astype(np.intp)
        return Population(genes, ks.shape[1], d.shape[1])

    @staticmethod
    def from_genes(space: SearchSpace, genes: np.ndarray) -> Population:
        """From a gene matrix (e.g. pymoo's, maybe float-typed)."""
        return Population(np.asarray(genes).astype(np.intp), space.num_slots, space.num_stages)


def resolution_indices(space: SearchSpace, resolutions: Sequence[int] | None = None) -> np.ndarray:
    """Indices into ``space.resolutions`` of the allowed ``resolutions`` (default: all)."""
    if resolutions is None:
        return np.arange(len(space.resolutions))
    return np.array([space.resolutions.index(r) for r in resolutions], dtype=np.intp)


def choice_counts(space: SearchSpace) -> np.ndarray:
    """Number of choices of each gene (the resolution column: of the space)."""
    return _layout(space).counts


@dataclass(frozen=True)
class _Layout:
    """What the gene arrays of a space look like, precomputed once per space."""

    counts: np.ndarray  # (genes,) choices per gene
    depth_values: np.ndarray  # (stages, most depth choices) depth of each stage's choice index
    # (stages, most depth choices, most slots in a stage): which of a stage's slots a choice uses
    masks: np.ndarray
    # the columns of a (stages x most slots) mask that are real slots; None when every one is
    real_slots: np.ndarray | None
    # masks[0] when every stage has the same depth choices (one lookup serves all stages), else None
    shared_mask: np.ndarray | None
    stages: np.ndarray  # arange(stages), for indexing masks


# Keyed by the space's identity: hashing a whole SearchSpace on every call of the search's inner
# loop cost more than what it looked up (spaces are immutable, and few live at once).
_LAYOUTS: dict[int, tuple[SearchSpace, _Layout]] = {}


def _layout(space: SearchSpace) -> _Layout:
    cached = _LAYOUTS.get(id(space))
    if cached is not None and cached[0] is space:
        return cached[1]
    depths = [space.stage_depths(s) for s in range(space.num_stages)]
    values = np.zeros((space.num_stages, max(len(d) for d in depths)), dtype=np.intp)
    for stage, choices in enumerate(depths):
        values[stage, : len(choices)] = choices
    counts = [len(space.kernel_choices)] * space.num_slots + [len(space.expand_choices)] * space.num_slots
    counts += [len(d) for d in depths] + [len(space.resolutions)]
    longest = max(len(slots) for slots in space.stage_slots)
    real = np.array([s * longest + i for s, slots in enumerate(space.stage_slots) for i in range(len(slots))])
    masks = np.arange(longest)[None, None, :] < values[:, :, None]
    layout = _Layout(
        counts=np.array(counts, dtype=np.intp),
        depth_values=values,
        masks=masks,
        real_slots=None if len(real) == space.num_stages * longest else real,
        shared_mask=masks[0] if len(set(depths)) == 1 else None,
        stages=np.arange(space.num_stages),
    )
    if len(_LAYOUTS) > 32:
        _LAYOUTS.clear()
    _LAYOUTS[id(space)] = (space, layout)
    return layout


def depth_values(space: SearchSpace, pop: Population) -> np.ndarray:
    """(n, num_stages) the depth of every stage of each arch."""
    layout = _layout(space)
    return layout.depth_values[layout.stages, pop.d]


def sample(space: SearchSpace, n: int, rng: np.random.Generator, resolutions: np.ndarray | None = None) -> Population:
    """``n`` uniformly random archs (every slot gets a value, used or not, as in the reference).

    ``resolutions``: the allowed resolution *indices* (default: every resolution of the space).
    """
    counts = choice_counts(space)
    if resolutions is not None:
        counts = counts.copy()
        counts[-1] = len(resolutions)
    genes = (rng.random((n, len(counts))) * counts).astype(np.intp)
    if resolutions is not None:
        genes[:, -1] = np.asarray(resolutions)[genes[:, -1]]
    return Population(genes, space.num_slots, space.num_stages)


def mutate(
    space: SearchSpace,
    pop: Population,
    rng: np.random.Generator,
    prob: float = 0.1,
    resolution_prob: float | None = None,
    resolutions: np.ndarray | None = None,
) -> Population:
    """Each gene resampled (uniformly, possibly to the same value) with probability ``prob``;
    the resolution with ``resolution_prob`` (default: ``prob``), among the allowed ``resolutions``."""
    fresh = sample(space, len(pop), rng, resolutions)
    threshold = np.full(pop.genes.shape[1], prob)
    if resolution_prob is not None:
        threshold[-1] = resolution_prob
    resample = rng.random(pop.genes.shape) < threshold
    return Population(np.where(resample, fresh.genes, pop.genes), pop.num_slots, pop.num_stages)


def crossover(a: Population, b: Population, rng: np.random.Generator) -> Population:
    """Child ``i`` takes each gene from ``a[i]`` or ``b[i]`` with equal probability."""
    pick = rng.random(a.genes.shape) < 0.5
    return Population(np.where(pick, a.genes, b.genes), a.num_slots, a.num_stages)


# ------------------------------------------------------------------ conversion
def from_archs(space: SearchSpace, archs: Sequence[Arch]) -> Population:
    """Archs (validated against ``space``) as a population."""
    archs = [space.validate(a) for a in archs]

    def index(values: tuple[int, ...], rows: list[tuple[int, ...]], width: int) -> np.ndarray:
        lookup = {v: i for i, v in enumerate(values)}
        return np.array([[lookup[v] for v in row] for row in rows], dtype=np.intp).reshape(len(rows), width)

    depths = np.array(
        [[space.stage_depths(s).index(v) for s, v in enumerate(a.d)] for a in archs], dtype=np.intp
    ).reshape(len(archs), space.num_stages)
    return Population.from_parts(
        index(space.kernel_choices, [a.ks for a in archs], space.num_slots),
        index(space.expand_choices, [a.e for a in archs], space.num_slots),
        depths,
        index(space.resolutions, [(a.r,) for a in archs], 1)[:, 0],
    )


def to_archs(space: SearchSpace, pop: Population) -> list[Arch]:
    ks = np.asarray(space.kernel_choices)[pop.ks].tolist()
    e = np.asarray(space.expand_choices)[pop.e].tolist()
    d = depth_values(space, pop).tolist()
    r = np.asarray(space.resolutions)[pop.r].tolist()
    return [Arch(tuple(k), tuple(x), tuple(y), int(z)) for k, x, y, z in zip(ks, e, d, r)]


def active(space: SearchSpace, pop: Population) -> np.ndarray:
    """(n, num_slots) booleans: whether each block slot is within its stage's depth."""
    layout = _layout(space)
    if layout.shared_mask is not None:
        return layout.shared_mask[pop.d].reshape(len(pop), -1)
    used = layout.masks[layout.stages, pop.d].reshape(len(pop), -1)
    return used if layout.real_slots is None else used[:, layout.real_slots]


def encode(space: SearchSpace, pop: Population) -> np.ndarray:
    """(n, space.encoding_size) float32, row ``i`` equal to ``space.encode(arch i)``: one-hot
    kernel and expand per slot (unused slots all zero), then one-hot resolution."""
    n = len(pop)
    n_k, n_e = len(space.kernel_choices), len(space.expand_choices)
    features = np.zeros((n, space.encoding_size), dtype=np.float32)
    on = active(space, pop).astype(np.float32)
    rows = np.arange(n)[:, None]
    base = (np.arange(space.num_slots) * (n_k + n_e))[None, :]
    features[rows, base + pop.ks] = on
    features[rows, base + n_k + pop.e] = on
    features[np.arange(n), space.num_slots * (n_k + n_e) + pop.r] = 1.0
    return features


# ------------------------------------------------------------------ slot costs
@dataclass(frozen=True)
class SlotCost:
    """An additive cost: ``fixed[r]`` plus, for each used slot, ``slot[r, slot, k, e]``.

    ``fixed`` is a list of per-resolution columns (added in order, before the slots) and ``tail``
    a list added after them: a float sum in exactly the order a scalar loop over a subnet's units
    takes gives bit-identical results. ``units``: how many units the fixed parts count.
    """

    head: np.ndarray  # (n_res, h): per-resolution parts before the slots
    slot: np.ndarray  # (n_res, num_slots, n_k, n_e)
    tail: np.ndarray  # (n_res, t): per-resolution parts after the slots
    fixed_units: int

    def values(self, space: SearchSpace, pop: Population) -> np.ndarray:
        """(n,) the sum for each arch, in forward order (head, used slots, tail)."""
        n_k, n_e = self.slot.shape[2:]
        # flat index into slot[r, slot, k, e], laid out (slot, arch) so that each slot is one row
        base = (np.arange(self.slot.shape[0] * self.slot.shape[1]) * (n_k * n_e)).reshape(self.slot.shape[:2])
        index = base[pop.r].T + pop.ks.T * n_e + pop.e.T
        per_slot = np.where(active(space, pop).T, self.slot.reshape(-1)[index], 0)
        rows = np.concatenate([self.head[pop.r].T, per_slot, self.tail[pop.r].T], axis=0)
        if np.issubdtype(rows.dtype, np.integer):
            return rows.sum(axis=0)
        # a strict top-to-bottom fold, like a Python loop over the units (a sum may pair terms up)
        return np.add.accumulate(rows, axis=0)[-1]

    def unit_counts(self, space: SearchSpace, pop: Population) -> np.ndarray:
        return self.fixed_units + depth_values(space, pop).sum(axis=1)


def _reference_archs(space: SearchSpace) -> dict[tuple[int, int, int], Arch]:
    """For each (resolution index, kernel index, expand index): the max-depth arch with that kernel
    and expand in every slot. Its blocks are every slot's block for that choice."""
    deepest = tuple(len(slots) for slots in space.stage_slots)
    return {
        (ri, ki, ei): Arch((k,) * space.num_slots, (x,) * space.num_slots, deepest, r)
        for ri, r in enumerate(space.resolutions)
        for ki, k in enumerate(space.kernel_choices)
        for ei, x in enumerate(space.expand_choices)
    }


def slot_costs(space: SearchSpace, block_cost: Callable[[BlockSpec], int | float], fixed: Callable[[Arch], int],
               dtype: type = np.int64) -> SlotCost:  # fmt: skip
    """A :class:`SlotCost` from a block's cost and an arch's total (``fixed`` = total minus blocks)."""
    n_r, n_k, n_e = len(space.resolutions), len(space.kernel_choices), len(space.expand_choices)
    slot = np.zeros((n_r, space.num_slots, n_k, n_e), dtype=dtype)
    head = np.zeros((n_r, 1), dtype=dtype)
    for (ri, ki, ei), arch in _reference_archs(space).items():
        specs = space.block_specs(arch)[1:]  # without the fixed first block
        costs = [block_cost(spec) for spec in specs]
        slot[ri, :, ki, ei] = costs
        head[ri, 0] = fixed(arch) - sum(costs)
    return SlotCost(head, slot, np.zeros((n_r, 0), dtype=dtype), 0)


@functools.lru_cache(maxsize=16)
def macs_cost(space: SearchSpace) -> SlotCost:
    return slot_costs(space, BlockSpec.macs, space.macs)


@functools.lru_cache(maxsize=16)
def params_cost(space: SearchSpace) -> SlotCost:
    return slot_costs(space, BlockSpec.params, space.params)


def macs(space: SearchSpace, pop: Population) -> np.ndarray:
    """(n,) int64 MACs per arch, equal to ``space.macs``."""
    return macs_cost(space).values(space, pop)


def params(space: SearchSpace, pop: Population) -> np.ndarray:
    """(n,) int64 params per arch, equal to ``space.params``."""
    return params_cost(space).values(space, pop)
