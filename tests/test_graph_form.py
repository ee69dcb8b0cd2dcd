"""Export forms (ofa_edge.convert.graph_form): each computes what the subnet computes; ``dwsplit``
leaves no depthwise convolution of more than 25 taps and is a no-op for nets without one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ofa_edge import get_space
from ofa_edge.convert.graph_form import FORMS, MAX_DEPTHWISE_TAPS, SplitDepthwise, export_form
from ofa_edge.nn import MobileNetV3Subnet
from ofa_edge.nn.layers import MBConv
from ofa_edge.space.arch import Arch

SPACE = get_space("mbv3-fmnist")


def _subnet(arch: Arch, seed: int = 0) -> MobileNetV3Subnet:
    """A random subnet with non-trivial BatchNorm (affine and running statistics), in eval mode."""
    torch.manual_seed(seed)
    return _randomised_bn(MobileNetV3Subnet.from_arch(SPACE, arch), seed)


def _randomised_bn(module: nn.Module, seed: int) -> nn.Module:
    """``module`` in eval mode with random BatchNorm affine parameters and running statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return module.eval()


def _big_depthwise(net: nn.Module) -> list[nn.Conv2d]:
    return [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.groups > 1 and m.weight[0, 0].numel() > 25]


def _all_k7(r: int, e: int = 4, d: int = 2) -> Arch:
    return Arch(ks=(7,) * SPACE.num_slots, e=(e,) * SPACE.num_slots, d=(d,) * SPACE.num_stages, r=r)


ARCHS = {
    # 28 px: 7x7 kernels on 28, 14, 7 and 4 px maps, stride 2 among them, the last stage at 2 px
    "k7-28": _all_k7(28, 6, 4),
    # 20 px: odd maps (5 -> 3 with stride 2), kernels that mostly meet padding (7x7 on 2x2 and 3x3)
    "k7-20": _all_k7(20, 3, 2),
    "mixed-24": Arch(ks=(7, 3, 5, 7) * 5, e=(3, 4, 6, 4) * 5, d=(3, 2, 4, 3, 2), r=24),
}


@pytest.mark.parametrize("name", list(ARCHS))
@pytest.mark.parametrize("forms", [("dwsplit",), ("hswish", "dwsplit"), FORMS])
def test_dwsplit_computes_what_the_subnet_computes(name, forms):
    arch = ARCHS[name]
    net = _subnet(arch)
    before = len(_big_depthwise(net))
    assert before > 0
    form = export_form(net, forms)
    x = torch.randn(3, SPACE.in_channels, arch.r, arch.r, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = net(x), form(x)
    assert (got - want).abs().max().item() < 1e-4 * max(1.0, want.abs().max().item())
    splits = [m for m in form.modules() if isinstance(m, SplitDepthwise)]
    assert len(splits) == before
    fallbacks = {id(split.conv) for split in splits}  # the plain conv, for inputs of another size
    assert all(id(conv) in fallbacks for conv in _big_depthwise(form))
    for split in splits:
        for i in range(len(split.bands)):
            assert getattr(split, f"band{i}")[0, 0].numel() <= MAX_DEPTHWISE_TAPS
    assert len(_big_depthwise(net)) == before  # the original is left as it is


@pytest.mark.parametrize("size", [(2, 2), (3, 3), (2, 5), (4, 4), (5, 5), (7, 9), (12, 12)])
@pytest.mark.parametrize("stride", [1, 2])
def test_split_depthwise_matches_conv_and_bn(size, stride):
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 7, stride, 3, groups=8, bias=False)
    bn = nn.BatchNorm2d(8)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5), bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-0.5, 0.5), bn.running_var.uniform_(0.5, 1.5)
    bn.eval()
    split = SplitDepthwise(conv, bn, size)
    x = torch.randn(2, 8, *size)
    with torch.no_grad():
        assert torch.allclose(split(x), bn(conv(x)), atol=1e-5)
        other = torch.randn(1, 8, 6, 6)  # another size: the plain conv and bn
        assert torch.equal(split(other), bn(conv(other)))
    rows = sum(r1 - r0 for r0, r1 in split.bands)
    if size == (2, 2) and stride == 1:  # only the centre 3x3 taps ever meet the input
        assert rows == 3 and split.band0.shape[2:] == (3, 3)
    assert all(getattr(split, f"band{i}")[0, 0].numel() <= MAX_DEPTHWISE_TAPS for i in range(len(split.bands)))


def test_dwsplit_is_a_no_op_without_7x7_depthwise():
    arch = Arch(ks=(3, 5) * 10, e=(4,) * 20, d=(2,) * 5, r=24)
    net = _subnet(arch)
    form = export_form(net, ("dwsplit",))
    assert not any(isinstance(m, SplitDepthwise) for m in form.modules())
    assert [type(m) for m in form.modules()] == [type(m) for m in net.modules()]
    x = torch.randn(2, SPACE.in_channels, 24, 24)
    with torch.no_grad():
        assert torch.equal(form(x), net(x))


def _middle_channels(net: nn.Module) -> list[int]:
    convs = [m.depth_conv.conv for m in net.modules() if isinstance(m, MBConv)]
    return [(conv.conv if isinstance(conv, SplitDepthwise) else conv).out_channels for conv in convs]


@pytest.mark.parametrize("forms", [("pad16",), ("pool", "hswish", "pad16"), FORMS])
def test_pad16_pads_middle_channels_to_16_and_computes_what_the_subnet_computes(forms):
    # expand 3 and 4 give 72, 96, 264 and 360 middle channels here: some need padding, some not
    arch = Arch(ks=(3, 7) * 10, e=(3, 4) * 10, d=(4,) * 5, r=24)
    net = _subnet(arch, seed=2)
    before = _middle_channels(net)
    assert any(c % 16 for c in before[1:]) and any(c % 16 == 0 for c in before)
    form = export_form(net, forms)
    after = _middle_channels(form)
    # the first block has no expansion conv (its middle is its input): it is left as it is
    assert after[0] == before[0]
    assert all(c % 16 == 0 and 0 <= c - b < 16 for c, b in zip(after[1:], before[1:], strict=True))
    x = torch.randn(2, SPACE.in_channels, arch.r, arch.r, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want, got = net(x), form(x)
    assert (got - want).abs().max().item() < 1e-4 * max(1.0, want.abs().max().item())
    assert _middle_channels(net) == before  # the original is left as it is


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_latency_units_take_the_int8_forms_and_compute_what_they_compute(fmt):
    """The int8 backends build a table's units in export's int8 forms (a table prices the graph that
    export ships): every unit kind, formed, computes what it computed, and holds none of the ops
    the forms replace."""
    from ofa_edge.convert.graph_form import INT8_FORMS, AdaptiveGlobalPool, GlobalPoolSE
    from ofa_edge.latency.unit_models import build_unit, example_input
    from ofa_edge.latency.units import space_units
    from ofa_edge.nn.layers import GlobalAvgPool, SqueezeExcite

    forms = INT8_FORMS[fmt]
    units = space_units(SPACE, (24,))
    # one of each kind, and blocks with SE and hard-swish whose middle width is no multiple of 16
    picked = {u.kind: u for u in units if u.kind != "expanded_conv"}
    blocks = [u for u in units if u.block is not None and (u.block.mid_channels or 16) % 16]
    assert any(u.block.se_channels for u in blocks) and any(u.block.act == "hswish" for u in blocks)
    picked.update({u.key: u for u in blocks[::9]})
    for seed, unit in enumerate(picked.values()):
        module = _randomised_bn(build_unit(SPACE, unit), seed)
        x = example_input(unit)
        form = export_form(module, forms, x)
        with torch.no_grad():
            want, got = module(x), form(x)
        assert (got - want).abs().max().item() < 1e-4 * max(1.0, want.abs().max().item()), unit.key
        kinds = {type(m) for m in form.modules()}
        if "hswish" in forms:
            assert nn.Hardswish not in kinds
        if "pool" in forms:
            assert not kinds & {GlobalAvgPool, SqueezeExcite}
            assert unit.kind != "AvgPool2D" or isinstance(form, AdaptiveGlobalPool)
            assert not any(isinstance(m, SqueezeExcite) for m in module.modules()) or GlobalPoolSE in kinds
        if "pad16" in forms and unit.block is not None:
            assert _middle_channels(form)[0] % 16 == 0


def test_unknown_forms_are_refused():
    with pytest.raises(ValueError, match="unknown export form"):
        export_form(_subnet(SPACE.min_arch(20)), ("dwsplit", "nope"))
    with pytest.raises(ValueError, match="needs an example input"):
        export_form(MBConv(SPACE.block_specs(SPACE.max_arch(20))[3]), ("dwsplit",))


def _small_kernels(path) -> list[tuple[int, int]]:
    """(kh, kw) of the [1, kh, kw, C] tensors of a .tflite that are at most 7x7: the depthwise
    filters, and any activation maps that small (none of them is 7x7 in the callers' nets)."""
    from ofa_edge.convert.tflite import make_interpreter

    details = make_interpreter(path).get_tensor_details()
    return [tuple(int(v) for v in d["shape"][1:3]) for d in details
            if len(d["shape"]) == 4 and d["shape"][0] == 1 and max(d["shape"][1:3]) <= 7]  # fmt: skip


@pytest.mark.slow
def test_tflite_int8_with_dwsplit_agrees_with_fp32_in_one_partition(tmp_path):
    pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_quantizer")
    from ofa_edge.convert.tflite import op_report
    from ofa_edge.export import ExportConfig, export_subnet
    from ofa_edge.export.formats import INT8_FORMS

    assert "hswish" in INT8_FORMS["tflite"]  # export's default int8 forms; convert_tflite splits
    arch = _all_k7(20, 3, 2)  # the demo supernet's weights; 7x7 kernels on 20 to 2 px maps
    result = export_subnet(arch, ExportConfig(format="tflite", int8=True, out_dir=tmp_path, test_images=300,
                                              calibration_images=500, int8_calibration_images=100,
                                              measure_latency=False))  # fmt: skip
    assert result.accuracy["int8_agreement_with_fp32"] >= 0.97
    report = op_report(result.file("int8").path)
    assert report["partitions"]["DELEGATE"] == 1 and not report["undelegated"]
    assert _big_depthwise(_subnet(arch))  # the subnet has 7x7 ones; its maps are 20, 10, 5, 3, 2 px
    fp32_filters = [k for k in _small_kernels(result.file("fp32").path) if k[0] * k[1] > 9]
    assert fp32_filters and all(kh * kw <= MAX_DEPTHWISE_TAPS for kh, kw in fp32_filters)


def test_latency_units_split_too_and_the_tflite_file_has_no_large_depthwise_kernel(tmp_path):
    """convert_tflite splits every .tflite it writes (units included, so tables price what export
    ships): the file computes what the unit computes and holds no depthwise kernel over 25 taps."""
    pytest.importorskip("litert_torch")
    import numpy as np

    from ofa_edge.convert.graph_form import split_large_depthwise
    from ofa_edge.convert.tflite import convert_tflite, make_interpreter
    from ofa_edge.latency.unit_models import build_unit, example_input
    from ofa_edge.latency.units import arch_units

    unit = next(u for u in arch_units(SPACE, SPACE.max_arch(28)) if "kernel:7" in u.key)
    module = build_unit(SPACE, unit).eval()
    x = example_input(unit)
    assert split_large_depthwise(module, x) is not module and len(_big_depthwise(module)) == 1
    path = convert_tflite(module, x, tmp_path / "unit.tflite")
    interpreter = make_interpreter(path)
    kernels = _small_kernels(path)  # this unit's activations are 28x28 and 14x14
    assert kernels and all(kh * kw <= MAX_DEPTHWISE_TAPS for kh, kw in kernels) and (7, 7) not in kernels
    inp = interpreter.get_input_details()[0]
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x.permute(0, 2, 3, 1).numpy() if inp["shape"][-1] == x.shape[1] else x.numpy())
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    want = module(x).detach().numpy()
    got = got if got.shape == want.shape else np.transpose(got, (0, 3, 1, 2))
    assert np.abs(got - want).max() < 1e-4
