"""The static MobileNetV3 network an arch extracts to: plain PyTorch modules, no dynamic ops.

Built from a list of :class:`~ofa_edge.space.BlockSpec` (a config feeding a builder), so the same
specs drive MAC counting, extraction, export and per-block latency profiling.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .arch import Arch
from .layers import ConvBNAct, MBConv, ResidualBlock, global_avg_pool, init_weights
from .space import BlockSpec, SearchSpace


class MobileNetV3Subnet(nn.Module):
    """A static OFA-MobileNetV3 subnet: stem, MBConv blocks, final expand, pooled feature mix, classifier."""

    def __init__(self, space: SearchSpace, blocks: list[BlockSpec], arch: Arch | None = None) -> None:
        super().__init__()
        self.space_name = space.name
        self.arch = arch
        self.first_conv = ConvBNAct(space.in_channels, space.stem_width, 3, space.stem_stride, act="hswish")
        self.blocks = nn.ModuleList(ResidualBlock(MBConv(spec), spec.shortcut) for spec in blocks)
        last = blocks[-1].out_channels
        self.final_expand_layer = ConvBNAct(last, space.final_expand_width, act="hswish")
        self.feature_mix_layer = ConvBNAct(
            space.final_expand_width, space.feature_mix_width, act="hswish", use_bn=False
        )
        self.classifier = nn.Sequential(
            OrderedDict(
                dropout=nn.Dropout(space.dropout, inplace=True),
                linear=nn.Linear(space.feature_mix_width, space.num_classes),
            )
        )
        init_weights(self)

    @classmethod
    def from_arch(cls, space: SearchSpace, arch: Arch) -> MobileNetV3Subnet:
        """A freshly initialised subnet for ``arch`` (weights come from the supernet via ``get_subnet``)."""
        arch = space.validate(arch)
        return cls(space, space.block_specs(arch), arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_conv(x)
        for block in self.blocks:
            x = block(x)
        x = self.final_expand_layer(x)
        x = self.feature_mix_layer(global_avg_pool(x))
        return self.classifier(torch.flatten(x, 1))
