"""Evolution search under budgets (the reference OFA search, vectorised), and random search.

The algorithm is the reference's ``EvolutionFinder`` (``ofa/nas/search_algorithm/evolution.py``):
a population of 100 valid archs; each of 500 generations keeps the best 25 % as parents and adds
as many children as the population size, half by mutating a random parent (each gene resampled
with probability 0.1, the resolution with 0.5 as in the reference), the rest by crossing two
random parents (each gene from either). Children that break a budget are drawn again.

Unlike the reference, which prices and scores one arch at a time in Python, each step here works
on whole batches: candidates are drawn in a batch, priced at once (:mod:`.efficiency`), the valid
ones kept, and a generation's children scored by the predictor in one call. Redraws are bounded:
a budget that random archs can hardly meet falls back on the cheapest subnets and their mutations,
and a budget nothing meets is one clear error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..errors import OFAEdgeError
from ..space.arch import Arch
from ..space.space import SearchSpace
from . import population as P
from .budget import format_count, format_ms
from .efficiency import CostModel
from .population import Population


class FeaturePredictor(Protocol):
    """What the search needs of an accuracy predictor: encoded archs in, predicted top-1 (%) out.

    ``features``: (n, space.encoding_size) float32, rows as :meth:`SearchSpace.encode` makes them.
    """

    def predict_features(self, features: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Budget:
    """An upper bound on one cost model (latency in ms, MACs or params)."""

    model: CostModel
    limit: float

    def describe(self) -> str:
        return f"{self.model.what} <= {format_value(self.limit, self.model.unit)} ({self.model.source})"


def format_value(value: float, unit: str) -> str:
    """``0.25 ms`` for latencies, ``20.5M`` for counts."""
    return format_ms(value) if unit == "ms" else format_count(value)


@dataclass
class Front:
    """Non-dominated archs on (predicted accuracy: higher is better, cost: lower is better),
    sorted by cost (so by accuracy too)."""

    pop: Population
    accuracy: np.ndarray
    cost: np.ndarray
    what: str = "latency"
    unit: str = "ms"

    def __len__(self) -> int:
        return len(self.pop)

    def archs(self, space: SearchSpace) -> list[Arch]:
        return P.to_archs(space, self.pop)

    def to_list(self, space: SearchSpace) -> list[dict]:
        key = f"{self.what}_{self.unit}" if self.unit else self.what
        return [{"arch": a.to_dict(), "accuracy": float(acc), key: float(c)}
                for a, acc, c in zip(self.archs(space), self.accuracy, self.cost)]  # fmt: skip


def nondominated(accuracy: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats (accuracy >= and cost <=, one of them strictly),
    one per distinct (accuracy, cost), sorted by cost."""
    accuracy, cost = np.asarray(accuracy, float), np.asarray(cost, float)
    if len(cost) == 0:
        return np.zeros(0, dtype=np.intp)
    order = np.lexsort((-accuracy, cost))  # cost ascending, then accuracy descending
    acc = accuracy[order]
    best_before = np.maximum.accumulate(acc)
    keep = np.ones(len(acc), dtype=bool)
    keep[1:] = acc[1:] > best_before[:-1]
    return order[keep]


@dataclass
class SearchResult:
    """The most accurate arch found, every arch scored on the way (each once: ``population`` and
    ``scores``), how many archs were scored (repeats included) and the trade-off front of them."""

    space: SearchSpace
    arch: Arch
    accuracy: float
    population: Population
    scores: np.ndarray
    evaluations: int
    front: Front | None = None
    history: np.ndarray = field(default_factory=lambda: np.zeros(0))  # best score after each generation
    notes: list[str] = field(default_factory=list)


def _predict(predictor: FeaturePredictor, features: np.ndarray) -> np.ndarray:
    scores = np.asarray(predictor.predict_features(features), dtype=float).reshape(-1)
    if scores.shape != (len(features),):
        raise OFAEdgeError(f"the accuracy predictor returned {scores.size} scores for {len(features)} archs")
    return scores


def _scores(predictor: FeaturePredictor, space: SearchSpace, pop: Population) -> np.ndarray:
    return _predict(predictor, P.encode(space, pop))


class ScoreMemo:
    """Scores of one search's archs, each predicted once, and the archs scored. Once the
    population converges most children repeat an arch met before (60-90% of them with the OFA
    authors' predictor on the note10 table), and the predictor is the search's main cost; a
    deterministic search stays deterministic."""

    def __init__(self, predictor: FeaturePredictor, space: SearchSpace) -> None:
        self.predictor, self.space = predictor, space
        self.known: dict[bytes, float] = {}
        self._genes: list[np.ndarray] = []  # the first population each new arch came in

    def _keys(self, pop: Population) -> list[bytes]:
        """One key per arch: its genes with the slots its depth skips blanked, so that archs the
        predictor cannot tell apart (the same encoding) share one."""
        genes = np.ascontiguousarray(P.used_genes(self.space, pop), dtype=np.int16)
        return genes.view(f"V{genes.shape[1] * 2}").ravel().tolist()

    def __call__(self, pop: Population) -> np.ndarray:
        keys = self._keys(pop)
        first = {key: i for i, key in reversed(list(enumerate(keys))) if key not in self.known}
        if first:
            rows = list(first.values())
            new = _predict(self.predictor, P.encode(self.space, pop.take(rows)))
            self.known.update(zip(first, new.tolist()))
            self._genes.append(pop.genes[rows])
        return np.array([self.known[key] for key in keys], dtype=float)

    def scored(self) -> tuple[Population, np.ndarray]:
        """Every arch scored so far, once each, and its score."""
        genes = np.concatenate(self._genes)
        return Population(genes), np.array(list(self.known.values()))


@dataclass
class Draws:
    """Archs of one kind drawn until ``n`` meet the budgets (or ``max_draws`` were drawn)."""

    generate: Callable[[int], Population]
    n: int
    kind: str = ""
    max_draws: int | None = None
    kept: list[Population] = field(default_factory=list)
    have: int = 0
    accepted: int = 0
    drawn: int = 0

    def done(self) -> bool:
        return self.have >= self.n or (self.max_draws is not None and self.drawn >= self.max_draws)

    def batch_size(self, rates: dict[str, float], max_batch: int) -> int:
        """Enough draws for what is missing at the share of valid draws seen so far (this call's,
        else the last call's of the same kind)."""
        need = self.n - self.have
        if self.accepted:
            rate = self.accepted / self.drawn
        else:
            rate = rates.get(self.kind, 1.0) if not self.drawn else 1.0 / self.drawn
        return min(max_batch, max(need, 16, math.ceil(1.25 * need / max(rate, 1e-9))))

    def keep(self, batch: Population, valid: np.ndarray) -> None:
        need = self.n - self.have
        self.kept.append(batch.take(valid[:need]))
        self.have += min(len(valid), need)
        self.accepted += len(valid)
        self.drawn += len(batch)


class Constrained:
    """Draws archs that meet every budget, in batches, with bounded retries."""

    def __init__(
        self,
        space: SearchSpace,
        budgets: Sequence[Budget],
        rng: np.random.Generator,
        resolutions: Sequence[int] | None = None,
        extra_models: Sequence[CostModel] = (),
        max_batch: int = 100_000,
    ) -> None:
        self.space, self.budgets, self.rng, self.max_batch = space, list(budgets), rng, max_batch
        covered = np.ones(len(space.resolutions), dtype=bool)
        for model in [b.model for b in self.budgets] + list(extra_models):
            if model.space != space:
                raise OFAEdgeError(f"{model.source} prices space {model.space.name}, not {space.name}")
            covered &= model.covered
        if resolutions is not None:
            wanted = np.zeros_like(covered)
            wanted[P.resolution_indices(space, resolutions)] = True
            covered &= wanted
        if not covered.any():
            raise OFAEdgeError("no resolution is allowed by every budget's table and the requested resolutions")
        self.resolutions = np.flatnonzero(covered)
        self.drawn = 0
        self._rates: dict[str, float] = {}

    def describe(self) -> str:
        return ", ".join(b.describe() for b in self.budgets) or "no budget"

    def feasible(self, pop: Population) -> np.ndarray:
        ok = np.ones(len(pop), dtype=bool)
        for budget in self.budgets:
            ok &= budget.model.predict(pop) <= budget.limit
        return ok

    def fill(
        self,
        generate: Callable[[int], Population],
        n: int,
        max_rounds: int = 20,
        kind: str = "",
        max_draws: int | None = None,
    ) -> Population:
        """Up to ``n`` valid archs from ``generate(batch)``; fewer if ``max_rounds`` batches (or
        ``max_draws`` draws) do not give them.

        Batches are sized by the share of valid draws, estimated from this call's draws so far, or
        from the previous call of the same ``kind`` (mutation and crossover differ).
        """
        return self.fill_many([Draws(generate, n, kind, max_draws)], max_rounds)[0]

    def fill_many(self, requests: Sequence[Draws], max_rounds: int = 20) -> list[Population]:
        """:meth:`fill` for several kinds of draws at once: each round prices all their batches
        together (the search's inner loop, where one pricing per round is half the work of two)."""
        if not self.budgets:
            self.drawn += sum(r.n for r in requests)
            return [r.generate(r.n) for r in requests]
        for _ in range(max_rounds):
            pending = [r for r in requests if not r.done()]
            if not pending:
                break
            batches = [r.generate(r.batch_size(self._rates, self.max_batch)) for r in pending]
            ok = self.feasible(Population.concat(batches))
            start = 0
            for request, batch in zip(pending, batches):
                request.keep(batch, np.flatnonzero(ok[start : start + len(batch)]))
                start += len(batch)
        for request in requests:
            self.drawn += request.drawn
            if request.kind and request.accepted:
                self._rates[request.kind] = request.accepted / request.drawn
        return [Population.concat(r.kept) if r.kept else r.generate(0) for r in requests]

    def cheapest(self) -> Population:
        """The cheapest arch of each budget's model that meets every budget (maybe none)."""
        seeds = Population.concat([b.model.extreme(True, self.resolutions) for b in self.budgets])
        return seeds.take(np.flatnonzero(self.feasible(seeds)))

    def initial(self, n: int, mutate_prob: float, resolution_prob: float, random_draws: int = 200_000) -> Population:
        """``n`` valid archs: random ones; if the budget is too tight for that, the cheapest subnets
        and their mutations fill up; an error if no arch at all meets the budgets."""
        space, rng = self.space, self.rng
        pop = self.fill(lambda m: P.sample(space, m, rng, self.resolutions), n, max_draws=random_draws)
        if len(pop) >= n or not self.budgets:
            return pop
        base = Population.concat([pop, self.cheapest()])
        if len(base) == 0:
            raise OFAEdgeError(
                f"no subnet meets every budget together ({self.describe()}): none of {self.drawn:,} random "
                "subnets nor the cheapest subnet of each budget does; loosen one of them"
            )
        for _ in range(50):
            if len(base) >= n:
                break
            parents = base

            def mutants(m: int, parents: Population = parents) -> Population:
                chosen = parents.take(rng.integers(len(parents), size=m))
                return P.mutate(space, chosen, rng, mutate_prob, resolution_prob, self.resolutions)

            base = Population.concat([base, self.fill(mutants, n - len(base), 1)])
        if len(base) < n:  # a budget met by a handful of subnets: repeat them
            base = Population.concat([base, base.take(rng.integers(len(base), size=n - len(base)))])
        return base.take(slice(0, n))


def _front_update(
    front: tuple[Population, np.ndarray, np.ndarray] | None, pop: Population, scores: np.ndarray, cost: np.ndarray
) -> tuple[Population, np.ndarray, np.ndarray]:
    if front is not None:
        pop = Population.concat([front[0], pop])
        scores = np.concatenate([front[1], scores])
        cost = np.concatenate([front[2], cost])
    keep = nondominated(scores, cost)
    return pop.take(keep), scores[keep], cost[keep]


def neighbours(space: SearchSpace, arch: Population, resolutions: np.ndarray) -> Population:
    """Every arch one gene away from the one arch in ``arch``: another choice of one gene (a
    kernel, expand ratio, depth or width), or another allowed resolution."""
    genes = arch.genes[0]
    counts = P.choice_counts(space)
    rows = []
    for position, count in enumerate(counts[:-1]):
        for value in range(count):
            if value != genes[position]:
                row = genes.copy()
                row[position] = value
                rows.append(row)
    for value in resolutions:
        if value != genes[-1]:
            row = genes.copy()
            row[-1] = value
            rows.append(row)
    return Population(np.array(rows, dtype=np.intp).reshape(-1, len(genes)))


def polish(starts: Population, score: ScoreMemo, pool: Constrained, resolutions: np.ndarray,
           max_steps: int = 50) -> None:  # fmt: skip
    """Hill-climb from each of ``starts`` at once: each moves to its best-scoring neighbour within
    every budget while one scores higher. Near the end of a search evolution's mutations rarely hit
    the one change that still helps, and different parents climb to different peaks; the
    neighbours' scores land in ``score``, where the caller finds the best."""
    space, current = score.space, starts
    current_scores = score(current)
    for _ in range(max_steps):
        around = [neighbours(space, current.take([i]), resolutions) for i in range(len(current))]
        candidates = Population.concat(around)
        feasible = np.flatnonzero(pool.feasible(candidates))
        if len(feasible) == 0:
            return
        values = np.full(len(candidates), -np.inf)
        values[feasible] = score(candidates.take(feasible))
        offsets = np.cumsum([0] + [len(a) for a in around])
        genes, moved = current.genes.copy(), False
        for i in range(len(current)):
            top = offsets[i] + int(np.argmax(values[offsets[i] : offsets[i + 1]]))
            if values[top] > current_scores[i]:
                genes[i], current_scores[i], moved = candidates.genes[top], values[top], True
        if not moved:
            return
        current = Population(genes)


def evolution_search(
    space: SearchSpace,
    predictor: FeaturePredictor,
    budgets: Sequence[Budget] = (),
    *,
    cost: CostModel | None = None,
    resolutions: Sequence[int] | None = None,
    population_size: int = 100,
    generations: int = 500,
    parent_ratio: float = 0.25,
    mutation_ratio: float = 0.5,
    mutate_prob: float = 0.1,
    resolution_mutate_prob: float = 0.5,
    seed: int = 0,
    polish_parents: bool = True,
) -> SearchResult:
    """The most accurate arch (by ``predictor``) that meets every budget, by regularised evolution.

    ``cost``: a model (usually the latency table) on which to keep the trade-off front of every
    valid arch evaluated (``result.front``). ``resolutions``: restrict the search to these.
    ``polish_parents``: after the last generation, hill-climb from each of the best distinct archs
    met, as many as there are parents (see :func:`polish`). Same ``seed``, same result.
    """
    if population_size < 2 or generations < 0:
        raise OFAEdgeError("evolution needs a population of at least 2 and a non-negative number of generations")
    rng = np.random.default_rng(seed)
    pool = Constrained(space, budgets, rng, resolutions, [cost] if cost is not None else [])
    allowed = pool.resolutions
    n_parents = max(1, round(parent_ratio * population_size))
    n_mutants = round(mutation_ratio * population_size)
    n_crossed = population_size - n_mutants

    score = ScoreMemo(predictor, space)
    pop = pool.initial(population_size, mutate_prob, resolution_mutate_prob)
    scores = score(pop)
    evaluations = len(pop)
    history = np.empty(generations)

    for generation in range(generations):
        order = np.argsort(-scores, kind="stable")[:n_parents]
        parents, parent_scores = pop.take(order), scores[order]
        history[generation] = parent_scores[0]

        def mutants(m: int, parents: Population = parents) -> Population:
            chosen = parents.take(rng.integers(n_parents, size=m))
            return P.mutate(space, chosen, rng, mutate_prob, resolution_mutate_prob, allowed)

        def crossed(m: int, parents: Population = parents) -> Population:
            a = parents.take(rng.integers(n_parents, size=m))
            b = parents.take(rng.integers(n_parents, size=m))
            return P.crossover(a, b, rng)

        # bounded redraws (100 per child): where nearly every child breaks a budget, parents fill in
        children = pool.fill_many([Draws(mutants, n_mutants, "mutate", 100 * n_mutants),
                                    Draws(crossed, n_crossed, "cross", 100 * n_crossed)])  # fmt: skip
        short = population_size - sum(len(c) for c in children)
        if short > 0:  # the budget rejected nearly every child: copies of parents keep the size
            children.append(parents.take(rng.integers(n_parents, size=short)))
        child_pop = Population.concat(children)
        child_scores = score(child_pop)
        evaluations += len(child_pop)
        pop = Population.concat([parents, child_pop])
        scores = np.concatenate([parent_scores, child_scores])

    if polish_parents:  # from the best distinct archs met (the last parents are often one arch)
        seen, seen_scores = score.scored()
        before = len(score.known)
        polish(seen.take(np.argsort(-seen_scores, kind="stable")[:n_parents]), score, pool, allowed)
        evaluations += len(score.known) - before
    if generations:
        history[-1] = max(history[-1], max(score.known.values()))
    return _best_of(space, score, evaluations, cost, history)


def _best_of(space: SearchSpace, score: ScoreMemo, evaluations: int, cost: CostModel | None,
             history: np.ndarray) -> SearchResult:  # fmt: skip
    """The best of everything scored (the polish's climbs included), and the front of all of it:
    every arch scored met the budgets."""
    pop, scores = score.scored()
    best = int(np.argsort(-scores, kind="stable")[0])
    front = None
    if cost is not None:
        keep = nondominated(scores, costs := cost.predict(pop))
        front = Front(pop.take(keep), scores[keep], costs[keep], what=cost.what, unit=cost.unit)
    return SearchResult(space, P.to_archs(space, pop.take([best]))[0], float(scores[best]), pop, scores,
                        evaluations, front, history)  # fmt: skip


def random_search(
    space: SearchSpace,
    predictor: FeaturePredictor,
    budgets: Sequence[Budget] = (),
    n_evaluations: int = 50_100,
    *,
    cost: CostModel | None = None,
    resolutions: Sequence[int] | None = None,
    seed: int = 0,
    batch: int = 10_000,
    max_samples: int | None = None,
) -> SearchResult:
    """The best of ``n_evaluations`` uniformly random archs that meet every budget (the baseline
    for :func:`evolution_search`, which scores 100 + 500 x 100 = 50,100 archs by default).

    Invalid draws are not scored and not counted; more than ``max_samples`` draws (default
    ``max(1e6, 100 x n_evaluations)``) is an error: the budget is too tight for random search.
    """
    rng = np.random.default_rng(seed)
    pool = Constrained(space, budgets, rng, resolutions, [cost] if cost is not None else [])
    limit = max_samples if max_samples is not None else max(1_000_000, 100 * n_evaluations)
    best_pop: Population | None = None
    best_score = -math.inf
    front = None
    done = drawn = 0
    while done < n_evaluations and drawn < limit:
        size = min(batch, limit - drawn) if budgets else min(batch, n_evaluations - done)
        candidates = P.sample(space, size, rng, pool.resolutions)
        drawn += size
        chunk = candidates.take(np.flatnonzero(pool.feasible(candidates))[: n_evaluations - done])
        if len(chunk) == 0:
            continue
        scores = _scores(predictor, space, chunk)
        done += len(chunk)
        top = int(np.argmax(scores))
        if scores[top] > best_score:
            best_score, best_pop = float(scores[top]), chunk.take([top])
        if cost is not None:
            front = _front_update(front, chunk, scores, cost.predict(chunk))
    if done < n_evaluations or best_pop is None:
        raise OFAEdgeError(
            f"random search found only {done:,} of {n_evaluations:,} subnets within {pool.describe()} "
            f"in {drawn:,} draws; the budget is too tight for random search"
        )
    return SearchResult(
        space,
        P.to_archs(space, best_pop)[0],
        best_score,
        best_pop,
        np.array([best_score]),
        done,
        Front(*front, what=cost.what, unit=cost.unit) if front is not None and cost is not None else None,
    )
