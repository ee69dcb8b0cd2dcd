"""TensorRT on an NVIDIA GPU or Jetson, through ``trtexec`` (engine build, then timed runs).

``prepare`` exports ONNX and builds a serialized engine (see :mod:`ofa_edge.convert.tensorrt`;
int8 from a QDQ model); ``measure`` runs ``warmup + runs`` iterations with ``--exportTimes`` and
keeps the GPU compute time of the last ``runs`` (older trtexec: the ``GPU Compute Time`` line of
its performance summary). The device recorded is the GPU (its name), never the host CPU. Without
``trtexec`` or a GPU the backend says so in one line and its tests skip.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..convert.common import temp_name
from ..convert.graph_form import int8_graph_info
from ..convert.onnx import export_onnx, quantize_qdq
from ..convert.tensorrt import (
    TensorRTUnavailable,
    build_engine,
    find_trtexec,
    gpu_index,
    run_trtexec,
    tensorrt_availability,
)
from ..errors import OFAEdgeError
from .base import BackendInfo, BackendUnavailable, Measurement, summarize

_SUMMARY = re.compile(r"GPU Compute Time:(.*)")
_STAT = re.compile(r"(min|max|mean|median)\s*=?\s*([\d.]+(?:e[-+]?\d+)?)\s*ms")
_PERCENTILE = re.compile(r"percentile\((\d+(?:\.\d+)?)%\)\s*=?\s*([\d.]+(?:e[-+]?\d+)?)\s*ms")
_VERSION = re.compile(r"TensorRT version:\s*([\w.]+)")
_DEVICE = re.compile(r"Selected Device:\s*(.+)")


class TrtexecOutputError(OFAEdgeError):
    """trtexec printed no performance summary."""


@dataclass(frozen=True)
class TrtexecSummary:
    median_ms: float
    mean_ms: float | None
    min_ms: float | None
    max_ms: float | None
    percentiles: dict[float, float]
    version: str | None = None
    device: str | None = None


def parse_trtexec_output(text: str) -> TrtexecSummary:
    """The ``GPU Compute Time`` statistics of trtexec's ``=== Performance summary ===``."""
    version = m.group(1) if (m := _VERSION.search(text)) else None
    device = m.group(1).strip() if (m := _DEVICE.search(text)) else None
    for line in text.splitlines():
        if match := _SUMMARY.search(line):
            stats = {k: float(v) for k, v in _STAT.findall(match.group(1))}
            if "median" in stats:
                pct = {float(p): float(v) for p, v in _PERCENTILE.findall(match.group(1))}
                return TrtexecSummary(
                    stats["median"], stats.get("mean"), stats.get("min"), stats.get("max"), pct, version, device
                )
    raise TrtexecOutputError("no 'GPU Compute Time: ... median = ...' line in trtexec output")


def parse_exported_times(text: str, warmup: int) -> Measurement:
    """Per-iteration GPU compute times (``computeMs``) of trtexec's ``--exportTimes`` JSON, the
    first ``warmup`` iterations dropped."""
    try:
        records = json.loads(text)
        times = [float(r["computeMs"]) for r in records if isinstance(r, dict) and "computeMs" in r]
    except (ValueError, TypeError, KeyError):
        times = []
    times = times[warmup:]
    if not times:
        raise TrtexecOutputError("trtexec --exportTimes gave no computeMs samples")
    return summarize(times)


def trtexec_version(text: str) -> str:
    """TensorRT's version from trtexec's banner ``[TensorRT v100300]``: the number packs
    major.minor.patch as M*10000 + m*100 + p since TensorRT 10, M*1000 + m*100 + p before."""
    if (m := re.search(r"TensorRT v(\d+)", text)) is None:
        return "trtexec"
    n = int(m.group(1))
    major, rest = divmod(n, 10000 if n >= 100000 else 1000)
    return f"{major}.{rest // 100}.{rest % 100}"


class TensorRTBackend:
    name = "tensorrt"
    precisions = ("fp32", "fp16", "int8")
    model_suffix = ".plan"

    def __init__(
        self,
        device: str = "GPU",
        threads: int = 1,
        precision: str = "fp32",
        trtexec: str = "trtexec",
        gpu: int | str | None = None,
    ) -> None:
        # The CLI's default device is CPU: a GPU backend reads it as "the default GPU".
        self.gpu = gpu_index(device, gpu)
        self.threads = threads  # host threads do not apply; kept for the common signature
        self.precision = precision
        self.trtexec = find_trtexec(trtexec) or trtexec
        self._gpu_name: str | None = None
        self._version_text: str | None = None  # trtexec --help runs once: describe() is called per file

    def availability(self) -> tuple[bool, str]:
        ok, detail = tensorrt_availability(self.trtexec)
        return (True, self._version()) if ok else (False, detail)

    def _run(self, *args: str) -> str:
        try:
            return run_trtexec(list(args), self.trtexec, self.gpu)
        except TensorRTUnavailable as exc:
            raise BackendUnavailable(str(exc)) from None

    def _version(self) -> str:
        if self._version_text is None:
            out = subprocess.run([self.trtexec, "--help"], capture_output=True, text=True, check=False)
            self._version_text = trtexec_version(out.stdout + out.stderr)
        return self._version_text

    def gpu_name(self) -> str | None:
        """The GPU's name from nvidia-smi (None where it cannot say, e.g. on a Jetson)."""
        if self._gpu_name is None and shutil.which("nvidia-smi"):
            smi = subprocess.run(
                ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", f"--id={self.gpu}"],
                capture_output=True,
                text=True,
                check=False,
            )
            self._gpu_name = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 and smi.stdout.strip() else None
        return self._gpu_name

    def describe(self) -> BackendInfo:
        ok, version = self.availability()
        name = self.gpu_name() if ok else None
        # The device is the GPU (its name, else GPU.<index>): never the host CPU.
        device = name or f"GPU.{self.gpu}"
        return BackendInfo(
            self.name,
            version if ok else "missing",
            device,
            f"{name or 'unknown GPU'} (index {self.gpu})",
            None,
            self.precision,
            extra={"tool": "trtexec", "gpu": self.gpu, "spin_wait": True, "cuda_graph": True,
                   "statistic": "GPU compute time", **int8_graph_info(self.precision, "tensorrt")},
        )  # fmt: skip

    def prepare(self, module: nn.Module, example: torch.Tensor, path: Path) -> Path:
        path = Path(path)
        ok, why = self.availability()
        if not ok:
            raise BackendUnavailable(why)
        onnx = export_onnx(module, example, temp_name(path.with_suffix(".onnx")))
        quantized = None
        try:
            if self.precision == "int8":
                # Explicit quantization as export builds its engine (INT8_QUANTIZERS); random
                # calibration is enough to time the engine.
                quantized = quantize_qdq(onnx, temp_name(path.with_suffix(".onnx"), "qdq"), tuple(example.shape),
                                         symmetric_activations=True)  # fmt: skip
            return build_engine(quantized or onnx, path, self.precision, self.trtexec, self.gpu)
        finally:
            onnx.unlink(missing_ok=True)
            if quantized is not None:
                quantized.unlink(missing_ok=True)

    def measure(self, model: Path, warmup: int, runs: int) -> Measurement:
        """``warmup`` untimed then ``runs`` timed iterations (GPU compute time per iteration)."""
        with tempfile.TemporaryDirectory(prefix="ofa-edge-trt-") as folder:
            times = Path(folder) / "times.json"
            out = self._run(
                f"--loadEngine={model}",
                f"--iterations={int(warmup) + int(runs)}",
                "--warmUp=0",
                "--duration=0",
                "--useSpinWait",
                "--useCudaGraph",
                "--noDataTransfers",
                f"--exportTimes={times}",
            )
            if times.exists():
                with contextlib.suppress(TrtexecOutputError):
                    return parse_exported_times(times.read_text(), int(warmup))
        # Older trtexec without per-iteration times: its summary (warm-up then included).
        summary = parse_trtexec_output(out)
        return Measurement(summary.median_ms, None, summary.percentiles.get(90.0), int(runs))
