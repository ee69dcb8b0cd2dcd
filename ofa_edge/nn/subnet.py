"""The static MobileNetV3 network an arch extracts to: plain PyTorch modules, no dynamic ops.

Built from a list of :class:`~ofa_edge.space.BlockSpec` (a config feeding a builder), so the same
specs drive MAC counting, extraction, export and per-block latency profiling.
"""

from __future__ import annotations

import torch
from torch import nn

from ..space.arch import Arch
from ..space.space import BlockSpec, SearchSpace
from .layers import MBConv, MobileNetV3Frame, ResidualBlock, init_weights, set_bn_eps


class MobileNetV3Subnet(MobileNetV3Frame):
    """A static subnet of an MBConv family (OFA-MobileNetV3, OFA-ProxylessNAS): stem, MBConv
    blocks, the family's head, classifier."""

    def __init__(self, space: SearchSpace, blocks: list[BlockSpec], arch: Arch | None = None) -> None:
        super().__init__(space)
        self.space_name = space.name
        self.arch = arch
        self.blocks = nn.ModuleList(ResidualBlock(MBConv(spec), spec.shortcut) for spec in blocks)
        init_weights(self)
        set_bn_eps(self, space.bn_eps)

    @classmethod
    def from_arch(cls, space: SearchSpace, arch: Arch) -> MobileNetV3Subnet:
        """A freshly initialised subnet for ``arch`` (weights come from the supernet via ``get_subnet``)."""
        arch = space.validate(arch)
        return cls(space, space.block_specs(arch), arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_conv(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)
