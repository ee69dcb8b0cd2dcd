"""Lookup-table units, schema, prediction, calibration and the official YAML import."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from ofa_edge import get_space
from ofa_edge.latency.fidelity import fidelity
from ofa_edge.latency.official import import_official_tables
from ofa_edge.latency.table import (
    Calibration,
    LatencyTable,
    TableError,
    load_table,
)
from ofa_edge.latency.unit_models import build_unit
from ofa_edge.latency.units import arch_units, space_units
from ofa_edge.profilers.base import BackendInfo, Measurement, summarize

FMNIST = get_space("mbv3-fmnist")
W10 = get_space("mbv3-w1.0")


def _info(**changes: object) -> BackendInfo:
    fields = {"backend": "onnxruntime", "version": "1.0", "device": "CPU", "device_detail": "test cpu",
              "threads": 1, "precision": "fp32"}  # fmt: skip
    fields.update(changes)
    return BackendInfo(**fields)  # type: ignore[arg-type]


def _full_table(space=FMNIST, value: float = 0.1) -> LatencyTable:
    table = LatencyTable.new(space, _info(), list(space.resolutions))
    for unit in space_units(space):
        table.add(unit.key, Measurement(value, value * 0.9, value * 1.1, 20))
    table.complete = True
    return table


def test_unit_keys_follow_the_official_format():
    # The key string documented for the official tables: w1.0, stage 1, first block, k3, e3, 224 px.
    arch = W10.max_arch(224)
    arch = type(arch)((3,) * 20, (3,) * 20, (4,) * 5, 224)
    keys = [u.key for u in arch_units(W10, arch)]
    assert keys[0] == "Conv-input:224x224x3-output:112x112x16"
    assert keys[1] == "expanded_conv-input:112x112x16-output:112x112x16-expand:16-kernel:3-stride:1-idskip:1-se:0-hs:0"
    assert keys[2] == "expanded_conv-input:112x112x16-output:56x56x24-expand:48-kernel:3-stride:2-idskip:0-se:0-hs:0"
    assert keys[-4:] == [
        "Conv_1-input:7x7x160-output:7x7x960",
        "AvgPool2D-input:7x7x960-output:1x1x960",
        "Conv_2-input:1x1x960-output:1x1x1280",
        "Logits-input:1x1x1280-output:1000",
    ]


@pytest.mark.parametrize("space", [FMNIST, W10], ids=lambda s: s.name)
def test_space_units_cover_every_arch_without_repeats(space):
    units = space_units(space)
    keys = [u.key for u in units]
    assert len(keys) == len(set(keys))
    rng = random.Random(0)
    for _ in range(200):
        arch = space.sample(rng)
        assert {u.key for u in arch_units(space, arch)} <= set(keys)
    # per resolution: stem, first block, 5 stages x 2 positions x 9 (k, e) pairs, 4 head parts
    assert len(space_units(space, (max(space.resolutions),))) == 1 + 1 + 5 * 2 * 9 + 4


def test_units_chain_shapes_like_the_subnet():
    arch = FMNIST.sample(3)
    x = torch.randn(1, 1, arch.r, arch.r)
    for unit in arch_units(FMNIST, arch):
        assert tuple(x.shape[1:]) == (unit.in_channels, unit.in_size, unit.in_size)
        with torch.no_grad():
            x = build_unit(FMNIST, unit)(x)
    assert tuple(x.shape) == (1, FMNIST.num_classes)


def test_table_round_trip_and_prediction(tmp_path):
    table = _full_table()
    path = tmp_path / "t.json"
    table.save(path)
    loaded = load_table(path)
    arch = FMNIST.sample(1)
    n = len(arch_units(FMNIST, arch))
    assert loaded.unit_sum(FMNIST, arch) == pytest.approx(0.1 * n)
    loaded.calibration = Calibration(a=2.0, b=0.5, c=-0.01)
    assert loaded.predict(FMNIST, arch) == pytest.approx(2.0 * 0.1 * n - 0.01 * n + 0.5)
    assert loaded.predict(FMNIST, arch, calibrated=False) == pytest.approx(0.1 * n)


def test_corrupt_or_foreign_table_gives_one_clear_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "ofa-edge/latency-table", "entries": {')
    with pytest.raises(TableError, match="not valid JSON"):
        load_table(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    with pytest.raises(TableError, match="not an ofa-edge latency table"):
        load_table(other)
    data = _full_table().to_dict()
    data["entries"][next(iter(data["entries"]))]["median_ms"] = "fast"
    other.write_text(json.dumps(data))
    with pytest.raises(TableError, match="invalid median_ms"):
        load_table(other)
    with pytest.raises(TableError, match="not found"):
        load_table(tmp_path / "missing.json")


def test_mismatched_request_names_the_difference():
    table = _full_table()
    table.check_request(backend="onnxruntime", precision="fp32", threads=1, device="cpu")
    with pytest.raises(TableError, match=r"precision 'fp32' \(requested 'int8'\)"):
        table.check_request(backend="onnxruntime", precision="int8")
    with pytest.raises(TableError) as raised:
        table.check_request(backend="openvino", threads=2)
    assert "backend 'onnxruntime' (requested 'openvino')" in str(raised.value)
    assert "threads 1 (requested 2)" in str(raised.value)
    with pytest.raises(TableError, match="not 'mbv3-w1.0'"):
        table.check_space(W10)


def test_missing_entry_names_the_block_and_the_table_resolutions():
    table = LatencyTable.new(FMNIST, _info(), [20])
    with pytest.raises(TableError, match=r"no entry for Conv-input:28x28x1.*covers 20"):
        table.unit_sum(FMNIST, FMNIST.max_arch(28))


def test_calibration_recovers_a_known_linear_model():
    rng = np.random.default_rng(0)
    cal = Calibration()
    for _ in range(30):
        s, n = float(rng.uniform(1, 5)), int(rng.integers(16, 27))
        cal.points.append({"sum_ms": s, "units": n, "measured_ms": 1.3 * s - 0.02 * n + 0.4})
    cal.refit()
    assert cal.model == "a*sum+c*units+b"
    assert (cal.a, cal.c, cal.b) == pytest.approx((1.3, -0.02, 0.4), abs=1e-9)


def test_calibration_fits_a_scale_that_drifts_with_resolution():
    """Points whose scale grows with the input resolution (as measured on CPU runtimes): the
    resolution term is kept, recovered exactly, and applied per subnet; a round trip keeps it."""
    rng = np.random.default_rng(2)
    cal = Calibration()
    for _ in range(36):
        s, n, r = float(rng.uniform(0.3, 1.5)), int(rng.integers(16, 27)), int(rng.choice([20, 24, 28]))
        measured = (1.2 + 0.02 * (r - 24)) * s + 0.003 * n + 0.05
        cal.points.append({"arch": {"r": r}, "sum_ms": s, "units": n, "measured_ms": measured})
    cal.refit()
    assert cal.model == "(a+d*(r-r0))*sum+c*units+b" and cal.r0 == 24
    assert (cal.a, cal.d, cal.c, cal.b) == pytest.approx((1.2, 0.02, 0.003, 0.05), abs=1e-9)
    assert cal.apply(1.0, 20, 28) == pytest.approx(1.28 + 0.06 + 0.05)
    with pytest.raises(ValueError, match="resolution"):
        cal.apply(1.0, 20)
    restored = Calibration(**{k: v for k, v in cal.to_dict().items()})
    assert restored.apply(0.7, 18, 20) == cal.apply(0.7, 18, 20)
    assert "r - 24" in cal.describe()


def test_calibration_without_resolutions_keeps_the_three_term_models():
    """Points without an arch (older tables) cannot fit the resolution term; it is not a candidate."""
    cal = Calibration(points=[{"sum_ms": s, "units": 16 + i % 5, "measured_ms": 1.1 * s + 0.1}
                              for i, s in enumerate(np.linspace(0.2, 2, 20))])  # fmt: skip
    cal.refit()
    assert "(a+d*(r-r0))*sum+c*units+b" not in cal.loo_mape and cal.d == 0.0 and cal.r0 == 0.0


def test_calibration_keeps_only_the_terms_that_predict_held_out_points():
    """Proportional data with 3 % noise: extra terms only fit the noise, so the scale alone is kept."""
    rng = np.random.default_rng(1)
    cal = Calibration()
    for _ in range(20):
        s, n = float(rng.uniform(0.2, 1.2)), int(rng.integers(16, 27))
        cal.points.append({"sum_ms": s, "units": n, "measured_ms": 0.9 * s * float(rng.normal(1, 0.03))})
    cal.refit()
    assert cal.model == "a*sum" and (cal.b, cal.c) == (0.0, 0.0)
    assert cal.a == pytest.approx(0.9, abs=0.02)
    assert cal.loo_mape["a*sum"] <= min(cal.loo_mape.values()) * 1.01
    restored = Calibration(cal.a, cal.b, cal.c, cal.points, **{"model": cal.to_dict()["model"]})
    assert restored.apply(1.0, 20) == pytest.approx(cal.apply(1.0, 20))


def test_fidelity_metrics():
    measured = [1.0, 2.0, 3.0, 4.0]
    result = fidelity([1.05, 2.5, 2.9, 4.0], measured)
    assert result["within_10pct"] == 0.75
    assert result["kendall_tau"] == pytest.approx(1.0)
    assert result["mape"] == pytest.approx((0.05 + 0.25 + 1 / 30 + 0) / 4)
    swapped = fidelity([2.0, 1.0, 3.0, 4.0], measured)
    assert swapped["kendall_tau"] == pytest.approx(4 / 6)
    # Errors of 9.9%, 9.5%, 15% and 19.9%: only the first two are within ±10% (a 20% threshold
    # would count all four).
    edge = fidelity([1.099, 2.19, 3.45, 4.796], measured)
    assert edge["within_10pct"] == 0.5


def test_summarize_percentiles():
    m = summarize([float(v) for v in range(1, 102)])
    assert (m.median_ms, m.samples) == (51.0, 101)
    assert m.p10_ms == pytest.approx(11.0) and m.p90_ms == pytest.approx(91.0)


def test_import_official_yaml_tables(tmp_path):
    # Two resolutions in the official format: {key: {count, mean, var}}, means in ms.
    for res in (160, 224):
        lines = [f"{u.key}:\n  count: 20\n  mean: {0.5 + i * 0.01}\n  var: 0.0004\n"
                 for i, u in enumerate(space_units(W10, (res,)))]  # fmt: skip
        (tmp_path / f"{res}_lookup_table.yaml").write_text("".join(lines))
    table = import_official_tables(sorted(tmp_path.glob("*.yaml")), "mbv3-w1.0", "note10")
    assert table.resolutions == [160, 224]
    arch = W10.max_arch(224)
    assert table.predict(W10, arch) > 0
    entry = table.entries["Conv-input:224x224x3-output:112x112x16"]
    assert entry["statistic"] == "mean" and entry["std_ms"] == pytest.approx(0.02) and entry["samples"] == 20
    (tmp_path / "bad_name.yaml").write_text("a: 1\n")
    with pytest.raises(TableError, match="named like 160_lookup_table.yaml"):
        import_official_tables([tmp_path / "bad_name.yaml"], "mbv3-w1.0", "x")
    broken = tmp_path / "96_lookup_table.yaml"
    broken.write_text("key: [unclosed\n")
    with pytest.raises(TableError, match="not valid YAML"):
        import_official_tables([broken], "mbv3-w1.0", "x")


def test_calibration_subnets_that_do_not_follow_the_sums_are_warned():
    """A timing set-up that gives every model the same time (as the stand-in adb replays one
    benchmark_model output) calibrates to "0.000 x sum + 33.2 ms": a table that cannot rank
    subnets. Profiling and calibrating warn about it; a shipped table's points do not trigger it."""
    from ofa_edge.latency.profiling import _warn_if_unranked
    from ofa_edge.latency.table import Calibration, load_table

    shipped = load_table("onnxruntime-cpu-fp32-mbv3-fmnist").calibration
    warnings: list[str] = []
    _warn_if_unranked(shipped, warnings.append)
    assert warnings == []
    flat = Calibration(points=[{"sum_ms": 0.1 * (i + 1), "units": 20, "measured_ms": 33.2} for i in range(11)])
    _warn_if_unranked(flat, warnings.append)
    assert len(warnings) == 1 and "cannot rank subnets" in warnings[0] and "tau nan" in warnings[0]
    reversed_ = Calibration(points=[{"sum_ms": 0.1 * (i + 1), "units": 20, "measured_ms": 5.0 - 0.1 * i}
                                    for i in range(11)])  # fmt: skip
    _warn_if_unranked(reversed_, warnings.append)
    assert len(warnings) == 2 and "tau -1.00" in warnings[1]


def test_calibration_progress_counts_the_requested_subnets_only():
    """`latency calibrate --samples 2` on a table that `profile` calibrated with 3 samples counts
    the requested subnets among the stored points (2 of 2), not every stored point (which would
    read "resuming, 11 of 10 already measured"). Nothing here is measured (every one is stored)."""
    from ofa_edge.latency.profiling import _measure_points

    space = get_space("mbv3-fmnist")
    archs = [space.max_arch(28), space.min_arch(20)]
    points = [{"arch": a.to_dict(), "sum_ms": 1.0, "units": 5, "measured_ms": 1.0}
              for a in [*archs, space.max_arch(20)]]  # fmt: skip
    calls = []
    _measure_points(None, None, space, archs, points, lambda: None, lambda *call: calls.append(call), None)
    assert calls == [(2, 2, "")] and len(points) == 3
