"""Export's verifier: a file that computes something other than the PyTorch subnet is refused, and
the numbers a model card calls "verified" are measured against the right reference.

Each test swaps a conversion step for one that converts a different network (the subnet with its
classifier biases shifted): the file is then a faithful conversion of the wrong model, which is
exactly what a converter bug produces. The shifts are large enough that only a working verifier
tells the files apart from the subnet.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from ofa_edge import get_space
from ofa_edge.export import ExportConfig, ExportVerificationError, export_subnet, pipeline
from ofa_edge.export.formats import convert_fp32
from ofa_edge.export.verify import AGREEMENT_FLOOR

SPACE = get_space("mbv3-fmnist")
ARCH = SPACE.min_arch(20)
QUICK = {"test_images": 200, "calibration_images": 500, "int8_calibration_images": 100, "measure_latency": False}


def _shift_classifier(module: nn.Module, shift: torch.Tensor | float) -> nn.Module:
    """A copy of ``module`` whose last linear layer's bias is shifted by ``shift``."""
    changed = copy.deepcopy(module)
    classifier = [m for m in changed.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        classifier.bias += torch.as_tensor(shift, dtype=classifier.bias.dtype)
    return changed


def _one_class_shift(value: float) -> torch.Tensor:
    shift = torch.zeros(SPACE.num_classes)
    shift[0] = value
    return shift


def _convert_fp32_of(shift, monkeypatch) -> None:
    """Make every fp32 conversion convert the subnet with its classifier shifted."""

    def convert(spec, module, *rest):
        return convert_fp32(spec, _shift_classifier(module, shift), *rest)

    monkeypatch.setattr(pipeline, "convert_fp32", convert)


def _int8_as_fp32_of(shift, monkeypatch) -> None:
    """Make the int8 step write an fp32 conversion of the subnet with its classifier shifted."""

    def convert(spec, module, example, fp32_path, path, *rest):
        return convert_fp32(spec, _shift_classifier(module, shift), example, path)

    monkeypatch.setattr(pipeline, "convert_int8", convert)


def _cli_export(args: list[str], capsys) -> tuple[int, str]:
    from ofa_edge.cli.app import main

    code = main(["export", *args])
    return code, capsys.readouterr().err


# TFLite's converter takes half a minute here; its files go through the same gate (verify_fp32).
@pytest.mark.parametrize("fmt", ["onnx", pytest.param("openvino", marks=pytest.mark.slow)])
def test_an_fp32_file_of_another_network_is_refused_and_nothing_is_written(fmt, tmp_path, capsys, monkeypatch):
    """Logits off by 0.01 everywhere (ten times the tolerance, no prediction changed) are refused."""
    pytest.importorskip({"onnx": "onnxruntime", "openvino": "openvino", "tflite": "litert_torch"}[fmt])
    arch_file = tmp_path / "a.json"
    arch_file.write_text(json.dumps(ARCH.to_dict()))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("an earlier file")
    _convert_fp32_of(0.01, monkeypatch)
    code, err = _cli_export(["--format", fmt, "--arch", str(arch_file), "--out", str(out), "--test-images", "100",
                             "--calibration-images", "500"], capsys)  # fmt: skip
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err
    assert "differs from the PyTorch subnet by up to 0.01" in errors[0] and "nothing was written" in errors[0]
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_the_fp32_gate_holds_at_its_tolerance(tmp_path, monkeypatch):
    """Just over the tolerance fails, with the difference named; just under passes."""
    _convert_fp32_of(2e-3, monkeypatch)
    with pytest.raises(ExportVerificationError, match=r"by up to 0\.002 on the logits \(tolerance 0\.001\)"):
        export_subnet(ARCH, ExportConfig(out_dir=tmp_path / "a", **QUICK))
    result = export_subnet(ARCH, ExportConfig(out_dir=tmp_path / "b", fp32_tolerance=3e-3, **QUICK))
    assert result.verification["passed"] and result.verification["fp32_max_abs_diff"] == pytest.approx(2e-3, abs=2e-4)


def test_fp32_agreement_and_difference_are_measured_against_the_pytorch_subnet(tmp_path, monkeypatch):
    """A file whose class 0 logit is 3 higher than the subnet's (let through with a loose
    tolerance): the card's largest difference is that 3, and its top-1 agreement is below 1,
    since some images change their prediction to class 0."""
    _convert_fp32_of(_one_class_shift(3.0), monkeypatch)
    result = export_subnet(ARCH, ExportConfig(out_dir=tmp_path, fp32_tolerance=10.0, **QUICK))
    ver, acc = result.verification, result.accuracy
    assert ver["fp32_max_abs_diff"] == pytest.approx(3.0, abs=1e-3)
    assert 0.3 < ver["fp32_top1_agreement"] < 0.99
    assert acc["fp32_top1"] < acc["torch_top1"]
    card = json.loads(Path(result.file("fp32").card_json).read_text())
    assert card["verification"]["fp32_top1_agreement"] == ver["fp32_top1_agreement"]
    assert f"{ver['fp32_top1_agreement']:.2%}" in card["verification"]["summary"]


def test_int8_agreement_is_measured_against_the_fp32_file(tmp_path, monkeypatch):
    """The fp32 and int8 files compute the same shifted network: they agree on every image, while
    each disagrees with the PyTorch subnet."""
    _convert_fp32_of(_one_class_shift(3.0), monkeypatch)
    _int8_as_fp32_of(_one_class_shift(3.0), monkeypatch)
    result = export_subnet(ARCH, ExportConfig(out_dir=tmp_path, int8=True, fp32_tolerance=10.0, **QUICK))
    ver, acc = result.verification, result.accuracy
    assert ver["fp32_top1_agreement"] < 0.99
    assert acc["int8_agreement_with_fp32"] == 1.0 and ver["int8_max_abs_diff_to_fp32"] < 1e-4
    assert acc["int8_top1"] == acc["fp32_top1"] and ver["int8_passed"]


def test_an_int8_file_under_the_agreement_floor_is_reported_as_failed(tmp_path, monkeypatch, capsys):
    """An int8 file that predicts class 0 for every image agrees with fp32 on about a tenth."""
    _int8_as_fp32_of(_one_class_shift(100.0), monkeypatch)
    result = export_subnet(ARCH, ExportConfig(out_dir=tmp_path, int8=True, **QUICK))
    ver = result.verification
    assert ver["passed"] and ver["int8_top1_agreement_with_fp32"] < AGREEMENT_FLOOR and not ver["int8_passed"]
    assert any("int8 file agrees with fp32 on only" in w and "failed" in w for w in result.warnings)
    card = json.loads(Path(result.file("int8").card_json).read_text())
    assert card["verification"]["int8_passed"] is False


def test_a_faithful_int8_file_passes_the_floor(tmp_path):
    result = export_subnet(ARCH, ExportConfig(out_dir=tmp_path, int8=True, **QUICK))
    assert result.verification["int8_passed"] and not any("failed" in w for w in result.warnings)
    assert result.accuracy["int8_agreement_with_fp32"] >= AGREEMENT_FLOOR

