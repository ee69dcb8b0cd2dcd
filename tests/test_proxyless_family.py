"""The OFA-ProxylessNAS family against the reference implementation (pip package ``ofa``).

The same randomised weights, in the official key format, give the reference supernet's outputs
through our supernet and our extracted static subnet (float64); MACs and params equal the
reference's counters on the static net it extracts; channel sorting is the reference's; and the
vectorised search views of the space (genes, encoding, counts) agree with the scalar ones.
"""

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from ofa_edge import get_space
from ofa_edge.cli import main
from ofa_edge.errors import ArchError
from ofa_edge.latency.table import Calibration, LatencyTable
from ofa_edge.latency.unit_models import build_unit
from ofa_edge.latency.units import arch_units, space_units
from ofa_edge.nn.checkpoint import load_supernet
from ofa_edge.nn.supernet import OFAMobileNetV3
from ofa_edge.profilers.base import Measurement
from ofa_edge.search import population as P
from ofa_edge.search.efficiency import LatencyModel
from ofa_edge.space.arch import Arch
from tests.reference_oracle import require_reference_module
from tests.test_cli_train import idx_dir  # noqa: F401  (a fixture)
from tests.test_latency_table import _info

SPACE = "proxyless-w1.3"


def _reference(seed: int, classes: int = 1000):
    module = require_reference_module("ofa.imagenet_classification.elastic_nn.networks.ofa_proxyless")
    ref = module.OFAProxylessNASNets(n_classes=classes, bn_param=(0.1, 1e-3), dropout_rate=0, width_mult=1.3,
                                     ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in ref.state_dict().items():
            if not tensor.dtype.is_floating_point:
                continue
            if "running_var" in name:
                tensor.copy_(torch.rand(tensor.shape, generator=g) + 0.5)
            elif "matrix" in name:
                tensor.add_(0.05 * torch.randn(tensor.shape, generator=g))
            else:
                tensor.copy_(0.2 * torch.randn(tensor.shape, generator=g))
    return ref.eval()


def _official_file(ref, tmp_path, key_form: str):
    """The reference's weights as an official checkpoint: its own names, the old block name
    (``mobile_inverted_conv``), or the static-module names its loader also accepts."""
    state = ref.state_dict()
    if key_form == "old":
        state = {k.replace(".conv.", ".mobile_inverted_conv.", 1) if k.startswith("blocks.") else k: v
                 for k, v in state.items()}  # fmt: skip
    elif key_form == "static":
        state = {re.sub(r"(^|\.)conv\.conv\.weight", r"\1conv.weight", k.replace(".bn.bn.", ".bn.")): v
                 for k, v in state.items()}  # fmt: skip
    path = tmp_path / "ofa_proxyless.pth"
    torch.save({"state_dict": state}, path)
    return path


def _random_archs(space, count: int, seed: int, resolutions=(128, 160, 224)):
    rng = random.Random(seed)
    archs = [space.max_arch(224), space.min_arch(128)]
    archs += [Arch(a.ks, a.e, a.d, rng.choice(resolutions)) for a in (space.sample(rng) for _ in range(count))]
    return archs


@pytest.mark.parametrize("key_form", ["current", "old", "static"])
def test_supernet_and_subnet_match_the_reference(tmp_path, key_form):
    ref = _reference(seed=0)
    net = load_supernet(_official_file(ref, tmp_path, key_form))  # the space is recognised from the shapes
    assert net.space.name == SPACE
    ref.double()
    net.double().eval()
    for seed, arch in enumerate(_random_archs(net.space, 4, seed=1)):
        net.set_active(arch)
        ref.set_active_subnet(ks=list(arch.ks), e=list(arch.e), d=list(arch.d))
        x = torch.randn(2, 3, arch.r, arch.r, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            expected = ref(x)
            torch.testing.assert_close(net(x), expected, rtol=1e-9, atol=1e-9)
            torch.testing.assert_close(net.get_subnet()(x), expected, rtol=1e-9, atol=1e-9)


def test_parameter_counts_and_macs_match_the_reference_counters():
    ref = _reference(seed=2)
    utils = require_reference_module("ofa.utils")
    space = get_space(SPACE)
    assert space.supernet_params() == sum(p.numel() for p in ref.parameters())
    for arch in _random_archs(space, 5, seed=3):
        ref.set_active_subnet(ks=list(arch.ks), e=list(arch.e), d=list(arch.d))
        static = ref.get_active_subnet()
        counted = utils.count_net_flops(static, (1, 3, arch.r, arch.r))
        assert abs(counted - space.macs(arch)) <= 1e-6 * counted  # the reference sums in float32
        assert utils.count_parameters(static) == space.params(arch)


@pytest.mark.parametrize("stage, tiers", [(0, ()), (1, (4, 6))])
def test_channel_sorting_is_the_references(tmp_path, stage, tiers):
    ref = _reference(seed=4, classes=10)
    net = load_supernet(_official_file(ref, tmp_path, "current"), space=get_space(SPACE).with_classes(10))
    ref.re_organize_middle_weights(expand_ratio_stage=stage)
    net.sort_channels(tiers)
    ref.double()
    net.double().eval()
    for seed, arch in enumerate(_random_archs(net.space, 3, seed=5, resolutions=(128,))):
        net.set_active(arch)
        ref.set_active_subnet(ks=list(arch.ks), e=list(arch.e), d=list(arch.d))
        x = torch.randn(1, 3, arch.r, arch.r, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            torch.testing.assert_close(net(x), ref(x), rtol=1e-9, atol=1e-9)


def test_the_last_stage_has_one_block():
    space = get_space(SPACE)
    assert space.num_slots == 21 and space.num_stages == 6
    assert {space.sample(seed).d[-1] for seed in range(20)} == {1}
    arch = space.max_arch()
    with pytest.raises(ArchError, match=r"arch field 'd' index 5: 4 is not allowed .*\(allowed: 1\)"):
        space.validate(Arch(arch.ks, arch.e, (4,) * 6, arch.r))
    with pytest.raises(ArchError, match="'ks' has 20 entries; space proxyless-w1.3 needs 21"):
        space.validate(Arch(arch.ks[:20], arch.e, arch.d, arch.r))


def test_population_views_agree_with_the_scalar_space():
    space = get_space("proxyless-fmnist")
    archs = [space.sample(seed) for seed in range(40)] + [space.max_arch(), space.min_arch()]
    pop = P.from_archs(space, archs)
    assert P.to_archs(space, pop) == archs
    assert P.macs(space, pop).tolist() == [space.macs(a) for a in archs]
    assert P.params(space, pop).tolist() == [space.params(a) for a in archs]
    np.testing.assert_array_equal(P.encode(space, pop), np.stack([space.encode(a) for a in archs]))
    sampled = P.sample(space, 200, np.random.default_rng(0))
    assert set(space.genome.depth_values[-1, space.genome.part(sampled.genes, "d")[:, -1]]) == {1}
    assert all(space.validate(a) for a in P.to_archs(space, sampled))


# ------------------------------------------------------------------ the chain
FMNIST = "proxyless-fmnist"


def test_units_cover_every_arch_and_chain_like_the_subnet():
    space = get_space(FMNIST)
    keys = [u.key for u in space_units(space)]
    assert len(keys) == len(set(keys))
    # per resolution: stem, first block, 5 stages x 2 positions x 9 (k, e) pairs, the one-block
    # last stage's 9, and the head's three units (no feature mix)
    assert len(space_units(space, (28,))) == 1 + 1 + 5 * 2 * 9 + 9 + 3
    for seed in range(30):
        assert {u.key for u in arch_units(space, space.sample(seed))} <= set(keys)
    net = OFAMobileNetV3(space).eval()
    arch = space.sample(7)
    subnet = net.get_subnet(arch)
    x = torch.randn(1, 1, arch.r, arch.r)
    expected = subnet(x)
    # the units, each a module of its own with the subnet's weights, compose to the subnet
    modules = [build_unit(space, unit) for unit in arch_units(space, arch)]
    modules[0].load_state_dict(subnet.first_conv.state_dict())
    for module, block in zip(modules[1:], subnet.blocks):
        module.load_state_dict(block.state_dict())
    modules[-3].load_state_dict(subnet.final_expand_layer.state_dict())
    modules[-1].linear.load_state_dict(subnet.classifier.linear.state_dict())
    with torch.no_grad():
        for module in modules:
            x = module(x)
    torch.testing.assert_close(x, expected)


def test_vectorised_latency_and_its_extremes_equal_the_tables_own(tmp_path):
    space = get_space(FMNIST)
    rng = random.Random(0)
    table = LatencyTable.new(space, _info(), list(space.resolutions))
    for unit in space_units(space):
        value = rng.uniform(0.01, 0.1)
        table.add(unit.key, Measurement(value, value * 0.9, value * 1.1, 20))
    table.complete = True
    table.calibration = Calibration(a=1.1, b=0.02, c=-0.001)
    model = LatencyModel(table, space)
    archs = [space.sample(seed) for seed in range(300)]
    predicted = model.predict(P.from_archs(space, archs))
    np.testing.assert_array_equal(predicted, [table.predict(space, a) for a in archs])
    low, high = model.range()
    assert low <= predicted.min() and high >= predicted.max()
    assert table.predict(space, P.to_archs(space, model.extreme(True))[0]) == pytest.approx(low)


@pytest.mark.slow
def test_a_quick_trained_supernet_exports_onnx_fp32_and_int8_that_verify(capsys, tmp_path, idx_dir):  # noqa: F811
    run = tmp_path / "run"
    code = main(["train", "--space", FMNIST, "--schedule", "quick", "--data", "mnist", "--data-dir", str(idx_dir),
                 "--out", str(run), "--threads", "1", "--json", "--no-report"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert load_supernet(run / "supernet.safetensors").space.name == FMNIST
    arch = tmp_path / "arch.json"
    assert main(["arch", "sample", "--space", FMNIST, "--seed", "3", "--out", str(arch)]) == 0
    capsys.readouterr()
    out = tmp_path / "export"
    code = main(["export", "--supernet", str(run / "supernet.safetensors"), "--arch", str(arch), "--format", "onnx",
                 "--int8", "--test-images", "100", "--out", str(out), "--json"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert result["verification"]["passed"] and {f["precision"] for f in result["files"]} == {"fp32", "int8"}
    card = json.loads((out / f"{Path(result['files'][0]['path']).name}.card.json").read_text())
    assert card["arch"] == Arch.from_dict(json.loads(arch.read_text())).to_dict()


def test_the_official_supernet_is_named_and_says_what_a_search_of_it_needs(capsys):
    assert main(["weights", "list", "--json"]) == 0
    entries = {e["name"]: e for e in json.loads(capsys.readouterr().out)["weights"]}
    assert entries["ofa_proxyless_d234_e346_k357_w1.3"]["space"] == SPACE
    code = main(["specialize", "--supernet", "ofa_proxyless_d234_e346_k357_w1.3", "--budget", "25ms"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "published none" in err and "predictor train" in err


def test_the_proxyless_recipe_fits_its_space():
    from ofa_edge.train.schedule_file import load_schedule_file

    schedule = load_schedule_file(Path(__file__).parent.parent / "recipes" / "proxyless-short.yaml")
    schedule.check_space(get_space(FMNIST))
    assert [p.name for p in schedule.phases] == ["full", "kernel", "depth-1", "depth-2", "expand-1", "expand-2"]
