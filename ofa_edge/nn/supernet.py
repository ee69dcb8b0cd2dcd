"""The OFA-MobileNetV3 supernet: one set of weights, any arch of its space.

``set_active(arch)`` selects kernel and expand per block slot and the depth of every stage (a
stage keeps its first D blocks); ``get_subnet(arch)`` copies the active weights into a static
:class:`~ofa_edge.subnet.MobileNetV3Subnet` with identical eval-mode output; ``sort_channels``
reorders the expanded channels of each block by importance before a width phase of training.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from ..space.arch import Arch
from ..space.space import BlockSpec, SearchSpace, get_space
from .dynamic_ops import (
    DynamicBatchNorm2d,
    DynamicDepthwiseConv2d,
    DynamicLinear,
    DynamicPointwiseConv2d,
    DynamicSE,
)
from .layers import MBConv, MobileNetV3Frame, ResidualBlock, build_activation, init_weights, set_bn_eps
from .subnet import MobileNetV3Subnet


class DynamicMBConv(nn.Module):
    """An MBConv block with elastic kernel and expand ratio (fixed input/output channels and stride)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_choices: Sequence[int],
        expand_choices: Sequence[int],
        stride: int,
        act: str,
        use_se: bool,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.expand_choices = tuple(sorted(set(expand_choices)))
        max_mid = self.mid_channels(self.expand_choices[-1])
        self.inverted_bottleneck = nn.Sequential(
            OrderedDict(
                conv=DynamicPointwiseConv2d(in_channels, max_mid),
                bn=DynamicBatchNorm2d(max_mid),
                act=build_activation(act),
            )
        )
        depth: OrderedDict[str, nn.Module] = OrderedDict()
        depth["conv"] = DynamicDepthwiseConv2d(max_mid, tuple(kernel_choices), stride)
        depth["bn"] = DynamicBatchNorm2d(max_mid)
        depth["act"] = build_activation(act)
        if use_se:
            depth["se"] = DynamicSE(max_mid)
        self.depth_conv = nn.Sequential(depth)
        self.point_linear = nn.Sequential(
            OrderedDict(conv=DynamicPointwiseConv2d(max_mid, out_channels), bn=DynamicBatchNorm2d(out_channels))
        )
        self.set_active(max(kernel_choices), self.expand_choices[-1])

    @property
    def use_se(self) -> bool:
        return hasattr(self.depth_conv, "se")

    def mid_channels(self, expand: int) -> int:
        return SearchSpace.mid_channels(self.in_channels, expand)

    def set_active(self, kernel: int, expand: int) -> None:
        self.inverted_bottleneck.conv.active_out = self.mid_channels(expand)
        self.depth_conv.conv.active_kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_linear(self.depth_conv(self.inverted_bottleneck(x)))

    @torch.no_grad()
    def copy_active_to(self, static: MBConv, kernel: int, expand: int) -> None:
        """Copy the weights of configuration (kernel, expand) into a static block of that shape."""
        mid = self.mid_channels(expand)
        ib, dw, pl = self.inverted_bottleneck, self.depth_conv, self.point_linear
        assert static.inverted_bottleneck is not None
        static.inverted_bottleneck.conv.weight.copy_(ib.conv.weight[:mid, : self.in_channels])
        _copy_bn(ib.bn, static.inverted_bottleneck.bn, mid)
        static.depth_conv.conv.weight.copy_(dw.conv.active_weight(mid, kernel))
        _copy_bn(dw.bn, static.depth_conv.bn, mid)
        if self.use_se:
            se_mid = SearchSpace.se_channels(mid)
            src, dst = dw.se.fc, static.depth_conv.se.fc
            dst.reduce.weight.copy_(src.reduce.weight[:se_mid, :mid])
            dst.reduce.bias.copy_(src.reduce.bias[:se_mid])
            dst.expand.weight.copy_(src.expand.weight[:mid, :se_mid])
            dst.expand.bias.copy_(src.expand.bias[:mid])
        static.point_linear.conv.weight.copy_(pl.conv.weight[:, :mid])
        _copy_bn(pl.bn, static.point_linear.bn, self.out_channels)

    @torch.no_grad()
    def sort_channels(self, tier_expands: Iterable[int] = ()) -> None:
        """Reorder the expanded channels by L1 importance of the point-linear weights.

        ``tier_expands`` are expand ratios whose widths were already trained: channels inside each
        such width stay inside it (sorted among themselves), so a trained narrower subnet keeps
        its channels. Every tensor touching the expanded channels is permuted the same way, so the
        full-width block computes exactly what it did before. The SE hidden channels are sorted
        too, by the L1 importance of the SE expand weights.
        """
        ib, dw, pl = self.inverted_bottleneck, self.depth_conv, self.point_linear
        max_mid = pl.conv.weight.shape[1]
        importance = pl.conv.weight.abs().sum(dim=(0, 2, 3))
        bounds = sorted({self.mid_channels(e) for e in tier_expands} | {max_mid})
        tier = torch.bucketize(torch.arange(max_mid), torch.tensor(bounds), right=True)
        order = _order_by(tier, importance)

        pl.conv.weight.copy_(pl.conv.weight[:, order])
        dw.conv.weight.copy_(dw.conv.weight[order])
        _permute_bn(dw.bn, order)
        ib.conv.weight.copy_(ib.conv.weight[order])
        _permute_bn(ib.bn, order)
        if self.use_se:
            fc = dw.se.fc
            fc.expand.weight.copy_(fc.expand.weight[order])
            fc.expand.bias.copy_(fc.expand.bias[order])
            fc.reduce.weight.copy_(fc.reduce.weight[:, order])
            se_importance = fc.expand.weight.abs().sum(dim=(0, 2, 3))
            se_order = _order_by(torch.zeros_like(se_importance, dtype=torch.long), se_importance)
            fc.expand.weight.copy_(fc.expand.weight[:, se_order])
            fc.reduce.weight.copy_(fc.reduce.weight[se_order])
            fc.reduce.bias.copy_(fc.reduce.bias[se_order])


def _order_by(tier: torch.Tensor, importance: torch.Tensor) -> torch.Tensor:
    """Indices sorted by tier (ascending), then importance (descending)."""
    by_importance = torch.argsort(importance, descending=True, stable=True)
    return by_importance[torch.argsort(tier[by_importance], stable=True)]


def _copy_bn(src: nn.BatchNorm2d, dst: nn.BatchNorm2d, channels: int) -> None:
    dst.weight.copy_(src.weight[:channels])
    dst.bias.copy_(src.bias[:channels])
    dst.running_mean.copy_(src.running_mean[:channels])
    dst.running_var.copy_(src.running_var[:channels])
    dst.num_batches_tracked.copy_(src.num_batches_tracked)


def _permute_bn(bn: nn.BatchNorm2d, order: torch.Tensor) -> None:
    for tensor in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
        tensor.copy_(tensor[order])


class OFAMobileNetV3(MobileNetV3Frame):
    """The elastic supernet of a :class:`SearchSpace` (a preset name or a space object)."""

    def __init__(self, space: SearchSpace | str) -> None:
        space = get_space(space) if isinstance(space, str) else space
        super().__init__(space, linear=DynamicLinear)
        self.space = space
        first = space.first_block_spec(input_size=0)
        blocks: list[nn.Module] = [ResidualBlock(MBConv(first), first.shortcut)]
        # stage_blocks[s] lists the indices into self.blocks of stage s's block slots.
        self.stage_blocks: list[list[int]] = []
        channels = space.first_block_width
        for stage, slots in zip(space.stages, space.stage_slots):
            indices = []
            for index in range(len(slots)):
                stride = stage.stride if index == 0 else 1
                body = DynamicMBConv(
                    channels, stage.width, space.kernel_choices, space.expand_choices, stride, stage.act, stage.se
                )
                indices.append(len(blocks))
                blocks.append(ResidualBlock(body, stride == 1 and channels == stage.width))
                channels = stage.width
            self.stage_blocks.append(indices)
        self.blocks = nn.ModuleList(blocks)
        init_weights(self)
        set_bn_eps(self, space.bn_eps)
        self.active_arch = space.max_arch()
        self.set_active(self.active_arch)

    # ------------------------------------------------------------------ elastic
    def set_active(self, arch: Arch | dict) -> Arch:
        """Activate ``arch`` (validated against the space). The input size is not enforced: the
        resolution ``r`` is what callers should feed, and what latency and MACs refer to."""
        arch = self.space.validate(arch)
        for indices, slots in zip(self.stage_blocks, self.space.stage_slots):
            for block_index, slot in zip(indices, slots):
                self.blocks[block_index].conv.set_active(arch.ks[slot], arch.e[slot])
        self.active_arch = arch
        return arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_conv(x)
        x = self.blocks[0](x)
        for stage, indices in enumerate(self.stage_blocks):
            for block_index in indices[: self.active_arch.d[stage]]:
                x = self.blocks[block_index](x)
        return self.head(x)

    @torch.no_grad()
    def get_subnet(self, arch: Arch | dict | None = None) -> MobileNetV3Subnet:
        """A static copy of ``arch`` (default: the active one) on this network's device and dtype, in
        its train/eval mode."""
        arch = self.active_arch if arch is None else self.space.validate(arch)
        specs: list[BlockSpec] = self.space.block_specs(arch)
        reference = self.first_conv.conv.weight
        subnet = MobileNetV3Subnet(self.space, specs, arch).to(device=reference.device, dtype=reference.dtype)
        subnet.first_conv.load_state_dict(self.first_conv.state_dict())
        subnet.blocks[0].load_state_dict(self.blocks[0].state_dict())
        for position, (stage, index, slot) in enumerate(self.space.active_slots(arch), start=1):
            body = self.blocks[self.stage_blocks[stage][index]].conv
            body.copy_active_to(subnet.blocks[position].conv, arch.ks[slot], arch.e[slot])
        subnet.final_expand_layer.load_state_dict(self.final_expand_layer.state_dict())
        if self.feature_mix_layer is not None:
            subnet.feature_mix_layer.load_state_dict(self.feature_mix_layer.state_dict())
        subnet.classifier.linear.load_state_dict(self.classifier.linear.state_dict())
        return subnet.train(self.training)

    def dynamic_blocks(self) -> list[DynamicMBConv]:
        return [self.blocks[i].conv for indices in self.stage_blocks for i in indices]

    def sort_channels(self, tier_expands: Iterable[int] = ()) -> None:
        """Re-sort every elastic block's expanded channels (see :meth:`DynamicMBConv.sort_channels`).

        Before the first width phase pass nothing (a full sort); before a later one pass the expand
        ratios already trained (e.g. ``(4, 6)``) so their channels stay in front.
        """
        tiers = tuple(tier_expands)
        for block in self.dynamic_blocks():
            block.sort_channels(tiers)
