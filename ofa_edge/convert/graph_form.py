"""Export forms of a subnet: the same function written with the ops each int8 runtime quantises.

An int8 graph is only as fast as its slowest float island: an op the runtime has no int8 kernel
for is wrapped in dequantize/quantize (onnxruntime) or left outside the accelerated partition
(TFLite's XNNPACK delegate), and each such island costs two extra passes over the activation.
What we found on these runtimes (see ``bench/int8.py``):

* ``x.mean((2, 3), keepdim=True)`` (squeeze-excite and head pooling) exports to ONNX as
  ``ReduceMean``, which onnxruntime's quantiser leaves in float; ``adaptive_avg_pool2d(x, 1)``
  exports as ``GlobalAveragePool``, which it quantises (``QLinearGlobalAveragePool``).
* XNNPACK takes no int8 ``HARD_SWISH``: every hard-swish of a static int8 .tflite runs in the
  built-in kernels between two delegate partitions. Written as ``(x / 6) * relu6(x + 3)`` it is
  ADD (fused ReLU6) and two MULs, all int8 in XNNPACK, and the whole net is one partition.
  The same rewrite turns onnxruntime's float HardSigmoid islands (it splits HardSwish into
  HardSigmoid and Mul) into QLinearAdd/QLinearMul; ``hsigmoid`` does it for the SE gates.
* XNNPACK (ai-edge-litert 2.3) runs a depthwise convolution fast only up to 25 taps (its unipass
  kernels: 3x3, 5x5, 3x7, ...); a 7x7 one takes its multipass path, several times slower than the
  built-in kernels in fp32 and 50-1000x slower in int8 (a demo subnet with eleven 7x7 depthwise
  convolutions: int8 ~7x slower than fp32, 95% of it in those convolutions). ``dwsplit`` writes
  each such convolution (with its batch norm folded in) as row bands of at most 25 taps over the
  padded input, summed: a few ADDs instead of one slow op (the folded bands are small copies).
  :func:`~ofa_edge.convert.tflite.convert_tflite` applies it to every .tflite it writes, fp32 and
  int8, latency-table units included (:func:`split_large_depthwise`), so a table prices what
  export ships (int8 top-1 agreement with fp32: 99.0% with it, 99.2% without, demo max subnet at
  28 px, 1000 test images). Rough timings, 1 thread, a shared CPU: w1.0 max subnet at 224 px,
  fp32 ~150 ms plain and ~45 ms split; int8 ~900 ms plain and ~25-45 ms split.

* onnxruntime's fast int8 depthwise kernels (MLAS's symmetric convolution, with AVX-512 VNNI here)
  take a depthwise convolution only when its channel count is a multiple of 16; any other count
  runs a generic depthwise path, much slower per channel (``bench/depthwise_channels.py``: 72 and
  120 channels against 64, 80, 112 and 128; numbers in BENCHMARKS.md). Expand ratio 3
  gives 72 and 120 channels on the w1.0 space's two largest maps. ``pad16`` pads such a block's
  middle channels to the next multiple of 16 with channels that are zero everywhere (zero
  weights and batch-norm scale: the expansion, depthwise and projection see exact zeros there,
  and act(0) = 0 for ReLU and hard-swish), buying the fast kernel for 7-11% more MACs in that
  block.

Every form computes what the subnet computes (the export checks the file against the original
subnet); they share its parameters (no copies, but for ``dwsplit``'s folded bands and ``pad16``'s
padded blocks).
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.layers import GlobalAvgPool, MBConv, SqueezeExcite
from ..nn.resnet import ResNetSubnet
from ..nn.subnet import MobileNetV3Subnet

FORMS = ("pool", "hswish", "hsigmoid", "dwsplit", "pad16")
MAX_DEPTHWISE_TAPS = 25  # the largest depthwise kernel XNNPACK runs in one pass
DEPTHWISE_CHANNEL_MULTIPLE = 16  # onnxruntime's fast int8 depthwise kernel takes multiples of 16


class GlobalPoolSE(nn.Module):
    """Squeeze-and-excite with global average pooling written as ``adaptive_avg_pool2d``."""

    def __init__(self, se: SqueezeExcite) -> None:
        super().__init__()
        self.fc = se.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(F.adaptive_avg_pool2d(x, 1))


class DecomposedHardswish(nn.Module):
    """``(x / 6) * relu6(x + 3)``: add (fused ReLU6) and two multiplies, int8 everywhere in XNNPACK.

    The order matters: litert-torch folds ``x * relu6(x + 3) / 6`` (and ``x * hardsigmoid(x)``)
    back into one HARD_SWISH; it leaves this one alone.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * (1.0 / 6.0)) * F.relu6(x + 3.0)


class DecomposedHardsigmoid(nn.Module):
    """``relu6(x + 3) / 6`` as add, clamp and a multiply (the squeeze-excite gate)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x + 3.0) * (1.0 / 6.0)


class SplitDepthwise(nn.Module):
    """A depthwise ``conv`` followed by its eval-mode ``bn``, for inputs of spatial ``size``, as a sum
    of depthwise convolutions over row bands of the kernel (each at most :data:`MAX_DEPTHWISE_TAPS`
    taps, band heights balanced) on the padded input.

    Kernel rows and columns that only ever meet padding (a 7x7 kernel on a 2x2 input uses its centre
    3x3) are dropped first: they add nothing, and a band that sees only zeros calibrates to a
    degenerate int8 range (XNNPACK then aborts). The batch norm is folded into the bands (the bias
    into the first); the bands are constant buffers, not computed in ``forward``: PT2E quantises a
    convolution's weight only when it is a constant (a weight computed in the graph came out of
    litert-torch as a ~10% top-1 int8 file). Inputs of another size run the plain conv and bn.
    """

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, size: tuple[int, int]) -> None:
        super().__init__()
        self.conv = conv
        self.bn = bn
        self.size = tuple(size)
        (sh, sw), (ph, pw) = conv.stride, conv.padding
        rows, cols = _used_taps(size[0], conv, 0), _used_taps(size[1], conv, 1)
        kh, kw = rows[1] - rows[0], cols[1] - cols[0]
        out_h, out_w = rows[2], cols[2]
        top, left = ph - rows[0], pw - cols[0]
        bottom = max(0, (out_h - 1) * sh + kh - size[0] - top)
        right = max(0, (out_w - 1) * sw + kw - size[1] - left)
        self.pad = (left, right, top, bottom)
        self.out_h = out_h
        self.extent = ((out_h - 1) * sh + kh, (out_w - 1) * sw + kw)
        with torch.no_grad():
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            weight = (conv.weight * scale.reshape(-1, 1, 1, 1))[:, :, rows[0] : rows[1], cols[0] : cols[1]]
            bias = bn.bias - bn.running_mean * scale
            if conv.bias is not None:
                bias = bias + conv.bias * scale
        count = -(-kh // max(1, MAX_DEPTHWISE_TAPS // kw))
        edges = [kh * i // count for i in range(count + 1)]
        self.bands = list(pairwise(edges))
        for i, (r0, r1) in enumerate(self.bands):
            self.register_buffer(f"band{i}", weight[:, :, r0:r1, :].clone().contiguous())
        self.register_buffer("bias", bias.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[2:]) != self.size:
            return self.bn(self.conv(x))
        x = F.pad(x, self.pad)[:, :, : self.extent[0], : self.extent[1]]
        stride, out_h = self.conv.stride, self.out_h
        out = None
        for i, (r0, r1) in enumerate(self.bands):
            band = x if len(self.bands) == 1 else x[:, :, r0 : r0 + (out_h - 1) * stride[0] + (r1 - r0), :]
            weight = getattr(self, f"band{i}")
            y = F.conv2d(band, weight, self.bias if out is None else None, stride, 0, 1, self.conv.groups)
            out = y if out is None else out + y
        return out


def _used_taps(size: int, conv: nn.Conv2d, axis: int) -> tuple[int, int, int]:
    """(first, end) of the kernel taps along ``axis`` that meet the input (not only padding) for some
    output position, and the output size."""
    k, s, p = conv.kernel_size[axis], conv.stride[axis], conv.padding[axis]
    out = (size + 2 * p - k) // s + 1
    return max(0, p - (out - 1) * s), min(k, size + p), out


def split_large_depthwise(module: nn.Module, example: torch.Tensor) -> nn.Module:
    """``module`` (any eval-mode network built from :mod:`ofa_edge.nn.layers`: a subnet, or a latency
    table's unit) with every depthwise ``conv``/``bn`` pair of more than :data:`MAX_DEPTHWISE_TAPS`
    taps replaced by a :class:`SplitDepthwise` for the input size it gets on ``example``; a shallow
    copy sharing the other weights (the original is left as it is), or ``module`` itself when it
    has no such convolution."""
    found = [
        name
        for name, child in module.named_modules()
        if isinstance(child, nn.Sequential)
        and _large_depthwise(getattr(child, "conv", None), getattr(child, "bn", None))
    ]
    if not found:
        return module
    import copy

    memo = {id(t): t for t in list(module.parameters()) + list(module.buffers())}
    twin = copy.deepcopy(module, memo)
    pairs = [twin.get_submodule(name) for name in found]
    sizes: dict[int, tuple[int, int]] = {}

    def record(conv: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        # A forward pre-hook must return None: what it returns replaces the module's inputs.
        sizes.setdefault(id(conv), tuple(args[0].shape[2:]))

    hooks = [pair.conv.register_forward_pre_hook(record) for pair in pairs]
    try:
        with torch.no_grad():
            twin.eval()(example)
    finally:
        for hook in hooks:
            hook.remove()
    for pair in pairs:
        pair.conv, pair.bn = SplitDepthwise(pair.conv, pair.bn, sizes[id(pair.conv)]), nn.Identity()
    return twin.eval()


def _large_depthwise(conv: nn.Module | None, bn: nn.Module | None) -> bool:
    if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)):
        return False
    depthwise = conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels
    plain = conv.dilation == (1, 1) and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
    return depthwise and plain and conv.kernel_size[0] * conv.kernel_size[1] > MAX_DEPTHWISE_TAPS


def _padded_conv(conv: nn.Conv2d, extra_in: int, extra_out: int) -> nn.Conv2d:
    """``conv`` with ``extra_in`` zero input channels and ``extra_out`` zero output channels (a
    depthwise conv grows both, by ``extra_out``); bias zero on the new outputs."""
    depthwise = conv.groups > 1
    outs = conv.out_channels + extra_out
    ins = outs if depthwise else conv.in_channels + extra_in
    padded = nn.Conv2d(ins, outs, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                       groups=outs if depthwise else conv.groups, bias=conv.bias is not None)  # fmt: skip
    with torch.no_grad():
        padded.weight.zero_()
        padded.weight[: conv.out_channels, : conv.weight.shape[1]] = conv.weight
        if conv.bias is not None:
            padded.bias.zero_()
            padded.bias[: conv.out_channels] = conv.bias
    return padded


def _padded_bn(bn: nn.BatchNorm2d, extra: int) -> nn.BatchNorm2d:
    """``bn`` with ``extra`` channels whose output is exactly zero (scale and shift zero)."""
    padded = nn.BatchNorm2d(bn.num_features + extra, bn.eps, bn.momentum)
    with torch.no_grad():
        padded.weight.zero_(), padded.bias.zero_()
        padded.running_mean.zero_(), padded.running_var.fill_(1.0)
        n = bn.num_features
        padded.weight[:n], padded.bias[:n] = bn.weight, bn.bias
        padded.running_mean[:n], padded.running_var[:n] = bn.running_mean, bn.running_var
    return padded.eval()


def pad_block_channels(block: MBConv, multiple: int = DEPTHWISE_CHANNEL_MULTIPLE) -> MBConv:
    """``block`` (in eval mode) with its middle (depthwise) channels padded to a multiple of
    ``multiple`` by channels that stay zero; the block itself when they already are one, or when
    it has no expansion conv (its depthwise input is then the block's input)."""
    mid = block.depth_conv.conv.out_channels
    extra = -mid % multiple
    if extra == 0 or block.inverted_bottleneck is None:
        return block
    import copy

    memo = {id(t): t for t in list(block.parameters()) + list(block.buffers())}
    padded = copy.deepcopy(block, memo)
    expand, depth, project = padded.inverted_bottleneck, padded.depth_conv, padded.point_linear
    expand.conv = _padded_conv(expand.conv, 0, extra)
    if hasattr(expand, "bn"):
        expand.bn = _padded_bn(expand.bn, extra)
    depth.conv = _padded_conv(depth.conv, 0, extra)
    depth.bn = _padded_bn(depth.bn, extra)
    if hasattr(depth, "se"):  # zero inputs to the squeeze; the new gates multiply zeros
        fc = depth.se.fc
        fc.reduce = _padded_conv(fc.reduce, extra, 0)
        fc.expand = _padded_conv(fc.expand, 0, extra)
    project.conv = _padded_conv(project.conv, extra, 0)
    return padded.eval()


class AdaptiveGlobalPool(nn.Module):
    """Global average pooling written as ``adaptive_avg_pool2d`` (a :class:`GlobalAvgPool` unit)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, 1)


class ExportForm(nn.Module):
    """A :class:`MobileNetV3Subnet` with its head pooling as ``adaptive_avg_pool2d``."""

    def __init__(self, subnet: MobileNetV3Subnet) -> None:
        super().__init__()
        self.subnet = subnet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.subnet
        x = s.first_conv(x)
        for block in s.blocks:
            x = block(x)
        x = F.adaptive_avg_pool2d(s.final_expand_layer(x), 1)
        if s.feature_mix_layer is not None:
            x = s.feature_mix_layer(x)
        return s.classifier(torch.flatten(x, 1))


class ResNetExportForm(nn.Module):
    """A :class:`ResNetSubnet` with its final pooling as ``adaptive_avg_pool2d`` (its residual
    blocks, stem and shortcut pooling need no other form)."""

    def __init__(self, subnet: ResNetSubnet) -> None:
        super().__init__()
        self.subnet = subnet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.subnet.classifier(torch.flatten(F.adaptive_avg_pool2d(self.subnet.features(x), 1), 1))


# Each family's static subnet and its "pool" form: the whole net with its head pooling written as
# adaptive_avg_pool2d (exported as GlobalAveragePool, which onnxruntime quantises; ReduceMean it
# leaves in float).
POOLED_SUBNETS: dict[type[nn.Module], type[nn.Module]] = {
    MobileNetV3Subnet: ExportForm,
    ResNetSubnet: ResNetExportForm,
}


def _pooled_form(module: nn.Module) -> type[nn.Module] | None:
    return next((form for kind, form in POOLED_SUBNETS.items() if isinstance(module, kind)), None)


def _subnet_example(subnet: nn.Module) -> torch.Tensor:
    """A zero batch-1 input at the subnet's own resolution (its first convolution's channels)."""
    first = next(m for m in subnet.modules() if isinstance(m, nn.Conv2d))
    return torch.zeros(1, first.in_channels, subnet.arch.r, subnet.arch.r)


def _replace(module: nn.Module, swap) -> nn.Module:
    """``module`` with every submodule that ``swap`` maps to a replacement replaced (``module``
    itself too: a latency table's unit can be one pooling module)."""
    replacement = swap(module)
    if replacement is not None:
        return replacement
    for name, child in list(module.named_children()):
        setattr(module, name, _replace(child, swap))
    return module


def _pool_form(m: nn.Module) -> nn.Module | None:
    if isinstance(m, SqueezeExcite):
        return GlobalPoolSE(m)
    if isinstance(m, GlobalAvgPool):
        return AdaptiveGlobalPool()
    return None


def export_form(
    module: nn.Module, forms: tuple[str, ...] | list[str], example: torch.Tensor | None = None
) -> nn.Module:
    """``module`` rewritten with ``forms`` ("pool", "hswish", "hsigmoid", "dwsplit", "pad16"); a shallow copy
    sharing its weights (the original is left as it is).

    ``module`` is a subnet of any family (:data:`POOLED_SUBNETS`) or any network built from
    :mod:`ofa_edge.nn.layers` (a latency table's unit: the table then prices the graph that export
    ships). The forms of MBConv parts leave a ResNet subnet as it is, but for "pool". ``dwsplit`` needs
    the input size: ``example`` (a subnet's own resolution by default).
    """
    unknown = set(forms) - set(FORMS)
    if unknown:
        raise ValueError(f"unknown export form(s) {sorted(unknown)} (known: {', '.join(FORMS)})")
    if not forms:
        return module
    pooled = _pooled_form(module)
    if "dwsplit" in forms and example is None:
        if pooled is None:
            raise ValueError("the 'dwsplit' form of a module other than a subnet needs an example input")
        example = _subnet_example(module)
    import copy

    # Copy the module tree, not the tensors: the copy's parameters are the original's.
    memo = {id(t): t for t in list(module.parameters()) + list(module.buffers())}
    twin = copy.deepcopy(module, memo)
    if "hswish" in forms:
        twin = _replace(twin, lambda m: DecomposedHardswish() if isinstance(m, nn.Hardswish) else None)
    if "hsigmoid" in forms:
        twin = _replace(twin, lambda m: DecomposedHardsigmoid() if isinstance(m, nn.Hardsigmoid) else None)
    if "pad16" in forms:
        twin = _replace(twin, lambda m: pad_block_channels(m) if isinstance(m, MBConv) else None)
    if "dwsplit" in forms:
        twin = split_large_depthwise(twin, example)
    if "pool" in forms:
        twin = _replace(twin, _pool_form)
        if pooled is not None:
            return pooled(twin).eval()
    return twin.eval()


# The export forms each format's int8 graph is built from (why: bench/int8.py and the module
# docstring). Export builds its int8 files from them and the int8 latency backends their units
# and subnets, so a table prices the graph export ships.
INT8_FORMS: dict[str, tuple[str, ...]] = {
    "onnx": ("pool", "hswish", "pad16"),
    "openvino": (),
    # every .tflite (fp32 and int8, latency units too) also gets "dwsplit" from convert_tflite
    "tflite": ("hswish",),
    "tensorrt": (),
}


# The tool each format's int8 file is quantised with: export's (``quantize_int8``) and the int8
# latency backends' units. The same forms through another quantiser are another graph: OpenVINO
# compiles a QDQ ONNX model of a demo subnet into 275 layers (39 HardSigmoid in reference float
# kernels, 52 reorders) and the nncf-quantised IR of the same subnet into 116.
INT8_QUANTIZERS: dict[str, str] = {
    "onnx": "onnxruntime quantize_static (QDQ)",
    "openvino": "nncf.quantize",
    "tflite": "ai-edge-quantizer static_wi8_ai8",
    "tensorrt": "onnxruntime quantize_static (QDQ, symmetric)",
}


def int8_graph_info(precision: str, fmt: str) -> dict[str, Any]:
    """A backend's table provenance for ``fmt``'s int8 graph, its export forms and quantiser
    (nothing for other precisions): a table whose units were built another way prices another graph."""
    if precision != "int8":
        return {}
    return {"int8_forms": list(INT8_FORMS[fmt]), "int8_quantizer": INT8_QUANTIZERS[fmt]}
