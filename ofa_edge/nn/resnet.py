"""The OFA-ResNet50 supernet and the static subnet it extracts.

Module names follow the reference's *static* ResNet (``input_stem.0.conv.weight``,
``input_stem.1.conv.bn.weight``, ``blocks.3.conv2.conv.weight``, ``blocks.0.downsample.conv.weight``,
``classifier.linear.weight``): the dynamic ops subclass the static modules, so the supernet has no
wrapper levels. :func:`resnet_official_key_to_ours` maps the reference supernet's keys (which add a
wrapper level: ``conv.conv.weight``, ``bn.bn.weight``, ``linear.linear.weight``) onto these.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError
from ..space.resnet import KERNEL, ResNetArch, ResNetBlockSpec, ResNetSpace, ResNetStemSpec, get_resnet_space
from .dynamic_ops import DynamicBatchNorm2d, DynamicLinear, DynamicPointwiseConv2d, _slice_conv_weight
from .layers import ResidualBlock, init_weights


class DynamicConv2d(nn.Conv2d):
    """A square-kernel convolution ('same' padding) whose input channels follow the input and
    output channels are ``active_out``."""

    def __init__(self, max_in_channels: int, max_out_channels: int, kernel: int, stride: int = 1) -> None:
        super().__init__(max_in_channels, max_out_channels, kernel, stride, kernel // 2, bias=False)
        self.active_out = max_out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = _slice_conv_weight(self.weight, self.active_out, x.shape[1])
        return F.conv2d(x, weight, None, self.stride, self.padding)


def _conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d, act: bool = False, pool_stride: int = 1) -> nn.Sequential:
    """conv-BN(-ReLU), after an avg-pool when ``pool_stride`` > 1 (a downsampling shortcut; its
    ``ceil_mode`` keeps odd sizes in step with the strided 3x3 conv)."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    if pool_stride > 1:
        layers["avg_pool"] = nn.AvgPool2d(pool_stride, pool_stride, 0, ceil_mode=True)
    layers["conv"], layers["bn"] = conv, bn
    if act:
        layers["act"] = nn.ReLU(inplace=True)
    return nn.Sequential(layers)


def _dynamic_conv_bn(conv: nn.Conv2d, eps: float, act: bool = False, pool_stride: int = 1) -> nn.Sequential:
    return _conv_bn(conv, DynamicBatchNorm2d(conv.out_channels, eps=eps), act, pool_stride)


def _static_conv_bn(
    cin: int, cout: int, eps: float, kernel: int = 1, stride: int = 1, act: bool = False, pool_stride: int = 1
) -> nn.Sequential:
    conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
    return _conv_bn(conv, nn.BatchNorm2d(cout, eps=eps), act, pool_stride)


class DynamicBottleneck(nn.Module):
    """A ResNet bottleneck with elastic middle and output width (input width follows the input)."""

    def __init__(self, max_in: int, max_out: int, max_mid: int, stride: int, downsample: bool, eps: float) -> None:
        super().__init__()
        self.max_out = max_out
        self.conv1 = _dynamic_conv_bn(DynamicPointwiseConv2d(max_in, max_mid), eps, act=True)
        self.conv2 = _dynamic_conv_bn(DynamicConv2d(max_mid, max_mid, KERNEL, stride), eps, act=True)
        self.conv3 = _dynamic_conv_bn(DynamicPointwiseConv2d(max_mid, max_out), eps)
        self.downsample: nn.Module = nn.Identity()
        if downsample:
            self.downsample = _dynamic_conv_bn(DynamicPointwiseConv2d(max_in, max_out), eps, pool_stride=stride)
        self.final_act = nn.ReLU(inplace=True)

    @property
    def has_downsample(self) -> bool:
        return not isinstance(self.downsample, nn.Identity)

    def set_active(self, mid: int, out: int) -> None:
        self.conv1.conv.active_out = self.conv2.conv.active_out = mid
        self.conv3.conv.active_out = out
        if self.has_downsample:
            self.downsample.conv.active_out = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.downsample(x)
        return self.final_act(self.conv3(self.conv2(self.conv1(x))) + residual)

    @torch.no_grad()
    def copy_active_to(self, static: Bottleneck, spec: ResNetBlockSpec) -> None:
        """Copy the weights of ``spec``'s configuration into a static block of that shape."""
        mid, cin, out = spec.mid_channels, spec.in_channels, spec.out_channels
        for name, (rows, cols) in (("conv1", (mid, cin)), ("conv2", (mid, mid)), ("conv3", (out, mid))):
            _copy_conv_bn(getattr(self, name), getattr(static, name), rows, cols)
        if spec.downsample:
            _copy_conv_bn(self.downsample, static.downsample, out, cin)

    @torch.no_grad()
    def sort_channels(self, tier_widths: Iterable[int] = ()) -> None:
        """Reorder the middle channels by importance, in two passes as the reference does.

        Pass 1 sorts conv2's outputs by the L1 norm of conv3's weights on them; pass 2 sorts
        conv1's outputs (conv2's inputs) by the L1 norm of the re-sorted conv2's weights on them.
        Channels inside each of ``tier_widths`` (middle widths already trained) stay inside it,
        so a trained narrower block keeps its channels. The full block computes what it did.
        """
        max_mid = self.conv2.conv.weight.shape[0]
        bounds = torch.tensor(sorted({*tier_widths, max_mid}))
        tier = torch.bucketize(torch.arange(max_mid), bounds, right=True)

        order = _order_by(tier, self.conv3.conv.weight.abs().sum(dim=(0, 2, 3)))
        self.conv3.conv.weight.copy_(self.conv3.conv.weight[:, order])
        _permute_conv_bn(self.conv2, order)

        order = _order_by(tier, self.conv2.conv.weight.abs().sum(dim=(0, 2, 3)))
        self.conv2.conv.weight.copy_(self.conv2.conv.weight[:, order])
        _permute_conv_bn(self.conv1, order)


def _order_by(tier: torch.Tensor, importance: torch.Tensor) -> torch.Tensor:
    """Indices sorted by tier (ascending), then importance (descending)."""
    by_importance = torch.argsort(importance, descending=True, stable=True)
    return by_importance[torch.argsort(tier[by_importance], stable=True)]


def _permute_conv_bn(layer: nn.Sequential, order: torch.Tensor) -> None:
    """Permute a conv's output channels and its BN's channels (all four tensors)."""
    layer.conv.weight.copy_(layer.conv.weight[order])
    for tensor in (layer.bn.weight, layer.bn.bias, layer.bn.running_mean, layer.bn.running_var):
        tensor.copy_(tensor[order])


def _copy_conv_bn(src: nn.Sequential, dst: nn.Sequential, rows: int, cols: int) -> None:
    dst.conv.weight.copy_(src.conv.weight[:rows, :cols])
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst.bn, name).copy_(getattr(src.bn, name)[:rows])
    dst.bn.num_batches_tracked.copy_(src.bn.num_batches_tracked)


# ------------------------------------------------------------------ static subnet
class Bottleneck(nn.Module):
    """The static bottleneck a :class:`ResNetBlockSpec` describes."""

    def __init__(self, spec: ResNetBlockSpec, eps: float) -> None:
        super().__init__()
        mid, cin, out = spec.mid_channels, spec.in_channels, spec.out_channels
        self.conv1 = _static_conv_bn(cin, mid, eps, act=True)
        self.conv2 = _static_conv_bn(mid, mid, eps, KERNEL, spec.stride, act=True)
        self.conv3 = _static_conv_bn(mid, out, eps)
        self.downsample: nn.Module = nn.Identity()
        if spec.downsample:
            self.downsample = _static_conv_bn(cin, out, eps, pool_stride=spec.stride)
        self.final_act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.downsample(x)
        return self.final_act(self.conv3(self.conv2(self.conv1(x))) + residual)


def _stem_layers(stem: ResNetStemSpec, eps: float) -> list[nn.Module]:
    """Static stem: conv, the residual conv when kept, conv (the reference's static indexing:
    without the residual conv the last conv is ``input_stem.1``)."""
    mid = stem.mid_channels
    layers: list[nn.Module] = [_static_conv_bn(stem.in_channels, mid, eps, KERNEL, stem.stride, act=True)]
    if stem.keep_middle:
        layers.append(ResidualBlock(_static_conv_bn(mid, mid, eps, KERNEL, act=True), True))
    layers.append(_static_conv_bn(mid, stem.out_channels, eps, KERNEL, act=True))
    return layers


def _classifier(in_features: int, num_classes: int, dropout: float, linear: type[nn.Linear]) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    if dropout > 0:
        layers["dropout"] = nn.Dropout(dropout, inplace=True)
    layers["linear"] = linear(in_features, num_classes)
    return nn.Sequential(layers)


class ResNetSubnet(nn.Module):
    """A static OFA-ResNet subnet of plain PyTorch modules, keys as the reference's static ResNet."""

    def __init__(self, space: ResNetSpace, arch: ResNetArch) -> None:
        super().__init__()
        arch = space.validate(arch)
        self.space_name, self.arch = space.name, arch
        self.input_stem = nn.ModuleList(_stem_layers(space.stem_spec(arch), space.bn_eps))
        self.max_pooling = nn.MaxPool2d(3, 2, 1) if space.max_pool else None
        self.blocks = nn.ModuleList(Bottleneck(spec, space.bn_eps) for spec in space.block_specs(arch))
        self.classifier = _classifier(space.classifier_in_features(arch), space.num_classes, space.dropout, nn.Linear)
        init_weights(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's feature map (before pooling and the classifier)."""
        for layer in self.input_stem:
            x = layer(x)
        if self.max_pooling is not None:
            x = self.max_pooling(x)
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean((2, 3)))


# ---------------------------------------------------------------------- supernet
class OFAResNet(nn.Module):
    """The elastic supernet of a :class:`ResNetSpace` (a preset name or a space object)."""

    def __init__(self, space: ResNetSpace | str) -> None:
        super().__init__()
        space = get_resnet_space(space) if isinstance(space, str) else space
        self.space = space
        mid, out, eps = max(space.stem_mid_widths), max(space.stem_out_widths), space.bn_eps
        self.input_stem = nn.ModuleList(
            [
                _dynamic_conv_bn(DynamicConv2d(space.in_channels, mid, KERNEL, space.stem_stride), eps, act=True),
                ResidualBlock(_dynamic_conv_bn(DynamicConv2d(mid, mid, KERNEL), eps, act=True), True),
                _dynamic_conv_bn(DynamicConv2d(mid, out, KERNEL), eps, act=True),
            ]
        )
        self.max_pooling = nn.MaxPool2d(3, 2, 1) if space.max_pool else None
        self.blocks = nn.ModuleList(self._build_blocks(out))
        last = max(space.stage_widths(space.num_stages - 1))
        self.classifier = _classifier(last, space.num_classes, space.dropout, DynamicLinear)
        init_weights(self)
        self.active_arch = space.max_arch()
        self.set_active(self.active_arch)

    def _build_blocks(self, channels: int) -> list[DynamicBottleneck]:
        space, blocks = self.space, []
        for stage in range(space.num_stages):
            out, mid = max(space.stage_widths(stage)), space.max_mid_channels(stage)
            for index in range(len(space.stage_slots[stage])):
                stride = space.strides[stage] if index == 0 else 1
                downsample = space.has_downsample(stage, index)
                blocks.append(DynamicBottleneck(channels, out, mid, stride, downsample, space.bn_eps))
                channels = out
        return blocks

    # ------------------------------------------------------------------ elastic
    def set_active(self, arch: ResNetArch | dict) -> ResNetArch:
        """Activate ``arch`` (validated against the space). The input size is not enforced: ``r``
        is what callers should feed, and what MACs refer to."""
        space = self.space
        arch = space.validate(arch)
        stem_mid = space.stem_mid_widths[arch.w[0]]
        self.input_stem[0].conv.active_out = self.input_stem[1].conv.conv.active_out = stem_mid
        self.input_stem[2].conv.active_out = space.stem_out_widths[arch.w[1]]
        for stage in range(space.num_stages):
            out = space.stage_widths(stage)[arch.w[stage + 2]]
            for slot in space.stage_slots[stage]:
                self.blocks[slot].set_active(space.mid_channels(out, arch.e[slot]), out)
        self.active_arch = arch
        self._active_blocks = [slot for _, _, slot in space.active_slots(arch)]
        return arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_stem[0](x)
        if self.space.keeps_stem_block(self.active_arch):
            x = self.input_stem[1](x)
        x = self.input_stem[2](x)
        if self.max_pooling is not None:
            x = self.max_pooling(x)
        for slot in self._active_blocks:
            x = self.blocks[slot](x)
        return self.classifier(x.mean((2, 3)))

    def dynamic_blocks(self) -> list[DynamicBottleneck]:
        return list(self.blocks)

    @torch.no_grad()
    def get_subnet(self, arch: ResNetArch | dict | None = None) -> ResNetSubnet:
        """A static copy of ``arch`` (default: the active one) on this network's device and dtype,
        in its train/eval mode."""
        space = self.space
        arch = self.active_arch if arch is None else space.validate(arch)
        reference = self.input_stem[0].conv.weight
        subnet = ResNetSubnet(space, arch).to(device=reference.device, dtype=reference.dtype)
        self._copy_stem_to(subnet, space.stem_spec(arch))
        specs = space.block_specs(arch)
        for position, ((_, _, slot), spec) in enumerate(zip(space.active_slots(arch), specs)):
            self.blocks[slot].copy_active_to(subnet.blocks[position], spec)
        linear, features = self.classifier.linear, space.classifier_in_features(arch)
        subnet.classifier.linear.weight.copy_(linear.weight[:, :features])
        subnet.classifier.linear.bias.copy_(linear.bias)
        return subnet.train(self.training)

    def _copy_stem_to(self, subnet: ResNetSubnet, stem: ResNetStemSpec) -> None:
        mid, out = stem.mid_channels, stem.out_channels
        _copy_conv_bn(self.input_stem[0], subnet.input_stem[0], mid, stem.in_channels)
        if stem.keep_middle:
            _copy_conv_bn(self.input_stem[1].conv, subnet.input_stem[1].conv, mid, mid)
        _copy_conv_bn(self.input_stem[2], subnet.input_stem[-1], out, mid)

    def sort_channels(self, tier_expands: Iterable[float] = ()) -> None:
        """Re-sort every block's middle channels (see :meth:`DynamicBottleneck.sort_channels`).

        Before the first width phase pass nothing (a full sort: the reference's
        ``re_organize_middle_weights(expand_ratio_stage=0)``); before a later one pass the expand
        ratios already trained, e.g. ``(0.35, 0.25)`` for ``expand_ratio_stage=1``. A tier's width
        is taken at the block's largest output width, as the reference does.
        """
        tiers = tuple(tier_expands)
        for block in self.blocks:
            block.sort_channels(ResNetSpace.mid_channels(block.max_out, e) for e in tiers)


# ------------------------------------------------------------- official checkpoints
# Our layer paths; the reference supernet repeats the last segment once more (a wrapper module).
_CONV_BN_KEY = re.compile(
    r"^(input_stem\.[02]|input_stem\.1\.conv|blocks\.\d+\.(?:conv[123]|downsample))"
    r"\.(conv|bn)\.(?:\2\.)?(weight|bias|running_mean|running_var|num_batches_tracked)$"
)
_LINEAR_KEY = re.compile(r"^classifier\.linear\.(?:linear\.)?(weight|bias)$")


def resnet_official_key_to_ours(key: str) -> str:
    """Our state-dict key for a key of a reference OFA-ResNet checkpoint, dynamic form
    (``input_stem.1.conv.conv.conv.weight``, ``blocks.0.conv1.bn.bn.weight``) or static form
    (``input_stem.1.conv.conv.weight``, ``blocks.0.conv1.bn.weight``)."""
    match = _CONV_BN_KEY.match(key)
    if match:
        return f"{match[1]}.{match[2]}.{match[3]}"
    match = _LINEAR_KEY.match(key)
    if match:
        return f"classifier.linear.{match[1]}"
    raise CheckpointError(f"checkpoint key '{key}' is not a tensor of an OFA-ResNet supernet")


def load_official_resnet_state(net: OFAResNet, state: Mapping[str, torch.Tensor]) -> None:
    """Load a reference OFA-ResNet state dict (or a checkpoint holding one under ``state_dict``)
    into ``net``; any key or shape that does not fit is one :class:`CheckpointError` line."""
    if "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    ours = net.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        target = resnet_official_key_to_ours(key)
        if target in mapped:
            raise CheckpointError(f"checkpoint keys map twice onto '{target}' (second: '{key}')")
        if target not in ours:
            raise CheckpointError(f"checkpoint tensor '{key}' has no place in space {net.space.name}'s supernet")
        if tuple(tensor.shape) != tuple(ours[target].shape):
            raise CheckpointError(
                f"checkpoint tensor '{key}' has shape {list(tensor.shape)}; space {net.space.name} "
                f"needs {list(ours[target].shape)}"
            )
        mapped[target] = tensor
    missing = [k for k in ours if k not in mapped and not k.endswith("num_batches_tracked")]
    if missing:
        raise CheckpointError(f"checkpoint lacks tensor '{missing[0]}' of space {net.space.name}'s supernet")
    net.load_state_dict(mapped, strict=False)
