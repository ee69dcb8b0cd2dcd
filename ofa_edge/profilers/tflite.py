"""TFLite / LiteRT: models converted with litert-torch, timed locally or on an Android phone.

Transports, chosen by the device name:
  ``CPU`` (default)  this machine, the ai-edge-litert Interpreter with XNNPACK and N threads;
  any other name     a phone named in the devices file (see :mod:`.adb`), timed by the user's
                     ``benchmark_model`` binary (option ``benchmark_model=PATH``) pinned with
                     ``taskset`` (option ``affinity=f0``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .adb import AdbDevice, BenchmarkModelRunner, resolve_serial
from .base import BackendInfo, BackendUnavailable, Measurement, host_cpu, time_runs


class TFLiteBackend:
    name = "tflite"
    precisions = ("fp32",)
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
        if importlib.util.find_spec("litert_torch") is None:
            return False, "litert-torch is not installed (pip install litert-torch): needed to convert models"
        if self.local and importlib.util.find_spec("ai_edge_litert") is None:
            return False, "ai-edge-litert is not installed (pip install ai-edge-litert)"
        return True, _version()

    def describe(self) -> BackendInfo:
        ok, version = self.availability()
        extra: dict[str, Any] = {"converter": "litert-torch", "delegate": "xnnpack"}
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
        try:
            import litert_torch
        except ImportError as exc:
            raise BackendUnavailable(self.availability()[1]) from exc
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp.tflite")
        # The converter logs every pass to stdout/stderr; keep the user's terminal for progress.
        with _quiet():
            litert_torch.convert(module.eval(), (example,)).export(str(tmp))
        os.replace(tmp, path)
        return path

    def measure(self, model: Path, warmup: int, runs: int) -> Measurement:
        if self.runner is not None:
            timings = self.runner.benchmark(model, warmup, runs)
            std = timings.inference_std_us / 1e3 if timings.inference_std_us is not None else None
            return Measurement(timings.inference_avg_us / 1e3, None, None, timings.runs or runs, "mean", std)
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise BackendUnavailable(self.availability()[1]) from exc
        with _quiet():  # the runtime logs "Created TensorFlow Lite XNNPACK delegate" on every load
            interpreter = Interpreter(model_path=str(model), num_threads=self.threads)
            interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        data = np.random.default_rng(0).standard_normal(detail["shape"]).astype(np.float32)
        interpreter.set_tensor(detail["index"], data)
        return time_runs(interpreter.invoke, warmup, runs)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for package in ("ai-edge-litert", "litert-torch"):
        with contextlib.suppress(PackageNotFoundError):
            parts.append(f"{package} {version(package)}")
    return ", ".join(parts)


@contextlib.contextmanager
def _quiet():
    """Silence Python-level and C-level (fd 1/2) output of the converter."""
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)
