"""The OFA-ResNet50 family against the reference implementation (pip package ``ofa``).

The same randomised weights must give the reference supernet's outputs in our supernet and in our
extracted subnet (float64, 1e-9), before and after channel sorting; the space's MACs, params and
predictor encoding must equal the reference's counters and encoder.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ofa_edge.errors import ArchError, CheckpointError, OFAEdgeError
from ofa_edge.nn.resnet import (
    OFAResNet,
    ResNetSubnet,
    load_official_resnet_state,
    resnet_official_key_to_ours,
)
from ofa_edge.search.official_predictor import load_resnet_predictor
from ofa_edge.search.predictor import PredictorError
from ofa_edge.space.resnet import RESNET_SPACE_NAMES, ResNetArch, ResNetSpace, get_resnet_space
from tests.reference_oracle import require_reference_module

RESNET_PREDICTOR = Path(__file__).parent / "fixtures" / "official" / "ofa_resnet50_acc_predictor.pth"

RESNETS = "ofa.imagenet_classification.elastic_nn.networks.ofa_resnets"
CLASSES = 10
# Small inputs keep the float64 runs fast; 33 and 40 px give odd feature sizes (ceil-mode pooling).
SMALL = replace(get_resnet_space("resnet50").with_classes(CLASSES), resolutions=(32, 33, 40, 48))


def _randomise(net: torch.nn.Module, seed: int) -> None:
    """Every parameter and BN buffer random (BN affine and statistics away from 1/0), so that no
    tensor can be dropped or misplaced without changing the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if not tensor.dtype.is_floating_point:
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=g) + 0.5)
            elif name.endswith("running_mean") or name.endswith("bias"):
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=g))
            elif tensor.dim() == 1:  # BN weight
                tensor.copy_(1 + 0.2 * torch.randn(tensor.shape, generator=g))
            else:
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=g) / fan_in**0.5)


def _reference(seed: int):
    module = require_reference_module(RESNETS)  # a missing 'ofa' fails the test, never skips it
    torch.manual_seed(seed)
    ref = module.OFAResNets(
        n_classes=CLASSES,
        dropout_rate=0,
        depth_list=[0, 1, 2],
        expand_ratio_list=[0.2, 0.25, 0.35],
        width_mult_list=[0.65, 0.8, 1.0],
    )
    _randomise(ref, seed)
    return ref.double().eval()


def _ours_from(ref, tmp_path=None, space: ResNetSpace = SMALL) -> OFAResNet:
    """Our supernet with the reference's weights, through an official-style checkpoint file when
    ``tmp_path`` is given."""
    state = {"state_dict": ref.state_dict(), "epoch": 1}
    if tmp_path is not None:
        torch.save(state, tmp_path / "official.pth")
        state = torch.load(tmp_path / "official.pth", map_location="cpu")
    net = OFAResNet(space).double().eval()
    load_official_resnet_state(net, state)
    return net


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Batches of 2 small images: a second thread buys nothing, and on a shared CPU its waiting
    makes these tests many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    ref = _reference(seed=0)
    return ref, _ours_from(ref, tmp_path_factory.mktemp("resnet"))


def _set_reference(ref, arch: ResNetArch) -> None:
    ref.set_active_subnet(d=list(arch.d), e=list(arch.e), w=list(arch.w))


def _archs(space: ResNetSpace, count: int, seed: int) -> list[ResNetArch]:
    """Max and min (stem block kept / skipped), a random arch with either stem, then random ones."""
    rng = random.Random(seed)
    archs = [space.max_arch(), space.min_arch()]
    for stem in (0, 1, 2):
        arch = space.sample(rng)
        archs.append(replace(arch, d=(stem, *arch.d[1:])))
    return archs + [space.sample(rng) for _ in range(count)]


def _input(arch: ResNetArch, seed: int, channels: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, channels, arch.r, arch.r, dtype=torch.float64, generator=g)


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-9, atol=1e-9)


def _assert_all_match(ref, net: OFAResNet, archs: list[ResNetArch], subnets: bool = True) -> None:
    for seed, arch in enumerate(archs):
        net.set_active(arch)
        _set_reference(ref, arch)
        x = _input(arch, seed)
        with torch.no_grad():
            expected = ref(x)
            assert expected.std(0).mean() > 1e-3 * expected.abs().mean()  # the input matters
            _close(net(x), expected)
            if subnets:
                _close(net.get_subnet()(x), expected)
                _close(ref.get_active_subnet().double().eval()(x), expected)


# ------------------------------------------------------------------ network parity
def test_supernet_and_subnet_match_reference(pair):
    ref, net = pair
    _assert_all_match(ref, net, _archs(SMALL, count=3, seed=1))


def test_subnet_has_the_reference_static_layout(pair):
    ref, net = pair
    for arch in _archs(SMALL, count=0, seed=2)[:4]:
        _set_reference(ref, arch)
        subnet = net.get_subnet(arch)
        assert isinstance(subnet, ResNetSubnet) and subnet.arch == arch
        ours = {k: tuple(v.shape) for k, v in subnet.state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in ref.get_active_subnet().state_dict().items()}
        assert ours == theirs
        assert sum(p.numel() for p in subnet.parameters()) == SMALL.params(arch)


def test_official_keys_map_in_both_forms(pair, tmp_path):
    ref, net = pair
    dynamic = ref.state_dict()
    assert sorted(resnet_official_key_to_ours(k) for k in dynamic) == sorted(net.state_dict())
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in ref.parameters())
    static = {_static_form(k): v for k, v in dynamic.items()}
    # the reference's own loader accepts these static names, so they are real checkpoint keys
    probe = _reference(seed=5)
    probe.load_state_dict(static)
    assert all(torch.equal(probe.state_dict()[k], v) for k, v in dynamic.items())
    again = OFAResNet(SMALL).double()
    load_official_resnet_state(again, static)
    assert all(torch.equal(again.state_dict()[k], v) for k, v in net.state_dict().items())


def _static_form(key: str) -> str:
    """The reference loader's renames, inverted (a static ResNet's key for a supernet key)."""
    for long, short in ((".linear.linear.", ".linear."), ("bn.bn.", "bn."), ("conv.conv.weight", "conv.weight")):
        if long in key:
            head, _, tail = key.rpartition(long)
            return head + short + tail
    return key


@pytest.mark.parametrize(
    "key, ours",
    [
        ("input_stem.0.conv.conv.weight", "input_stem.0.conv.weight"),
        ("input_stem.0.conv.weight", "input_stem.0.conv.weight"),
        ("input_stem.0.bn.bn.running_var", "input_stem.0.bn.running_var"),
        ("input_stem.1.conv.conv.conv.weight", "input_stem.1.conv.conv.weight"),
        ("input_stem.1.conv.conv.weight", "input_stem.1.conv.conv.weight"),
        ("input_stem.1.conv.bn.bn.weight", "input_stem.1.conv.bn.weight"),
        ("input_stem.1.conv.bn.weight", "input_stem.1.conv.bn.weight"),
        ("blocks.7.conv2.conv.conv.weight", "blocks.7.conv2.conv.weight"),
        ("blocks.0.downsample.conv.conv.weight", "blocks.0.downsample.conv.weight"),
        ("blocks.14.downsample.bn.num_batches_tracked", "blocks.14.downsample.bn.num_batches_tracked"),
        ("classifier.linear.linear.weight", "classifier.linear.weight"),
        ("classifier.linear.bias", "classifier.linear.bias"),
    ],
)
def test_official_key_map(key, ours):
    assert resnet_official_key_to_ours(key) == ours


def test_bad_checkpoints_are_one_line(pair):
    ref, _ = pair
    state = dict(ref.state_dict())
    cases = {
        "first_conv.conv.weight": ("first_conv.conv.weight", torch.zeros(1)),
        "shape [9]; space resnet50 needs [88]": ("blocks.0.conv1.bn.bn.bias", torch.zeros(9)),
    }
    for expected, (key, tensor) in cases.items():
        with pytest.raises(CheckpointError, match=re.escape(expected)) as info:
            load_official_resnet_state(OFAResNet(SMALL), {**state, key: tensor})
        assert "\n" not in str(info.value)
    del state["blocks.3.conv3.conv.conv.weight"]
    with pytest.raises(CheckpointError, match="blocks.3.conv3.conv.weight"):
        load_official_resnet_state(OFAResNet(SMALL), state)


def test_sorted_channels_match_reference(pair):
    # Changes the shared pair's weights, both nets alike, so other tests still see them in step.
    ref, net = pair
    archs = [replace(arch, r=32) for arch in _archs(SMALL, count=1, seed=4)]
    x, full = _input(SMALL.max_arch(32), 9), SMALL.max_arch(32)
    narrow = replace(full, e=(0.2,) * SMALL.num_slots)
    with torch.no_grad():
        for stage, tiers in ((0, ()), (1, (0.35, 0.25))):
            _randomise(ref, seed=10 + stage)  # as training would, so that each sort has work to do
            load_official_resnet_state(net, ref.state_dict())
            full_before, narrow_before = _output(net, full, x), _output(net, narrow, x)
            ref.re_organize_middle_weights(expand_ratio_stage=stage)
            net.sort_channels(tiers)
            _assert_all_match(ref, net, archs, subnets=stage == 1)
            _close(_output(net, full, x), full_before)  # the full net computes what it did
            assert not torch.allclose(_output(net, narrow, x), narrow_before)  # a narrow one changed


def _output(net: OFAResNet, arch: ResNetArch, x: torch.Tensor) -> torch.Tensor:
    net.set_active(arch)
    return net(x)


# ------------------------------------------------------------------ space parity
def test_widths_match_reference(pair):
    ref, _ = pair
    space = get_resnet_space("resnet50")
    assert space.stem_mid_widths == (24, 24, 32) == tuple(ref.input_stem[0].out_channel_list)
    assert space.stem_out_widths == (40, 48, 64) == tuple(ref.input_stem[2].out_channel_list)
    for stage, indices in enumerate(ref.grouped_block_index):
        assert list(space.stage_slots[stage]) == indices
        assert space.stage_widths(stage) == tuple(ref.blocks[indices[0]].out_channel_list)
    assert [space.max_mid_channels(s) for s in range(4)] == [88, 176, 360, 720]


def test_macs_and_params_match_reference_counters(pair):
    ref, _ = pair
    utils = require_reference_module("ofa.utils")
    table = require_reference_module("ofa.nas.efficiency_predictor.latency_lookup_table").ResNet50LatencyTable
    space = get_resnet_space("resnet50").with_classes(CLASSES)
    for index, arch in enumerate(_archs(space, count=1, seed=5)):
        arch = replace(arch, r=(128, 144, 160)[index % 3])
        _set_reference(ref, arch)
        subnet = ref.get_active_subnet().float()
        counted = utils.count_net_flops(subnet, (1, 3, arch.r, arch.r))
        assert abs(counted - space.macs(arch)) <= 1e-6 * counted  # the reference sums in float32
        tabled = table.count_flops_given_config(ref.get_active_net_config(), arch.r) * 1e6
        assert abs(tabled - space.macs(arch)) <= 1e-6 * tabled
        assert utils.count_parameters(subnet) == space.params(arch)


def test_official_space_counts():
    space = get_resnet_space("resnet50")
    assert space.macs(space.max_arch(224)) / 1e6 == pytest.approx(7491.6, abs=0.1)
    assert space.macs(space.min_arch(224)) / 1e6 == pytest.approx(962.2, abs=0.1)
    assert space.params(space.max_arch()) == sum(p.numel() for p in OFAResNet(space).parameters())


def test_encode_matches_reference_encoder():
    encoder_cls = require_reference_module("ofa.nas.accuracy_predictor.arch_encoder").ResNetArchEncoder
    space = get_resnet_space("resnet50")
    encoder = encoder_cls(
        image_size_list=list(space.resolutions),
        depth_list=[0, 1, 2],
        expand_list=[0.2, 0.25, 0.35],
        width_mult_list=[0.65, 0.8, 1.0],
        base_depth_list=[2, 2, 4, 2],
    )
    assert space.encoding_size == encoder.n_dim == 82
    for arch in _archs(space, count=20, seed=6):
        feature = space.encode(arch)
        assert feature.dtype == np.float32
        np.testing.assert_array_equal(feature, encoder.arch2feature({**arch.to_dict(), "image_size": arch.r}))


def test_the_official_predictor_predicts_as_the_reference(tmp_path):
    module = require_reference_module("ofa.nas.accuracy_predictor")
    space = get_resnet_space("resnet50")
    encoder = module.ResNetArchEncoder(image_size_list=list(space.resolutions), depth_list=[0, 1, 2],
                                       expand_list=[0.2, 0.25, 0.35], width_mult_list=[0.65, 0.8, 1.0],
                                       base_depth_list=[2, 2, 4, 2])  # fmt: skip
    reference = module.AccuracyPredictor(encoder, 400, 3, checkpoint_path=str(RESNET_PREDICTOR), device="cpu")
    ours = load_resnet_predictor(RESNET_PREDICTOR, space, "ofa_resnet50", "ImageNet top-1")
    archs = [space.max_arch(), space.min_arch(), *_archs(space, count=40, seed=9)]
    with torch.no_grad():
        expected = reference.predict_acc([{**a.to_dict(), "image_size": a.r} for a in archs]).numpy()
    predicted = ours.predict(archs)
    np.testing.assert_allclose(predicted, 100.0 * expected.astype(np.float64), atol=1e-4)
    assert 60 < predicted.min() < predicted.max() < 85  # ImageNet top-1 of ResNet50 subnets, in percent
    state = torch.load(RESNET_PREDICTOR, map_location="cpu", weights_only=True)
    torch.save({k: v for k, v in state.items() if k != "base_acc"}, tmp_path / "bad.pth")
    with pytest.raises(PredictorError, match="not an OFA-ResNet50 accuracy predictor"):
        load_resnet_predictor(tmp_path / "bad.pth", space, "ofa_resnet50", "ImageNet top-1")


def test_sample_draws_as_the_reference(pair):
    ref, _ = pair
    saved = random.getstate()
    try:
        for seed in range(5):
            random.seed(seed)
            theirs = ref.sample_active_subnet()
            ours = SMALL.sample(random.Random(seed))
            assert (list(ours.d), list(ours.e), list(ours.w)) == (theirs["d"], theirs["e"], theirs["w"])
            assert ours.d[0] in (0, 2)
    finally:
        random.setstate(saved)


# ------------------------------------------------------------------ arch handling
def test_arch_dict_forms():
    space = get_resnet_space("resnet50")
    arch = space.sample(7)
    assert ResNetArch.from_dict(arch.to_dict()) == arch
    reference_form = {"d": list(arch.d), "e": list(arch.e), "w": list(arch.w), "image_size": [arch.r], "ks": 3}
    assert space.validate(reference_form) == arch
    assert json.loads(json.dumps(arch.to_dict())) == arch.to_dict()


@pytest.mark.parametrize(
    "change, field",
    [
        ({"d": [2, 2, 2, 2]}, "'d' has 4 entries"),
        ({"d": [2, 3, 2, 2, 2]}, "'d' index 1: 3"),
        ({"e": [0.25] * 17}, "'e' has 17"),
        ({"e": [0.25] * 5 + [0.3] + [0.25] * 12}, "'e' index 5: 0.3"),
        ({"w": [0, 1, 2, 3, 0, 0]}, "'w' index 3: 3"),
        ({"w": [0, 1]}, "'w' has 2"),
        ({"r": 100}, "'r': 100"),
        ({"r": [128, 160]}, "'r' must be"),
        ({"d": 2}, "'d' must be a list"),
        ({"e": ["0.2"] * 18}, "'e' must be a list of numbers"),
        ({"w": None}, "'w' must be a list"),
    ],
)
def test_bad_archs_are_one_line(change, field):
    space = get_resnet_space("resnet50")
    data = {**space.max_arch().to_dict(), **change}
    with pytest.raises(ArchError, match=field.replace("[", r"\[")) as info:
        space.validate(data)
    assert "\n" not in str(info.value)


def test_missing_field_and_unknown_space():
    with pytest.raises(ArchError, match="missing field"):
        ResNetArch.from_dict({"d": [2] * 5, "e": [0.2] * 18})
    with pytest.raises(OFAEdgeError, match="known: resnet50, resnet50-fmnist"):
        get_resnet_space("resnet18")


def test_space_config_round_trip():
    for name in RESNET_SPACE_NAMES:
        space = get_resnet_space(name)
        data = json.loads(json.dumps(space.config_dict()))
        assert data["family"] == "resnet"
        assert ResNetSpace.from_config_dict(data) == space
        assert space.with_classes(7).num_classes == 7
    with pytest.raises(OFAEdgeError, match="family 'mbv3'"):
        ResNetSpace.from_config_dict({**get_resnet_space("resnet50").config_dict(), "family": "mbv3"})


# ------------------------------------------------------------------ demo space
def test_fmnist_space_runs_and_extracts():
    utils = require_reference_module("ofa.utils")
    space = get_resnet_space("resnet50-fmnist")
    assert (space.in_channels, space.num_classes, space.resolutions) == (1, 10, (20, 24, 28))
    torch.manual_seed(0)
    net = OFAResNet(space).double()
    _randomise(net, seed=1)
    for seed, arch in enumerate(_archs(space, count=0, seed=8)):
        net.set_active(arch)
        subnet = net.get_subnet()
        x = _input(arch, seed, channels=1)
        for train in (False, True)[: 1 + (seed == 2)]:  # train mode: the same batch statistics
            net.train(train), subnet.train(train)
            with torch.no_grad():
                out = net(x)
                assert out.shape == (2, 10)
                _close(subnet(x), out)
        assert space.block_specs(arch)[-1].output_size == {20: 3, 24: 3, 28: 4}[arch.r]
        counted = utils.count_net_flops(subnet.float(), (1, 1, arch.r, arch.r))
        assert abs(counted - space.macs(arch)) <= 1e-6 * counted
        assert utils.count_parameters(subnet) == space.params(arch)


# ------------------------------------------------------------------ the search's view
@pytest.mark.parametrize("name", RESNET_SPACE_NAMES)
def test_population_views_equal_the_scalar_ones(name):
    from ofa_edge.search import population as P
    from ofa_edge.space.space import get_space

    space = get_space(name)
    archs = [space.sample(seed) for seed in range(300)] + [space.max_arch(), space.min_arch()]
    pop = P.from_archs(space, archs)
    assert P.to_archs(space, pop) == archs
    np.testing.assert_array_equal(P.encode(space, pop), np.stack([space.encode(a) for a in archs]))
    assert P.macs(space, pop).tolist() == [space.macs(a) for a in archs]
    assert P.params(space, pop).tolist() == [space.params(a) for a in archs]
    drawn = P.to_archs(space, P.sample(space, 300, np.random.default_rng(0)))
    assert {a.d[0] for a in drawn} == {0, 2}  # the stem as the reference samples it
    assert all(space.validate(a) == a for a in drawn)


def test_used_genes_tell_apart_exactly_the_distinct_subnets():
    from ofa_edge.search import population as P
    from ofa_edge.space.space import get_space

    space = get_space("resnet50-fmnist")
    arch = replace(space.min_arch(), d=(0, 0, 1, 0, 0))  # stage 0 keeps 2 of its 4 slots
    hidden = replace(arch, e=(arch.e[0], arch.e[1], 0.35, 0.35, *arch.e[4:]))  # only skipped slots differ
    seen = replace(arch, e=(0.35, *arch.e[1:]))
    used = P.used_genes(space, P.from_archs(space, [arch, hidden, seen]))
    assert (used[0] == used[1]).all() and not (used[0] == used[2]).all()


@pytest.mark.parametrize("name", RESNET_SPACE_NAMES)
def test_cost_extremes_are_exact(name):
    """The extremes found by enumerating the shared genes bound every arch, and are reached."""
    from ofa_edge.search import population as P
    from ofa_edge.search.efficiency import macs_model, params_model
    from ofa_edge.space.space import get_space

    space = get_space(name)
    pop = P.sample(space, 3000, np.random.default_rng(1))
    for model, count in ((macs_model(space), space.macs), (params_model(space), space.params)):
        low, high = (model.extreme(flag) for flag in (True, False))
        lo, hi = model.predict(low)[0], model.predict(high)[0]
        assert lo <= model.predict(pop).min() and hi >= model.predict(pop).max()
        assert (lo, hi) == (count(P.to_archs(space, low)[0]), count(P.to_archs(space, high)[0]))
    # MACs: the smallest arch is the min arch at the lowest resolution, the largest the max arch
    assert macs_model(space).range() == (space.macs(space.min_arch()), space.macs(space.max_arch()))


def test_the_search_finds_better_subnets_than_random_under_a_macs_budget():
    """The evolution search on the OFA-ResNet50 genome, scored by the OFA authors' predictor
    (shipped converted), beats the best of 1,000 random subnets within the same budget."""
    from ofa_edge.search import population as P
    from ofa_edge.search.efficiency import macs_model
    from ofa_edge.search.evolution import Budget, evolution_search
    from ofa_edge.search.predictor import load_predictor
    from ofa_edge.space.space import get_space

    space, predictor = get_space("resnet50"), load_predictor(supernet="ofa_resnet50")
    budget = 1.5e9
    found = evolution_search(space, predictor, [Budget(macs_model(space), budget)], population_size=50,
                             generations=40, seed=0)  # fmt: skip
    assert space.macs(found.arch) <= budget
    random_archs = P.sample(space, 1000, np.random.default_rng(0))
    feasible = random_archs.take(P.macs(space, random_archs) <= budget)
    best_random = predictor.predict_features(P.encode(space, feasible)).max()
    assert found.accuracy > best_random
    assert found.accuracy == pytest.approx(predictor.predict([found.arch])[0])


def test_the_official_supernet_and_predictor_are_registered():
    from ofa_edge.hub.registry import get_entry
    from ofa_edge.search.predictor import load_predictor

    entry = get_entry("ofa_resnet50")
    assert entry.space == "resnet50" and entry.filename == "ofa_resnet50_d0-1-2_e0.2-0.25-0.35_w0.65-0.8-1.0"
    assert entry.url.startswith("https://") and entry.predictor == "ofa-resnet50"
    predictor = load_predictor(supernet="ofa_resnet50")
    assert predictor.space.name == "resnet50" and predictor.supernet == "ofa_resnet50"


def _stand_in_table(space):
    """A complete table of ``space`` whose entries are seeded random numbers (a search fixture,
    not a measurement), with a calibration whose scale drifts with the resolution."""
    from ofa_edge.latency.table import Calibration, LatencyTable
    from ofa_edge.latency.units import space_units
    from ofa_edge.profilers.base import BackendInfo, Measurement

    rng = np.random.default_rng(0)
    table = LatencyTable.new(space, BackendInfo("onnxruntime", "1.0", "CPU", "test cpu", 1, "fp32"),
                             list(space.resolutions))  # fmt: skip
    for unit in space_units(space):
        ms = float(rng.uniform(0.01, 0.2))
        table.add(unit.key, Measurement(ms, ms * 0.9, ms * 1.1, 20))
    table.complete = True
    table.calibration = Calibration(a=1.1, b=0.05, c=-0.004, d=0.01, r0=24.0)
    return table


def test_latency_model_prices_populations_as_the_table_does():
    """The genome's terms are the units of a subnet in order: a population's predicted latency is,
    bit for bit, the table's prediction of each arch, and the extremes bound every arch."""
    from ofa_edge.search import population as P
    from ofa_edge.search.efficiency import LatencyModel
    from ofa_edge.space.space import get_space

    space = get_space("resnet50-fmnist")
    table = _stand_in_table(space)
    model = LatencyModel(table, space)
    pop = P.sample(space, 400, np.random.default_rng(2))
    archs = P.to_archs(space, pop)
    np.testing.assert_array_equal(model.predict(pop), [table.predict(space, a) for a in archs])
    low, high = model.range()
    assert low <= model.predict(pop).min() and high >= model.predict(pop).max()
    assert low == table.predict(space, P.to_archs(space, model.extreme(True))[0])


def test_specialize_a_resnet_space_under_a_latency_budget():
    from ofa_edge.errors import OFAEdgeError
    from ofa_edge.search.specialize import Target, specialize
    from ofa_edge.space.space import get_space
    from tests.test_search import StandInPredictor

    space = get_space("resnet50-fmnist")
    table = _stand_in_table(space)
    predictor = StandInPredictor(space)
    low, high = (table.predict(space, space.min_arch()), table.predict(space, space.max_arch()))
    budget = (low + high) / 2
    (result,) = specialize(predictor, [Target(table, budget)], space=space, population_size=30, generations=20)
    assert isinstance(result.arch, ResNetArch) and result.latency_ms <= budget
    assert result.summary["stages"][0]["stage"] == 0 and len(result.summary["stages"]) == space.num_stages + 1
    with pytest.raises(OFAEdgeError, match="feasible"):
        specialize(predictor, [Target(table, low / 10)], space=space)
