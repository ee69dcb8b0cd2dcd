"""Search under budgets: vectorised populations and costs against the scalar space/table methods,
evolution, random search, NSGA-II, budget parsing, specialisation and the ``specialize`` command.

Accuracy comes from stand-in predictors (fixed random linear models on the arch encoding), never
from a trained one: these tests check the search, not the predictor.
"""

from __future__ import annotations

import importlib
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ofa_edge.errors import OFAEdgeError
from ofa_edge.latency.table import Calibration, load_table
from ofa_edge.search import population as P
from ofa_edge.search.budget import BudgetError, parse_count, parse_latency
from ofa_edge.search.efficiency import CostModel, LatencyModel, feasible_range, macs_model, params_model
from ofa_edge.search.evolution import Budget, ScoreMemo, evolution_search, nondominated, random_search
from ofa_edge.search.specialize import Target, make_targets, specialize
from ofa_edge.space.arch import Arch, load_arch
from ofa_edge.space.space import get_space

DEMO_TABLE = "onnxruntime-cpu-fp32-mbv3-fmnist"
W10_TABLE = "onnxruntime-cpu-fp32-mbv3-w1.0"


class StandInPredictor:
    """A stand-in accuracy predictor: a fixed random linear model of the encoding (top-1 around 90 %)."""

    def __init__(self, space, seed: int = 0, scale: float = 0.1) -> None:
        self.space = space
        self.space_name = space.name
        self.supernet = "stand-in"
        self.weights = np.random.default_rng(seed).normal(size=space.encoding_size) * scale
        self.supernet_path = None
        self.checked_supernet = "stand-in"

    def ranking_warning(self) -> None:
        return None

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        assert features.dtype == np.float32 and features.shape[1] == self.space.encoding_size
        return 90.0 + features.astype(float) @ self.weights


FIXED_TABLES = Path(__file__).resolve().parent / "fixtures" / "search-tables"


@pytest.fixture(autouse=True)
def fixed_demo_table(monkeypatch):
    """The demo table by name resolves to a fixed copy (tests/fixtures/search-tables/README.md)."""
    monkeypatch.setenv("OFA_EDGE_TABLES", str(FIXED_TABLES))


@pytest.fixture(scope="module")
def demo():
    space = get_space("mbv3-fmnist")
    table = load_table(FIXED_TABLES / f"{DEMO_TABLE}.json")
    return space, table, LatencyModel(table, space, name=DEMO_TABLE)


@pytest.fixture(scope="module")
def demo_drift():
    """The demo table with a calibration whose scale drifts with the resolution (and a per-unit term)."""
    space = get_space("mbv3-fmnist")
    table = load_table(FIXED_TABLES / f"{DEMO_TABLE}.json")
    table.calibration = Calibration(a=1.3, b=0.02, c=-0.004, d=0.03, r0=24.0, model="(a+d*(r-r0))*sum+c*units+b")
    return space, table, LatencyModel(table, space, name="drift")


@pytest.fixture(scope="module")
def w10():
    space = get_space("mbv3-w1.0")
    table = load_table(W10_TABLE)
    return space, table, LatencyModel(table, space, name=W10_TABLE)


def _random_archs(space, n, seed, resolutions=None):
    pop = P.sample(space, n, np.random.default_rng(seed), resolutions)
    corners = P.from_archs(space, [space.min_arch(space.resolutions[0]), space.max_arch()])
    if resolutions is not None:
        corners = corners.take(np.isin(corners.r, resolutions))
    return P.Population.concat([pop, corners])


# ------------------------------------------------------------------ population
@pytest.mark.parametrize("name", ["mbv3-fmnist", "mbv3-w1.0"])
def test_vectorised_encode_macs_params_equal_the_scalar_versions(name):
    space = get_space(name)
    pop = _random_archs(space, 300, seed=1)
    archs = P.to_archs(space, pop)
    features = P.encode(space, pop)
    assert features.dtype == np.float32 and features.shape == (len(archs), space.encoding_size)
    np.testing.assert_array_equal(features, np.stack([space.encode(a) for a in archs]))
    np.testing.assert_array_equal(P.macs(space, pop), [space.macs(a) for a in archs])
    np.testing.assert_array_equal(P.params(space, pop), [space.params(a) for a in archs])
    # slots past a stage's depth are all zero in the encoding
    per_slot = features[:, : space.num_slots * 6].reshape(len(archs), space.num_slots, 6)
    np.testing.assert_array_equal(per_slot.sum(axis=2) == 2, space.genome.slot_active(pop.genes))


def test_archs_round_trip_through_genes(demo):
    space = demo[0]
    pop = _random_archs(space, 100, seed=2)
    archs = P.to_archs(space, pop)
    assert all(isinstance(a, Arch) and space.validate(a) == a for a in archs)
    np.testing.assert_array_equal(P.from_archs(space, archs).genes, pop.genes)
    np.testing.assert_array_equal(P.Population.from_genes(pop.genes.astype(float)).genes, pop.genes)


def test_sampling_mutation_and_crossover_respect_the_choices(demo):
    space = demo[0]
    rng = np.random.default_rng(0)
    allowed = np.array([0, 2])
    pop = P.sample(space, 2000, rng, allowed)
    assert set(np.unique(pop.r)) == {0, 2}
    ks = space.genome.part(pop.genes, "ks")
    assert ks.max() == 2 and space.genome.part(pop.genes, "d").max() == 2 and pop.genes.min() == 0
    assert P.mutate(space, pop, rng, prob=0.0, resolution_prob=0.0).genes.tolist() == pop.genes.tolist()
    changed = P.mutate(space, pop, rng, prob=1.0, resolution_prob=0.0, resolutions=allowed)
    changed_ks = space.genome.part(changed.genes, "ks")
    assert (changed.r == pop.r).all() and 0.6 < (changed_ks != ks).mean() < 0.74  # resampled: 2/3 differ
    moved = P.mutate(space, pop, rng, prob=0.0, resolution_prob=1.0, resolutions=np.array([1]))
    assert (moved.r == 1).all() and (space.genome.part(moved.genes, "ks") == ks).all()
    mutated = P.mutate(space, pop, rng, prob=0.1)
    assert 0.05 < (mutated.genes != pop.genes).mean() < 0.09  # 0.1 x 2/3 of genes change value
    other = P.sample(space, 2000, rng, allowed)
    child = P.crossover(pop, other, rng)
    from_a, from_b = child.genes == pop.genes, child.genes == other.genes
    assert (from_a | from_b).all() and 0.45 < (from_a & ~from_b).sum() / (~(pop.genes == other.genes)).sum() < 0.55


# -------------------------------------------------------------------- efficiency
@pytest.mark.parametrize("which", ["demo", "demo_drift", "w10"])
def test_latency_model_equals_table_predict(which, request):
    space, table, model = request.getfixturevalue(which)
    pop = _random_archs(space, 300, seed=3, resolutions=model.resolution_indices)
    archs = P.to_archs(space, pop)
    # bit for bit: the same units, summed in the same order, then the same calibration
    np.testing.assert_array_equal(model.predict(pop), [table.predict(space, a) for a in archs])


def test_latency_model_covers_only_the_tables_resolutions(w10):
    space, table, model = w10
    assert model.resolutions == tuple(table.resolutions) == (160, 224)
    outside = P.from_archs(space, [space.max_arch(128)])
    assert np.isinf(model.predict(outside)).all()


def test_latency_model_refuses_a_table_of_another_space(demo, w10):
    with pytest.raises(OFAEdgeError, match="table is for space 'mbv3-w1.0'"):
        LatencyModel(w10[1], demo[0])


def _enumerate(space, per_stage_options):
    """Every arch from per-stage options ``(depth index, kernel indices, expand indices)`` at resolution 0."""
    rows = []
    for combo in itertools.product(per_stage_options, repeat=space.num_stages):
        ks, e, d = [], [], []
        for depth, kernels, expands in combo:
            ks += list(kernels) + [0] * (space.max_depth - len(kernels))
            e += list(expands) + [0] * (space.max_depth - len(expands))
            d.append(depth)
        rows.append(ks + e + d + [0])
    return P.Population.from_genes(np.array(rows))


@pytest.mark.parametrize("c", [-5.0, 0.0, 5.0])
def test_extremes_are_exact_when_depth_choices_matter(demo, c):
    # kernel 3, expand 3, depth 2/3/4 at one resolution: 243 subnets, a per-unit term of either sign
    space = demo[0].restrict(kernel_choices=[3], expand_choices=[3], resolutions=[28])
    model = CostModel(space, P.macs_cost(space), "cost", "", "test", a=1e-6, b=1.0, c=c, affine=True)
    every = _enumerate(space, [(i, [0] * d, [0] * d) for i, d in enumerate(space.depth_choices)])
    values = model.predict(every)
    assert feasible_range(model) == pytest.approx((values.min(), values.max()), rel=1e-12)


def test_extremes_are_exact_when_the_scale_drifts_with_resolution(demo):
    # a scale that grows steeply with resolution: the dearest subnet is at the largest resolution
    # even where its summed cost is not the largest; checked against every subnet of a small space
    space = demo[0].restrict(kernel_choices=[3], expand_choices=[3])
    model = CostModel(space, P.macs_cost(space), "cost", "", "test", a=1e-6, b=0.0, c=0.01, d=2e-7, r0=24.0,
                      affine=True)  # fmt: skip
    every = _enumerate(space, [(i, [0] * d, [0] * d) for i, d in enumerate(space.depth_choices)])
    values = np.concatenate(
        [model.predict(P.Population.from_genes(np.c_[every.genes[:, :-1], np.full(len(every), r)]))
         for r in range(len(space.resolutions))]
    )  # fmt: skip
    assert feasible_range(model) == pytest.approx((values.min(), values.max()), rel=1e-12)


def test_extremes_are_exact_when_kernel_choices_matter(demo):
    space = demo[0].restrict(expand_choices=[4], depth_choices=[2], resolutions=[20])
    model = params_model(space)
    kernels = list(itertools.product(range(3), repeat=2))
    every = _enumerate(space, [(0, k, [0, 0]) for k in kernels])  # 9^5 subnets
    values = model.predict(every)
    assert feasible_range(model) == (values.min(), values.max())


@pytest.mark.parametrize("which", ["demo", "demo_drift", "w10"])
def test_feasible_range_bounds_every_subnet(which, request):
    space, table, model = request.getfixturevalue(which)
    for cost in (model, macs_model(space), params_model(space)):
        lo, hi = feasible_range(cost, space, cost.resolutions if cost is model else None)
        values = cost.predict(P.sample(space, 20000, np.random.default_rng(4), cost.resolution_indices))
        assert lo <= values.min() and values.max() <= hi
        # the extremes are real subnets, priced as the scalar methods price them
        cheapest, dearest = (P.to_archs(space, cost.extreme(flag))[0] for flag in (True, False))
        scalar = {"latency": lambda a: table.predict(space, a), "MACs": space.macs, "params": space.params}[cost.what]
        assert (scalar(cheapest), scalar(dearest)) == (lo, hi)
    # MACs and params extremes are the min/max archs; latency's need not be (negative per-unit term)
    assert feasible_range(macs_model(space)) == (space.macs(space.min_arch()), space.macs(space.max_arch()))


# --------------------------------------------------------------------- evolution
def _check_within(space, table, archs, latency=None, macs=None, params=None):
    for arch in archs:
        if latency is not None:
            assert table.predict(space, arch) <= latency
        if macs is not None:
            assert space.macs(arch) <= macs
        if params is not None:
            assert space.params(arch) <= params


@pytest.mark.parametrize(
    "latency,macs,params",
    [
        (0.2, None, None),
        (None, 8_000_000, None),
        (None, None, 1_600_000),
        (0.25, 10_000_000, 2_000_000),
        (0.1455, None, None),
    ],
)
def test_every_arch_evolution_returns_meets_every_budget(demo, latency, macs, params):
    space, table, model = demo
    budgets = [Budget(m, v) for m, v in ((model, latency), (macs_model(space), macs), (params_model(space), params))
               if v is not None]  # fmt: skip
    result = evolution_search(space, StandInPredictor(space), budgets, cost=model, population_size=40,
                              generations=30, seed=0)  # fmt: skip
    unpolished = evolution_search(space, StandInPredictor(space), budgets, cost=model, population_size=40,
                                  generations=30, seed=0, polish_parents=False)  # fmt: skip
    assert unpolished.evaluations == 40 + 30 * 40 and result.evaluations > unpolished.evaluations
    assert result.accuracy >= unpolished.accuracy
    final = P.to_archs(space, result.population)
    _check_within(space, table, [result.arch, *final, *result.front.archs(space)], latency, macs, params)
    assert result.accuracy == pytest.approx(
        StandInPredictor(space).predict_features(space.encode(result.arch)[None])[0]
    )
    assert result.accuracy == result.scores.max() and np.all(np.diff(result.history) >= 0)


def test_same_seed_same_arch_other_seeds_differ(demo):
    space, _, model = demo
    predictor = StandInPredictor(space)

    def run(seed):
        return evolution_search(space, predictor, [Budget(model, 0.25)], cost=model, population_size=30,
                                generations=20, seed=seed)  # fmt: skip

    a, b = run(7), run(7)
    assert a.arch == b.arch and a.accuracy == b.accuracy
    np.testing.assert_array_equal(a.population.genes, b.population.genes)
    np.testing.assert_array_equal(a.front.cost, b.front.cost)
    others = [run(seed) for seed in range(3)]
    assert len({r.population.genes.tobytes() for r in others}) > 1


def _assert_nondominated(front):
    acc, cost = np.asarray(front.accuracy), np.asarray(front.cost)
    assert len(acc) >= 2 and np.all(np.diff(cost) > 0) and np.all(np.diff(acc) > 0)
    for i in range(len(acc)):
        dominated = (acc >= acc[i]) & (cost <= cost[i]) & ((acc > acc[i]) | (cost < cost[i]))
        assert not dominated.any()


def test_nondominated_filter():
    acc = np.array([1.0, 2.0, 2.0, 3.0, 0.5, 3.0])
    cost = np.array([1.0, 2.0, 1.5, 3.0, 0.5, 3.0])
    assert nondominated(acc, cost).tolist() == [4, 0, 2, 3]


def test_evolution_front_is_nondominated_and_within_budget(demo):
    space, table, model = demo
    result = evolution_search(space, StandInPredictor(space), [Budget(model, 0.3)], cost=model,
                              population_size=40, generations=40, seed=1)  # fmt: skip
    _assert_nondominated(result.front)
    assert result.front.cost.max() <= 0.3 and result.front.accuracy.max() == result.accuracy
    archs = result.front.archs(space)
    np.testing.assert_array_equal(result.front.cost, [table.predict(space, a) for a in archs])


def test_nsga2_front_is_nondominated_within_budgets_and_deterministic(demo):
    from ofa_edge.search.nsga import nsga2_search

    space, table, model = demo
    predictor = StandInPredictor(space, seed=3)
    budgets = [Budget(model, 0.3), Budget(macs_model(space), 12_000_000)]
    result = nsga2_search(space, predictor, model, budgets, population_size=30, generations=15, seed=2)
    _assert_nondominated(result.front)
    archs = result.front.archs(space)
    _check_within(space, table, archs, 0.3, 12_000_000)
    np.testing.assert_allclose(result.front.accuracy, predictor.predict_features(P.encode(space, result.front.pop)))
    again = nsga2_search(space, predictor, model, budgets, population_size=30, generations=15, seed=2)
    assert again.arch == result.arch and again.front.archs(space) == archs


@pytest.mark.parametrize("predictor_seed,search_seed", [(0, 0), (1, 1), (2, 2)])
def test_evolution_beats_random_search_with_as_many_evaluations(demo, predictor_seed, search_seed):
    # Stand-in predictor; measured gaps 1.0-1.7 points (the stand-in's scores spread ~0.6): margin 0.5.
    space, table, model = demo
    predictor = StandInPredictor(space, seed=predictor_seed)
    budgets = [Budget(model, 0.3)]
    evo = evolution_search(space, predictor, budgets, population_size=50, generations=60, seed=search_seed)
    rnd = random_search(space, predictor, budgets, evo.evaluations, seed=search_seed)
    assert rnd.evaluations == evo.evaluations > 50 + 60 * 50  # the children, then the final hill-climbs
    assert table.predict(space, rnd.arch) <= 0.3
    assert evo.accuracy > rnd.accuracy + 0.5


def test_a_budget_no_subnet_meets_together_is_one_line(demo):
    space, _, model = demo
    # "at least 3.5M params" (a negated params model) and "at most 0.15 ms" exclude each other
    at_least = CostModel(space, P.params_cost(space), "minus params", "", "test", a=-1.0, affine=True)
    budgets = [Budget(model, 0.15), Budget(at_least, -3_500_000)]
    with pytest.raises(OFAEdgeError) as info:
        evolution_search(space, StandInPredictor(space), budgets, population_size=20, generations=2)
    assert "no subnet meets every budget together" in str(info.value) and "\n" not in str(info.value)


# ------------------------------------------------------------------------ budgets
@pytest.mark.parametrize(
    "text,ms", [("25ms", 25.0), ("0.5ms", 0.5), ("250us", 0.25), ("250µs", 0.25), (" 3 MS ", 3.0), (".5ms", 0.5)]
)
def test_latency_budgets_parse(text, ms):
    assert parse_latency(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["25", "ms", "0ms", "-1ms", "1e3ms", "25 sec", "25s", "abc", "nan ms", "", "1.2.3ms"])
def test_malformed_latency_budgets_are_one_line_naming_the_forms(text):
    with pytest.raises(BudgetError) as info:
        parse_latency(text)
    message = str(info.value)
    assert "\n" not in message and "25ms, 0.5ms or 250us" in message and repr(text) in message


@pytest.mark.parametrize(
    "text,count",
    [
        ("20M", 20_000_000),
        ("2.5M", 2_500_000),
        ("300K", 300_000),
        ("300k", 300_000),
        ("1.2G", 1_200_000_000),
        ("1200000", 1_200_000),
    ],
)
def test_count_budgets_parse(text, count):
    assert parse_count(text) == count


@pytest.mark.parametrize("text", ["20X", "M", "-5M", "0", "0.0001", "1.5.2M", "", "20 MB", "twenty"])
def test_malformed_count_budgets_are_one_line_naming_the_forms(text):
    with pytest.raises(BudgetError) as info:
        parse_count(text, "params")
    message = str(info.value)
    assert "\n" not in message and "invalid params budget" in message and "20M, 2.5M, 300K" in message


def test_targets_pair_tables_and_budgets():
    assert [(t.table, t.latency_ms) for t in make_targets(["a", "b"], ["1ms", "2ms"])] == [("a", 1.0), ("b", 2.0)]
    assert [t.latency_ms for t in make_targets(["a", "b"], ["500us"])] == [0.5, 0.5]
    assert [(t.table, t.latency_ms) for t in make_targets(["a"], ["1ms", "2ms"])] == [("a", 1.0), ("a", 2.0)]
    assert [t.latency_ms for t in make_targets(["a"], [])] == [None]
    with pytest.raises(OFAEdgeError, match="2 --budget values for 3 --table values"):
        make_targets(["a", "b", "c"], ["1ms", "2ms"])


# ---------------------------------------------------------------------- specialize
FAST = {"population_size": 30, "generations": 20}


def test_specialize_several_targets_with_one_predictor(demo):
    space, table, _ = demo
    predictor = StandInPredictor(space)
    results = specialize(predictor, [Target(DEMO_TABLE, 0.2), Target("tflite-cpu-fp32-mbv3-fmnist", 1.0),
                                     Target(table, 0.35)], seed=0, **FAST)  # fmt: skip
    assert [r.table for r in results] == [DEMO_TABLE, "tflite-cpu-fp32-mbv3-fmnist", table.label]
    for result in results:
        target_table = load_table(result.table) if result.table != table.label else table
        assert result.latency_ms == target_table.predict(space, result.arch) <= result.latency_budget_ms
        assert result.macs == space.macs(result.arch) and result.params == space.params(result.arch)
        assert result.summary["depths"] == list(result.arch.d) and len(result.summary["stages"]) == 5
        assert result.front is not None and result.front.cost.max() <= result.latency_budget_ms
        data = result.to_dict()
        assert json.loads(json.dumps(data))["arch"] == result.arch.to_dict()
        assert data["resolution"] == result.arch.r and data["front"][0]["latency_ms"] > 0
    assert results[0].accuracy <= results[2].accuracy  # a looser budget on the same table does no worse


def test_infeasible_budget_is_one_line_with_the_tables_range(demo):
    space = demo[0]
    with pytest.raises(OFAEdgeError) as info:
        specialize(StandInPredictor(space), [Target(DEMO_TABLE, 0.3), Target(DEMO_TABLE, 0.05)], **FAST)
    assert str(info.value) == (
        f"budget 0.05 ms is below the fastest subnet of table {DEMO_TABLE} (0.143 ms); feasible: 0.143-0.608 ms"
    )
    with pytest.raises(OFAEdgeError, match=r"^budget 0\.143 ms is below .* \(0\.143021 ms\); feasible: 0\.143-0\.608"):
        specialize(StandInPredictor(space), [Target(DEMO_TABLE, 0.143)], **FAST)
    with pytest.raises(OFAEdgeError, match=r"^MACs budget 1M is below the smallest subnet of space mbv3-fmnist"):
        specialize(StandInPredictor(space), [Target(DEMO_TABLE, 0.3)], macs=1_000_000, **FAST)


def test_loose_budget_notes_that_the_space_fits_and_returns_the_most_accurate(demo):
    space, _, model = demo
    predictor = StandInPredictor(space, seed=5)
    loose, tight = specialize(predictor, [Target(DEMO_TABLE, 50.0), Target(DEMO_TABLE, 0.2)], seed=3, **FAST)
    assert any("whole space fits" in note and "most accurate" in note for note in loose.notes)
    assert not tight.notes
    unconstrained = evolution_search(space, predictor, cost=model, seed=3, **FAST)
    assert loose.arch == unconstrained.arch and loose.accuracy == unconstrained.accuracy >= tight.accuracy


def test_specialize_nsga2(demo):
    space, table, _ = demo
    (result,) = specialize(StandInPredictor(space), [Target(DEMO_TABLE, 0.25)], algorithm="nsga2", **FAST)
    assert table.predict(space, result.arch) <= 0.25 and result.accuracy == result.front.accuracy.max()
    _assert_nondominated(result.front)
    with pytest.raises(OFAEdgeError, match="unknown search algorithm 'annealing'"):
        specialize(StandInPredictor(space), [Target(DEMO_TABLE, 0.25)], algorithm="annealing")


def test_specialize_w10_at_the_tables_resolutions(w10):
    space, table, _ = w10
    (result,) = specialize(StandInPredictor(space), [Target(W10_TABLE, 3.0)], **FAST)
    assert result.arch.r in (160, 224) and table.predict(space, result.arch) <= 3.0
    assert any("covers resolutions 160, 224" in note for note in result.notes)


def test_plot_and_outputs_are_written(demo, tmp_path):
    from ofa_edge.search.specialize import write_outputs

    space = demo[0]
    results = specialize(StandInPredictor(space), [Target(DEMO_TABLE, 0.3), Target(DEMO_TABLE, 0.3)], **FAST)
    last = write_outputs(results, tmp_path, {"args": {"x": 1}})
    files = sorted(p.name for p in tmp_path.iterdir())
    stem = f"{DEMO_TABLE}-0.3ms"
    assert files == sorted([f"{stem}.json", f"{stem}.png", f"{stem}-2.json", f"{stem}-2.png", "last.json"])
    assert (tmp_path / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_arch(tmp_path / f"{stem}.json") == results[0].arch
    recorded = json.loads((tmp_path / "last.json").read_text())
    assert recorded == last and recorded["args"] == {"x": 1} and len(recorded["arch_files"]) == 2
    assert Path(recorded["arch_files"][1]) == (tmp_path / f"{stem}-2.json").resolve()


def test_specialize_refuses_a_predictor_of_another_supernet(demo):
    predictor = StandInPredictor(demo[0])
    with pytest.raises(OFAEdgeError, match="the accuracy predictor is for supernet stand-in, not abc123"):
        specialize(predictor, [Target(DEMO_TABLE, 0.3)], supernet="abc123", **FAST)


def test_search_imports_stay_light():
    code = (
        "import sys, ofa_edge.search, ofa_edge.search.specialize, ofa_edge.cli.specialize;"
        "heavy = [m for m in ('pymoo', 'matplotlib') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------------------- CLI
@pytest.fixture
def cli(monkeypatch):
    """Run ``ofa-edge specialize`` (registered on its own app) with a stand-in predictor."""
    app_module = importlib.import_module("ofa_edge.cli.app")  # ofa_edge.cli.app is also the Typer app
    from ofa_edge.cli import specialize as command
    from ofa_edge.cli.common import make_typer
    from ofa_edge.latency import profiling
    from ofa_edge.latency.store import default_cpu_table
    from ofa_edge.search import predictor as predictor_module

    app = make_typer("test app")
    app.command("noop")(lambda: None)  # a group of one command would run it without its name
    command.register_specialize_command(app)
    monkeypatch.setattr(app_module, "app", app)
    monkeypatch.setattr(predictor_module, "demo_predictor_path", lambda: Path("stand-in.predictor"))
    # The default table as found, not calibrated on this CPU first (tests/test_cli_safety.py covers that).
    monkeypatch.setattr(profiling, "table_for_this_cpu", lambda space, **options: (default_cpu_table(space), None))
    monkeypatch.setattr(
        predictor_module,
        "load_predictor",
        lambda path=None, supernet=None: StandInPredictor(get_space("mbv3-fmnist")),
    )

    def run(capsys, *args):
        code = app_module.main(["specialize", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_specialize_json_and_files(cli, capsys, tmp_path, demo):
    space, table, _ = demo
    code, out, err = cli(capsys, "--budget", "300us", "--budget", "0.2ms", "--out", str(tmp_path),
                         "--generations", "15", "--population", "20", "--json")  # fmt: skip
    assert code == 0, err
    payload = json.loads(out)  # exactly one JSON object on stdout
    assert out.count("\n") == 1 and payload["space"] == "mbv3-fmnist" and payload["supernet"] == "demo"
    assert [r["budget_ms"] for r in payload["results"]] == [0.3, 0.2]
    for result in payload["results"]:
        arch = load_arch(result["arch_file"])
        assert arch.to_dict() == result["arch"] and table.predict(space, arch) <= result["budget_ms"]
        assert Path(result["plot"]).read_bytes()[:4] == b"\x89PNG"
        assert {"accuracy", "latency_ms", "macs", "params", "resolution", "depths", "stages", "front"} <= set(result)
    last = json.loads((tmp_path / "last.json").read_text())
    assert last["arch_files"] == [r["arch_file"] for r in payload["results"]]
    assert last["args"]["budgets_ms"] == [0.3, 0.2] and last["args"]["tables"] == [DEMO_TABLE, DEMO_TABLE]


def test_cli_specialize_results_on_stdout_and_logs_on_stderr(cli, capsys, tmp_path):
    code, out, err = cli(capsys, "--table", DEMO_TABLE, "--budget", "0.3ms", "--table", "openvino-cpu-fp32-mbv3-fmnist",
                         "--budget", "0.25ms", "--macs", "20M", "--out", str(tmp_path), "--generations", "10",
                         "--no-plot")  # fmt: skip
    assert code == 0, err
    assert "kernels" in out and "openvino-cpu-fp32-mbv3-fmnist" in out and "recorded in" in err
    assert "kernels" not in err
    assert not list(tmp_path.glob("*.png")) and len(list(tmp_path.glob("*.json"))) == 3


@pytest.mark.parametrize(
    "args,message",
    [
        (["--budget", "25"], "invalid latency budget '25': give a positive number with a unit ms or us"),
        (
            ["--budget", "0.01ms"],
            "budget 0.01 ms is below the fastest subnet of table onnxruntime-cpu-fp32-mbv3-fmnist",
        ),
        (["--macs", "20Q"], "invalid MACs budget '20Q'"),
        (["--budget", "1ms", "--params", "x"], "invalid params budget 'x'"),
        ([], "give a latency --budget"),
        (["--budget", "1ms", "--algorithm", "sa"], "--algorithm must be one of evolution, nsga2"),
        (
            ["--budget", "1ms", "--table", "a", "--table", "b", "--budget", "2ms", "--budget", "3ms"],
            "3 --budget values",
        ),
    ],
)
def test_cli_user_errors_are_one_line(cli, capsys, tmp_path, args, message):
    code, out, err = cli(capsys, *args, "--out", str(tmp_path), "--json")
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


def test_another_supernet_needs_its_own_predictor():
    from ofa_edge.search.predictor import load_predictor

    with pytest.raises(OFAEdgeError, match="needs its own predictor"):
        load_predictor(None, "x.safetensors")


def test_cli_missing_demo_predictor_is_one_line(cli, capsys, tmp_path, monkeypatch):
    from ofa_edge.search import predictor as predictor_module

    monkeypatch.undo()  # the real lookup of the shipped predictor
    monkeypatch.setattr(predictor_module, "DEMO_PREDICTOR", tmp_path / "no-such-predictor.safetensors")
    with pytest.raises(OFAEdgeError, match="accuracy predictor is missing from this install"):
        predictor_module.demo_predictor_path()


def test_cli_w10_with_a_saved_stand_in_predictor(capsys, tmp_path, monkeypatch, w10):
    """A real predictor file for mbv3-w1.0 holding a stand-in ridge model (random coefficients)."""
    predictor_module = pytest.importorskip("ofa_edge.search.predictor")
    app_module = importlib.import_module("ofa_edge.cli.app")  # ofa_edge.cli.app is also the Typer app
    from ofa_edge.cli import specialize as command
    from ofa_edge.cli.common import make_typer

    space, table, _ = w10
    stand_in = StandInPredictor(space, seed=4)
    path = tmp_path / "stand-in.predictor.safetensors"
    predictor_module.AccuracyPredictor(
        "ridge", space, "stand-in-supernet", 70.0, {"coef": stand_in.weights, "bias": np.zeros(1)}
    ).save(path)
    app = make_typer("test app")
    app.command("noop")(lambda: None)
    command.register_specialize_command(app)
    monkeypatch.setattr(app_module, "app", app)
    code = app_module.main(["specialize", "--predictor", str(path), "--table", W10_TABLE, "--budget", "3ms",
                            "--out", str(tmp_path / "out"), "--generations", "15", "--json"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    (result,) = json.loads(out)["results"]
    arch = load_arch(result["arch_file"])
    assert json.loads(out)["space"] == "mbv3-w1.0" and arch.r in (160, 224)
    assert table.predict(space, arch) <= 3.0 and result["accuracy"] == pytest.approx(
        70.0 + space.encode(arch).astype(float) @ stand_in.weights
    )


def test_evolution_predicts_each_distinct_subnet_once(demo):
    """Children that repeat an arch met before (also one that differs only in slots its depth skips)
    are not predicted again; the result lists every distinct arch scored, with its score."""
    space, _, model = demo

    class Counting(StandInPredictor):
        def __init__(self, space) -> None:
            super().__init__(space)
            self.rows: list[bytes] = []

        def predict_features(self, features):
            self.rows.extend(row.tobytes() for row in features)
            return super().predict_features(features)

    predictor = Counting(space)
    result = evolution_search(space, predictor, [Budget(model, 0.3)], population_size=40, generations=30, seed=1)
    assert len(predictor.rows) == len(set(predictor.rows)) == len(result.population)
    assert result.evaluations > len(result.population)  # the children repeated archs: those were looked up
    expected = StandInPredictor(space).predict_features(P.encode(space, result.population))
    np.testing.assert_allclose(result.scores, expected)
    # Two archs that differ only in a slot their depth skips (stage 0 at depth 2, slot 2): one prediction.
    genes = result.population.take([0]).genes.copy()
    genes[0, 2 * space.num_slots] = space.depth_choices.index(2)
    other = genes.copy()
    other[0, 2] = (genes[0, 2] + 1) % len(space.kernel_choices)
    memo, before = ScoreMemo(predictor, space), len(predictor.rows)
    scores = memo(P.Population(np.concatenate([genes, other])))
    assert len(predictor.rows) == before + 1 and scores[0] == scores[1]
