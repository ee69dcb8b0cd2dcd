import random

import pytest
import torch

from ofa_edge import OFAMobileNetV3
from ofa_edge.nn.bn_calibration import recalibrate_bn


def perturb(net: OFAMobileNetV3, seed: int = 0) -> OFAMobileNetV3:
    """Make every tensor matter in parity tests: non-identity kernel matrices, non-trivial BN
    affine parameters and biases, and BN statistics measured on random images with the max
    subnet active (made-up statistics would let the signal vanish through the depth, and a net
    whose output ignores its input would pass any parity test)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in net.named_parameters():
            if name.endswith("_matrix"):
                tensor.add_(0.05 * torch.randn(tensor.shape, generator=g))
            elif name.endswith("bn.weight"):
                tensor.copy_(1 + 0.2 * torch.randn(tensor.shape, generator=g))
            elif name.endswith("bias"):
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=g))
    arch = net.space.max_arch()
    net.set_active(arch)
    size = (16, net.space.in_channels, arch.r, arch.r)
    recalibrate_bn(net, [torch.randn(size, generator=g) for _ in range(2)])
    return net


@pytest.fixture(scope="session")
def fmnist_net() -> OFAMobileNetV3:
    torch.manual_seed(0)
    return perturb(OFAMobileNetV3("mbv3-fmnist")).double().eval()


@pytest.fixture(autouse=True)
def own_tables_folder(tmp_path, monkeypatch):
    """Each test's user tables in its own folder: nothing a test profiles or calibrates lands in the
    checkout or leaks into another test (a test may point OFA_EDGE_TABLES elsewhere)."""
    monkeypatch.setenv("OFA_EDGE_TABLES", str(tmp_path / "latency_tables"))


@pytest.fixture
def rng() -> random.Random:
    return random.Random(1234)
