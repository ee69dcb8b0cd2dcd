"""What an export is asked to do: one frozen :class:`ExportConfig`, checked before any work.

The fields fall in five groups: what to write (format, precisions, folder, name), from what
(supernet, data and how many images calibrate, quantise and check), fine-tuning, timing (table,
budget, device, threads, backend options, timing passes) and verification (the fp32 tolerance).
The CLI maps its options onto these fields one to one; Python users build the same object.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import OFAEdgeError
from ..fileio import check_output_folder
from ..profilers.base import Timing
from .formats import FormatSpec, get_format

BUDGET_TOLERANCE = 0.10  # a measurement more than 10 % over the budget is a miss
TENSORRT_VERIFY_IMAGES = 64  # trtexec runs one process per image: a sample is checked


@dataclass(frozen=True)
class ExportConfig:
    """Everything :func:`~ofa_edge.export.export_subnet` needs besides the arch.

    ``table``: a latency table (name or path) whose prediction is compared with the measurement of
    the file in the table's precision. ``device``: where files are timed (default: the table's
    device, else this CPU); ``backend_options``: the timing backend's own options, as for
    ``profile`` (a phone's ``benchmark_model``, TensorRT's ``trtexec`` and ``gpu``). ``threads``:
    default the table's, else 1. ``budget_ms``: flagged when missed by more than 10 %.
    ``test_images``: check and score on the first N test images (default: all).
    ``calibration_images`` recalibrate BatchNorm; ``int8_calibration_images`` (of those)
    calibrate the int8 quantiser. ``command``: recorded in the model cards (default: the Python
    call that reproduces the export).
    """

    # what to write
    format: str = "onnx"
    int8: bool = False
    fp16: bool = False  # TensorRT only: an fp16 engine besides fp32
    out_dir: str | Path = "exported"
    name: str = "subnet"
    # from what
    supernet: str | None = None  # a checkpoint path, or None / "demo" for the shipped demo
    data: str | None = None
    data_dir: Path | None = None
    calibration_images: int = 2000
    int8_calibration_images: int = 300
    test_images: int | None = None
    # fine-tuning with distillation from the largest subnet (0 epochs: none)
    finetune_epochs: int = 0
    finetune_images: int | None = None
    finetune_lr: float = 0.01
    # timing
    table: str | Path | None = None
    budget_ms: float | None = None
    device: str | None = None
    threads: int | None = None
    backend_options: Mapping[str, Any] | None = None
    timing: Timing = field(default_factory=Timing)
    measure_latency: bool = True
    # verification and quantisation
    fp32_tolerance: float = 1e-3
    int8_options: Mapping[str, Any] | None = None
    command: str | None = None

    @property
    def spec(self) -> FormatSpec:
        return get_format(self.format)

    @property
    def precisions(self) -> tuple[str, ...]:
        """The precisions written, fp32 first."""
        return ("fp32", *(("fp16",) if self.fp16 else ()), *(("int8",) if self.int8 else ()))

    def validate(self) -> None:
        """One line for the first thing wrong with the request, before any work; the output
        folder must exist or be creatable, and be writable."""
        spec = get_format(self.format)
        if self.fp16 and spec.name != "tensorrt":
            raise OFAEdgeError(
                f"fp16 files are TensorRT engines (--format tensorrt); {spec.name} exports fp32 and int8"
            )
        for label, value, low in (("--finetune-epochs", self.finetune_epochs, 0),
                                  ("--test-images", self.test_images, 1), ("--threads", self.threads, 1),
                                  ("--calibration-images", self.calibration_images, 1),
                                  ("--int8-calibration-images", self.int8_calibration_images, 1),
                                  ("--finetune-images", self.finetune_images, 1)):  # fmt: skip
            if value is not None and value < low:
                raise OFAEdgeError(f"{label} must be at least {low}, got {value}")
        if self.budget_ms is not None and not self.budget_ms > 0:
            raise OFAEdgeError(f"the budget must be above 0 ms, got {self.budget_ms:g}")
        if not re.fullmatch(r"[\w.+-]+", self.name):
            raise OFAEdgeError(f"output name {self.name!r} may hold only letters, digits and . _ + -")
        check_output_folder(Path(self.out_dir))

    def python_call(self, arch: dict[str, Any]) -> str:
        """The Python call that repeats this export (fields that differ from their defaults)."""
        defaults = asdict(ExportConfig())
        words = []
        for key, value in asdict(self).items():
            if key == "command" or value == defaults[key]:
                continue
            text = f"Timing(**{value!r})" if key == "timing" else repr(str(value) if isinstance(value, Path) else value)
            words.append(f"{key}={text}")
        return f"ofa_edge.export_subnet({arch!r}, ofa_edge.ExportConfig({', '.join(words)}))"
