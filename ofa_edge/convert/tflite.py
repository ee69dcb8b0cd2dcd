"""Torch -> TFLite (LiteRT) with litert-torch: fp32, and static int8 two ways.

``int8_method="aeq"`` (default): ai-edge-quantizer's ``static_wi8_ai8`` recipe on the fp32 file
(per-channel int8 weights, int8 activations; about a second, and the int8 file derives from the
very fp32 file that was verified). ``"pt2e"``: PT2E in torch (litert-torch's ``PT2EQuantizer``
with torchao's ``prepare_pt2e``/``convert_pt2e``), then ``litert_torch.convert`` with that quantizer.

Static int8 files have int8 input and output tensors. :func:`io_quantization` reads their scale
and zero point; :func:`quantize_input` / :func:`dequantize_output` convert at the boundary, so
whoever runs the file (verification, the latency backend, an app) feeds float-normalised images
through ``q = round(x / scale) + zero_point`` and reads logits as ``(q - zero_point) * scale``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .common import CalibrationData, calibration_batches, captured_output, convert_guarded, require, temp_name
from .graph_form import split_large_depthwise

EXTRA = "tflite"
INT8_METHODS = ("aeq", "pt2e")


def convert_tflite(module: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """fp32 ``.tflite`` of ``module`` (batch-1 ``example`` shape), written atomically.

    Depthwise convolutions of more than 25 taps (7x7) are written as row bands of at most 25 taps
    (:func:`~ofa_edge.convert.graph_form.split_large_depthwise`, the same function within 1e-5):
    XNNPACK runs them several times faster so (w1.0 max subnet at 224 px, 1 thread: ~150 ms plain,
    ~45 ms split), and every .tflite this toolkit writes, latency-table units included, is built
    the same way, so tables price what export ships."""
    litert_torch = require("litert_torch", EXTRA, "TFLite conversion")
    path = Path(path)
    tmp = temp_name(path)
    module = split_large_depthwise(module.eval(), example)
    try:
        with convert_guarded("tflite", module, example):
            litert_torch.convert(module.eval(), (example,)).export(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def quantize_tflite(
    fp32_tflite: Path,
    path: Path,
    example: torch.Tensor,
    calibration: CalibrationData | None = None,
    module: nn.Module | None = None,
    method: str = "aeq",
) -> Path:
    """Static int8 ``.tflite`` at ``path``: ``method`` "aeq" quantises the fp32 file, "pt2e" the
    torch ``module`` (required then)."""
    if method not in INT8_METHODS:
        raise ValueError(f"unknown TFLite int8 method '{method}' (known: {', '.join(INT8_METHODS)})")
    batches = calibration_batches(calibration, tuple(example.shape))
    path = Path(path)
    tmp = temp_name(path)
    try:
        if method == "aeq":
            _quantize_aeq(Path(fp32_tflite), tmp, batches, module, example)
        else:
            if module is None:
                raise ValueError("PT2E quantization needs the torch module")
            _quantize_pt2e(module, example, tmp, batches)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # the quantizer writes an executable file
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _quantize_aeq(fp32: Path, out: Path, batches: list[np.ndarray], module: nn.Module | None,
                  example: torch.Tensor) -> None:  # fmt: skip
    require("ai_edge_quantizer", EXTRA, "TFLite int8 quantization")
    with captured_output():
        from ai_edge_quantizer import quantizer, recipe

    signature, input_name = _signature_input(fp32)
    with convert_guarded("tflite int8", module or nn.Identity(), example):
        qt = quantizer.Quantizer(str(fp32))
        qt.load_quantization_recipe(recipe.static_wi8_ai8())
        result = qt.calibrate({signature: [{input_name: batch} for batch in batches]})
        qt.quantize(result).export_model(str(out), overwrite=True)


def _quantize_pt2e(module: nn.Module, example: torch.Tensor, out: Path, batches: list[np.ndarray]) -> None:
    litert_torch = require("litert_torch", EXTRA, "TFLite int8 conversion")
    with captured_output():
        from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
        from litert_torch.quantize.quant_config import QuantConfig
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    with convert_guarded("tflite int8", module, example):
        exported = torch.export.export(module.eval(), (example,)).module()
        prepared = prepare_pt2e(exported, quantizer)
        with torch.no_grad():
            for batch in batches:
                prepared(torch.from_numpy(batch))
        converted = convert_pt2e(prepared, fold_quantize=False)
        edge = litert_torch.convert(converted, (example,), quant_config=QuantConfig(pt2e_quantizer=quantizer))
        edge.export(str(out))


def _signature_input(model: Path) -> tuple[str, str]:
    interpreter = make_interpreter(model, threads=1)
    signatures = interpreter.get_signature_list()
    signature = next(iter(signatures))
    return signature, signatures[signature]["inputs"][0]


# ------------------------------------------------------------------- running
def make_interpreter(model: Path, threads: int = 1) -> Any:
    """An allocated ai-edge-litert Interpreter (XNNPACK) for ``model``, its load log silenced."""
    require("ai_edge_litert", EXTRA, "running .tflite files")
    from ai_edge_litert.interpreter import Interpreter

    with captured_output():  # "Created TensorFlow Lite XNNPACK delegate" on every load
        interpreter = Interpreter(model_path=str(model), num_threads=threads)
        interpreter.allocate_tensors()
    return interpreter


def io_quantization(detail: dict[str, Any]) -> tuple[float, int] | None:
    """(scale, zero point) of an int8/uint8 input or output tensor; None for a float tensor."""
    if np.dtype(detail["dtype"]).kind == "f":
        return None
    scale, zero_point = detail["quantization"]
    return float(scale), int(zero_point)


def quantize_input(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """A float input in the tensor's dtype (quantised with its scale and zero point when integer)."""
    dtype = np.dtype(detail["dtype"])
    params = io_quantization(detail)
    if params is None:
        return x.astype(dtype, copy=False)
    scale, zero_point = params
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize_output(y: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    params = io_quantization(detail)
    if params is None:
        return y.astype(np.float32, copy=False)
    scale, zero_point = params
    return (y.astype(np.float32) - zero_point) * scale


def op_report(model: Path, threads: int = 1) -> dict[str, dict[str, int]]:
    """The model's ops by type (``ops``), the XNNPACK partitions (``partitions``), and the ops left
    outside them, run by the built-in kernels (``undelegated``): what falls back.

    The interpreter lists the original ops followed by one ``DELEGATE`` node per partition. An op
    runs outside XNNPACK when one of its outputs (not a partition output) feeds a partition, a
    model output, or another op that runs outside.
    """
    interpreter = make_interpreter(model, threads)
    details = interpreter._get_ops_details()
    delegates = [op for op in details if op["op_name"] == "DELEGATE"]
    ops = [op for op in details if op["op_name"] != "DELEGATE"]
    counts: dict[str, int] = {}
    for op in ops:
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    if not delegates:
        outside = list(range(len(ops)))
    else:
        delegate_out = {int(t) for op in delegates for t in op["outputs"]}
        needed = {int(t) for op in delegates for t in op["inputs"]}
        needed |= {int(d["index"]) for d in interpreter.get_output_details()}
        outside_set: set[int] = set()
        changed = True
        while changed:
            changed = False
            for index, op in enumerate(ops):
                if index in outside_set:
                    continue
                outs = {int(t) for t in op["outputs"]} - delegate_out
                if outs & needed:
                    outside_set.add(index)
                    needed |= {int(t) for t in op["inputs"]}
                    changed = True
        outside = sorted(outside_set)
    undelegated: dict[str, int] = {}
    for index in outside:
        name = ops[index]["op_name"]
        undelegated[name] = undelegated.get(name, 0) + 1
    return {"ops": counts, "partitions": {"DELEGATE": len(delegates)}, "undelegated": undelegated}
