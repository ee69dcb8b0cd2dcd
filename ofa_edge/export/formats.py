"""The four export formats: which extra and latency backend each needs, how a subnet converts to
it (fp32 and int8, each with the format's own quantiser), and how an exported file is run to
check it against PyTorch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..convert.common import CalibrationData, convert_guarded, extra_missing, temp_name
from ..convert.graph_form import INT8_FORMS  # each format's int8 export forms (the backends use them too)
from ..convert.tensorrt import Trtexec
from ..errors import OFAEdgeError


@dataclass(frozen=True)
class FormatSpec:
    name: str
    backend: str  # the latency backend (entry point) that times this format
    suffix: str
    extra: str | None  # the pip extra it needs (None: core dependencies)
    modules: tuple[str, ...]  # import names the export needs (fp32)
    int8_modules: tuple[str, ...] = ()  # and for int8
    int8_tool: str = ""
    companions: tuple[str, ...] = ()  # suffixes of files that belong to the main one


FORMATS: dict[str, FormatSpec] = {
    "onnx": FormatSpec("onnx", "onnxruntime", ".onnx", None, ("onnx", "onnxruntime"),
                       int8_tool="onnxruntime quantize_static (QDQ, per-channel s8 weights, u8 activations)"),
    "openvino": FormatSpec("openvino", "openvino", ".xml", "openvino", ("openvino",), ("nncf",),
                           int8_tool="nncf.quantize (OpenVINO IR)", companions=(".bin",)),
    "tflite": FormatSpec("tflite", "tflite", ".tflite", "tflite", ("litert_torch", "ai_edge_litert"),
                         ("ai_edge_quantizer",), int8_tool="ai-edge-quantizer static_wi8_ai8"),
    "tensorrt": FormatSpec("tensorrt", "tensorrt", ".plan", "tensorrt", (),
                           int8_tool="explicit quantization: QDQ ONNX (symmetric s8) built with trtexec --int8"),
}  # fmt: skip


def get_format(name: str) -> FormatSpec:
    if name not in FORMATS:
        raise OFAEdgeError(f"unknown export format '{name}' (known: {', '.join(FORMATS)})")
    return FORMATS[name]


def check_available(fmt: FormatSpec, int8: bool, trtexec: Trtexec | None = None) -> None:
    """Raise one line (with the pip command) when ``fmt``'s extra or device is missing here
    (``trtexec``: the tool and GPU a tensorrt export uses; default: trtexec on PATH, GPU 0)."""
    if fmt.name == "tensorrt":
        from ..convert.tensorrt import TensorRTUnavailable, tensorrt_availability

        ok, why = tensorrt_availability((trtexec or Trtexec()).path)
        if not ok:
            raise TensorRTUnavailable(why)
        return
    from ..convert.common import MissingExtraError

    modules = fmt.modules + (fmt.int8_modules if int8 else ())
    if fmt.extra is not None and (missing := extra_missing(fmt.extra, f"{fmt.name} export", modules)):
        raise MissingExtraError(missing)


def files_of(fmt: FormatSpec, path: Path) -> list[Path]:
    """The companion files of ``path`` (weights .bin of an OpenVINO .xml), then ``path`` itself."""
    return [Path(path).with_suffix(s) for s in fmt.companions] + [Path(path)]


# ------------------------------------------------------------------ converting
def convert_fp32(
    fmt: FormatSpec, module: nn.Module, example: torch.Tensor, path: Path, trtexec: Trtexec | None = None
) -> Path:
    if fmt.name == "onnx":
        from ..convert.onnx import export_onnx

        with convert_guarded("onnx", module, example):
            return export_onnx(module, example, path)
    if fmt.name == "openvino":
        from ..convert.openvino import convert_openvino

        return convert_openvino(module, example, path)
    if fmt.name == "tflite":
        from ..convert.tflite import convert_tflite

        return convert_tflite(module, example, path)
    return _tensorrt(module, example, path, "fp32", None, trtexec)


def convert_fp16(
    fmt: FormatSpec, module: nn.Module, example: torch.Tensor, path: Path, trtexec: Trtexec | None = None
) -> Path:
    """A TensorRT engine with fp16 kernels where TensorRT finds them faster (``trtexec --fp16``),
    from the fp32 ONNX model. Only TensorRT files have an fp16 precision here."""
    if fmt.name != "tensorrt":
        raise OFAEdgeError(f"fp16 files are TensorRT engines; {fmt.name} exports fp32 and int8")
    return _tensorrt(module, example, path, "fp16", None, trtexec)


def convert_int8(
    fmt: FormatSpec,
    module: nn.Module,
    example: torch.Tensor,
    fp32_path: Path,
    path: Path,
    calibration: CalibrationData,
    options: dict[str, Any] | None = None,
    trtexec: Trtexec | None = None,
) -> Path:
    """The int8 file at ``path``, quantised with ``fmt``'s own tool on ``calibration`` inputs.

    ``options["forms"]``: the export forms (see :mod:`ofa_edge.convert.graph_form`) the int8 graph
    is built from (default: the format's :data:`INT8_FORMS`); the fp32 file is then converted again
    from that form for the quantiser (the shipped fp32 file keeps the plain form). Other options go
    to the quantiser (onnx: nodes_to_exclude, op_types; openvino: ignored_scope; tflite: method
    "aeq" or "pt2e").
    """
    from ..convert.graph_form import export_form

    options = dict(options or {})
    forms = tuple(options.pop("forms", INT8_FORMS[fmt.name]))
    source = export_form(module, forms, example)
    fp32_form = temp_name(Path(path), "fp32") if forms and fmt.name in ("onnx", "tflite") else None
    try:
        if fp32_form is not None:
            convert_fp32(fmt, source, example, fp32_form)
            fp32_path = fp32_form
        if fmt.name == "onnx":
            from ..convert.onnx import quantize_qdq

            return quantize_qdq(fp32_path, path, tuple(example.shape), calibration, **options)
        if fmt.name == "openvino":
            from ..convert.openvino import convert_openvino

            return convert_openvino(source, example, path, int8=True, calibration=calibration, **options)
        if fmt.name == "tflite":
            from ..convert.tflite import quantize_tflite

            return quantize_tflite(fp32_path, path, example, calibration, module=source, **options)
        return _tensorrt(source, example, path, "int8", calibration, trtexec)
    finally:
        if fp32_form is not None:
            fp32_form.unlink(missing_ok=True)


def _tensorrt(module: nn.Module, example: torch.Tensor, path: Path, precision: str,
              calibration: CalibrationData | None, trtexec: Trtexec | None) -> Path:  # fmt: skip
    from ..convert.onnx import export_onnx, quantize_qdq
    from ..convert.tensorrt import build_engine

    onnx = temp_name(Path(path).with_suffix(".onnx"))
    qdq = temp_name(Path(path).with_suffix(".onnx"), "qdq")
    try:
        with convert_guarded("onnx (for tensorrt)", module, example):
            export_onnx(module, example, onnx)
        source = onnx
        if precision == "int8":
            source = quantize_qdq(onnx, qdq, tuple(example.shape), calibration, symmetric_activations=True)
        trtexec = trtexec or Trtexec()
        return build_engine(source, path, precision, trtexec.path, trtexec.gpu)
    finally:
        onnx.unlink(missing_ok=True)
        qdq.unlink(missing_ok=True)


# --------------------------------------------------------------------- running
@dataclass
class Outputs:
    logits: np.ndarray  # (N, classes) float32
    io: dict[str, Any]  # input/output name, shape, dtype, quantization


def run_file(
    fmt: FormatSpec, path: Path, images: np.ndarray, threads: int = 1, precision: str = "fp32",
    trtexec: Trtexec | None = None,
) -> Outputs:  # fmt: skip
    """Logits of the exported file for each image (batch 1, as it ships), on the format's runtime."""
    runner, io = _runner(fmt, Path(path), threads, precision, trtexec or Trtexec())
    if fmt.name == "tensorrt":
        return Outputs(runner(images), io)
    return Outputs(np.concatenate([runner(images[i : i + 1]) for i in range(len(images))]).astype(np.float32), io)


def _runner(fmt: FormatSpec, path: Path, threads: int, precision: str,
            trtexec: Trtexec) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, Any]]:  # fmt: skip
    if fmt.name == "onnx":
        from ..profilers.onnxruntime import OnnxRuntimeBackend

        session = OnnxRuntimeBackend(threads=threads).session(path)
        inp, out = session.get_inputs()[0], session.get_outputs()[0]
        io = {"input": _io(inp.name, inp.shape, "float32"), "output": _io(out.name, out.shape, "float32")}
        return (lambda x: session.run(None, {inp.name: x})[0]), io
    if fmt.name == "openvino":
        from ..profilers.openvino import OpenVinoBackend

        compiled = OpenVinoBackend(threads=threads, precision=precision).compile(path)
        request = compiled.create_infer_request()
        inp, out = compiled.input(0), compiled.output(0)
        io = {"input": _io(inp.get_any_name(), list(inp.shape), "float32"),
              "output": _io(out.get_any_name(), list(out.shape), "float32")}  # fmt: skip
        return (lambda x: request.infer({0: x})[out].copy()), io
    if fmt.name == "tflite":
        from ..convert.tflite import dequantize_output, io_quantization, make_interpreter, quantize_input

        interpreter = make_interpreter(path, threads)
        ind, outd = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

        def run(x: np.ndarray) -> np.ndarray:
            interpreter.set_tensor(ind["index"], quantize_input(x, ind))
            interpreter.invoke()
            return dequantize_output(interpreter.get_tensor(outd["index"]), outd)

        io = {
            "input": _io(ind["name"], ind["shape"].tolist(), np.dtype(ind["dtype"]).name, io_quantization(ind)),
            "output": _io(outd["name"], outd["shape"].tolist(), np.dtype(outd["dtype"]).name, io_quantization(outd)),
        }
        return run, io
    from ..convert.tensorrt import engine_outputs

    def run_all(images: np.ndarray) -> np.ndarray:
        batches = [images[i : i + 1] for i in range(len(images))]
        return engine_outputs(path, batches, trtexec.path, trtexec.gpu).reshape(len(images), -1)

    return run_all, {"input": _io("input", None, "float32"), "output": _io("output", None, "float32")}


def _io(name: str, shape: Any, dtype: str, quantization: tuple[float, int] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "shape": [int(d) if str(d).isdigit() else str(d) for d in shape or []],
                             "dtype": dtype}  # fmt: skip
    if quantization is not None:
        entry["quantization"] = {
            "scale": quantization[0],
            "zero_point": quantization[1],
            "formula": "q = round(x / scale) + zero_point; x = (q - zero_point) * scale",
        }
    return entry
