"""ONNX Runtime on the CPU execution provider: fp32 and static int8 (QDQ) models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..convert.graph_form import INT8_FORMS, export_form, int8_graph_info
from ..convert.onnx import export_onnx, quantize_qdq
from .base import BackendInfo, BackendUnavailable, Measurement, host_cpu, time_runs


class OnnxRuntimeBackend:
    name = "onnxruntime"
    precisions = ("fp32", "int8")
    model_suffix = ".onnx"

    def __init__(self, device: str = "CPU", threads: int = 1, precision: str = "fp32") -> None:
        if device.upper() != "CPU":
            raise ValueError(f"onnxruntime backend runs on the CPU execution provider only, not '{device}'")
        self.device = "CPU"
        self.threads = threads
        self.precision = precision

    def availability(self) -> tuple[bool, str]:
        try:
            import onnxruntime
        except ImportError:
            return False, "onnxruntime is not installed (pip install onnxruntime)"
        return True, onnxruntime.__version__

    def _runtime(self):
        try:
            import onnxruntime
        except ImportError as exc:
            raise BackendUnavailable(self.availability()[1]) from exc
        return onnxruntime

    def describe(self) -> BackendInfo:
        ok, version = self.availability()
        return BackendInfo(
            self.name,
            version if ok else "missing",
            self.device,
            host_cpu(),
            self.threads,
            self.precision,
            extra={"execution_provider": "CPUExecutionProvider", **int8_graph_info(self.precision, "onnx")},
        )

    def prepare(self, module: nn.Module, example: torch.Tensor, path: Path) -> Path:
        path = Path(path)
        if self.precision == "fp32":
            return export_onnx(module, example, path)
        # int8: built in the form export builds its onnx int8 file from (INT8_FORMS), so a table
        # prices what export ships; quantised on random input (enough to time it).
        module = export_form(module, INT8_FORMS["onnx"], example)
        fp32 = export_onnx(module, example, path.with_name(f"{path.stem}.fp32.onnx"))
        try:
            return quantize_qdq(fp32, path, tuple(example.shape))
        finally:
            fp32.unlink(missing_ok=True)

    def session(self, model: Path, profile_prefix: str | None = None):
        """An inference session set up as ``measure`` times it; with ``profile_prefix``, onnxruntime's
        per-node profiler is on and ``end_profiling()`` writes its JSON trace there."""
        ort = self._runtime()
        options = ort.SessionOptions()
        if profile_prefix is not None:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])

    def inference(self, model: Path) -> Callable[[], Any]:
        """One batch-1 call of ``model`` on seeded random input: what ``measure`` times."""
        session = self.session(model)
        inp = session.get_inputs()[0]
        feed = {inp.name: np.random.default_rng(0).standard_normal(inp.shape).astype(np.float32)}
        return lambda: session.run(None, feed)

    def measure(self, model: Path, warmup: int, runs: int) -> Measurement:
        return time_runs(self.inference(model), warmup, runs)
