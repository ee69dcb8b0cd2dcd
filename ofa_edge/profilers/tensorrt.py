"""TensorRT on an NVIDIA GPU or Jetson, through ``trtexec`` (engine build, then timed runs).

``prepare`` exports ONNX and builds a serialized engine (``--fp16`` / ``--int8`` as asked);
``measure`` loads it and reads trtexec's performance summary, whose ``GPU Compute Time`` line
gives min/max/mean/median/percentiles. Without ``trtexec`` or a GPU the backend says so and its
tests skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..convert.onnx import export_onnx
from ..errors import OFAEdgeError
from .base import BackendInfo, BackendUnavailable, Measurement

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


class TensorRTBackend:
    name = "tensorrt"
    precisions = ("fp32", "fp16", "int8")
    model_suffix = ".plan"

    def __init__(
        self, device: str = "GPU", threads: int = 1, precision: str = "fp32", trtexec: str = "trtexec", gpu: int = 0
    ) -> None:
        self.device = device
        self.threads = threads  # host threads do not apply; kept for the common signature
        self.precision = precision
        self.trtexec = shutil.which(trtexec) or trtexec
        self.gpu = int(gpu)
        self._probe: TrtexecSummary | None = None

    def availability(self) -> tuple[bool, str]:
        if shutil.which(self.trtexec) is None:
            return False, "trtexec not found (install TensorRT; on Jetson it is /usr/src/tensorrt/bin/trtexec)"
        if shutil.which("nvidia-smi") is None and not Path("/etc/nv_tegra_release").exists():
            return False, "no NVIDIA GPU driver found (nvidia-smi missing)"
        return True, "trtexec"

    def _run(self, *args: str) -> str:
        ok, why = self.availability()
        if not ok:
            raise BackendUnavailable(why)
        done = subprocess.run(
            [self.trtexec, f"--device={self.gpu}", *args], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
            raise OFAEdgeError(f"trtexec failed: {' | '.join(tail)}")
        return done.stdout

    def describe(self) -> BackendInfo:
        ok, _ = self.availability()
        version, device = "missing", "unknown GPU"
        if ok:
            out = self._run("--help")
            version = m.group(1) if (m := re.search(r"TensorRT v(\d+)", out)) else "trtexec"
            smi = subprocess.run(
                ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", f"--id={self.gpu}"],
                capture_output=True,
                text=True,
                check=False,
            )
            device = smi.stdout.strip() or device
        return BackendInfo(
            self.name,
            version,
            f"{self.device}.{self.gpu}",
            device,
            None,
            self.precision,
            extra={"tool": "trtexec", "spin_wait": True, "cuda_graph": True},
        )

    def prepare(self, module: nn.Module, example: torch.Tensor, path: Path) -> Path:
        path = Path(path)
        onnx = export_onnx(module, example, path.with_suffix(".onnx"))
        flags = {"fp32": [], "fp16": ["--fp16"], "int8": ["--int8"]}[self.precision]
        tmp = path.with_name(f".{path.name}.tmp")
        self._run(f"--onnx={onnx}", f"--saveEngine={tmp}", "--skipInference", *flags)
        tmp.replace(path)
        onnx.unlink(missing_ok=True)
        return path

    def measure(self, model: Path, warmup: int, runs: int) -> Measurement:
        out = self._run(
            f"--loadEngine={model}",
            f"--iterations={int(runs)}",
            "--warmUp=200",
            "--duration=0",
            "--useSpinWait",
            "--useCudaGraph",
            "--noDataTransfers",
        )
        summary = parse_trtexec_output(out)
        # trtexec reports no 10th percentile; its warm-up is time-based (--warmUp, ms).
        return Measurement(summary.median_ms, None, summary.percentiles.get(90.0), int(runs))
