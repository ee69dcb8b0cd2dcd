"""OFA-ResNet latency units, tables, profiling and validation (real onnxruntime measurements)."""

from __future__ import annotations

import itertools
import json
import random

import pytest
import torch

from ofa_edge import get_space
from ofa_edge.cli import main
from ofa_edge.errors import ArchError
from ofa_edge.latency.table import LatencyTable, TableError, load_table
from ofa_edge.latency.unit_models import build_unit, example_input
from ofa_edge.latency.units import arch_units, space_corners, space_units
from ofa_edge.nn.resnet import OFAResNet
from ofa_edge.profilers.base import BackendInfo, Measurement

FMNIST = get_space("resnet50-fmnist")
RES = 20  # the smallest demo resolution keeps the profile short


def _info() -> BackendInfo:
    return BackendInfo("onnxruntime", "1.0", "CPU", "test cpu", 1, "fp32")


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("space", [FMNIST, get_space("resnet50")], ids=lambda s: s.name)
def test_units_follow_the_subnet_one_per_cost_term(space):
    keys = [u.key for u in space_units(space)]
    assert len(keys) == len(set(keys))
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(100)]
    archs += [a for r in space.resolutions for a in space_corners(space, r).values()]
    for arch in archs:
        units = arch_units(space, arch)
        specs = space.block_specs(arch)
        assert len(units) == 1 + len(specs) + 2
        assert [u.kind for u in units] == ["ResNetStem", *["bottleneck"] * len(specs), "AvgPool2D", "Logits"]
        assert [u.block for u in units[1:-2]] == specs and units[0].stem == space.stem_spec(arch)
        assert (units[-2].in_channels, units[-1].in_channels) == (space.classifier_in_features(arch),) * 2
        assert units[-1].out_channels == space.num_classes
        # each unit's output is the next one's input
        for before, after in itertools.pairwise(units):
            assert (before.out_size, before.out_channels) == (after.in_size, after.in_channels)
        assert {u.key for u in units} <= set(keys)
        # distinct shapes have distinct keys
        by_key: dict[str, object] = {}
        for unit in units:
            assert by_key.setdefault(unit.key, unit.stem or unit.block or unit) == (unit.stem or unit.block or unit)


def test_stem_key_reads_only_its_own_choices():
    arch = FMNIST.max_arch(28)
    stem = arch_units(FMNIST, arch)[0]
    assert stem.key == "ResNetStem-input:28x28x1-output:28x28x16-mid:8-middle:1-pool:0"
    skipped = arch_units(FMNIST, FMNIST.min_arch(28))[0]
    assert skipped.key == "ResNetStem-input:28x28x1-output:28x28x16-mid:8-middle:0-pool:0"
    first = arch_units(FMNIST, arch)[1]
    assert first.key == "bottleneck-input:28x28x16-output:28x28x64-mid:24-stride:1-downsample:1"
    assert [u.key for u in arch_units(FMNIST, arch)[-2:]] == [
        "AvgPool2D-input:4x4x512-output:1x1x512",
        "Logits-input:1x1x512-output:10",
    ]


def test_corners_are_the_min_and_max_of_each_dimension():
    corners = FMNIST.corner_archs(24)
    assert len(corners) == 8 and len(set(corners.values())) == 8
    assert corners["d0-e0.2-w0.65"] == FMNIST.min_arch(24)
    assert corners["d2-e0.35-w1.0"] == FMNIST.max_arch(24)
    for arch in corners.values():
        FMNIST.validate(arch)


def _perturbed_supernet(space) -> OFAResNet:
    """A supernet whose BatchNorms all matter (random affine parameters and running statistics)."""
    torch.manual_seed(0)
    net = OFAResNet(space)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if name.endswith(("bn.weight", "running_var")):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=g))
            elif name.endswith(("bias", "running_mean")):
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=g))
    return net.double().eval()


@pytest.mark.parametrize(
    ("space", "resolution"), [(FMNIST, 24), (get_space("resnet50"), 128)], ids=["resnet50-fmnist", "resnet50"]
)
def test_units_with_the_subnets_weights_compose_to_the_subnet(space, resolution):
    net = _perturbed_supernet(space)
    rng = random.Random(3)
    archs = [space.max_arch(resolution), space.min_arch(resolution), *(space.sample(rng) for _ in range(2))]
    for arch in archs:
        arch = type(arch)(arch.d, arch.e, arch.w, resolution)
        subnet = net.get_subnet(arch).eval()
        x = torch.randn(1, space.in_channels, resolution, resolution, dtype=torch.float64)
        with torch.no_grad():
            expected = subnet(x)
        units = arch_units(space, arch)
        modules = [build_unit(space, unit).double() for unit in units]
        stem_state = {k: v for k, v in subnet.state_dict().items() if k.startswith("input_stem.")}
        modules[0].load_state_dict(stem_state)
        for module, block in zip(modules[1:-2], subnet.blocks, strict=True):
            module.load_state_dict(block.state_dict())
        modules[-1].load_state_dict(subnet.classifier.state_dict())
        with torch.no_grad():
            for unit, module in zip(units, modules):
                assert tuple(x.shape) == unit.input_shape
                assert tuple(example_input(unit).shape) == unit.input_shape
                x = module(x)
        torch.testing.assert_close(x, expected, rtol=1e-10, atol=1e-10)


def test_an_arch_of_another_family_is_one_clear_line():
    mbv3 = get_space("mbv3-fmnist")
    with pytest.raises(ArchError, match="not an arch of space 'resnet50-fmnist'.*d, e, w, r") as info:
        arch_units(FMNIST, mbv3.max_arch())
    assert "\n" not in str(info.value)
    with pytest.raises(ArchError, match="not an arch of space 'mbv3-fmnist'.*ks, e, d, r") as info:
        arch_units(mbv3, FMNIST.max_arch())
    assert "\n" not in str(info.value)
    with pytest.raises(ArchError, match="d, e, w, r") as info:  # a dict is read as the space's own arch
        arch_units(FMNIST, mbv3.max_arch().to_dict())
    assert "\n" not in str(info.value)


def test_table_round_trips_a_resnet_space_and_prices_by_its_units(tmp_path):
    table = LatencyTable.new(FMNIST, _info(), list(FMNIST.resolutions))
    for unit in space_units(FMNIST):
        table.add(unit.key, Measurement(0.1, 0.09, 0.11, 20))
    table.complete = True
    table.save(tmp_path / "t.json")
    loaded = load_table(tmp_path / "t.json")
    assert loaded.space() == FMNIST and type(loaded.space()) is type(FMNIST)
    arch = FMNIST.sample(5)
    assert loaded.predict(FMNIST, arch) == pytest.approx(0.1 * len(arch_units(FMNIST, arch)))
    with pytest.raises(TableError, match="differs in"):
        loaded.check_space(get_space("mbv3-fmnist"))
    # a supernet of fewer classes is priced with the table's classifier (an upper bound)
    assert loaded.pricing_space(FMNIST.with_classes(5)) == FMNIST


@pytest.mark.slow
def test_profile_predict_validate_resnet(capsys, tmp_path):
    table_path = tmp_path / "resnet.json"
    code, out, err = _run(capsys, "profile", "--space", "resnet50-fmnist", "--resolutions", str(RES), "--out",
                          str(table_path), "--runs", "5", "--warmup", "1", "--rounds", "2",
                          "--calibration-samples", "6", "--json")  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert summary["entries"] == len(space_units(FMNIST, (RES,))) and summary["resolutions"] == [RES]
    assert summary["calibration"]["points"] == 6 + 8  # the random subnets and the 8 corners
    table = load_table(table_path)
    assert table.complete and table.space() == FMNIST
    rng = random.Random(0)
    for _ in range(20):
        arch = FMNIST.sample(rng)
        arch = type(arch)(arch.d, arch.e, arch.w, RES)
        assert table.predict(FMNIST, arch) > 0 and table.unit_sum(FMNIST, arch) > 0

    arch_path = tmp_path / "arch.json"
    arch_path.write_text(json.dumps(FMNIST.max_arch(RES).to_dict()))
    code, out, err = _run(capsys, "latency", "predict", "--table", str(table_path), "--arch", str(arch_path),
                          "--json", "--breakdown")  # fmt: skip
    assert code == 0, err
    predicted = json.loads(out)
    assert predicted["calibrated"] and predicted["predicted_ms"] > 0
    assert len(predicted["entries"]) == len(arch_units(FMNIST, FMNIST.max_arch(RES)))

    code, out, err = _run(capsys, "latency", "validate", "--table", str(table_path), "--samples", "3", "--runs",
                          "5", "--rounds", "2", "--json")  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["samples"] == 3 and {"uncalibrated", "calibrated"} <= set(result)
    assert {c["name"] for c in result["corners"]["subnets"]} == {f"{name}@{RES}" for name in FMNIST.corner_archs(RES)}
    assert 0 <= result["calibrated"]["within_10pct"] <= 1
    assert load_table(table_path).validation["samples"] == 3

    # an arch of the other family is refused in one line
    mbv3_arch = tmp_path / "mbv3.json"
    mbv3_arch.write_text(json.dumps(get_space("mbv3-fmnist").max_arch(RES).to_dict()))
    code, _, err = _run(capsys, "latency", "predict", "--table", str(table_path), "--arch", str(mbv3_arch))
    assert code == 2 and err.count("\n") == 1 and "d, e, w, r" in err
