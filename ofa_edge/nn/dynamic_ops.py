"""Dynamic (elastic) operators: each holds the weights of its largest configuration and runs a
prefix slice of them.

Every op subclasses the static PyTorch module it generalises, so initialisation, ``.to()``,
state-dict keys and BN recalibration treat it like the static one. Two rules keep the supernet as
fast as a static network:

* when the active configuration is the full one, the parameter itself is used, not a slice
  (a slice puts a copy and a scatter-back into every training step);
* a sliced or transformed weight gets the layout of the stored parameter, so a network moved
  to channels-last stays channels-last everywhere (a default-layout weight makes the CPU
  convolution pick its slower default-layout kernels, 2-3x slower for depthwise backward).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..space.space import SearchSpace


def _is_channels_last(t: torch.Tensor) -> bool:
    """True when ``t`` has exactly the channels-last strides (and they differ from the default ones).

    ``is_contiguous(memory_format=...)`` ignores size-1 dims and so calls a (C, 1, k, k) depthwise
    weight or an (N, C, 1, 1) activation contiguous in both layouts; the convolution kernels pick
    their algorithm from the strides themselves, so we compare strides.
    """
    if t.dim() != 4:
        return False
    _n, c, h, w = t.shape
    return t.stride() == (h * w * c, 1, w * c, c) and t.stride() != (c * h * w, h * w, w, 1)


def _in_layout_of(weight: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``weight`` (a slice or transform of ``like``) laid out as the stored parameter ``like`` is."""
    if not _is_channels_last(like):
        return weight.contiguous()
    if _is_channels_last(weight):
        return weight
    return weight.clone(memory_format=torch.channels_last)


def _slice_conv_weight(weight: torch.Tensor, out_channels: int, in_channels: int) -> torch.Tensor:
    if out_channels == weight.shape[0] and in_channels == weight.shape[1]:
        return weight
    return _in_layout_of(weight[:out_channels, :in_channels], weight)


class DynamicPointwiseConv2d(nn.Conv2d):
    """1x1 convolution whose input channels follow the input and output channels ``active_out``."""

    def __init__(self, max_in_channels: int, max_out_channels: int) -> None:
        super().__init__(max_in_channels, max_out_channels, 1, bias=False)
        self.active_out = max_out_channels

    def active_weight(self, in_channels: int) -> torch.Tensor:
        return _slice_conv_weight(self.weight, self.active_out, in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.active_weight(x.shape[1]))


class DynamicDepthwiseConv2d(nn.Conv2d):
    """Depthwise convolution with an elastic kernel size.

    The largest kernel is stored; a smaller one is the centre crop of the next larger kernel
    multiplied by a per-layer (k*k x k*k) transformation matrix shared by all channels, initialised
    to the identity (7 -> 5 -> 3, as in the OFA paper). Parameter names (``7to5_matrix``) follow the
    reference code.
    """

    def __init__(self, max_channels: int, kernel_choices: tuple[int, ...], stride: int) -> None:
        self.kernel_choices = tuple(sorted(set(kernel_choices)))
        max_kernel = self.kernel_choices[-1]
        super().__init__(
            max_channels, max_channels, max_kernel, stride, max_kernel // 2, groups=max_channels, bias=False
        )
        for small, large in zip(self.kernel_choices[:-1], self.kernel_choices[1:]):
            self.register_parameter(self.matrix_name(large, small), nn.Parameter(torch.eye(small * small)))
        self.active_kernel = max_kernel

    @staticmethod
    def matrix_name(large: int, small: int) -> str:
        return f"{large}to{small}_matrix"

    def active_weight(self, channels: int, kernel: int) -> torch.Tensor:
        weight = self.weight if channels == self.weight.shape[0] else self.weight[:channels]
        pairs = list(zip(self.kernel_choices[:-1], self.kernel_choices[1:]))
        for small, large in reversed(pairs):
            if large <= kernel:
                break
            start = (large - small) // 2
            crop = weight[:, :, start : start + small, start : start + small]
            matrix = getattr(self, self.matrix_name(large, small))
            weight = F.linear(crop.reshape(channels, small * small), matrix).view(channels, 1, small, small)
        return weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels, kernel = x.shape[1], self.active_kernel
        weight = self.active_weight(channels, kernel)
        if weight is not self.weight:
            weight = _in_layout_of(weight, self.weight)
        return F.conv2d(x, weight, None, self.stride, kernel // 2, 1, channels)


class DynamicBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the first C channels, C taken from the input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        if channels == self.num_features:
            return super().forward(x)
        factor = 0.0
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        use_batch_stats = self.training or not self.track_running_stats
        # Prefix slices of the 1-D buffers are views, so a training step updates the stored stats.
        return F.batch_norm(
            x,
            self.running_mean[:channels] if self.track_running_stats else None,
            self.running_var[:channels] if self.track_running_stats else None,
            self.weight[:channels],
            self.bias[:channels],
            use_batch_stats,
            factor,
            self.eps,
        )


class DynamicSE(nn.Module):
    """Squeeze-excite whose width follows the input; its hidden width is ``se_channels(C)``."""

    def __init__(self, max_channels: int) -> None:
        super().__init__()
        mid = SearchSpace.se_channels(max_channels)
        self.fc = nn.Sequential()
        self.fc.add_module("reduce", nn.Conv2d(max_channels, mid, 1))
        self.fc.add_module("relu", nn.ReLU(inplace=True))
        self.fc.add_module("expand", nn.Conv2d(mid, max_channels, 1))
        self.fc.add_module("gate", nn.Hardsigmoid(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        pooled = x.mean((2, 3), keepdim=True)
        if channels == self.fc.reduce.in_channels:
            return x * self.fc(pooled)
        mid = SearchSpace.se_channels(channels)
        reduce, expand = self.fc.reduce, self.fc.expand
        y = F.conv2d(pooled, reduce.weight[:mid, :channels].contiguous(), reduce.bias[:mid])
        y = F.relu(y, inplace=True)
        y = F.conv2d(y, expand.weight[:channels, :mid].contiguous(), expand.bias[:channels])
        return x * F.hardsigmoid(y, inplace=True)


class DynamicLinear(nn.Linear):
    """Linear layer whose input features follow the input (a prefix of the stored columns)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = x.shape[-1]
        if features == self.in_features:
            return super().forward(x)
        return F.linear(x, self.weight[:, :features].contiguous(), self.bias)
