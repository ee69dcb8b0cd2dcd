"""``export_subnet``: from a supernet and an arch to verified, measured deployment files, in stages.

1. **Plan** (before any slow work): the config is checked, the format's runtime must be here, the
   latency table must price these files and the timing backends must run (:mod:`.timing`).
2. **Extract**: the supernet and the data split it was trained with (stored split and
   normalization) are opened, and the subnet extracted with BatchNorm recalibrated on training
   images, or fine-tuned with distillation from the largest subnet (:mod:`.extract`).
3. **Convert and verify**, per precision: fp32 against the PyTorch subnet on test images (refused
   beyond the tolerance), int8 (the format's own quantiser, calibrated on training images
   normalised as at evaluation) and fp16 against the fp32 file (:mod:`.verify`).
4. **Time** every file with the format's latency backend, compared with the table's prediction and
   the budget (:mod:`.timing`).
5. **Cards and files into place**: a model card (JSON and Markdown) beside each file; everything is
   written under temp names and renamed together at the end (:mod:`.staging`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..convert.tensorrt import Trtexec
from ..fileio import atomic_write_text
from ..space.arch import ArchSource
from ..train.data import reading_line
from .arch_input import ExportArch, RequestedArch, check_supernet_takes, fit_arch, requested_arch
from .card import build_card, card_latency, card_markdown, card_paths, sha256_file
from .config import TENSORRT_VERIFY_IMAGES, ExportConfig
from .formats import FormatSpec, Outputs, check_available, convert_fp16, convert_fp32, convert_int8, files_of, run_file
from .staging import Staging
from .timing import TimingPlan, latency_summary, plan_timing, time_files
from .verify import CheckSet, compare_with_fp32, failed_precisions, top1, verify_fp32

if TYPE_CHECKING:
    from ..train.evaluate import SupernetScorer

# A reduced-precision file is worth shipping when it loses at most this much top-1 against fp32.
ACCURACY_TOLERANCE_POINTS = 0.5


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
        return {**asdict(self), "recommended": self.recommended()}

    def recommended(self) -> str | None:
        """The precision to ship: the fastest measured file whose top-1 is within
        :data:`ACCURACY_TOLERANCE_POINTS` of the fp32 file's and which passed verification
        (None when no file was timed)."""
        timed = [f for f in self.files if f.latency and self._acceptable(f.precision)]
        return min(timed, key=lambda f: f.latency["measured_ms"]).precision if timed else None

    def _acceptable(self, precision: str) -> bool:
        if precision == "fp32":
            return True
        drop = self.accuracy.get(f"{precision}_drop_points", float("inf"))
        return drop <= ACCURACY_TOLERANCE_POINTS and self.verification.get(f"{precision}_passed", True)


def speed_words(precision: str, speedup: float) -> str:
    """'int8 1.38x faster than fp32', or 'int8 1.09x slower than fp32'."""
    if speedup >= 1:
        return f"{precision} {speedup:.2f}x faster than fp32"
    return f"{precision} {1 / speedup:.2f}x slower than fp32"


@dataclass
class _Written:
    """One precision's file: its final and temp names and what it computed on the check set."""

    final: Path
    temp: Path
    outputs: Outputs


def _noop(message: str) -> None:
    pass


def export_subnet(
    arch: ExportArch | ArchSource | RequestedArch | dict | str | Path,
    config: ExportConfig | None = None,
    *,
    scorer: SupernetScorer | None = None,
    progress: Callable[[str], None] = _noop,
) -> ExportResult:
    """Extract ``arch`` (an arch of the supernet's family, its dict, or a file: an arch JSON of any
    family, an official net; see :mod:`.arch_input`) from the supernet and write it as ``config`` says
    (default: ONNX fp32 in ``exported/``), verified and timed, with a model card beside each file.
    At a resolution outside the supernet's training range it is exported as a static net, with a
    warning.

    Raises :class:`~ofa_edge.errors.OFAEdgeError` subclasses, one line each: a bad config, a
    missing extra (with its pip command), TensorRT without a GPU, a table that cannot price these
    files, an op the format cannot convert, an fp32 file that disagrees with PyTorch beyond the
    tolerance (nothing is written then). ``scorer``: a
    :class:`~ofa_edge.train.evaluate.SupernetScorer` of the supernet on the test split, already
    open (several exports of one deploy share it); ``config``'s supernet and data are then its.
    """
    started = time.perf_counter()
    config = replace(config or ExportConfig(), supernet=(config and config.supernet) or "demo")
    config.validate()
    spec = config.spec
    # A tensorrt export builds and checks its engines with the trtexec and GPU it times on.
    trtexec = Trtexec.from_options(config.backend_options, config.device) if spec.name == "tensorrt" else None
    check_available(spec, config.int8, trtexec)
    source = requested_arch(arch)
    if scorer is None:
        check_supernet_takes(source, str(config.supernet))  # an arch of another family: one line before any work
    plan = plan_timing(config)
    scorer = scorer or _open_scorer(config, progress)
    warnings = [*plan.warnings, *scorer.warnings]
    arch = _fit_arch(source, scorer, plan, warnings)
    warnings += _table_notes(plan, scorer)
    subnet, finetune = _extract(scorer, arch, config, progress)
    checks = _check_set(scorer, subnet, arch, config)
    if spec.name == "tensorrt" and len(checks.images) > TENSORRT_VERIFY_IMAGES:
        warnings.append(f"TensorRT files are checked on the first {TENSORRT_VERIFY_IMAGES} test images")
        checks = checks.head(TENSORRT_VERIFY_IMAGES)
    with Staging(Path(config.out_dir)) as staging:
        written, accuracy, verification = _convert_and_verify(
            spec, subnet, scorer, arch, checks, staging, config, plan, trtexec, progress
        )
        warnings += [f"the {p} file agrees with fp32 on only {verification[f'{p}_top1_agreement_with_fp32']:.1%} "
                     "of test images: its quantisation failed" for p in failed_precisions(verification)]  # fmt: skip
        measured, latency = {}, None
        if config.measure_latency:
            measured = time_files(plan, {p: w.temp for p, w in written.items()}, config, progress)
            latency = latency_summary(plan, measured, config, scorer.net.space, arch)
            if latency.get("message"):
                warnings.append(latency["message"])
        about = _about(spec, scorer, arch, finetune, config)
        files = _write_cards(spec, written, about, accuracy, verification, plan, measured, latency, staging)
    space = scorer.net.space
    return ExportResult(
        format=spec.name, int8=config.int8, fp16=config.fp16, arch=arch.to_dict(), resolution=arch.r,
        macs=space.macs(arch), params=space.params(arch), supernet=str(config.supernet), space=space.name,
        out_dir=str(config.out_dir), files=files, accuracy=accuracy, verification=verification, latency=latency,
        finetune=finetune, warnings=warnings, command=about["command"], seconds=time.perf_counter() - started,
    )  # fmt: skip


def report_reading(progress: Callable[[str], None], done: int, total: int, folder: str) -> None:
    """A large image folder's reading (train.data.ReadProgress) as a ``progress`` line."""
    progress(reading_line(done, total, folder))


# ---------------------------------------------------------------------------------- extract
def _fit_arch(source: RequestedArch, scorer: SupernetScorer, plan: TimingPlan, warnings: list[str]) -> ExportArch:
    """The arch, validated in the supernet's space (an arch of another family is one line). An
    exported net is static: where the family allows, at a resolution outside the supernet's
    training range it is extracted with a warning (the net's space then accepts it). A table must
    hold entries at that resolution, checked before the slow work."""
    fitted = fit_arch(source, scorer.net.space)
    space, arch = fitted.space, fitted.arch
    if fitted.note is not None:
        warnings.append(fitted.note)
        scorer.net.space = space  # extraction validates the arch in the net's own space
    if plan.table is not None and plan.backends:
        plan.table.unit_sum(space, arch)  # a missing entry is one line now, not after the conversion
    return arch


def _open_scorer(config: ExportConfig, progress: Callable[[str], None]) -> SupernetScorer:
    from ..nn.checkpoint import check_checkpoint
    from ..train.evaluate import SupernetScorer, trained_data

    check_checkpoint(config.supernet)  # before the first progress line
    if config.data is None:
        trained_data(config.supernet)  # an official supernet: one line asking for --data
    progress(f"loading supernet {config.supernet} and {config.data or 'the data it was trained on'}")
    return SupernetScorer.open(config.supernet, config.data, config.data_dir, "test",
                               calibration_images=config.calibration_images,
                               progress=partial(report_reading, progress))  # fmt: skip


def _table_notes(plan: TimingPlan, scorer: SupernetScorer) -> list[str]:
    """Notes on the table against this supernet: a classifier of another size, another machine."""
    if plan.table is None:
        return []
    notes = [plan.table.classifier_note(scorer.net.space), plan.table.machine_warning()]  # checks the space too
    return [note for note in notes if note is not None]


def _extract(
    scorer: SupernetScorer, arch: ExportArch, config: ExportConfig, progress: Callable[[str], None]
) -> tuple[nn.Module, dict[str, Any] | None]:
    """The static subnet, BatchNorm recalibrated (or fine-tuned), and the fine-tuning report."""
    from ..train.run import default_flip
    from .extract import extract_subnet, finetune_distill

    if config.finetune_epochs == 0:
        progress("extracting the subnet (BatchNorm recalibrated on training images)")
        return extract_subnet(scorer.net, arch, scorer.data), None
    progress(f"fine-tuning {config.finetune_epochs} epoch(s) with distillation from the largest subnet")
    subnet, report = finetune_distill(
        scorer.net, arch, scorer.data, scorer.train_part, config.finetune_epochs, lr=config.finetune_lr,
        images=config.finetune_images, flip=default_flip(scorer.data_name),
    )  # fmt: skip
    return subnet, report.to_dict()


def _check_set(scorer: SupernetScorer, subnet: nn.Module, arch: ExportArch, config: ExportConfig) -> CheckSet:
    """The test images every file is checked on, with the PyTorch subnet's logits on them."""
    from .extract import eval_arrays, torch_logits

    scored = scorer.data.scored
    if config.test_images is not None:
        scored = scored.subset(torch.arange(min(config.test_images, len(scored))))
    images, labels = eval_arrays(scored, scorer.data.normalization, arch.r)
    return CheckSet(images, labels, torch_logits(subnet, images))


def _int8_calibration(scorer: SupernetScorer, arch: ExportArch, count: int) -> list[np.ndarray]:
    """Training images, normalised as at evaluation, one batch-1 input each."""
    from .extract import eval_arrays

    calibration = scorer.data.calibration
    part = calibration.subset(torch.arange(min(count, len(calibration))))
    return list(eval_arrays(part, scorer.data.normalization, arch.r)[0][:, None])


# --------------------------------------------------------------------- convert and verify
def _convert_and_verify(
    spec: FormatSpec, subnet: nn.Module, scorer: SupernetScorer, arch: ExportArch, checks: CheckSet, staging: Staging,
    config: ExportConfig, plan: TimingPlan, trtexec: Trtexec | None, progress: Callable[[str], None],
) -> tuple[dict[str, _Written], dict[str, Any], dict[str, Any]]:  # fmt: skip
    """Each precision's file, converted and checked: fp32 against the PyTorch subnet (raises
    beyond the tolerance), the others against the fp32 file. Returns the files, the accuracy
    record and the verification record."""
    example = torch.from_numpy(checks.images[:1].copy())
    written: dict[str, _Written] = {}
    accuracy: dict[str, Any] = {}
    verification: dict[str, Any] = {}
    for precision in config.precisions:
        final = Path(config.out_dir) / f"{config.name}-{precision}{spec.suffix}"
        temp = staging.model(spec, final)
        if precision == "fp32":
            progress(f"converting to {spec.name} fp32")
            convert_fp32(spec, subnet, example, temp, trtexec)
        elif precision == "fp16":
            progress(f"building the fp16 {spec.name} engine")
            convert_fp16(spec, subnet, example, temp, trtexec)
        else:
            calibration = _int8_calibration(scorer, arch, config.int8_calibration_images)
            progress(f"quantising to int8 with {spec.int8_tool} on {len(calibration)} training images")
            convert_int8(spec, subnet, example, written["fp32"].temp, temp, calibration,
                         dict(config.int8_options or {}), trtexec)  # fmt: skip
        progress(f"checking the {precision} file on {len(checks.images)} test images")
        outputs = run_file(spec, temp, checks.images, plan.threads, precision, trtexec)
        written[precision] = _Written(final, temp, outputs)
        if precision == "fp32":
            verification = verify_fp32(spec.name, outputs.logits, checks, config.fp32_tolerance)
            accuracy = {"data": scorer.data_name, "split": "test", "images": len(checks.images),
                        "torch_top1": top1(checks.reference, checks.labels),
                        "fp32_top1": top1(outputs.logits, checks.labels)}  # fmt: skip
        else:
            compare_with_fp32(precision, outputs.logits, written["fp32"].outputs.logits, checks.labels, accuracy,
                              verification)  # fmt: skip
    return written, accuracy, verification


# ------------------------------------------------------------------------------ cards
def _about(
    spec: FormatSpec, scorer: SupernetScorer, arch: ExportArch, finetune: dict[str, Any] | None, config: ExportConfig
) -> dict[str, Any]:
    """What every card of this export says alike."""
    space, normalization = scorer.net.space, scorer.data.normalization
    return {
        "format": spec.name, "supernet": str(config.supernet), "space": space.name, "arch": arch.to_dict(),
        "resolution": arch.r, "macs": space.macs(arch), "params": space.params(arch),
        "normalization": {"mean": list(normalization.mean), "std": list(normalization.std), "pixel_scale": 1 / 255},
        "finetune": finetune, "command": config.command or config.python_call(arch.to_dict()),
    }  # fmt: skip


def _quantizer(spec: FormatSpec, precision: str) -> str | None:
    return {"int8": spec.int8_tool, "fp16": "trtexec --fp16"}.get(precision)


def _write_cards(
    spec: FormatSpec, written: dict[str, _Written], about: dict[str, Any], accuracy: dict[str, Any],
    verification: dict[str, Any], plan: TimingPlan, measured: dict[str, Any], latency: dict[str, Any] | None,
    staging: Staging,
) -> list[ExportedFile]:  # fmt: skip
    """A card (JSON and Markdown, staged) beside each file, and the files' records."""
    files = []
    for precision, w in written.items():
        hashes = {final.name: sha256_file(tmp) for tmp, final in zip(files_of(spec, w.temp), files_of(spec, w.final))}
        card = build_card(about, precision, hashes, w.temp.stat().st_size, w.outputs.io, accuracy, verification,
                          _quantizer(spec, precision))  # fmt: skip
        if precision in measured:
            priced = latency if precision == plan.precision else None
            card["latency"] = card_latency(measured[precision], plan.backends[precision].describe(), priced)
        card_json, card_md = card_paths(w.final)
        atomic_write_text(staging.temp(card_json), json.dumps(card, indent=2) + "\n")
        atomic_write_text(staging.temp(card_md), card_markdown(card))
        files.append(ExportedFile(
            precision, str(w.final), card["files"], card["sha256"], card["bytes"], str(card_json), str(card_md),
            w.outputs.io, card["accuracy"]["top1"], card["latency"],
        ))  # fmt: skip
    return files
