"""Torch -> OpenVINO IR (``.xml`` + ``.bin``), fp32 or int8 through NNCF post-training quantization.

The IR keeps fp32 weights (``compress_to_fp16=False``: OpenVINO's default halves them, which
breaks parity checks against PyTorch). int8 is ``nncf.quantize`` on the converted model,
calibrated on the given inputs; by default seeded Gaussian inputs, enough to time a model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .common import CalibrationData, calibration_batches, convert_guarded, require, temp_name

EXTRA = "openvino"


def ir_bin(xml: Path) -> Path:
    """The weights file OpenVINO reads beside ``xml``."""
    return Path(xml).with_suffix(".bin")


def convert_openvino(
    module: nn.Module,
    example: torch.Tensor,
    path: Path,
    int8: bool = False,
    calibration: CalibrationData | None = None,
    ignored_scope: Any = None,
    subset_size: int | None = None,
    preset: str = "mixed",
) -> Path:
    """Write ``module`` as OpenVINO IR at ``path`` (``.xml``; weights in the ``.bin`` beside it).

    Input ``input`` and output ``output`` with ``example``'s static shape. With ``int8`` the model
    goes through ``nncf.quantize`` (``ignored_scope``: an ``nncf.IgnoredScope`` of layers to keep
    in float; ``preset`` "mixed": symmetric weights and asymmetric activations, which suits
    hard-swish outputs (they lie in [-0.375, inf), half a symmetric range wasted), or
    "performance": symmetric both). Both files are written under temp names and renamed, weights
    first.
    """
    ov = require("openvino", EXTRA, "OpenVINO export")
    nncf = require("nncf", EXTRA, "OpenVINO int8 quantization") if int8 else None
    path = Path(path)
    if path.suffix != ".xml":
        raise ValueError(f"OpenVINO IR is written to an .xml path, got {path}")
    with convert_guarded("openvino", module, example):
        model = ov.convert_model(module.eval(), example_input=example, input=[tuple(example.shape)])
    model.inputs[0].get_tensor().set_names({"input"})
    model.outputs[0].get_tensor().set_names({"output"})
    if int8:
        batches = calibration_batches(calibration, tuple(example.shape))
        presets = {"mixed": nncf.QuantizationPreset.MIXED, "performance": nncf.QuantizationPreset.PERFORMANCE}
        if preset not in presets:
            raise ValueError(f"unknown nncf preset '{preset}' (known: {', '.join(presets)})")
        options: dict[str, Any] = {"subset_size": subset_size or len(batches), "preset": presets[preset]}
        if ignored_scope is not None:
            options["ignored_scope"] = ignored_scope
        with convert_guarded("openvino int8", module, example):
            model = nncf.quantize(model, nncf.Dataset(batches), **options)
    tmp = temp_name(path)
    try:
        with convert_guarded("openvino", module, example):
            ov.save_model(model, str(tmp), compress_to_fp16=False)
        # The .xml names its weights by file stem: rename the .bin first, then the .xml beside it.
        os.replace(ir_bin(tmp), ir_bin(path))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        ir_bin(tmp).unlink(missing_ok=True)
    return path
