import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ofa_edge import Arch, ArchError, OFAEdgeError, get_space
from ofa_edge.space.space import SPACE_NAMES, make_divisible


def mega(n: int) -> float:
    return round(n / 1e6, 1)


def uniform(space, k: int, e: int, d: int, r: int) -> Arch:
    return Arch(ks=(k,) * space.num_slots, e=(e,) * space.num_slots, d=(d,) * space.num_stages, r=r)


def test_w10_reference_macs_and_params():
    space = get_space("mbv3-w1.0")
    assert space.supernet_params() == 7_678_880
    assert mega(space.macs(uniform(space, 7, 6, 4, 224))) == 566.2
    assert mega(space.macs(uniform(space, 3, 3, 2, 224))) == 121.3
    assert mega(space.macs(uniform(space, 3, 3, 4, 224))) == 226.2


def test_w12_reference_macs_and_widths():
    space = get_space("mbv3-w1.2")
    assert mega(space.macs(uniform(space, 7, 6, 4, 224))) == 843.1
    assert mega(space.macs(uniform(space, 3, 3, 2, 224))) == 193.1
    widths = [
        space.stem_width,
        space.first_block_width,
        *(s.width for s in space.stages),
        space.final_expand_width,
        space.feature_mix_width,
    ]
    assert widths == [24, 24, 32, 48, 96, 136, 192, 1152, 1536]
    assert space.resolutions == tuple(range(160, 225, 4))


def test_w10_layout_matches_reference():
    space = get_space("mbv3-w1.0")
    assert [s.width for s in space.stages] == [24, 40, 80, 112, 160]
    assert [s.stride for s in space.stages] == [2, 2, 2, 1, 2]
    assert [s.act for s in space.stages] == ["relu", "relu", "hswish", "hswish", "hswish"]
    assert [s.se for s in space.stages] == [False, True, False, True, True]
    assert space.resolutions == tuple(range(128, 225, 4))
    assert space.num_slots == 20


def test_fmnist_space_shape():
    space = get_space("mbv3-fmnist")
    assert (space.in_channels, space.num_classes) == (1, 10)
    assert space.num_stages == 5
    assert (space.kernel_choices, space.expand_choices, space.depth_choices) == ((3, 5, 7), (3, 4, 6), (2, 3, 4))
    assert max(space.resolutions) == 28
    assert space.final_feature_size(min(space.resolutions)) >= 1


@pytest.mark.parametrize("value, expected", [(16, 16), (19.2, 24), (28.8, 32), (134.4, 136), (4, 8), (72, 72)])
def test_make_divisible(value, expected):
    assert make_divisible(value) == expected


def test_unknown_space_lists_presets():
    with pytest.raises(OFAEdgeError, match="known: mbv3-w1.0, mbv3-w1.2, mbv3-fmnist"):
        get_space("mbv3-w2.0")


@pytest.mark.parametrize(
    "field, index, value, allowed",
    [("ks", 7, 9, "3, 5, 7"), ("e", 0, 5, "3, 4, 6"), ("d", 4, 1, "2, 3, 4")],
)
def test_validate_names_field_index_and_allowed_values(field, index, value, allowed):
    space = get_space("mbv3-w1.0")
    data = space.max_arch().to_dict()
    data[field][index] = value
    with pytest.raises(ArchError) as info:
        space.validate(data)
    message = str(info.value)
    assert f"'{field}' index {index}: {value}" in message and allowed in message


def test_validate_wrong_length_and_resolution():
    space = get_space("mbv3-w1.0")
    data = space.max_arch().to_dict()
    data["ks"] = data["ks"][:19]
    with pytest.raises(ArchError, match="'ks' has 19 entries.*needs 20"):
        space.validate(data)
    with pytest.raises(ArchError, match=r"'r': 226 .*128\.\.224 in steps of 4"):
        space.validate({**space.max_arch().to_dict(), "r": 226})
    with pytest.raises(ArchError, match="missing field"):
        space.validate({"ks": [3]})


def test_image_size_alias_is_accepted():
    space = get_space("mbv3-w1.0")
    data = space.min_arch().to_dict()
    data["image_size"] = data.pop("r")
    assert space.validate(data).r == 128


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["ks", "e", "d", "r", "x"]),
        st.one_of(st.integers(-2, 300), st.lists(st.integers(0, 8), max_size=22), st.text(max_size=3)),
    )
)
def test_validate_never_raises_anything_but_arch_error(data):
    space = get_space("mbv3-fmnist")
    try:
        arch = space.validate(data)
    except ArchError:
        return
    assert arch.r in space.resolutions


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_sampling_is_seeded_and_valid(name):
    space = get_space(name)
    a, b = space.sample(7), space.sample(7)
    assert a == b
    archs = [space.sample(random.Random(i)) for i in range(30)]
    assert len(set(archs)) == 30
    for arch in archs:
        space.validate(arch)


def test_sampling_covers_all_choices():
    space = get_space("mbv3-fmnist")
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(200)]
    assert {k for a in archs for k in a.ks} == set(space.kernel_choices)
    assert {e for a in archs for e in a.e} == set(space.expand_choices)
    assert {d for a in archs for d in a.d} == set(space.depth_choices)
    assert {a.r for a in archs} == set(space.resolutions)


def test_mutate_and_crossover():
    space = get_space("mbv3-w1.0")
    rng = random.Random(3)
    a, b = space.sample(rng), space.sample(rng)
    assert space.mutate(a, rng, prob=0.0) == a
    mutated = [space.mutate(a, rng, prob=1.0) for _ in range(5)]
    assert any(m != a for m in mutated)
    for _ in range(20):
        child = space.crossover(a, b, rng)
        assert all(c in (x, y) for c, x, y in zip(child.ks, a.ks, b.ks))
        assert all(c in (x, y) for c, x, y in zip(child.e, a.e, b.e))
        assert all(c in (x, y) for c, x, y in zip(child.d, a.d, b.d))
        assert child.r in (a.r, b.r)
    children = {space.crossover(a, b, rng) for _ in range(20)}
    assert len(children) > 1


def test_mutation_rate_is_per_gene():
    space = get_space("mbv3-w1.0")
    rng = random.Random(0)
    a = space.max_arch()
    changed = sum(k != 7 for _ in range(200) for k in space.mutate(a, rng, prob=0.1).ks)
    # P(change) per gene = 0.1 * 2/3 (resampling may draw the same value): expect 267 of 4000
    assert 180 < changed < 360


def test_encoding_matches_reference_layout():
    space = get_space("mbv3-w1.0")
    arch = Arch(ks=(3, 5, 7, 7) * 5, e=(3, 4, 6, 6) * 5, d=(2, 3, 4, 2, 3), r=132)
    feature = space.encode(arch)
    assert feature.shape == (20 * 6 + 25,) == (space.encoding_size,)
    slot0 = feature[0:6]
    assert slot0.tolist() == [1, 0, 0, 1, 0, 0]  # k3, e3
    slot1 = feature[6:12]
    assert slot1.tolist() == [0, 1, 0, 0, 1, 0]  # k5, e4
    assert feature[12:24].sum() == 0  # stage 1 has depth 2: slots 2 and 3 skipped
    active_blocks = sum(arch.d)
    assert feature[: 20 * 6].sum() == 2 * active_blocks
    res = feature[120:]
    assert res.sum() == 1 and res[(132 - 128) // 4] == 1
    assert np.array_equal(space.encode(arch), feature)


def test_restrict_narrows_sampling_and_rejects_outsiders():
    space = get_space("mbv3-fmnist").restrict(kernel_choices=(7,), depth_choices=(3, 4))
    for i in range(20):
        arch = space.sample(i)
        assert set(arch.ks) == {7} and set(arch.d) <= {3, 4}
    with pytest.raises(OFAEdgeError, match="not a non-empty subset"):
        get_space("mbv3-fmnist").restrict(expand_choices=(8,))


def test_block_specs_shapes():
    space = get_space("mbv3-w1.0")
    specs = space.block_specs(space.max_arch(224))
    assert len(specs) == 21
    assert specs[0].mid_channels is None and specs[0].shortcut
    assert specs[-1].output_size == 7 and specs[-1].out_channels == 160
    assert [s.stride for s in specs if s.stride == 2] == [2, 2, 2, 2]
    assert specs[5].se_channels == make_divisible(specs[5].mid_channels // 4)


def test_uniform_archs_are_every_single_choice_subnet_and_include_the_corners():
    from ofa_edge.space.space import corner_archs, uniform_archs

    space = get_space("mbv3-fmnist")
    archs = uniform_archs(space)
    assert len(archs) == len(set(archs)) == 3 * 3 * 3 * len(space.resolutions)
    for arch in archs:
        assert space.validate(arch) == arch
        assert len(set(arch.ks)) == len(set(arch.e)) == len(set(arch.d)) == 1
    for r in space.resolutions:
        assert set(corner_archs(space, r).values()) <= set(archs)


def test_archs_in_the_official_ofa_code_forms_are_read():
    """The official tutorial's ArchManager (and its EvolutionFinder's results) write the resolution
    as "r": [224] beside "wid": None; its newer arch encoder writes "image_size" and a 0 kernel and
    expand ratio in the blocks a stage's depth skips. Both forms are read as archs."""
    space = get_space("mbv3-fmnist")
    tutorial = {"wid": None, "ks": [5] * 20, "e": [4] * 20, "d": [3] * 5, "r": [28]}
    assert space.validate(tutorial) == Arch(ks=(5,) * 20, e=(4,) * 20, d=(3,) * 5, r=28)
    ks = [7, 5, 0, 0] + [3] * 16
    e = [6, 4, 0, 0] + [3] * 16
    encoder = {"ks": ks, "e": e, "d": [2, 4, 4, 4, 4], "image_size": 24}
    filled = space.validate(encoder)
    assert filled.ks[:4] == (7, 5, 3, 3) and filled.e[:4] == (6, 4, 3, 3) and filled.r == 24
    assert space.macs(filled) == space.macs(space.validate({**encoder, "ks": [7, 5, 7, 7] + [3] * 16}))
    with pytest.raises(ArchError, match=r"'ks' index 0: 0 is not allowed"):  # 0 in a block that is built
        space.validate({**encoder, "ks": [0, *ks[1:]]})
    with pytest.raises(ArchError, match=r"'e' index 4: 0 is not allowed"):
        space.validate({**encoder, "e": [*e[:4], 0, *e[5:]]})
    with pytest.raises(ArchError, match="must be an integer resolution, got \\[28, 20\\]"):
        space.validate({**tutorial, "r": [28, 20]})
