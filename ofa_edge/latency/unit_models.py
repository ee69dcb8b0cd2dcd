"""The units of a latency table as standalone torch modules, to be converted and timed alone."""

from __future__ import annotations

import torch
from torch import nn

from ..nn.layers import ConvBNAct, GlobalAvgPool, MBConv, ResidualBlock, set_bn_eps
from ..space.space import SearchSpace
from .units import Unit


def example_input(unit: Unit) -> torch.Tensor:
    """A batch-1 NCHW input of ``unit``'s shape (fixed seed: profiling is reproducible)."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(1, unit.in_channels, unit.in_size, unit.in_size, generator=generator)


class _Logits(nn.Module):
    def __init__(self, in_features: int, classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.flatten(x, 1))


def build_unit(space: SearchSpace, unit: Unit) -> nn.Module:
    """A standalone eval-mode module computing ``unit`` exactly as it runs inside a subnet."""
    if unit.kind == "Conv":
        module: nn.Module = ConvBNAct(space.in_channels, space.stem_width, 3, space.stem_stride, act=space.stem_act)
    elif unit.kind == "expanded_conv":
        assert unit.block is not None
        module = ResidualBlock(MBConv(unit.block), unit.block.shortcut)
    elif unit.kind == "Conv_1":
        module = ConvBNAct(unit.in_channels, unit.out_channels, act=space.head_act)
    elif unit.kind == "AvgPool2D":
        module = GlobalAvgPool()
    elif unit.kind == "Conv_2":
        module = ConvBNAct(unit.in_channels, unit.out_channels, act="hswish", use_bn=False)
    elif unit.kind == "Logits":
        module = _Logits(unit.in_channels, unit.out_channels)
    else:
        raise ValueError(f"unknown unit kind '{unit.kind}'")
    set_bn_eps(module, space.bn_eps)
    return module.eval()
