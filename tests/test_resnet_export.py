"""Export of OFA-ResNet subnets: an arch of the ResNet form ({d, e, w, r}) extracted from a ResNet
supernet checkpoint, BatchNorm recalibrated, converted to ONNX, OpenVINO and TFLite in fp32 and
int8, each verified against PyTorch as MBConv subnets are; archs of the other family are one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ofa_edge import get_space
from ofa_edge.cli.app import main
from ofa_edge.convert.graph_form import FORMS, ResNetExportForm, export_form
from ofa_edge.errors import ArchError
from ofa_edge.export import ExportConfig, export_subnet, last_specialized, resolve_export, sha256_file
from ofa_edge.export.arch_input import parse_arch, read_export_arch
from ofa_edge.nn.checkpoint import save_supernet
from ofa_edge.nn.resnet import OFAResNet
from ofa_edge.profilers.base import Timing
from ofa_edge.space.arch import Arch
from ofa_edge.space.resnet import ResNetArch
from ofa_edge.train.data import BatchLoader
from ofa_edge.train.evaluate import SupernetScorer

SPACE = get_space("resnet50-fmnist")
# The narrowest, shallowest subnet at 20 px (quick to train, convert and run), with the stem's
# residual conv kept; at 20 px a downsampling shortcut pools an odd map (5 -> 3, ceil mode).
ARCH = ResNetArch(d=(2, 0, 0, 0, 0), e=(0.2,) * 18, w=(0,) * 6, r=20)
MBCONV_ARCH = get_space("mbv3-fmnist").min_arch(20)
QUICK = {"test_images": 200, "timing": Timing(warmup=2, runs=10, rounds=2), "calibration_images": 500,
         "int8_calibration_images": 100}  # fmt: skip
TRAIN_STEPS = 120  # ~70% top-1: margins wide enough that int8 agreement means something


@pytest.fixture(scope="module")
def supernet(tmp_path_factory) -> Path:
    """A seeded resnet50-fmnist supernet, ARCH trained briefly on Fashion-MNIST (its BatchNorm
    statistics those of real images): random weights give logits so close together that int8
    agreement says nothing about the int8 file."""
    path = tmp_path_factory.mktemp("resnet") / "supernet.safetensors"
    torch.manual_seed(0)
    save_supernet(OFAResNet(SPACE), path)
    # The training split and input normalization the export will use.
    scorer = SupernetScorer.open(str(path), split="test", calibration_images=500)
    net = scorer.net.to(memory_format=torch.contiguous_format)
    net.set_active(ARCH)
    net.train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    loader = BatchLoader(scorer.train_part, 64, (ARCH.r,), scorer.data.normalization, flip=False, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: two threads on a shared CPU run slower
    try:
        for _step, (images, labels) in zip(range(TRAIN_STEPS), loader.epoch(0)):
            loss = F.cross_entropy(net(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    save_supernet(net.eval(), path)
    return path


def _arch_file(folder: Path, arch: ResNetArch | Arch, name: str = "arch.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(arch.to_dict()))
    return path


def _check(result, fmt: str, out: Path) -> None:
    """Checked as MBConv exports are: the fp32 file against PyTorch (bounded logits, same top-1),
    the int8 file against the fp32 one, cards that describe this ResNet subnet."""
    assert [f.precision for f in result.files] == ["fp32", "int8"] and result.format == fmt
    ver, acc = result.verification, result.accuracy
    assert ver["passed"] and ver["fp32_max_abs_diff"] <= 1e-3 and ver["images"] == 200
    assert ver["fp32_top1_agreement"] >= 0.99
    assert acc["fp32_top1"] > 50 and abs(acc["fp32_top1"] - acc["torch_top1"]) <= 0.5
    agreement = ver["int8_top1_agreement_with_fp32"]
    assert agreement >= 0.75 and ver["int8_passed"] == (agreement >= 0.9)
    assert acc["int8_top1"] > 40 and acc["int8_drop_points"] == pytest.approx(acc["fp32_top1"] - acc["int8_top1"])
    assert result.arch == ARCH.to_dict() and result.space == "resnet50-fmnist" and result.resolution == 20
    assert result.macs == SPACE.macs(ARCH) and result.params == SPACE.params(ARCH)
    for f in result.files:
        path = Path(f.path)
        assert path.parent == out and sha256_file(path) == f.sha256
        card = json.loads(Path(f.card_json).read_text())
        assert card["arch"] == ARCH.to_dict() and card["space"] == "resnet50-fmnist"
        assert card["precision"] == f.precision and card["latency"]["measured_ms"] > 0
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_onnx_fp32_and_int8_export_and_verify(supernet, tmp_path):
    result = export_subnet(ARCH, ExportConfig(format="onnx", int8=True, supernet=str(supernet), out_dir=tmp_path,
                                              **QUICK))  # fmt: skip
    _check(result, "onnx", tmp_path)


@pytest.mark.parametrize("fmt", ["openvino", "tflite"])
def test_openvino_and_tflite_fp32_and_int8_export_and_verify(fmt, supernet, tmp_path):
    arch_file = _arch_file(tmp_path, ARCH)  # an arch JSON, as the CLI passes it
    out = tmp_path / "out"
    result = export_subnet(arch_file, ExportConfig(format=fmt, int8=True, supernet=str(supernet), out_dir=out,
                                                   **QUICK))  # fmt: skip
    _check(result, fmt, out)


def test_cli_exports_a_resnet_arch_json(supernet, tmp_path, capsys):
    arch_file = _arch_file(tmp_path, ARCH)
    out = tmp_path / "out"
    code = main(["export", "--format", "onnx", "--arch", str(arch_file), "--supernet", str(supernet), "--out",
                 str(out), "--test-images", "100", "--calibration-images", "500", "--runs", "5", "--rounds", "1",
                 "--json"])  # fmt: skip
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    payload = json.loads(stdout)
    assert payload["arch"] == ARCH.to_dict() and payload["verification"]["passed"]
    card = json.loads(Path(payload["files"][0]["card_json"]).read_text())
    assert card["command"].startswith("ofa-edge export --format onnx") and card["macs"] == SPACE.macs(ARCH)


# ------------------------------------------------------------------------- wrong family
def test_an_mbconv_arch_for_a_resnet_supernet_is_one_line_before_any_work(supernet, tmp_path, capsys):
    arch_file = _arch_file(tmp_path, MBCONV_ARCH, "mbconv.json")
    out = tmp_path / "out"
    code = main(["export", "--format", "onnx", "--arch", str(arch_file), "--supernet", str(supernet), "--out",
                 str(out)])  # fmt: skip
    stdout, stderr = capsys.readouterr()
    assert code == 2 and stdout == "" and stderr.count("\n") == 1
    assert f"{arch_file} is an MBConv arch (ks, e, d, r); space resnet50-fmnist" in stderr
    assert "takes an OFA-ResNet arch (d, e, w, r)" in stderr
    assert not out.exists()
    with pytest.raises(ArchError, match=r"is an MBConv arch .* takes an OFA-ResNet arch"):
        export_subnet(MBCONV_ARCH, ExportConfig(supernet=str(supernet), out_dir=out))


def test_a_resnet_arch_for_an_mbconv_supernet_is_one_line(tmp_path):
    arch_file = _arch_file(tmp_path, ARCH)
    with pytest.raises(ArchError) as caught:
        resolve_export(ExportConfig(), arch_file)  # the demo supernet: mbv3-fmnist
    message = str(caught.value)
    assert "\n" not in message
    assert message == (f"{arch_file} is an OFA-ResNet arch (d, e, w, r); space mbv3-fmnist (the space of supernet "
                       "demo) takes an MBConv arch (ks, e, d, r)")  # fmt: skip
    with pytest.raises(ArchError, match="is an OFA-ResNet arch"):
        export_subnet(ARCH.to_dict(), ExportConfig(out_dir=tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_resnet_arch_outside_its_space_names_the_field(supernet, tmp_path):
    bad = {**ARCH.to_dict(), "w": [0, 0, 0, 0, 0, 3]}
    with pytest.raises(ArchError, match=r"arch field 'w' index 5: 3 is not allowed in space resnet50-fmnist"):
        resolve_export(ExportConfig(supernet=str(supernet)), _arch_file(tmp_path, ResNetArch.from_dict(bad)))


# ---------------------------------------------------------------------- reading archs
def test_arch_files_are_read_in_the_form_their_fields_name(tmp_path):
    assert read_export_arch(_arch_file(tmp_path, ARCH)).arch == ARCH
    assert read_export_arch(_arch_file(tmp_path, MBCONV_ARCH, "m.json")).arch == MBCONV_ARCH
    assert parse_arch({**ARCH.to_dict(), "r": [20]}) == ARCH  # the reference's list form of r
    with pytest.raises(ArchError, match=r"missing field\(s\) ks"):  # neither form: the contract's message
        parse_arch({"e": [3], "d": [2], "r": 20})


def test_a_specialize_record_of_a_resnet_arch_is_read(tmp_path):
    folder = tmp_path / "specialized"
    folder.mkdir()
    arch_file = _arch_file(folder, ARCH)
    (folder / "file.json").write_text(json.dumps({"targets": [{"arch_file": str(arch_file)}]}))
    (folder / "inline.json").write_text(json.dumps({"targets": [{"arch": ARCH.to_dict()}]}))
    assert last_specialized(folder / "file.json").arch == ARCH == last_specialized(folder / "inline.json").arch


# ------------------------------------------------------------------------ export forms
def _subnet() -> torch.nn.Module:
    torch.manual_seed(1)
    net = OFAResNet(SPACE)
    net.set_active(ARCH)
    with torch.no_grad():  # statistics of real-looking activations, not the initial 0 and 1
        net.train()(torch.randn(8, 1, ARCH.r, ARCH.r))
    return net.get_subnet(ARCH).eval()


def test_the_pool_form_of_a_resnet_subnet_computes_the_same_and_exports_global_average_pool():
    subnet = _subnet()
    x = torch.randn(2, 1, ARCH.r, ARCH.r)
    form = export_form(subnet, ("pool",))
    assert isinstance(form, ResNetExportForm)
    with torch.no_grad():
        expected = subnet(x)
        assert torch.allclose(form(x), expected, atol=1e-5)
        # The MBConv forms find nothing to rewrite in a ResNet subnet (dwsplit without an example too).
        assert torch.allclose(export_form(subnet, FORMS)(x), expected, atol=1e-5)
    import onnx

    from ofa_edge.convert.onnx import onnx_bytes

    ops = {node.op_type for node in onnx.load_from_string(onnx_bytes(form, x[:1])).graph.node}
    assert "GlobalAveragePool" in ops and "ReduceMean" not in ops
    assert np.isfinite(expected.numpy()).all()
