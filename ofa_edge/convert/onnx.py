"""Torch -> ONNX export and static int8 (QDQ) quantisation, shared by the ONNX-consuming backends."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..fileio import atomic_write_bytes

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


class _RandomCalibration:
    """Calibration batches for static quantisation. Latency does not depend on the data, so
    seeded Gaussian inputs stand in for images when only timing an int8 model."""

    def __init__(self, shape: tuple[int, ...], batches: int = 8) -> None:
        rng = np.random.default_rng(0)
        self.batches = iter([{"input": rng.standard_normal(shape).astype(np.float32)} for _ in range(batches)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def quantize_qdq(fp32_model: Path, path: Path, input_shape: tuple[int, ...]) -> Path:
    """Static int8 QDQ model: per-channel int8 weights, uint8 activations.

    (int8 activations ran about 4x slower on this machine's onnxruntime CPU kernels.)
    """
    import onnxruntime
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # The quantiser's own calibration sessions warn about every initializer they drop; those
    # sessions take no options, so only the default logger's level silences them (errors still show).
    onnxruntime.set_default_logger_severity(3)

    path = Path(path)
    pre = path.with_name(f".{path.name}.pre.onnx")
    tmp = path.with_name(f".{path.name}.qdq.onnx")
    try:
        quant_pre_process(str(fp32_model), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(tmp),
            _RandomCalibration(input_shape),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        atomic_write_bytes(path, tmp.read_bytes())
    finally:
        pre.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return path


def onnx_input_shape(example: torch.Tensor) -> tuple[int, ...]:
    return tuple(example.shape)
