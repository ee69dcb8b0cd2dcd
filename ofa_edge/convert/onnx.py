"""Torch -> ONNX export and static int8 (QDQ) quantisation, shared by the ONNX-consuming backends."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..fileio import atomic_write_bytes
from .common import CalibrationData, calibration_batches, temp_name

OPSET = 17


def onnx_bytes(module: nn.Module, example: torch.Tensor, dynamic_batch: bool = False) -> bytes:
    """``module`` as a single-file ONNX model with one input 'input' and one output 'output'.

    Uses the TorchScript exporter: for these small static CNNs its graph equals the dynamo
    exporter's (BatchNorm folded either way) and it is 10-30x faster, which matters when a
    profile exports hundreds of blocks.
    """
    buffer = io.BytesIO()
    axes = {"input": {0: "batch"}, "output": {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (example,),
            buffer,
            input_names=["input"],
            output_names=["output"],
            opset_version=OPSET,
            dynamic_axes=axes,
            dynamo=False,
        )
    return buffer.getvalue()


def export_onnx(module: nn.Module, example: torch.Tensor, path: Path, dynamic_batch: bool = False) -> Path:
    """:func:`onnx_bytes` written to ``path`` atomically."""
    path = Path(path)
    atomic_write_bytes(path, onnx_bytes(module, example, dynamic_batch))
    return path


class _CalibrationReader:
    """onnxruntime's CalibrationDataReader over a list of input arrays."""

    def __init__(self, batches: list[np.ndarray], input_name: str = "input") -> None:
        self.batches = iter([{input_name: batch} for batch in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def quantize_qdq(
    fp32_model: Path,
    path: Path,
    input_shape: tuple[int, ...],
    calibration: CalibrationData | None = None,
    symmetric_activations: bool = False,
    nodes_to_exclude: list[str] | None = None,
    op_types: list[str] | None = None,
) -> Path:
    """Static int8 QDQ model: per-channel int8 weights, uint8 activations.

    ``calibration``: batch-1 float32 inputs normalised exactly as at evaluation (real training
    images, for a model that ships); by default seeded Gaussian inputs, enough to time an int8
    model (latency does not depend on the data). ``symmetric_activations`` gives int8 activations
    with zero point 0 (what TensorRT's explicit quantization reads); ``nodes_to_exclude`` and
    ``op_types`` (``op_types_to_quantize``) choose what is quantised.

    (int8 activations ran about 4x slower on this machine's onnxruntime CPU kernels: uint8 is the
    CPU default.)
    """
    import onnxruntime
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # The quantiser's own calibration sessions warn about every initializer they drop; those
    # sessions take no options, so only the default logger's level silences them (errors still show).
    onnxruntime.set_default_logger_severity(3)

    path = Path(path)
    pre = temp_name(path, "pre")
    tmp = temp_name(path, "qdq")
    batches = calibration_batches(calibration, tuple(input_shape))
    try:
        quant_pre_process(str(fp32_model), str(pre), skip_symbolic_shape=True)
        extra = {"ActivationSymmetric": True, "WeightSymmetric": True} if symmetric_activations else {}
        quantize_static(
            str(pre),
            str(tmp),
            _CalibrationReader(batches),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8 if symmetric_activations else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(nodes_to_exclude or []),
            op_types_to_quantize=list(op_types) if op_types else None,
            extra_options=extra,
        )
        atomic_write_bytes(path, tmp.read_bytes())
    finally:
        pre.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return path
