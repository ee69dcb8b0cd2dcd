"""Gene layouts: a family's archs as rows of choice indices, and their costs as additive terms.

The search works on whole populations at once, so it needs archs as integer arrays. Each family
says, through its space's ``genome``, how an arch becomes a row and what a row costs:

* **genes**: one column per elastic choice, holding the *index* of the chosen value
  (:attr:`Genome.counts` choices each); the resolution is always the last column.
* **terms**: the parts of a subnet in forward order, one per latency unit (stem, each block slot,
  each part of the head). A term reads a few gene columns, the resolution first: its cost is a
  lookup by those columns' values. Whether a term runs (a block slot within its stage's depth) is
  :meth:`Genome.active`.

A cost of a population (MACs, params, a latency table's units) is then one gather per term and a
sum over the active ones, and its exact extremes come from enumerating the few genes that several
terms share or that decide which terms run (:attr:`Genome.shared_columns`), each other gene being
chosen per term. Search code reads only this protocol, never a family's fields.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from .arch import Arch

if TYPE_CHECKING:
    from .space import SearchSpace


@dataclass(frozen=True)
class Term:
    """One part of a subnet: the gene columns its cost depends on (the resolution column first)."""

    name: str
    columns: tuple[int, ...]


class Genome:
    """The gene layout of one space (see the module docstring). Subclasses fill ``counts``,
    ``terms``, ``fields`` and ``activity_columns`` and implement the arch conversions."""

    counts: np.ndarray  # (genes,) choices per gene
    terms: tuple[Term, ...]
    fields: dict[str, slice]  # arch field -> its gene columns
    activity_columns: tuple[int, ...]  # the genes that decide which terms run

    # -------------------------------------------------------------- per family
    def to_archs(self, genes: np.ndarray) -> list[Any]:
        raise NotImplementedError

    def from_archs(self, archs: Sequence[Any]) -> np.ndarray:
        """Rows of validated archs."""
        raise NotImplementedError

    def active(self, genes: np.ndarray) -> np.ndarray:
        """(n, terms) whether each term runs."""
        raise NotImplementedError

    def features(self, genes: np.ndarray) -> np.ndarray:
        """(n, encoding size) float32, row ``i`` equal to the space's ``encode`` of arch ``i``."""
        raise NotImplementedError

    def used(self, genes: np.ndarray) -> np.ndarray:
        """``genes`` with each gene no running term reads set to -1: two archs that build the same
        subnet get the same row."""
        raise NotImplementedError

    def representatives(self) -> list[Any]:
        """Archs whose running terms together take every combination of their columns' values
        (each term at each of its lookups): pricing these prices every term."""
        raise NotImplementedError

    def term_counts(self, arch: Any, count: str) -> list[int]:
        """``count`` (``"macs"`` or ``"params"``) of each running term of ``arch``, in order; the
        sum is the space's count of the arch."""
        raise NotImplementedError

    # -------------------------------------------------------------- generic
    def part(self, genes: np.ndarray, field: str) -> np.ndarray:
        """The columns of one arch field (e.g. ``"ks"``)."""
        return genes[:, self.fields[field]]

    @cached_property
    def term_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Each term's lookup shape: the choice counts of its columns."""
        return tuple(tuple(int(self.counts[c]) for c in t.columns) for t in self.terms)

    @cached_property
    def term_offsets(self) -> np.ndarray:
        """Where each term's lookups start in one flat table of all terms (its last entry: the size)."""
        return np.concatenate([[0], np.cumsum([int(np.prod(s)) for s in self.term_shapes])]).astype(np.intp)

    @cached_property
    def _gather(self) -> tuple[np.ndarray, np.ndarray]:
        """(terms, widest) columns and strides, padded with the resolution column at stride 0."""
        widest = max(len(t.columns) for t in self.terms)
        columns = np.full((len(self.terms), widest), len(self.counts) - 1, dtype=np.intp)
        strides = np.zeros((len(self.terms), widest), dtype=np.intp)
        for i, (term, shape) in enumerate(zip(self.terms, self.term_shapes)):
            columns[i, : len(shape)] = term.columns
            strides[i, : len(shape)] = np.cumprod((*shape[1:], 1)[::-1])[::-1]
        return columns, strides

    def term_index(self, genes: np.ndarray) -> np.ndarray:
        """(terms, n) each term's position in the flat table of all terms, for each arch."""
        columns, strides = self._gather
        by_gene = np.ascontiguousarray(genes.T)  # (genes, n): a term's columns are then whole rows
        index = by_gene[columns[:, 0]] * strides[:, :1] + self.term_offsets[:-1, None]
        for position in range(1, columns.shape[1]):
            index += by_gene[columns[:, position]] * strides[:, position : position + 1]
        return index

    @cached_property
    def shared_columns(self) -> tuple[int, ...]:
        """The genes besides the resolution that decide which terms run or that several terms read:
        the ones an exact extreme enumerates."""
        readers = np.zeros(len(self.counts), dtype=int)
        for term in self.terms:
            readers[list(term.columns[1:])] += 1
        shared = set(np.flatnonzero(readers > 1).tolist()) | set(self.activity_columns)
        return tuple(sorted(shared - {len(self.counts) - 1}))


def _one_hot_rows(values: Sequence[int], choices: Sequence[Any]) -> np.ndarray:
    lookup = {v: i for i, v in enumerate(choices)}
    return np.array([lookup[v] for v in values], dtype=np.intp)


class MBConvGenome(Genome):
    """OFA-MobileNetV3 / ProxylessNAS genes: kernel per slot, expand per slot, depth per stage,
    resolution. Terms: the stem, the fixed first block, one per block slot (reading its kernel and
    expand), then the head's parts (final expand, pooling, the feature mix if any, classifier)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        slots, stages = space.num_slots, space.num_stages
        self.depths = [space.stage_depths(s) for s in range(stages)]
        counts = [len(space.kernel_choices)] * slots + [len(space.expand_choices)] * slots
        self.counts = np.array(counts + [len(d) for d in self.depths] + [len(space.resolutions)], dtype=np.intp)
        self.fields = {"ks": slice(0, slots), "e": slice(slots, 2 * slots),
                       "d": slice(2 * slots, 2 * slots + stages), "r": slice(-1, None)}  # fmt: skip
        r = len(self.counts) - 1
        head = ("final_expand", "pool", *(("feature_mix",) if space.feature_mix_width else ()), "classifier")
        self.terms = (
            Term("stem", (r,)),
            Term("first_block", (r,)),
            *(Term(f"slot{i}", (r, i, slots + i)) for i in range(slots)),
            *(Term(name, (r,)) for name in head),
        )
        self.activity_columns = tuple(range(2 * slots, 2 * slots + stages))
        self._depth_columns = slice(2 * slots, 2 * slots + stages)
        # (stages, most depth choices, most slots of a stage): which slots each depth choice uses
        longest = max(len(s) for s in space.stage_slots)
        values = np.zeros((stages, max(len(d) for d in self.depths)), dtype=np.intp)
        for stage, choices in enumerate(self.depths):
            values[stage, : len(choices)] = choices
        self.depth_values = values
        self._masks = np.arange(longest)[None, None, :] < values[:, :, None]
        real = [s * longest + i for s, slots_ in enumerate(space.stage_slots) for i in range(len(slots_))]
        self._real_slots = None if len(real) == stages * longest else np.array(real)
        self._shared_mask = self._masks[0] if len(set(self.depths)) == 1 else None
        self._stages = np.arange(stages)
        self._fixed = (2, len(head))
        n_k, n_e = len(space.kernel_choices), len(space.expand_choices)
        self._sizes = (slots, n_k, n_e, space.encoding_size)
        self._slot_base = (np.arange(slots) * (n_k + n_e))[None, :]

    def slot_active(self, genes: np.ndarray) -> np.ndarray:
        """(n, num_slots) whether each block slot is within its stage's depth."""
        d = genes[:, self._depth_columns]
        if self._shared_mask is not None:
            return self._shared_mask[d].reshape(len(genes), -1)
        used = self._masks[self._stages, d].reshape(len(genes), -1)
        return used if self._real_slots is None else used[:, self._real_slots]

    def active(self, genes: np.ndarray) -> np.ndarray:
        n = len(genes)
        head, tail = self._fixed
        on = np.ones((n, head), dtype=bool), self.slot_active(genes), np.ones((n, tail), dtype=bool)
        return np.concatenate(on, axis=1)

    def to_archs(self, genes: np.ndarray) -> list[Arch]:
        sp = self.space
        ks = np.asarray(sp.kernel_choices)[self.part(genes, "ks")].tolist()
        e = np.asarray(sp.expand_choices)[self.part(genes, "e")].tolist()
        d = self.depth_values[self._stages, self.part(genes, "d")].tolist()
        r = np.asarray(sp.resolutions)[genes[:, -1]].tolist()
        return [Arch(tuple(k), tuple(x), tuple(y), int(z)) for k, x, y, z in zip(ks, e, d, r)]

    def from_archs(self, archs: Sequence[Arch]) -> np.ndarray:
        sp = self.space
        rows = [
            np.concatenate([
                _one_hot_rows(a.ks, sp.kernel_choices),
                _one_hot_rows(a.e, sp.expand_choices),
                [self.depths[s].index(v) for s, v in enumerate(a.d)],
                [sp.resolutions.index(a.r)],
            ])
            for a in archs
        ]
        return np.array(rows, dtype=np.intp).reshape(len(archs), len(self.counts))

    def features(self, genes: np.ndarray) -> np.ndarray:
        """One-hot kernel and expand per slot (unused slots all zero), then one-hot resolution."""
        n, (slots, n_k, n_e, size) = len(genes), self._sizes
        features = np.zeros((n, size), dtype=np.float32)
        on = self.slot_active(genes).astype(np.float32)
        rows = np.arange(n)[:, None]
        features[rows, self._slot_base + genes[:, :slots]] = on
        features[rows, self._slot_base + n_k + genes[:, slots : 2 * slots]] = on
        features[rows[:, 0], slots * (n_k + n_e) + genes[:, -1]] = 1.0
        return features

    def used(self, genes: np.ndarray) -> np.ndarray:
        on, slots = self.slot_active(genes), self._sizes[0]
        ks, e = genes[:, :slots], genes[:, slots : 2 * slots]
        return np.concatenate([np.where(on, ks, -1), np.where(on, e, -1), genes[:, 2 * slots :]], axis=1)

    def representatives(self) -> list[Arch]:
        """The max-depth archs with one kernel and expand in every slot, at each resolution."""
        sp = self.space
        deepest = tuple(len(slots) for slots in sp.stage_slots)
        return [Arch((k,) * sp.num_slots, (x,) * sp.num_slots, deepest, r)
                for r in sp.resolutions for k in sp.kernel_choices for x in sp.expand_choices]  # fmt: skip

    def term_counts(self, arch: Arch, count: str) -> list[int]:
        """The blocks' counts, with everything else (stem and head) on the stem's term."""
        blocks = [getattr(spec, count)() for spec in self.space.block_specs(arch)]
        total = getattr(self.space, count)(arch)
        return [total - sum(blocks), *blocks, *([0] * self._fixed[1])]


def enumerate_rows(counts: np.ndarray, columns: Sequence[int]) -> np.ndarray:
    """(m, len(columns)) every combination of choice indices of ``columns``."""
    ranges = [range(int(counts[c])) for c in columns]
    return np.array(list(itertools.product(*ranges)), dtype=np.intp).reshape(-1, len(columns))
