"""NSGA-II (pymoo) on two objectives: maximise predicted accuracy, minimise a cost (latency).

The genes are those of :mod:`.population` (choice indices of kernel and expand per slot, depth per
stage, resolution), varied by the same operators as the evolution search (uniform crossover,
per-gene resampling), so both searches explore the same space the same way. Other budgets (MACs,
params, a latency budget) are inequality constraints; the first population is drawn valid (see
:class:`~ofa_edge.search.evolution.Constrained`), so NSGA-II starts from the feasible region.

pymoo is imported inside :func:`nsga2_search`: it is heavy and only this search needs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import OFAEdgeError
from ..space.space import SearchSpace
from . import population as P
from .efficiency import CostModel
from .evolution import Budget, Constrained, FeaturePredictor, Front, SearchResult, _scores, nondominated
from .population import Population


def nsga2_search(
    space: SearchSpace,
    predictor: FeaturePredictor,
    cost: CostModel,
    budgets: Sequence[Budget] = (),
    *,
    resolutions: Sequence[int] | None = None,
    population_size: int = 100,
    generations: int = 200,
    mutate_prob: float = 0.1,
    resolution_mutate_prob: float = 0.5,
    seed: int = 0,
) -> SearchResult:
    """The accuracy/cost trade-off front within ``budgets`` (``result.front``, non-dominated, sorted
    by cost) and its most accurate arch (``result.arch``). Same ``seed``, same result."""
    try:
        import pymoo  # noqa: F401
    except ImportError:
        raise OFAEdgeError("NSGA-II needs pymoo: pip install 'ofa-edge[search]'") from None
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.config import Config
    from pymoo.core.crossover import Crossover
    from pymoo.core.mutation import Mutation
    from pymoo.core.problem import Problem
    from pymoo.optimize import minimize

    Config.warnings["not_compiled"] = False  # else pymoo prints a hint to stdout

    rng = np.random.default_rng(seed)
    pool = Constrained(space, budgets, rng, resolutions, [cost])
    allowed = pool.resolutions
    upper = P.choice_counts(space) - 1
    n_var = len(upper)
    evaluations = [0]

    class SubnetProblem(Problem):
        def __init__(self) -> None:
            super().__init__(n_var=n_var, n_obj=2, n_ieq_constr=max(1, len(budgets)), xl=0, xu=upper, vtype=int)

        def _evaluate(self, X: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
            pop = Population.from_genes(X)
            scores = _scores(predictor, space, pop)
            evaluations[0] += len(pop)
            out["F"] = np.stack([-scores, cost.predict(pop)], axis=1)
            if budgets:
                out["G"] = np.stack([b.model.predict(pop) - b.limit for b in budgets], axis=1)
            else:
                out["G"] = np.zeros((len(pop), 1))

    class GeneMutation(Mutation):
        def _do(self, problem: Any, X: np.ndarray, *args: Any, random_state: Any = None, **kwargs: Any) -> np.ndarray:
            pop = Population.from_genes(X)
            return P.mutate(space, pop, random_state, mutate_prob, resolution_mutate_prob, allowed).genes

    class UniformCrossover(Crossover):
        def __init__(self) -> None:
            super().__init__(n_parents=2, n_offsprings=1)

        def _do(self, problem: Any, X: np.ndarray, *args: Any, random_state: Any = None, **kwargs: Any) -> np.ndarray:
            a, b = (Population.from_genes(X[i]) for i in range(2))
            return P.crossover(a, b, random_state).genes[None]

    start = pool.initial(population_size, mutate_prob, resolution_mutate_prob)
    algorithm = NSGA2(
        pop_size=population_size,
        sampling=start.genes,
        crossover=UniformCrossover(),
        mutation=GeneMutation(),
        eliminate_duplicates=True,
    )
    result = minimize(SubnetProblem(), algorithm, ("n_gen", max(1, generations)), seed=seed, verbose=False)
    final = result.pop
    X, F, G = final.get("X"), final.get("F"), final.get("G")
    feasible = np.all(G <= 0, axis=1)
    if not feasible.any():
        raise OFAEdgeError(f"NSGA-II found no subnet within {pool.describe()}; loosen the budgets")
    pop = Population.from_genes(X[feasible])
    accuracy, costs = -F[feasible, 0], F[feasible, 1]
    keep = nondominated(accuracy, costs)
    front = Front(pop.take(keep), accuracy[keep], costs[keep], what=cost.what, unit=cost.unit)
    best = int(np.argmax(front.accuracy))
    return SearchResult(
        space,
        front.archs(space)[best],
        float(front.accuracy[best]),
        pop,
        accuracy,
        evaluations[0],
        front,
    )
