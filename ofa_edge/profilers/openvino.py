"""OpenVINO: CPU (or a named GPU/NPU device), f32 or bf16 inference precision, int8 models.

fp32 and bf16 models are ONNX files, which OpenVINO reads directly. An int8 model is what export
ships: OpenVINO IR quantised with ``nncf.quantize`` (not a QDQ ONNX file, which OpenVINO's CPU
plugin compiles into another, slower graph; see ``INT8_QUANTIZERS``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..convert.common import extra_missing
from ..convert.graph_form import INT8_FORMS, export_form, int8_graph_info
from ..convert.onnx import export_onnx
from ..convert.openvino import convert_openvino
from .base import BackendInfo, BackendUnavailable, Measurement, host_cpu, time_runs


class OpenVinoBackend:
    name = "openvino"
    precisions = ("fp32", "bf16", "int8")

    def __init__(self, device: str = "CPU", threads: int = 1, precision: str = "fp32") -> None:
        self.device = device.upper()
        self.threads = threads
        self.precision = precision

    @property
    def model_suffix(self) -> str:
        return ".xml" if self.precision == "int8" else ".onnx"

    def availability(self) -> tuple[bool, str]:
        modules = ("openvino", "nncf") if self.precision == "int8" else ("openvino",)
        missing = extra_missing("openvino", f"the OpenVINO {self.precision} backend", modules)
        if missing:
            return False, missing
        import openvino

        devices = openvino.Core().available_devices
        if not any(d.split(".")[0] == self.device.split(".")[0] for d in devices):
            return False, f"openvino {openvino.__version__} sees no {self.device} (devices: {', '.join(devices)})"
        return True, openvino.__version__.split("-")[0]

    def _core(self):
        try:
            import openvino
        except ImportError as exc:
            raise BackendUnavailable(self.availability()[1]) from exc
        return openvino.Core()

    def config(self) -> dict[str, Any]:
        # This CPU defaults to bf16 where it can; f32 must be asked for (int8 models keep their
        # int8 ops either way, with f32 between them).
        hint = "bf16" if self.precision == "bf16" else "f32"
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": "1",
            "INFERENCE_PRECISION_HINT": hint,
        }
        if self.device == "CPU":
            config["INFERENCE_NUM_THREADS"] = str(self.threads)
        return config

    def describe(self) -> BackendInfo:
        ok, version = self.availability()
        detail = host_cpu()
        if ok and self.device != "CPU":
            detail = str(self._core().get_property(self.device, "FULL_DEVICE_NAME"))
        return BackendInfo(
            self.name,
            version if ok else "missing",
            self.device,
            detail,
            self.threads if self.device == "CPU" else None,
            self.precision,
            extra={
                "inference_precision_hint": self.config()["INFERENCE_PRECISION_HINT"],
                **int8_graph_info(self.precision, "openvino"),
            },
        )

    def prepare(self, module: nn.Module, example: torch.Tensor, path: Path) -> Path:
        path = Path(path)
        if self.precision != "int8":
            return export_onnx(module, example, path)
        # int8: built and quantised as export builds its openvino int8 file (its INT8_FORMS, then
        # nncf), so a table prices what export ships; random calibration is enough to time it.
        module = export_form(module, INT8_FORMS["openvino"], example)
        return convert_openvino(module, example, path.with_suffix(".xml"), int8=True)

    def compile(self, model: Path, profiling: bool = False):
        config = self.config()
        if profiling:
            config["PERF_COUNT"] = "YES"
        return self._core().compile_model(str(model), self.device, config)

    def inference(self, model: Path) -> Callable[[], Any]:
        """One batch-1 call of ``model`` on seeded random input: what ``measure`` times."""
        compiled = self.compile(model)
        request = compiled.create_infer_request()
        shape = tuple(compiled.input(0).shape)
        request.set_input_tensor(_tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32)))
        return request.infer

    def measure(self, model: Path, warmup: int, runs: int) -> Measurement:
        return time_runs(self.inference(model), warmup, runs)

    def layer_counters(self, model: Path, runs: int = 20) -> list[dict[str, Any]]:
        """Per-layer times (ms, averaged over ``runs``) from OpenVINO's performance counters.

        The layers are the compiled (fused) graph's; their sum can exceed the model's wall time.
        """
        compiled = self.compile(model, profiling=True)
        request = compiled.create_infer_request()
        shape = tuple(compiled.input(0).shape)
        request.set_input_tensor(_tensor(np.zeros(shape, np.float32)))
        totals: dict[str, dict[str, Any]] = {}
        for _ in range(runs):
            request.infer()
            for info in request.get_profiling_info():
                if info.status.name == "EXECUTED":
                    row = totals.setdefault(
                        info.node_name,
                        {"layer": info.node_name, "type": info.node_type, "exec_type": info.exec_type, "real_ms": 0.0},
                    )
                    row["real_ms"] += info.real_time.total_seconds() * 1e3 / runs
        return sorted(totals.values(), key=lambda r: -r["real_ms"])


def _tensor(array: np.ndarray):
    import openvino

    return openvino.Tensor(array)
