"""Fast unit tests written against mutants that survived ``bench/mutation.py``: each pins a
behaviour of the code that decides what ships (BatchNorm recalibration, the latency calibration,
budget parsing, official checkpoint key names) that the other fast tests left open.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ofa_edge.export import staging
from ofa_edge.latency.table import Calibration
from ofa_edge.nn.bn_calibration import _BatchStats, recalibrate_bn
from ofa_edge.search.budget import BudgetError, format_count, format_ms, parse_count


# ------------------------------------------------------------------ BatchNorm recalibration
class _PartialBN(nn.BatchNorm2d):
    """A BatchNorm that normalises only its first ``active`` channels (as the supernet's do)."""

    active = 2

    def forward(self, x):
        k = x.shape[1]
        return F.batch_norm(x, self.running_mean[:k], self.running_var[:k], self.weight[:k], self.bias[:k],
                            self.training, self.momentum, self.eps)  # fmt: skip


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.BatchNorm2d(3)  # first in module order, never reached
        self.bn = nn.BatchNorm2d(2)
        self.partial = _PartialBN(4)

    def forward(self, x):
        return self.partial(self.bn(x))


def _batches(sizes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, 2, 3, 3, generator=g, dtype=torch.float64) * (i + 1) + i for i, n in enumerate(sizes)]


def _expected(images):
    mean = images.mean(dim=(0, 2, 3))
    return mean, images.var(dim=(0, 2, 3), unbiased=False)


def _net():
    net = _Net().double()
    for bn in (net.unused, net.bn, net.partial):
        bn.running_mean.fill_(7.0)
        bn.running_var.fill_(9.0)
        bn.num_batches_tracked.fill_(5)
    return net


def test_recalibration_weights_batches_by_their_size():
    net = _net().eval()
    batches = _batches([4, 2, 6])
    assert recalibrate_bn(net, batches) == 12
    # per batch mean and biased variance, averaged with the batch sizes as weights
    mean = sum(b.mean(dim=(0, 2, 3)) * len(b) for b in batches) / 12
    var = sum(b.var(dim=(0, 2, 3), unbiased=False) * len(b) for b in batches) / 12
    torch.testing.assert_close(net.bn.running_mean, mean, rtol=0, atol=1e-12)
    torch.testing.assert_close(net.bn.running_var, var, rtol=0, atol=1e-12)


def test_recalibration_stops_at_max_images_inside_a_batch_and_pulls_no_more():
    net = _net()
    pulled = []

    def batches():
        for i, b in enumerate(_batches([4, 4, 4, 4])):
            pulled.append(i)
            yield b

    assert recalibrate_bn(net, batches(), max_images=6) == 6
    assert pulled == [0, 1]  # the second batch completes the images: the third is never read
    images = torch.cat(_batches([4, 4]))
    first, second = images[:4], images[4:6]
    mean = (first.mean(dim=(0, 2, 3)) * 4 + second.mean(dim=(0, 2, 3)) * 2) / 6
    torch.testing.assert_close(net.bn.running_mean, mean, rtol=0, atol=1e-12)

    pulled.clear()
    assert recalibrate_bn(_net(), batches(), max_images=8) == 8
    assert pulled == [0, 1]


def test_recalibration_reads_image_label_pairs_and_single_images():
    batches = _batches([3, 5])
    plain, pairs, lists = _net(), _net(), _net()
    recalibrate_bn(plain, batches)
    assert recalibrate_bn(pairs, [(b, torch.zeros(len(b))) for b in batches]) == 8
    assert recalibrate_bn(lists, [[b, torch.zeros(len(b))] for b in batches]) == 8
    for net in (pairs, lists):
        torch.testing.assert_close(net.bn.running_mean, plain.bn.running_mean, rtol=0, atol=0)
        torch.testing.assert_close(net.bn.running_var, plain.bn.running_var, rtol=0, atol=0)
    one = _net()
    assert recalibrate_bn(one, _batches([1, 3])) == 4  # a batch of one image counts
    mean, _ = _expected(torch.cat(_batches([1, 3])))
    torch.testing.assert_close(one.bn.running_mean, mean, rtol=0, atol=1e-12)


def test_recalibration_leaves_unreached_layers_channels_and_counters_alone():
    net = _net()
    recalibrate_bn(net, _batches([5]))
    assert torch.all(net.unused.running_mean == 7.0) and torch.all(net.unused.running_var == 9.0)
    # the partial BN saw 2 of its 4 channels: those are set, the others keep their statistics
    assert torch.all(net.partial.running_mean[2:] == 7.0) and torch.all(net.partial.running_var[2:] == 9.0)
    assert not torch.any(net.partial.running_mean[:2] == 7.0)
    for bn in (net.unused, net.bn, net.partial):
        assert bn.num_batches_tracked.item() == 5
    for bn in (net.unused, net.bn, net.partial):
        assert not bn._forward_hooks  # the hooks are gone


def test_recalibration_restores_the_mode_and_computes_no_gradients():
    net = _net().train()
    recalibrate_bn(net, _batches([3]))
    assert net.training and net.bn.training
    net.eval()
    recalibrate_bn(net, _batches([3]))
    assert not net.training and not net.bn.training and not net.partial.training
    assert net.bn.running_mean.grad_fn is None


def test_recalibration_without_images_is_an_error_and_restores_the_mode():
    net = _net().eval()
    with pytest.raises(ValueError, match="^BatchNorm recalibration needs at least one image$"):
        recalibrate_bn(net, [])
    assert not net.training
    with pytest.raises(ValueError, match="needs at least one image"):
        recalibrate_bn(net, _batches([0, 3]))
    assert torch.all(net.bn.running_mean == 7.0)
    with pytest.raises(ValueError, match="needs at least one image"):
        recalibrate_bn(net, _batches([3]), max_images=0)
    assert not any(bn._forward_hooks for bn in (net.unused, net.bn, net.partial))


def test_batch_stats_accumulate_in_float64_weighted_by_count():
    stats = _BatchStats()
    assert stats.count == 0 and stats.mean_sum is None and stats.var_sum is None
    stats.add(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0]), 2)
    stats.add(torch.tensor([4.0, 8.0]), torch.tensor([6.0, 1.0]), 1)
    assert stats.count == 3
    assert stats.mean_sum.dtype == torch.float64 and stats.var_sum.dtype == torch.float64
    torch.testing.assert_close(stats.mean_sum, torch.tensor([6.0, 12.0], dtype=torch.float64), rtol=0, atol=0)
    torch.testing.assert_close(stats.var_sum, torch.tensor([12.0, 9.0], dtype=torch.float64), rtol=0, atol=0)
    big = _BatchStats()
    big.add(torch.tensor([16777216.0]), torch.tensor([0.0]), 1)
    big.add(torch.tensor([1.0]), torch.tensor([0.0]), 1)
    assert big.mean_sum.item() == 16777217.0  # float32 would round this away


def test_batch_stats_hook_measures_the_input_per_channel():
    stats = _BatchStats()
    x = _batches([4])[0]
    stats(nn.Identity(), (x,), x)
    mean, var = _expected(x)
    torch.testing.assert_close(stats.mean_sum, mean * 4, rtol=0, atol=1e-12)
    torch.testing.assert_close(stats.var_sum, var * 4, rtol=0, atol=1e-12)
    assert stats.count == 4


def test_recalibration_uses_2000_images_by_default():
    net = _net()
    images = torch.randn(2500, 2, 2, 2, dtype=torch.float64)
    assert recalibrate_bn(net, [images]) == 2000
    mean, _ = _expected(images[:2000])
    torch.testing.assert_close(net.bn.running_mean, mean, rtol=0, atol=1e-12)


# ------------------------------------------------------------------ latency calibration
def _points(sums, measured, units=20, resolutions=None):
    units = units if isinstance(units, list) else [units] * len(sums)
    points = [{"sum_ms": s, "units": n, "measured_ms": m} for s, n, m in zip(sums, units, measured)]
    for point, r in zip(points, resolutions or []):
        point["arch"] = {"r": r}
    return points


def _fitted(points):
    cal = Calibration(points=points)
    cal.refit()
    return cal


SUMS = [0.5, 0.714, 0.929, 1.143, 1.357, 1.571, 1.786, 2.0]


def test_refit_of_exact_proportional_points_keeps_the_scale_alone():
    cal = _fitted(_points(SUMS[:6], [2 * s for s in SUMS[:6]]))
    assert cal.model == "a*sum"
    assert cal.a == pytest.approx(2.0, abs=1e-12) and (cal.b, cal.c, cal.d, cal.r0) == (0.0, 0.0, 0.0, 0.0)
    assert list(cal.loo_mape) == ["a*sum", "a*sum+b"]  # 6 points: 3 per coefficient


def test_refit_leave_one_out_error_is_relative_to_the_held_out_measurement():
    sums, measured = [1.0, 2.0, 4.0], [1.0, 2.2, 3.6]
    cal = _fitted(_points(sums, measured))
    assert list(cal.loo_mape) == ["a*sum"] and cal.model == "a*sum"
    errors = []
    for held in range(3):
        ratios = [s / m for i, (s, m) in enumerate(zip(sums, measured)) if i != held]
        a = sum(ratios) / sum(r * r for r in ratios)  # least squares on relative error
        errors.append(abs(a * sums[held] - measured[held]) / measured[held])
    assert cal.loo_mape["a*sum"] == pytest.approx(sum(errors) / 3, rel=1e-12)
    ratios = [s / m for s, m in zip(sums, measured)]
    assert cal.a == pytest.approx(sum(ratios) / sum(r * r for r in ratios), rel=1e-12)


def test_refit_of_too_few_points_fits_the_scale_alone():
    cal = _fitted(_points([1.0, 2.0], [1.5, 3.0]))
    assert cal.model == "a*sum" and list(cal.loo_mape) == ["a*sum"]
    assert cal.a == pytest.approx(1.5, abs=1e-12)


def test_refit_candidates_need_three_points_per_coefficient():
    units = [18, 19, 20, 21, 22, 23, 18, 19, 20]
    six = _fitted(_points(SUMS[:6], [s + 0.1 for s in SUMS[:6]], units=units[:6]))
    assert list(six.loo_mape) == ["a*sum", "a*sum+b"]
    nine_sums = [*SUMS, 2.2]
    nine = _fitted(_points(nine_sums, [s + 0.1 for s in nine_sums], units=units))
    assert list(nine.loo_mape) == ["a*sum", "a*sum+b", "a*sum+c*units+b"]


def test_refit_tries_the_count_term_only_where_the_counts_differ():
    measured = [s * 1.1 for s in SUMS + SUMS]
    same = _fitted(_points(SUMS + SUMS, measured, units=20))
    assert list(same.loo_mape) == ["a*sum", "a*sum+b"]
    by_one = _fitted(_points(SUMS + SUMS, measured, units=[20, 21] * 8))
    assert list(by_one.loo_mape) == ["a*sum", "a*sum+b", "a*sum+c*units+b"]


def test_refit_tries_the_resolution_term_only_where_resolutions_differ():
    sums = SUMS + SUMS
    measured = [s * 1.1 for s in sums]
    units = [20, 21] * 8
    same = _fitted(_points(sums, measured, units=units, resolutions=[24] * 16))
    assert list(same.loo_mape) == ["a*sum", "a*sum+b", "a*sum+c*units+b"]
    by_one = _fitted(_points(sums, measured, units=units, resolutions=[24, 24, 25, 25] * 4))
    assert list(by_one.loo_mape) == ["a*sum", "a*sum+b", "a*sum+c*units+b", "(a+d*(r-r0))*sum+c*units+b"]
    some_missing = _points(sums, measured, units=units, resolutions=[20, 28] * 8)
    del some_missing[3]["arch"]
    assert list(_fitted(some_missing).loo_mape) == ["a*sum", "a*sum+b", "a*sum+c*units+b"]


def test_refit_prefers_fewer_terms_only_within_one_percent():
    """The offset model predicts held-out points better by a factor 1.44: it is kept."""
    measured = [0.516, 0.7238, 0.924, 1.1192, 1.3106, 1.5766, 1.762, 1.9701]
    cal = _fitted(_points(SUMS, measured))
    assert 1.01 < cal.loo_mape["a*sum"] / cal.loo_mape["a*sum+b"] < 2.0
    assert cal.model == "a*sum+b" and cal.b != 0.0


def test_calibration_describe_and_coefficients():
    assert Calibration(a=1.369).describe() == "measured = 1.369 x sum"
    full = Calibration(a=1.2, b=0.05, c=0.003, d=0.02, r0=24, model="(a+d*(r-r0))*sum+c*units+b",
                       points=[{}, {}])  # fmt: skip
    assert full.describe() == "measured = (1.200 +0.0200 x (r - 24)) x sum +0.0030 ms x entries +0.050 ms"
    assert Calibration(a=1.2, b=-0.05, c=-0.003).describe() == "measured = 1.200 x sum -0.0030 ms x entries -0.050 ms"
    assert full.coefficients() == {"model": "(a+d*(r-r0))*sum+c*units+b", "a": 1.2, "b": 0.05, "c": 0.003,
                                   "d": 0.02, "r0": 24, "points": 2}  # fmt: skip


# ------------------------------------------------------------------ budgets
def test_count_budget_of_one_is_accepted_and_errors_name_the_quantity():
    assert parse_count("1") == 1
    assert parse_count("0.001K") == 1
    with pytest.raises(BudgetError, match=r"^invalid MACs budget 'x': give a positive count"):
        parse_count("x")
    with pytest.raises(BudgetError, match=r"^invalid params budget '0.4'"):
        parse_count("0.4", "params")


def test_budget_formatting():
    assert format_ms(1.23456) == "1.23 ms"
    assert format_ms(1.23456, 2) == "1.2 ms"
    assert [format_count(v) for v in (1e9, 1.5e9, 1e6, 2.5e6, 1000, 999, 2500, -2e6, 12.4)] == [
        "1G", "1.5G", "1M", "2.5M", "1K", "999", "2.5K", "-2M", "12"]  # fmt: skip
    assert [format_count(v) for v in (999_999, 999_499, 999.6)] == ["1M", "999K", "1K"]  # the suffix after rounding


# ------------------------------------------------------------------ staging
def test_stale_temp_removed_by_another_cleanup_meanwhile_is_no_error(tmp_path, monkeypatch):
    """Two exports into one folder may clean the same dead run's temps at once."""
    stale = tmp_path / ".net.partial-999999999-0123abcd.onnx"
    stale.write_text("x")

    def gone_meanwhile(pid):
        stale.unlink()
        return False

    monkeypatch.setattr(staging, "_alive", gone_meanwhile)
    assert staging.remove_stale_temps(tmp_path) == [stale]


# --------------------------------------------------------------- search feasibility
def test_feasibility_admits_a_subnet_at_its_budget_and_nothing_over_any_budget():
    """The search's feasibility: a subnet exactly at a budget is in, a hair over is out, and every
    budget must hold (latency and MACs together)."""
    import numpy as np

    from ofa_edge import get_space, load_table
    from ofa_edge.search import population as P
    from ofa_edge.search.efficiency import LatencyModel, macs_model
    from ofa_edge.search.evolution import Budget, Constrained

    space = get_space("mbv3-fmnist")
    latency, macs = LatencyModel(load_table("onnxruntime-cpu-fp32-mbv3-fmnist"), space), macs_model(space)
    pop = P.from_archs(space, [space.min_arch(20), space.max_arch(28)])
    small_ms, large_ms = latency.predict(pop)
    small_macs, large_macs = macs.predict(pop)
    rng = np.random.default_rng(0)

    def feasible(*budgets: Budget) -> list[bool]:
        return Constrained(space, list(budgets), rng).feasible(pop).tolist()

    assert feasible(Budget(latency, large_ms)) == [True, True]
    assert feasible(Budget(latency, float(np.nextafter(large_ms, 0)))) == [True, False]
    assert feasible(Budget(latency, small_ms)) == [True, False]
    assert feasible(Budget(latency, float(np.nextafter(small_ms, 0)))) == [False, False]
    assert feasible(Budget(latency, large_ms), Budget(macs, small_macs)) == [True, False]
    assert feasible(Budget(macs, large_macs), Budget(latency, float(np.nextafter(small_ms, 0)))) == [False, False]
    assert feasible() == [True, True]
