"""``export_subnet``: from a supernet and an arch to verified, measured deployment files.

1. Load the supernet and the data split it was trained with (stored split and normalization).
2. Extract the subnet with BatchNorm recalibrated on training images; optionally fine-tune it
   with distillation from the largest subnet.
3. Convert to the format in fp32 and check the file against PyTorch on test images (max absolute
   logit difference, bounded; top-1 agreement); with ``int8`` quantise with the format's own tool,
   calibrated on real training images normalised as at evaluation, and report its accuracy and
   top-1 agreement with fp32.
4. Time each file with the format's latency backend; compare with the budget and the table's
   prediction.
5. Write a model card (JSON and Markdown) beside each file.

Everything is written under temp names in the output folder and renamed at the very end, so an
export that fails or is killed leaves no file under an output name (and an earlier export of the
same name stays intact until the new one is complete).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..convert.common import temp_name
from ..convert.tensorrt import Trtexec
from ..errors import OFAEdgeError
from ..fileio import atomic_write_text
from ..latency.profiling import require_available, timing_setting_warnings
from ..profilers.base import Measurement, Timing, time_interleaved
from ..space.arch import Arch, load_arch
from ..train.data import reading_line
from .card import CARD_SCHEMA, CARD_SCHEMA_VERSION, card_markdown, card_paths, sha256_file
from .formats import (
    FormatSpec,
    Outputs,
    check_available,
    convert_fp16,
    convert_fp32,
    convert_int8,
    files_of,
    get_format,
    run_file,
)

if TYPE_CHECKING:
    from ..train.evaluate import SupernetScorer

EXPORT_FORMATS = ("onnx", "openvino", "tflite", "tensorrt")
BUDGET_TOLERANCE = 0.10  # a measurement more than 10 % over the budget is a miss
TENSORRT_VERIFY_IMAGES = 64  # trtexec runs one process per image: a sample is checked


class ExportVerificationError(OFAEdgeError):
    """The exported fp32 file does not compute what the PyTorch subnet computes."""


@dataclass
class ExportedFile:
    precision: str
    path: str
    files: dict[str, str]  # every file of the model (OpenVINO: .xml and .bin) -> sha256
    sha256: str
    bytes: int
    card_json: str
    card_md: str
    io: dict[str, Any]
    top1: float
    latency: dict[str, Any] | None = None


@dataclass
class ExportResult:
    format: str
    int8: bool
    arch: dict[str, Any]
    resolution: int
    macs: int
    params: int
    supernet: str
    space: str
    out_dir: str
    files: list[ExportedFile]
    accuracy: dict[str, Any]
    verification: dict[str, Any]
    latency: dict[str, Any] | None
    finetune: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)
    command: str = ""
    seconds: float = 0.0
    fp16: bool = False  # a TensorRT fp16 engine was written too

    @property
    def budget_missed(self) -> bool:
        return bool(self.latency and self.latency.get("budget_missed"))

    def file(self, precision: str) -> ExportedFile:
        return next(f for f in self.files if f.precision == precision)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _noop(message: str) -> None:
    pass


class _Staging:
    """Temp names for every output, renamed to the real names together at the end."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.pairs: list[tuple[Path, Path]] = []

    def temp(self, final: Path) -> Path:
        tmp = temp_name(final)
        self.pairs.append((tmp, final))
        return tmp

    def add(self, tmp: Path, final: Path) -> None:
        self.pairs.append((tmp, final))

    def commit(self) -> None:
        for tmp, final in self.pairs:
            os.replace(tmp, final)
        self.pairs = []

    def abort(self) -> None:
        for tmp, _ in self.pairs:
            tmp.unlink(missing_ok=True)
        self.pairs = []


_TEMP = re.compile(r"^\..+\.(?:partial|pre|qdq|fp32)-(\d+)-[0-9a-f]{8}")


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temp files that killed exports left in ``folder`` (their process is gone)."""
    removed = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        match = _TEMP.match(path.name)
        if match and not _alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _resolve_arch(arch: Arch | dict | str | Path) -> Arch:
    if isinstance(arch, Arch):
        return arch
    if isinstance(arch, dict):
        return Arch.from_dict(arch)
    return load_arch(arch)


def _top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(100.0 * np.mean(np.argmax(logits, axis=1) == labels))


def export_subnet(
    arch: Arch | dict | str | Path,
    fmt: str = "onnx",
    *,
    supernet: str = "demo",
    int8: bool = False,
    fp16: bool = False,
    out_dir: str | Path = "exported",
    name: str = "subnet",
    finetune_epochs: int = 0,
    finetune_images: int | None = None,
    finetune_lr: float = 0.01,
    data: str | None = None,
    data_dir: Path | None = None,
    calibration_images: int = 2000,
    int8_calibration_images: int = 300,
    test_images: int | None = None,
    threads: int | None = None,
    table: str | Path | None = None,
    device: str | None = None,
    backend_options: dict[str, Any] | None = None,
    budget_ms: float | None = None,
    timing: Timing | None = None,
    measure_latency: bool = True,
    fp32_tolerance: float = 1e-3,
    int8_options: dict[str, Any] | None = None,
    command: str | None = None,
    scorer: SupernetScorer | None = None,
    progress: Callable[[str], None] = _noop,
) -> ExportResult:
    """Extract ``arch`` from ``supernet``, convert it to ``fmt`` (fp32, and int8 with ``int8``;
    a TensorRT fp16 engine with ``fp16``), verify, measure, and write the files with model cards to
    ``out_dir``.

    ``arch``: an :class:`Arch`, its dict, or an arch JSON path. ``threads``: inference threads for
    the latency measurement (default: the table's, else 1). ``table``: a latency table name or
    path whose prediction is compared with the measurement of the file in the table's precision
    (the table must be for this space, backend, device and thread count). ``device``: where the
    files are timed (default: the table's device, else this machine's CPU; a phone or a GPU when
    the backend reaches one); ``backend_options``: the backend's own options, as for ``profile``
    (a phone: ``benchmark_model``, ``devices_file``, ...). Parity and accuracy are always checked
    with the runtime on this machine. ``budget_ms``: flagged in the result when the measurement misses
    it by more than 10 %. ``test_images``: limit the test split (default: all of it).
    ``calibration_images`` recalibrate BatchNorm; ``int8_calibration_images`` (of those) calibrate
    the int8 quantiser. Raises :class:`OFAEdgeError` subclasses, one line each: a missing extra
    (with its pip command), TensorRT without a GPU, an op the format cannot convert (op and block),
    an fp32 file that disagrees with PyTorch beyond ``fp32_tolerance``. ``scorer``: a
    :class:`~ofa_edge.train.evaluate.SupernetScorer` of ``supernet`` on the test split, already
    open (several exports of one deploy share it: the supernet and the data are read once);
    ``data``, ``data_dir`` and ``calibration_images`` are then its own.
    """
    from ..latency.table import load_table, on_this_cpu
    from ..profilers import make_backend
    from ..train.evaluate import SupernetScorer
    from ..train.run import default_flip
    from .extract import eval_arrays, extract_subnet, finetune_distill, torch_logits

    started = time.perf_counter()
    spec = get_format(fmt)
    # A tensorrt export builds and checks its engines with the trtexec and GPU it times on.
    trtexec = Trtexec.from_options(backend_options, device) if spec.name == "tensorrt" else None
    check_available(spec, int8, trtexec)
    if fp16 and spec.name != "tensorrt":
        raise OFAEdgeError(f"fp16 files are TensorRT engines (--format tensorrt); {spec.name} exports fp32 and int8")
    if finetune_epochs < 0:
        raise OFAEdgeError(f"--finetune-epochs must be 0 or more, got {finetune_epochs}")
    if test_images is not None and test_images < 1:
        raise OFAEdgeError(f"--test-images must be at least 1, got {test_images}")
    if not re.fullmatch(r"[\w.+-]+", name):
        raise OFAEdgeError(f"output name {name!r} may hold only letters, digits and . _ + -")
    arch = _resolve_arch(arch)
    warnings: list[str] = []
    written = ("fp32", *(("fp16",) if fp16 else ()), *(("int8",) if int8 else ()))
    precision = written[-1]  # the precision whose measurement is compared with the table and budget

    lut = None
    if table is not None:
        lut = load_table(table)
        if lut.backend.get("backend") != spec.backend:
            raise OFAEdgeError(
                f"table ({lut.label}) is for backend {lut.backend.get('backend')}, but {spec.name} files are "
                f"timed with {spec.backend}: pass a {spec.backend} table"
            )
        # A table prices files of one precision: an fp32 table (the default search's) compares the
        # fp32 file of an --int8 export; an int8 table needs the int8 file.
        precision = str(lut.backend.get("precision"))
        if precision not in written:
            raise OFAEdgeError(
                f"table ({lut.label}) prices {precision} files and this export writes {' and '.join(written)}"
                + (f": add --{precision}" if precision in ("int8", "fp16") else "")
            )
        if device is None:
            device = lut.backend.get("device")
    if threads is None:
        threads = int(lut.backend.get("threads") or 1) if lut is not None else 1
    if threads < 1:
        raise OFAEdgeError(f"threads must be at least 1, got {threads}")

    # The timing backends first: a device or option that cannot work says so before the slow part.
    backends = {}
    if measure_latency:
        for p in written:
            backends[p] = make_backend(spec.backend, device, threads=threads, precision=p,
                                       **(backend_options or {}))  # fmt: skip
            require_available(backends[p])  # e.g. an OpenVINO device this machine does not have
        if lut is not None:
            info = backends[precision].describe()
            lut.check_request(backend=info.backend, device=info.device, precision=info.precision,
                              threads=info.threads)  # fmt: skip
            warnings += timing_setting_warnings(lut.backend, info)
            if not on_this_cpu(info.device) and info.device_detail != lut.backend.get("device_detail"):
                warnings.append(f"table {lut.label} was measured on '{lut.backend.get('device_detail')}', these files "
                                f"on '{info.device_detail}': its prediction may not hold there")  # fmt: skip

    if scorer is None:
        progress(f"loading supernet {supernet} and {data or 'the data it was trained on'}")
        scorer = SupernetScorer.open(supernet, data, data_dir, "test", calibration_images=calibration_images,
                                     progress=partial(report_reading, progress))  # fmt: skip
    warnings += scorer.warnings
    net, eval_data = scorer.net, scorer.data
    space = net.space
    arch = space.validate(arch)
    if lut is not None:
        if (note := lut.classifier_note(space)) is not None:  # also checks that the table prices this space
            warnings.append(note)
        if (warning := lut.machine_warning()) is not None:
            warnings.append(warning)

    # ---------------------------------------------------------------- extract
    finetune = None
    if finetune_epochs > 0:
        progress(f"fine-tuning {finetune_epochs} epoch(s) with distillation from the largest subnet")
        subnet, report = finetune_distill(
            net, arch, eval_data, scorer.train_part, finetune_epochs, lr=finetune_lr, images=finetune_images,
            flip=default_flip(scorer.data_name),
        )  # fmt: skip
        finetune = report.to_dict()
    else:
        progress("extracting the subnet (BatchNorm recalibrated on training images)")
        subnet = extract_subnet(net, arch, eval_data)
    scored = eval_data.scored
    if test_images is not None:
        scored = scored.subset(torch.arange(min(test_images, len(scored))))
    images, labels = eval_arrays(scored, eval_data.normalization, arch.r)
    reference = torch_logits(subnet, images)
    torch_top1 = _top1(reference, labels)
    example = torch.from_numpy(images[:1].copy())
    calibration = list(
        eval_arrays(eval_data.calibration.subset(torch.arange(min(int8_calibration_images,
                                                                  len(eval_data.calibration)))),
                    eval_data.normalization, arch.r)[0][:, None]
    ) if int8 else []  # fmt: skip

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    staging = _Staging(out)
    try:
        # --------------------------------------------------------- convert fp32
        progress(f"converting to {spec.name} fp32")
        final = {"fp32": out / f"{name}-fp32{spec.suffix}"}
        temps = {"fp32": _stage_model(staging, spec, final["fp32"])}
        convert_fp32(spec, subnet, example, temps["fp32"], trtexec)
        verify_images, verify_labels, verify_reference = images, labels, reference
        if spec.name == "tensorrt" and len(images) > TENSORRT_VERIFY_IMAGES:
            warnings.append(f"TensorRT files are checked on the first {TENSORRT_VERIFY_IMAGES} test images")
            verify_images, verify_labels = images[:TENSORRT_VERIFY_IMAGES], labels[:TENSORRT_VERIFY_IMAGES]
            verify_reference = reference[:TENSORRT_VERIFY_IMAGES]
        progress(f"checking the fp32 file on {len(verify_images)} test images")
        fp32_out = run_file(spec, temps["fp32"], verify_images, threads, "fp32", trtexec)
        diff = float(np.max(np.abs(fp32_out.logits - verify_reference)))
        fp32_agreement = float(np.mean(np.argmax(fp32_out.logits, 1) == np.argmax(verify_reference, 1)))
        verification = {
            "images": len(verify_images),
            "fp32_max_abs_diff": diff,
            "fp32_tolerance": fp32_tolerance,
            "fp32_top1_agreement": fp32_agreement,
            "passed": diff <= fp32_tolerance,
        }
        if diff > fp32_tolerance:
            raise ExportVerificationError(
                f"the fp32 {spec.name} file differs from the PyTorch subnet by up to {diff:.3g} on the logits "
                f"(tolerance {fp32_tolerance:g}): nothing was written"
            )
        outputs = {"fp32": fp32_out}
        accuracy: dict[str, Any] = {
            "data": scorer.data_name,
            "split": "test",
            "images": len(verify_images),
            "torch_top1": torch_top1 if len(verify_images) == len(images) else _top1(verify_reference, verify_labels),
            "fp32_top1": _top1(fp32_out.logits, verify_labels),
        }

        # ------------------------------------------------- TensorRT fp16 engine
        if fp16:
            progress(f"building the fp16 {spec.name} engine")
            final["fp16"] = out / f"{name}-fp16{spec.suffix}"
            temps["fp16"] = _stage_model(staging, spec, final["fp16"])
            convert_fp16(spec, subnet, example, temps["fp16"], trtexec)
            progress(f"checking the fp16 file on {len(verify_images)} test images")
            outputs["fp16"] = run_file(spec, temps["fp16"], verify_images, threads, "fp16", trtexec)
            _compare_with_fp32("fp16", outputs, verify_labels, accuracy, verification)

        # --------------------------------------------------------- convert int8
        if int8:
            progress(f"quantising to int8 with {spec.int8_tool} on {len(calibration)} training images")
            final["int8"] = out / f"{name}-int8{spec.suffix}"
            temps["int8"] = _stage_model(staging, spec, final["int8"])
            convert_int8(spec, subnet, example, temps["fp32"], temps["int8"], calibration, int8_options, trtexec)
            progress(f"checking the int8 file on {len(verify_images)} test images")
            outputs["int8"] = run_file(spec, temps["int8"], verify_images, threads, "int8", trtexec)
            _compare_with_fp32("int8", outputs, verify_labels, accuracy, verification)

        # --------------------------------------------------------------- latency
        latency = None
        measured: dict[str, Measurement] = {}
        if measure_latency:
            timing = timing or Timing()
            timed_on = backends[precision].describe()
            progress(f"timing on {spec.backend} ({timed_on.device})"
                     + (f" with {timed_on.threads} thread(s)" if timed_on.threads else ""))  # fmt: skip
            measures = [partial(backends[p].measure, path, timing.warmup, timing.runs) for p, path in temps.items()]
            measured = dict(zip(temps, time_interleaved(measures, timing.rounds)))
            latency = _latency_summary(spec, precision, measured, backends, lut, table, space, arch, budget_ms, timing)
            if latency.get("message"):
                warnings.append(latency["message"])

        # ---------------------------------------------------------------- cards
        command = command or _python_command(arch, fmt, supernet, int8, fp16, out_dir, finetune_epochs, table,
                                             budget_ms)  # fmt: skip
        files = []
        for p, tmp in temps.items():
            card = _card(
                spec, p, final[p], tmp, outputs[p].io, arch, space, supernet, eval_data.normalization, accuracy,
                verification, measured.get(p), backends.get(p), latency if p == precision else None,
                finetune, command,
            )  # fmt: skip
            card_json, card_md = card_paths(final[p])
            tmp_json, tmp_md = staging.temp(card_json), staging.temp(card_md)
            atomic_write_text(tmp_json, json.dumps(card, indent=2) + "\n")
            atomic_write_text(tmp_md, card_markdown(card))
            files.append(
                ExportedFile(
                    p, str(final[p]), card["files"], card["sha256"], card["bytes"], str(card_json), str(card_md),
                    outputs[p].io, card["accuracy"]["top1"], card.get("latency"),
                )
            )  # fmt: skip
        staging.commit()
    except BaseException:
        staging.abort()
        raise

    return ExportResult(
        format=spec.name,
        int8=int8,
        fp16=fp16,
        arch=arch.to_dict(),
        resolution=arch.r,
        macs=space.macs(arch),
        params=space.params(arch),
        supernet=str(supernet),
        space=space.name,
        out_dir=str(out),
        files=files,
        accuracy=accuracy,
        verification=verification,
        latency=latency,
        finetune=finetune,
        warnings=warnings,
        command=command,
        seconds=time.perf_counter() - started,
    )


def _compare_with_fp32(precision: str, outputs: dict[str, Outputs], labels: np.ndarray,
                       accuracy: dict[str, Any], verification: dict[str, Any]) -> None:  # fmt: skip
    """Record a reduced-precision file's (int8, fp16) accuracy and its agreement with the fp32 file."""
    logits, fp32 = outputs[precision].logits, outputs["fp32"].logits
    accuracy[f"{precision}_top1"] = _top1(logits, labels)
    accuracy[f"{precision}_agreement_with_fp32"] = float(np.mean(np.argmax(logits, 1) == np.argmax(fp32, 1)))
    accuracy[f"{precision}_drop_points"] = accuracy["fp32_top1"] - accuracy[f"{precision}_top1"]
    verification[f"{precision}_top1_agreement_with_fp32"] = accuracy[f"{precision}_agreement_with_fp32"]
    verification[f"{precision}_max_abs_diff_to_fp32"] = float(np.max(np.abs(logits - fp32)))


def report_reading(progress: Callable[[str], None], done: int, total: int, folder: str) -> None:
    """A large image folder's reading (train.data.ReadProgress) as a ``progress`` line."""
    progress(reading_line(done, total, folder))


def _stage_model(staging: _Staging, spec: FormatSpec, final: Path) -> Path:
    """A temp name for a model and for each of its companion files (renamed companions first)."""
    tmp = temp_name(final)
    for tmp_file, final_file in zip(files_of(spec, tmp), files_of(spec, final)):
        staging.add(tmp_file, final_file)
    return tmp


def _latency_summary(spec, precision, measured, backends, lut, table, space, arch, budget_ms, timing) -> dict[str, Any]:
    shipped = measured[precision]
    info = backends[precision].describe()
    summary: dict[str, Any] = {
        "precision": precision,
        "measured_ms": shipped.median_ms,
        "p10_ms": shipped.p10_ms,
        "p90_ms": shipped.p90_ms,
        "statistic": shipped.statistic,
        "threads": info.threads,
        "backend": info.to_dict(),
        "timing": timing.to_dict(),
        "per_precision": {p: m.to_dict() for p, m in measured.items()},
        "table": None,
        "predicted_ms": None,
        "prediction_error": None,
        "budget_ms": budget_ms,
        "over_budget": None,
        "budget_missed": False,
        "message": None,
    }
    for p in ("fp16", "int8"):
        if p in measured and "fp32" in measured:
            summary[f"{p}_speedup"] = measured["fp32"].median_ms / measured[p].median_ms
    if lut is not None:
        predicted = lut.predict(space, arch)
        summary.update(table=str(table), predicted_ms=predicted,
                       prediction_error=(shipped.median_ms - predicted) / predicted)  # fmt: skip
    if budget_ms is not None:
        over = shipped.median_ms / budget_ms - 1
        summary["over_budget"] = over
        if over > BUDGET_TOLERANCE:
            summary["budget_missed"] = True
            summary["message"] = (
                f"measured {shipped.median_ms:.3f} ms on {info.backend} ({info.threads or '-'} thread(s)) misses "
                f"the {budget_ms:g} ms budget by {over:.0%} (more than {BUDGET_TOLERANCE:.0%})"
                + (f"; the table predicted {summary['predicted_ms']:.3f} ms" if lut is not None else "")
            )
    return summary


_CARD_LATENCY_KEYS = ("table", "predicted_ms", "prediction_error", "budget_ms", "over_budget", "budget_missed",
                      "message", "timing")  # fmt: skip


def _card(spec, precision, final, tmp, io, arch, space, supernet, normalization, accuracy, verification,
          measurement, backend, latency, finetune, command) -> dict[str, Any]:  # fmt: skip
    from .. import __version__

    files = {}
    for tmp_file, final_file in zip(files_of(spec, tmp), files_of(spec, final)):
        files[final_file.name] = sha256_file(tmp_file)
    file_accuracy = {
        "data": accuracy["data"],
        "split": accuracy["split"],
        "images": accuracy["images"],
        "torch_top1": accuracy["torch_top1"],
        "top1": accuracy[f"{precision}_top1"],
    }
    if precision != "fp32":
        file_accuracy["fp32_top1"] = accuracy["fp32_top1"]
        file_accuracy["agreement_with_fp32"] = accuracy[f"{precision}_agreement_with_fp32"]
    if precision == "fp32":
        summary = (
            f"max |logit difference| to PyTorch {verification['fp32_max_abs_diff']:.2e} (tolerance "
            f"{verification['fp32_tolerance']:g}), same top-1 on {verification['fp32_top1_agreement']:.2%} of "
            f"{verification['images']} test images"
        )
    else:
        summary = (
            f"top-1 agrees with the fp32 file on {verification[f'{precision}_top1_agreement_with_fp32']:.2%} of "
            f"{verification['images']} test images; accuracy {accuracy['fp32_top1']:.2f}% -> "
            f"{accuracy[f'{precision}_top1']:.2f}%"
        )
    card: dict[str, Any] = {
        "schema": CARD_SCHEMA,
        "schema_version": CARD_SCHEMA_VERSION,
        "file": final.name,
        "files": files,
        "sha256": files[final.name],
        "bytes": tmp.stat().st_size,
        "format": spec.name,
        "precision": precision,
        "quantizer": spec.int8_tool if precision == "int8" else "trtexec --fp16" if precision == "fp16" else None,
        "supernet": str(supernet),
        "space": space.name,
        "arch": arch.to_dict(),
        "resolution": arch.r,
        "macs": space.macs(arch),
        "params": space.params(arch),
        "input": {**io["input"], "layout": "NCHW"},
        "output": io["output"],
        "normalization": {"mean": list(normalization.mean), "std": list(normalization.std), "pixel_scale": 1 / 255},
        "accuracy": file_accuracy,
        "verification": {**verification, "summary": summary},
        "finetune": finetune,
        "latency": None,
        "command": command,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "ofa_edge_version": __version__,
    }
    if measurement is not None and backend is not None:
        info = backend.describe()
        card["latency"] = {
            "measured_ms": measurement.median_ms,
            "p10_ms": measurement.p10_ms,
            "p90_ms": measurement.p90_ms,
            "samples": measurement.samples,
            "statistic": measurement.statistic,
            "threads": info.threads,
            "backend": info.to_dict(),
        }
        if latency is not None:
            card["latency"].update({k: latency[k] for k in _CARD_LATENCY_KEYS})
    return card


def _python_command(arch, fmt, supernet, int8, fp16, out_dir, finetune_epochs, table, budget_ms) -> str:
    parts = [f"arch={json.dumps(arch.to_dict())!r}", f"fmt={fmt!r}", f"supernet={supernet!r}", f"int8={int8}",
             *([f"fp16={fp16}"] if fp16 else []), f"out_dir={str(out_dir)!r}"]  # fmt: skip
    if finetune_epochs:
        parts.append(f"finetune_epochs={finetune_epochs}")
    if table is not None:
        parts.append(f"table={str(table)!r}")
    if budget_ms is not None:
        parts.append(f"budget_ms={budget_ms}")
    return "ofa_edge.export.export_subnet(" + ", ".join(parts) + ")"


def command_line(argv: list[str]) -> str:
    return shlex.join(["ofa-edge", *argv])
