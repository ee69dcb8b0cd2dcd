"""TFLite / LiteRT: models converted with litert-torch (see :mod:`ofa_edge.convert.tflite`; int8 is
static, ai-edge-quantizer's recipe, with int8 input and output), timed locally or on a phone.

Transports, chosen by the device name:
  ``CPU`` (default)  this machine, the ai-edge-litert Interpreter with XNNPACK and N threads;
  any other name     a phone named in the devices file (see :mod:`.adb`), timed by the user's
                     ``benchmark_model`` binary (option ``benchmark_model=PATH``) pinned with
                     ``taskset`` (option ``affinity=f0``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..convert.common import MissingExtraError, extra_missing, temp_name
from ..convert.graph_form import INT8_FORMS, export_form, int8_graph_info
from ..convert.tflite import convert_tflite, make_interpreter, quantize_input, quantize_tflite
from .adb import AdbDevice, BenchmarkModelRunner, resolve_serial
from .base import BackendInfo, BackendUnavailable, Measurement, host_cpu, time_runs


class TFLiteBackend:
    name = "tflite"
    precisions = ("fp32", "int8")
    model_suffix = ".tflite"

    def __init__(
        self,
        device: str = "CPU",
        threads: int = 1,
        precision: str = "fp32",
        benchmark_model: str | None = None,
        affinity: str = "f0",
        devices_file: str | None = None,
        adb: str = "adb",
    ) -> None:
        self.device = device
        self.threads = threads
        self.precision = precision
        self.local = device.upper() == "CPU"
        self.runner: BenchmarkModelRunner | None = None
        if not self.local:
            serial = resolve_serial(device, Path(devices_file) if devices_file else None)
            binary = Path(benchmark_model) if benchmark_model else Path("benchmark_model")
            self.runner = BenchmarkModelRunner(AdbDevice(serial, adb), binary, threads, affinity)

    def availability(self) -> tuple[bool, str]:
        # find_spec, not import: importing the converter takes seconds and floods the terminal.
        modules = ("litert_torch", "ai_edge_litert") if self.local else ("litert_torch",)
        if self.precision == "int8":
            modules += ("ai_edge_quantizer",)
        missing = extra_missing("tflite", "the TFLite backend", modules)
        return (False, missing) if missing else (True, _version())

    def describe(self) -> BackendInfo:
        ok, version = self.availability()
        extra: dict[str, Any] = {
            "converter": "litert-torch",
            "delegate": "xnnpack",
            **int8_graph_info(self.precision, "tflite"),
        }
        if self.local:
            return BackendInfo(
                self.name,
                version if ok else "missing",
                "CPU",
                host_cpu(),
                self.threads,
                self.precision,
                extra={**extra, "transport": "local"},
            )
        assert self.runner is not None
        detail = f"adb serial {self.runner.device.serial}, model {self.runner.device.model()}"
        extra.update(transport="adb", affinity=self.runner.affinity, binary=str(self.runner.binary))
        return BackendInfo(
            self.name, version if ok else "missing", self.device, detail, self.threads, self.precision, extra=extra
        )

    def prepare(self, module: nn.Module, example: torch.Tensor, path: Path) -> Path:
        ok, why = self.availability()
        if not ok:
            raise BackendUnavailable(why)
        path = Path(path)
        if self.precision == "fp32":
            return convert_tflite(module, example, path)
        # int8: static, ai-edge-quantizer on the fp32 file of the form export builds its int8 file
        # from (INT8_FORMS), so a table prices what export ships; random calibration is enough to time it.
        module = export_form(module, INT8_FORMS["tflite"], example)
        fp32 = convert_tflite(module, example, temp_name(path, "fp32"))
        try:
            return quantize_tflite(fp32, path, example, module=module)
        finally:
            fp32.unlink(missing_ok=True)

    def measure(self, model: Path, warmup: int, runs: int) -> Measurement:
        if self.runner is not None:
            timings = self.runner.benchmark(model, warmup, runs)
            std = timings.inference_std_us / 1e3 if timings.inference_std_us is not None else None
            return Measurement(timings.inference_avg_us / 1e3, None, None, timings.runs or runs, "mean", std)
        return time_runs(self.inference(model), warmup, runs)

    def inference(self, model: Path) -> Callable[[], Any]:
        """One batch-1 call of ``model`` in this process's interpreter on seeded random input: what
        ``measure`` times when no benchmark tool runs it (``benchmark_model``, a phone)."""
        if self.runner is not None:
            raise BackendUnavailable("this backend times models with benchmark_model; there is no in-process call")
        try:
            interpreter = make_interpreter(model, self.threads)
        except MissingExtraError as exc:
            raise BackendUnavailable(str(exc)) from None
        detail = interpreter.get_input_details()[0]
        # Static int8 files take int8 input: the float data goes in through its scale and zero point.
        data = quantize_input(np.random.default_rng(0).standard_normal(detail["shape"]).astype(np.float32), detail)
        interpreter.set_tensor(detail["index"], data)
        return interpreter.invoke


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for package in ("ai-edge-litert", "litert-torch"):
        with contextlib.suppress(PackageNotFoundError):
            parts.append(f"{package} {version(package)}")
    return ", ".join(parts)
