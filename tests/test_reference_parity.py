"""Parity with the reference implementation (pip package ``ofa``, a required test dependency).

The same weights, loaded through our official-checkpoint path, must give the same outputs as
the reference supernet and the reference's extracted subnet, and the same MACs as its counter.
"""

import pytest
import torch

from ofa_edge import get_space
from ofa_edge.nn.checkpoint import load_supernet
from tests.reference_oracle import require_reference_ofa_mbv3


def _reference(width_mult: float, seed: int):
    reference_ofa = require_reference_ofa_mbv3()  # a missing 'ofa' fails the test, never skips it
    torch.manual_seed(seed)
    ref = reference_ofa(ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4], width_mult=width_mult)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in ref.state_dict().items():
            if not tensor.dtype.is_floating_point:
                continue
            if "running_var" in name:
                tensor.copy_(torch.rand(tensor.shape, generator=g) + 0.5)
            elif "matrix" in name:
                tensor.add_(0.05 * torch.randn(tensor.shape, generator=g))
            elif "running_mean" in name or name.endswith("bias"):
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=g))
    return ref.eval()


def _official_file(ref, tmp_path, old_names: bool):
    state = ref.state_dict()
    if old_names:
        state = {
            k.replace(".conv.", ".mobile_inverted_conv.", 1) if k.startswith("blocks.") else k: v
            for k, v in state.items()
        }
    path = tmp_path / "official.pth"
    torch.save({"state_dict": state, "epoch": 1}, path)
    return path


@pytest.mark.parametrize("space_name, width, old_names", [("mbv3-w1.0", 1.0, True), ("mbv3-w1.2", 1.2, False)])
def test_supernet_and_subnet_match_reference(tmp_path, space_name, width, old_names):
    ref = _reference(width, seed=0)
    assert sum(p.numel() for p in ref.parameters()) == get_space(space_name).supernet_params()
    net = load_supernet(_official_file(ref, tmp_path, old_names), space=space_name).eval()
    ref.double()
    net.double()
    for seed in range(6):
        arch = net.space.sample(seed)
        net.set_active(arch)
        ref.set_active_subnet(ks=list(arch.ks), e=list(arch.e), d=list(arch.d))
        x = torch.randn(2, 3, arch.r, arch.r, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            expected = ref(x)
            torch.testing.assert_close(net(x), expected, rtol=1e-9, atol=1e-9)
            torch.testing.assert_close(net.get_subnet()(x), expected, rtol=1e-9, atol=1e-9)


def test_macs_match_reference_counter():
    ref = _reference(1.0, seed=1)  # first: it imports the reference (with its import stand-ins)
    from ofa.utils import count_net_flops

    space = get_space("mbv3-w1.0")
    for seed in range(5):
        arch = space.sample(seed)
        ref.set_active_subnet(ks=list(arch.ks), e=list(arch.e), d=list(arch.d))
        counted = count_net_flops(ref.get_active_subnet(), (1, 3, arch.r, arch.r))
        # the reference sums in float32: agree to its rounding
        assert abs(counted - space.macs(arch)) <= 1e-6 * counted
