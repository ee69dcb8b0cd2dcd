import random

import pytest
import torch

from ofa_edge import ArchError, OFAMobileNetV3, get_space
from ofa_edge.nn.bn_calibration import recalibrate_bn
from ofa_edge.nn.dynamic_ops import (
    DynamicBatchNorm2d,
    DynamicDepthwiseConv2d,
    DynamicLinear,
    DynamicPointwiseConv2d,
    DynamicSE,
)
from ofa_edge.space.arch import Arch
from tests.conftest import perturb

DYNAMIC_TYPES = (DynamicBatchNorm2d, DynamicDepthwiseConv2d, DynamicLinear, DynamicPointwiseConv2d, DynamicSE)


def test_w10_supernet_parameter_count():
    net = OFAMobileNetV3("mbv3-w1.0")
    assert sum(p.numel() for p in net.parameters()) == 7_678_880
    matrices = sum(p.numel() for n, p in net.named_parameters() if n.endswith("_matrix"))
    assert matrices == 20 * (25 * 25 + 9 * 9) == 14_120


@pytest.mark.parametrize("seed", range(24))
def test_extracted_subnet_matches_supernet(fmnist_net, seed):
    space = fmnist_net.space
    arch = space.sample(seed)
    fmnist_net.set_active(arch)
    subnet = fmnist_net.get_subnet()
    assert not any(isinstance(m, DYNAMIC_TYPES) for m in subnet.modules())
    assert sum(p.numel() for p in subnet.parameters()) == space.params(arch)
    x = torch.randn(3, 1, arch.r, arch.r, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = fmnist_net(x)
        torch.testing.assert_close(subnet(x), expected, rtol=0, atol=1e-10)
    assert (expected[0] - expected[1]).abs().max() > 1e-5, "output must depend on the input (far above atol)"


@pytest.mark.parametrize("seed", range(3))
def test_extracted_subnet_matches_supernet_w12(seed):
    torch.manual_seed(seed)
    net = perturb(OFAMobileNetV3("mbv3-w1.2"), seed).eval()
    arch = net.space.sample(seed)
    net.set_active(arch)
    x = torch.randn(2, 3, arch.r, arch.r)
    with torch.no_grad():
        torch.testing.assert_close(net.get_subnet()(x), net(x), rtol=1e-4, atol=1e-4)


def test_depth_keeps_first_blocks(fmnist_net):
    """Slots past a stage's depth are ignored; the kept blocks are the first D of the stage."""
    space = fmnist_net.space
    base = Arch(ks=(5,) * 20, e=(4,) * 20, d=(2, 3, 2, 4, 2), r=28)
    x = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    with torch.no_grad():
        fmnist_net.set_active(base)
        y = fmnist_net(x)
        ks = list(base.ks)
        ks[2] = ks[3] = 7  # stage 1, slots 2-3: skipped at depth 2
        fmnist_net.set_active(Arch(tuple(ks), base.e, base.d, 28))
        torch.testing.assert_close(fmnist_net(x), y, rtol=0, atol=0)
        ks[1] = 7  # stage 1, slot 1: kept
        fmnist_net.set_active(Arch(tuple(ks), base.e, base.d, 28))
        assert not torch.allclose(fmnist_net(x), y)
    specs = space.block_specs(base)
    assert len(specs) == 1 + sum(base.d)


def test_kernel_transform_is_crop_when_matrices_are_identity():
    conv = DynamicDepthwiseConv2d(8, (3, 5, 7), stride=1)
    w = conv.weight
    torch.testing.assert_close(conv.active_weight(8, 5), w[:, :, 1:6, 1:6])
    torch.testing.assert_close(conv.active_weight(8, 3), w[:, :, 2:5, 2:5])
    torch.testing.assert_close(conv.active_weight(4, 3), w[:4, :, 2:5, 2:5])


def test_kernel_transform_applies_matrices_in_order():
    conv = DynamicDepthwiseConv2d(2, (3, 5, 7), stride=1)
    with torch.no_grad():
        getattr(conv, "7to5_matrix").copy_(torch.randn(25, 25))
        getattr(conv, "5to3_matrix").copy_(torch.randn(9, 9))
    w5 = conv.weight[:, :, 1:6, 1:6].reshape(2, 25) @ getattr(conv, "7to5_matrix").T
    w3 = w5.reshape(2, 5, 5)[:, 1:4, 1:4].reshape(2, 9) @ getattr(conv, "5to3_matrix").T
    torch.testing.assert_close(conv.active_weight(2, 5), w5.reshape(2, 1, 5, 5))
    torch.testing.assert_close(conv.active_weight(2, 3), w3.reshape(2, 1, 3, 3))


def test_gradients_reach_kernel_matrices_and_shared_weights():
    net = OFAMobileNetV3("mbv3-fmnist")
    space = net.space
    arch = Arch(ks=(3,) * 20, e=(3,) * 20, d=(2,) * 5, r=20)
    net.set_active(arch)
    net(torch.randn(4, 1, 20, 20)).sum().backward()
    block = net.blocks[1].conv
    assert getattr(block.depth_conv.conv, "5to3_matrix").grad.abs().sum() > 0
    assert getattr(block.depth_conv.conv, "7to5_matrix").grad.abs().sum() > 0
    mid = block.mid_channels(3)
    grad = block.inverted_bottleneck.conv.weight.grad
    assert grad[:mid].abs().sum() > 0 and grad[mid:].abs().sum() == 0
    # the skipped third block of stage 1 received nothing
    assert net.blocks[3].conv.point_linear.conv.weight.grad is None
    assert space.validate(arch) == net.active_arch


def test_set_active_rejects_bad_arch():
    net = OFAMobileNetV3("mbv3-fmnist")
    bad = net.space.max_arch().to_dict()
    bad["e"][3] = 5
    with pytest.raises(ArchError, match="'e' index 3"):
        net.set_active(bad)


def test_channels_last_gives_same_output(fmnist_net):
    arch = fmnist_net.space.sample(5)
    fmnist_net.set_active(arch)
    x = torch.randn(2, 1, arch.r, arch.r, dtype=torch.float64)
    with torch.no_grad():
        y = fmnist_net(x)
        net_cl = fmnist_net.to(memory_format=torch.channels_last)
        y_cl = net_cl(x.to(memory_format=torch.channels_last))
        fmnist_net.to(memory_format=torch.contiguous_format)
    torch.testing.assert_close(y_cl, y, rtol=0, atol=1e-10)


def test_sliced_weights_keep_the_stored_layout():
    conv = DynamicPointwiseConv2d(16, 32).to(memory_format=torch.channels_last)
    conv.active_out = 24
    assert conv.active_weight(12).stride() == (12, 1, 12, 12)  # channels-last strides
    conv.active_out = 32
    assert conv.active_weight(16) is conv.weight  # full width: the parameter itself
    dw = DynamicDepthwiseConv2d(8, (3, 5, 7), stride=1).to(memory_format=torch.channels_last)
    assert dw.active_weight(8, 3).shape == (8, 1, 3, 3)
    x = torch.randn(2, 8, 6, 6).to(memory_format=torch.channels_last)
    dw.active_kernel = 3
    assert dw(x).is_contiguous(memory_format=torch.channels_last)
    plain = DynamicPointwiseConv2d(16, 32)
    plain.active_out = 24
    assert plain.active_weight(12).is_contiguous()


@pytest.mark.parametrize("tiers", [(), (6,), (4, 6)])
def test_channel_sort_keeps_max_net_output(tiers):
    torch.manual_seed(0)
    net = perturb(OFAMobileNetV3("mbv3-fmnist")).double().eval()
    net.set_active(net.space.max_arch())
    x = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    with torch.no_grad():
        before = net(x)
        net.sort_channels(tiers)
        torch.testing.assert_close(net(x), before, rtol=0, atol=1e-10)
    for block in net.dynamic_blocks():
        importance = block.point_linear.conv.weight.abs().sum(dim=(0, 2, 3))
        bounds = sorted({block.mid_channels(e) for e in tiers} | {importance.numel()})
        start = 0
        for end in bounds:
            segment = importance[start:end]
            assert torch.all(segment[:-1] >= segment[1:]), "each tier is sorted by importance"
            start = end


def test_channel_sort_keeps_trained_tier_in_front():
    torch.manual_seed(0)
    net = OFAMobileNetV3("mbv3-fmnist")
    block = net.dynamic_blocks()[0]
    w4 = block.mid_channels(4)
    with torch.no_grad():
        block.point_linear.conv.weight[:, w4:] *= 100  # untrained channels look more important
        front = set(block.point_linear.conv.weight[:, :w4].abs().sum(dim=(0, 2, 3)).tolist())
    net.sort_channels((4, 6))
    after = set(block.point_linear.conv.weight[:, :w4].abs().sum(dim=(0, 2, 3)).tolist())
    assert after == front
    net.sort_channels(())  # a full sort moves them
    assert set(block.point_linear.conv.weight[:, :w4].abs().sum(dim=(0, 2, 3)).tolist()) != front


def test_bn_recalibration_sets_batch_statistics():
    net = OFAMobileNetV3("mbv3-fmnist")
    arch = get_space("mbv3-fmnist").sample(2)
    net.set_active(arch)
    net.eval()
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(50, 1, arch.r, arch.r, generator=g) * 3 + 2 for _ in range(3)]
    used = recalibrate_bn(net, batches, max_images=120)
    assert used == 120
    assert not net.training
    images = torch.cat(batches)[:120]
    # the stem BN sees the stem conv output: check against a direct computation
    with torch.no_grad():
        feats = net.first_conv.conv(images)
    chunks = [feats[:50], feats[50:100], feats[100:120]]
    mean = sum(c.mean(dim=(0, 2, 3)) * len(c) for c in chunks) / 120
    var = sum(c.var(dim=(0, 2, 3), unbiased=False) * len(c) for c in chunks) / 120
    torch.testing.assert_close(net.first_conv.bn.running_mean, mean, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(net.first_conv.bn.running_var, var, rtol=1e-4, atol=1e-5)


def test_bn_recalibration_commutes_with_extraction():
    torch.manual_seed(1)
    net = perturb(OFAMobileNetV3("mbv3-fmnist")).double()
    arch = net.space.sample(11)
    net.set_active(arch)
    batches = [torch.randn(40, 1, arch.r, arch.r, dtype=torch.float64) for _ in range(2)]
    extracted_first = net.get_subnet()
    recalibrate_bn(extracted_first, batches)
    recalibrate_bn(net, batches)
    recalibrated_first = net.get_subnet()
    x = torch.randn(3, 1, arch.r, arch.r, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(extracted_first.eval()(x), recalibrated_first.eval()(x), rtol=0, atol=1e-9)


def test_training_updates_only_active_bn_channels():
    net = OFAMobileNetV3("mbv3-fmnist").train()
    arch = Arch(ks=(3,) * 20, e=(3,) * 20, d=(2,) * 5, r=20)
    net.set_active(arch)
    bn = net.blocks[1].conv.inverted_bottleneck.bn
    mid = net.blocks[1].conv.mid_channels(3)
    net(torch.randn(8, 1, 20, 20) + 1)
    assert torch.all(bn.running_mean[:mid] != 0)
    assert torch.all(bn.running_mean[mid:] == 0)


def test_random_archs_forward_at_every_resolution():
    net = OFAMobileNetV3("mbv3-fmnist").eval()
    rng = random.Random(0)
    for r in net.space.resolutions:
        arch = net.space.sample(rng)
        net.set_active(Arch(arch.ks, arch.e, arch.d, r))
        assert net(torch.randn(1, 1, r, r)).shape == (1, 10)
