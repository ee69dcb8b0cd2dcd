"""The units of a latency table as standalone torch modules, to be converted and timed alone, and
the whole static subnets that calibrate and validate a table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..nn.layers import ConvBNAct, GlobalAvgPool, MBConv, ResidualBlock, set_bn_eps
from ..nn.resnet import Bottleneck, ResNetSubnet, _classifier, _stem_layers
from ..nn.subnet import MobileNetV3Subnet
from ..space.resnet import ResNetSpace
from ..space.space import SearchSpace
from .resnet_units import ResNetUnit
from .units import AnyArch, AnySpace, Unit, unit_family


def example_input(unit: Unit | ResNetUnit) -> torch.Tensor:
    """A batch-1 input of ``unit``'s shape (fixed seed: profiling is reproducible)."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(*unit.input_shape, generator=generator)


class _Logits(nn.Module):
    def __init__(self, in_features: int, classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.flatten(x, 1))


def _mbconv_unit(space: SearchSpace, unit: Unit) -> nn.Module:
    if unit.kind == "Conv":
        return ConvBNAct(space.in_channels, space.stem_width, 3, space.stem_stride, act=space.stem_act)
    if unit.kind == "expanded_conv":
        assert unit.block is not None
        return ResidualBlock(MBConv(unit.block), unit.block.shortcut)
    if unit.kind == "Conv_1":
        return ConvBNAct(unit.in_channels, unit.out_channels, act=space.head_act)
    if unit.kind == "AvgPool2D":
        return GlobalAvgPool()
    if unit.kind == "Conv_2":
        return ConvBNAct(unit.in_channels, unit.out_channels, act="hswish", use_bn=False)
    if unit.kind == "Logits":
        return _Logits(unit.in_channels, unit.out_channels)
    raise ValueError(f"unknown unit kind '{unit.kind}'")


class ResNetStem(nn.Module):
    """The input stem of an OFA-ResNet subnet, with :class:`~ofa_edge.nn.resnet.ResNetSubnet`'s
    module names (its ``input_stem.*`` weights load as they are)."""

    def __init__(self, space: ResNetSpace, unit: ResNetUnit) -> None:
        super().__init__()
        assert unit.stem is not None
        self.input_stem = nn.ModuleList(_stem_layers(unit.stem, space.bn_eps))
        self.max_pooling = nn.MaxPool2d(3, 2, 1) if unit.stem.max_pool else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.input_stem:
            x = layer(x)
        return x if self.max_pooling is None else self.max_pooling(x)


class SpatialMean(GlobalAvgPool):
    """Global average pooling to a (batch, channels) vector, as the OFA-ResNet subnet pools. A
    :class:`GlobalAvgPool`, so that the int8 "pool" form rewrites it as export rewrites the
    subnet's pooling (an int8 table then prices the graph export ships)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


def _resnet_unit(space: ResNetSpace, unit: ResNetUnit) -> nn.Module:
    if unit.kind == "ResNetStem":
        return ResNetStem(space, unit)
    if unit.kind == "bottleneck":
        assert unit.block is not None
        return Bottleneck(unit.block, space.bn_eps)
    if unit.kind == "AvgPool2D":
        return SpatialMean()
    if unit.kind == "Logits":
        return _classifier(unit.in_channels, unit.out_channels, space.dropout, nn.Linear)
    raise ValueError(f"unknown unit kind '{unit.kind}'")


# family -> (unit module builder, static subnet builder)
_BUILDERS: dict[str, tuple[Callable[[Any, Any], nn.Module], Callable[[Any, Any], nn.Module]]] = {
    "mbv3": (_mbconv_unit, MobileNetV3Subnet.from_arch),
    "proxyless": (_mbconv_unit, MobileNetV3Subnet.from_arch),
    "resnet": (_resnet_unit, ResNetSubnet),
}


def _builders(space: AnySpace) -> tuple[Callable[[Any, Any], nn.Module], Callable[[Any, Any], nn.Module]]:
    unit_family(space)  # one clear line for a family without units
    return _BUILDERS[space.family]


def build_unit(space: AnySpace, unit: Unit | ResNetUnit) -> nn.Module:
    """A standalone eval-mode module computing ``unit`` exactly as it runs inside a subnet."""
    module = _builders(space)[0](space, unit)
    set_bn_eps(module, space.bn_eps)
    return module.eval()


def build_subnet(space: AnySpace, arch: AnyArch) -> nn.Module:
    """A freshly initialised eval-mode static subnet of ``arch`` (timing needs no trained weights)."""
    return _builders(space)[1](space, arch).eval()
