"""ONNX -> TensorRT engine (``.plan``) with ``trtexec``, on an NVIDIA GPU or Jetson.

fp32 and fp16 engines build from the fp32 ONNX file. int8 is explicit quantization: the ONNX file
is quantised first (QDQ, symmetric int8 activations and per-channel int8 weights, calibrated on
real images; see :func:`ofa_edge.convert.onnx.quantize_qdq`), and TensorRT builds int8 kernels
where the Q/DQ pairs say so, which replaces TensorRT's deprecated implicit calibrators.

Engines are specific to the GPU model and TensorRT version that built them. Without ``trtexec``
or a GPU every entry point raises :class:`TensorRTUnavailable`, one line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OFAEdgeError
from .common import ConversionError, temp_name

# The pip wheel (ofa-edge[tensorrt]) brings the libraries and Python bindings, not trtexec.
TRTEXEC_HINT = "it ships with NVIDIA's TensorRT packages and containers; on Jetson: /usr/src/tensorrt/bin/trtexec"


class TensorRTUnavailable(OFAEdgeError):
    """No trtexec or no NVIDIA GPU here."""


def gpu_index(device: str | int | None, gpu: int | str | None) -> int:
    """The GPU index a device name means: ``GPU``/``CPU``/None -> ``gpu`` (default 0), ``GPU.1``,
    ``cuda:1`` or ``1`` -> 1."""
    if gpu is not None and str(gpu).strip() != "":
        if not str(gpu).strip().isdigit():
            raise OFAEdgeError(f"gpu must be a GPU index (0, 1, ...), got {gpu!r}")
        return int(gpu)
    text = str(device or "").strip().lower()
    match = re.fullmatch(r"(?:gpu|cuda)?[.:]?(\d+)", text)
    return int(match.group(1)) if match else 0


@dataclass(frozen=True)
class Trtexec:
    """Which trtexec builds and runs engines, and on which GPU: the tensorrt backend's options
    (``-O trtexec=PATH``, ``-O gpu=N``, or a device such as ``GPU.1``), so that an export converts
    and verifies with the same tool and GPU it times on."""

    path: str = "trtexec"
    gpu: int = 0

    @classmethod
    def from_options(cls, options: dict[str, Any] | None, device: str | None = None) -> Trtexec:
        """The settings in ``options`` (other backends' keys, e.g. a phone's, are not read)."""
        options = options or {}
        return cls(str(options.get("trtexec") or "trtexec"), gpu_index(device, options.get("gpu")))


def find_trtexec(trtexec: str = "trtexec") -> str | None:
    for candidate in (trtexec, "/usr/src/tensorrt/bin/trtexec"):
        if found := shutil.which(candidate):
            return found
    return None


def tensorrt_availability(trtexec: str = "trtexec") -> tuple[bool, str]:
    """(usable here?, trtexec path or why not, in one line)."""
    binary = find_trtexec(trtexec)
    if binary is None:
        if trtexec != "trtexec":  # a path the user gave (-O trtexec=PATH)
            return False, f"TensorRT needs trtexec: {trtexec} is not an executable file"
        return False, f"TensorRT needs trtexec and an NVIDIA GPU: trtexec not found ({TRTEXEC_HINT})"
    if shutil.which("nvidia-smi") is None and not Path("/etc/nv_tegra_release").exists():
        return False, "TensorRT needs an NVIDIA GPU: no GPU driver found here (nvidia-smi missing)"
    return True, binary


def run_trtexec(args: list[str], trtexec: str = "trtexec", gpu: int = 0) -> str:
    ok, binary = tensorrt_availability(trtexec)
    if not ok:
        raise TensorRTUnavailable(binary)
    done = subprocess.run([binary, f"--device={gpu}", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
        raise ConversionError(f"trtexec failed: {tail}")
    return done.stdout


def build_engine(onnx: Path, path: Path, precision: str = "fp32", trtexec: str = "trtexec", gpu: int = 0) -> Path:
    """Serialized engine of ``onnx`` at ``path`` (written under a temp name, then renamed).

    ``precision``: fp32, fp16 (``--fp16``), or int8 (``onnx`` must then be a QDQ model; ``--int8``
    lets TensorRT use the int8 kernels its Q/DQ nodes call for, ``--fp16`` the rest).
    """
    flags = {"fp32": [], "fp16": ["--fp16"], "int8": ["--int8", "--fp16"]}
    if precision not in flags:
        raise OFAEdgeError(f"TensorRT precision must be one of {', '.join(flags)}, got '{precision}'")
    path = Path(path)
    tmp = temp_name(path)
    try:
        run_trtexec([f"--onnx={onnx}", f"--saveEngine={tmp}", "--skipInference", *flags[precision]], trtexec, gpu)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def engine_outputs(engine: Path, inputs: list[np.ndarray], trtexec: str = "trtexec", gpu: int = 0) -> np.ndarray:
    """Outputs of ``engine`` for batch-1 float32 ``inputs`` (one trtexec run each, via
    ``--loadInputs`` and ``--exportOutput``: slow, meant for a verification sample)."""
    outputs = []
    with tempfile.TemporaryDirectory(prefix="ofa-edge-trt-") as folder:
        for index, x in enumerate(inputs):
            raw, out = Path(folder) / f"in{index}.bin", Path(folder) / f"out{index}.json"
            np.ascontiguousarray(x, dtype=np.float32).tofile(raw)
            run_trtexec(
                [f"--loadEngine={engine}", f"--loadInputs=input:{raw}", f"--exportOutput={out}",
                 "--iterations=1", "--warmUp=0", "--duration=0"], trtexec, gpu)  # fmt: skip
            records = json.loads(out.read_text())
            record = next((r for r in records if r.get("name") == "output"), records[0])
            outputs.append(np.asarray(record["values"], dtype=np.float32))
    return np.stack(outputs)
