"""Static building blocks shared by the supernet (its fixed parts) and extracted subnets.

Module names (``conv``, ``bn``, ``act``, ``inverted_bottleneck``, ``depth_conv``, ``point_linear``,
``se.fc.reduce``...) follow the reference OFA code, so that state-dict keys of the two map onto each
other by a simple rule (see :mod:`ofa_edge.checkpoint`). Activations use ``nn.Hardswish`` and
``nn.Hardsigmoid``: they export to ONNX as single ops, unlike a hand-written ``x * relu6(x + 3) / 6``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..space.space import BlockSpec, SearchSpace


def build_activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "hswish":
        return nn.Hardswish(inplace=True)
    raise ValueError(f"unknown activation '{name}' (known: relu, relu6, hswish)")


class ConvBNAct(nn.Sequential):
    """Conv (no bias), optional BatchNorm, optional activation; 'same' padding."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: str | None = None,
        use_bn: bool = True,
    ) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["conv"] = nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False)
        if use_bn:
            layers["bn"] = nn.BatchNorm2d(out_channels)
        if act is not None:
            layers["act"] = build_activation(act)
        super().__init__(layers)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excite: global pool, 1x1 reduce + ReLU, 1x1 expand + hard sigmoid, rescale."""

    def __init__(self, channels: int, mid_channels: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            OrderedDict(
                reduce=nn.Conv2d(channels, mid_channels, 1),
                relu=nn.ReLU(inplace=True),
                expand=nn.Conv2d(mid_channels, channels, 1),
                gate=nn.Hardsigmoid(inplace=True),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean((2, 3), keepdim=True))


class MBConv(nn.Module):
    """Inverted residual: optional 1x1 expansion, depthwise conv (+SE), 1x1 projection."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        mid = spec.expanded_channels
        self.inverted_bottleneck = (
            ConvBNAct(spec.in_channels, mid, act=spec.act) if spec.mid_channels is not None else None
        )
        depth: OrderedDict[str, nn.Module] = OrderedDict()
        depth["conv"] = nn.Conv2d(mid, mid, spec.kernel, spec.stride, spec.kernel // 2, groups=mid, bias=False)
        depth["bn"] = nn.BatchNorm2d(mid)
        depth["act"] = build_activation(spec.act)
        if spec.se_channels is not None:
            depth["se"] = SqueezeExcite(mid, spec.se_channels)
        self.depth_conv = nn.Sequential(depth)
        self.point_linear = ConvBNAct(mid, spec.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inverted_bottleneck is not None:
            x = self.inverted_bottleneck(x)
        return self.point_linear(self.depth_conv(x))


class ResidualBlock(nn.Module):
    """A block body plus an optional identity shortcut (stride 1 and equal channels)."""

    def __init__(self, body: nn.Module, shortcut: bool) -> None:
        super().__init__()
        self.conv = body
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return out + x if self.shortcut else out

    def extra_repr(self) -> str:
        return f"shortcut={self.shortcut}"


def global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    return x.mean((2, 3), keepdim=True)


class GlobalAvgPool(nn.Module):
    """:func:`global_avg_pool` as a module (the head's pooling, as a latency table's unit)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return global_avg_pool(x)


class MobileNetV3Frame(nn.Module):
    """The fixed stem and head shared by the supernet and its static subnets of an MBConv family.

    Stem: 3x3 conv-BN-act. Head: 1x1 final expand (BN, act) on the last stage's output, global
    pooling, then (OFA-MobileNetV3 only) a 1x1 feature mix (no BN, hswish), dropout, linear
    classifier. Subclasses add ``self.blocks`` and run them between the stem and :meth:`head`.
    Every BatchNorm takes the space's eps (OFA-ProxylessNAS uses 1e-3).
    """

    def __init__(self, space: SearchSpace, linear: type[nn.Linear] = nn.Linear) -> None:
        super().__init__()
        self.first_conv = ConvBNAct(space.in_channels, space.stem_width, 3, space.stem_stride, act=space.stem_act)
        self.final_expand_layer = ConvBNAct(space.stages[-1].width, space.final_expand_width, act=space.head_act)
        self.feature_mix_layer = (
            ConvBNAct(space.final_expand_width, space.feature_mix_width, act="hswish", use_bn=False)
            if space.feature_mix_width
            else None
        )
        self.classifier = nn.Sequential(
            OrderedDict(
                dropout=nn.Dropout(space.dropout, inplace=True),
                linear=linear(space.classifier_in_features, space.num_classes),
            )
        )

    def head(self, x: torch.Tensor) -> torch.Tensor:
        x = global_avg_pool(self.final_expand_layer(x))
        if self.feature_mix_layer is not None:
            x = self.feature_mix_layer(x)
        return self.classifier(torch.flatten(x, 1))


def set_bn_eps(module: nn.Module, eps: float) -> None:
    """Give every BatchNorm in ``module`` the family's eps (it changes outputs, so export and
    recalibration must see the same value as training)."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = eps


def init_weights(module: nn.Module) -> None:
    """MobileNet-style init: He (fan-out) for convs, unit BN, small-normal classifier.

    Dynamic ops subclass these module types, so this covers them too; kernel transformation
    matrices are left alone (they start as identities).
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
