"""Populations of archs as integer gene arrays, and everything the search does to them at once.

A :class:`Population` of ``n`` archs of a space is an (n, genes) array of choice *indices* laid
out by the space's genome (:mod:`ofa_edge.space.genome`: for OFA-MobileNetV3 kernel and expand
per slot, depth per stage; for OFA-ResNet depth, expand per slot, width; the resolution always
last). Sampling, mutation, crossover, the predictor encoding and MACs/params counts work on whole
populations with numpy (no Python loop over archs), and agree exactly with the scalar space
methods (``sample``-like distributions; ``encode``, ``macs`` and ``params`` bit for bit).

Costs are additive over the genome's terms (stem, block slots, head parts): :class:`TermCost`
holds every term's value for every combination of the genes it reads, so a population's cost is
one gather per term and a sum over the terms that run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..space.genome import Genome
from ..space.space import SearchSpace


@dataclass(frozen=True)
class Population:
    """``n`` archs as one (n, genes) integer array of choice indices (see the module docstring)."""

    genes: np.ndarray

    @property
    def r(self) -> np.ndarray:
        """The resolution index of each arch."""
        return self.genes[:, -1]

    def __len__(self) -> int:
        return len(self.genes)

    def take(self, index: np.ndarray | Sequence[int] | slice) -> Population:
        """The archs at ``index`` (an index array, a boolean mask or a slice), as a new population."""
        return Population(self.genes[index])

    @staticmethod
    def concat(parts: Sequence[Population]) -> Population:
        return Population(np.concatenate([p.genes for p in parts]))

    @staticmethod
    def from_genes(genes: np.ndarray) -> Population:
        """From a gene matrix (e.g. pymoo's, maybe float-typed)."""
        return Population(np.asarray(genes).astype(np.intp))


def resolution_indices(space: SearchSpace, resolutions: Sequence[int] | None = None) -> np.ndarray:
    """Indices into ``space.resolutions`` of the allowed ``resolutions`` (default: all)."""
    if resolutions is None:
        return np.arange(len(space.resolutions))
    return np.array([space.resolutions.index(r) for r in resolutions], dtype=np.intp)


def choice_counts(space: SearchSpace) -> np.ndarray:
    """Number of choices of each gene (the resolution column: of the space)."""
    return space.genome.counts


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
    return Population(genes)


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
    return Population(np.where(resample, fresh.genes, pop.genes))


def crossover(a: Population, b: Population, rng: np.random.Generator) -> Population:
    """Child ``i`` takes each gene from ``a[i]`` or ``b[i]`` with equal probability."""
    pick = rng.random(a.genes.shape) < 0.5
    return Population(np.where(pick, a.genes, b.genes))


# ------------------------------------------------------------------ conversion
def from_archs(space: SearchSpace, archs: Sequence[Any]) -> Population:
    """Archs (validated against ``space``) as a population."""
    return Population(space.genome.from_archs([space.validate(a) for a in archs]))


def to_archs(space: SearchSpace, pop: Population) -> list[Any]:
    return space.genome.to_archs(pop.genes)


def encode(space: SearchSpace, pop: Population) -> np.ndarray:
    """(n, space.encoding_size) float32, row ``i`` equal to ``space.encode(arch i)``."""
    return space.genome.features(pop.genes)


def used_genes(space: SearchSpace, pop: Population) -> np.ndarray:
    """The genes with those no running part of the subnet reads set to -1: archs that build the
    same subnet (so the same encoding) get equal rows."""
    return space.genome.used(pop.genes)


# ------------------------------------------------------------------ term costs
@dataclass(frozen=True)
class TermCost:
    """An additive cost: for each running term of the genome, ``table[term_index]``.

    ``table`` holds every term's value for every combination of the genes it reads, terms one
    after another (:attr:`Genome.term_offsets`). The sum runs over the terms in forward order,
    so it equals, bit for bit, a scalar loop over a subnet's units.
    """

    genome: Genome
    table: np.ndarray  # (genome.term_offsets[-1],)

    def values(self, pop: Population, running: np.ndarray | None = None) -> np.ndarray:
        """(n,) the sum for each arch, in forward order. ``running``: ``genome.active`` of the
        population, when the caller has it."""
        running = self.genome.active(pop.genes) if running is None else running
        per_term = np.where(running.T, self.table[self.genome.term_index(pop.genes)], 0)
        if np.issubdtype(per_term.dtype, np.integer):
            return per_term.sum(axis=0)
        # a strict top-to-bottom fold, like a Python loop over the units (a sum may pair terms up)
        return np.add.accumulate(per_term, axis=0)[-1]

    def term_tables(self) -> list[np.ndarray]:
        """Each term's values, shaped by the choice counts of the genes it reads."""
        g = self.genome
        return [self.table[g.term_offsets[i] : g.term_offsets[i + 1]].reshape(shape)
                for i, shape in enumerate(g.term_shapes)]  # fmt: skip


def term_table(space: SearchSpace, per_term: Callable[[Any], Sequence[float]], dtype: type = np.int64,
               fill: float = 0) -> np.ndarray:  # fmt: skip
    """A flat term table from ``per_term(arch)``: the values of ``arch``'s running terms in order,
    read over the genome's representative archs (which together cover every entry); entries no
    representative reaches keep ``fill``."""
    genome = space.genome
    table = np.full(genome.term_offsets[-1], fill, dtype=dtype)
    archs = genome.representatives()
    genes = genome.from_archs(archs)
    index, active = genome.term_index(genes).T, genome.active(genes)
    for arch, where, on in zip(archs, index, active):
        values = per_term(arch)
        if values is not None:
            table[where[on]] = values
    return table


@functools.lru_cache(maxsize=16)
def macs_cost(space: SearchSpace) -> TermCost:
    return TermCost(space.genome, term_table(space, lambda arch: space.genome.term_counts(arch, "macs")))


@functools.lru_cache(maxsize=16)
def params_cost(space: SearchSpace) -> TermCost:
    return TermCost(space.genome, term_table(space, lambda arch: space.genome.term_counts(arch, "params")))


def macs(space: SearchSpace, pop: Population) -> np.ndarray:
    """(n,) int64 MACs per arch, equal to ``space.macs``."""
    return macs_cost(space).values(pop)


def params(space: SearchSpace, pop: Population) -> np.ndarray:
    """(n,) int64 params per arch, equal to ``space.params``."""
    return params_cost(space).values(pop)
