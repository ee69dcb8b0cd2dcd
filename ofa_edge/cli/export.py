"""CLI command ``export``: a subnet to a deployment file (ONNX, OpenVINO IR, TFLite, TensorRT),
verified against PyTorch and timed (a thin layer over :func:`ofa_edge.export.export_subnet`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .common import (
    DataDirOpt,
    JsonOpt,
    OptionsOpt,
    ScoredDataOpt,
    backend_options,
    command_line,
    emit_json,
    err,
    fmt_count,
    listing,
)


def register_export_command(app: typer.Typer) -> None:
    app.command("export")(export)


def export(
    ctx: typer.Context,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="onnx (onnxruntime), openvino (IR), tflite (LiteRT), tensorrt.")
    ],
    arch_file: Annotated[
        Path | None,
        typer.Option(
            "--arch",
            help="Arch JSON in the supernet family's form: ks, e, d, r (MobileNetV3, ProxylessNAS) or d, e, w, r "
            "(ResNet). Default: the last specialize's target timed with this format's backend, else its first "
            "(see specialized/last.json).",
            metavar="ARCH.json",
        ),
    ] = None,
    int8: Annotated[
        bool, typer.Option("--int8", help="Also write a static int8 file, calibrated on training images.")
    ] = False,
    fp16: Annotated[
        bool, typer.Option("--fp16", help="Also write a TensorRT fp16 engine (--format tensorrt only).")
    ] = False,
    finetune_epochs: Annotated[
        int, typer.Option(min=0, help="Fine-tune the subnet with distillation from the largest one first (epochs).")
    ] = 0,
    finetune_images: Annotated[
        int | None, typer.Option(min=1, help="Training images per fine-tuning epoch (default: all).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("exported"),
    name: Annotated[str, typer.Option(help="File name stem: NAME-fp32.EXT, NAME-int8.EXT.")] = "subnet",
    supernet: Annotated[
        str | None,
        typer.Option(
            "--supernet",
            help="Supernet checkpoint, or 'demo' for the shipped Fashion-MNIST one (default: the specialize "
            "record's when the arch comes from it, else demo).",
        ),
    ] = None,
    table: Annotated[
        str | None,
        typer.Option(
            "--table",
            help="Latency table to compare the measurement with (default: the specialize "
            "record's when the arch comes from it).",
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            "--device",
            "-d",
            help="Where the files are timed: CPU (this machine), an OpenVINO device, or a phone named in the "
            "devices file (tflite). Default: the table's device, else CPU.",
        ),
    ] = None,
    option: OptionsOpt = None,
    budget: Annotated[
        str | None, typer.Option("--budget", help="Latency budget, e.g. 25ms or 800us (flagged when missed by >10%).")
    ] = None,
    refit: Annotated[
        int,
        typer.Option(
            min=0,
            help="Rounds of the closed loop: when the measurement is over --budget, add it to the table's "
            "calibration, search again (with --predictor) and re-export. Needs a table of this format's backend.",
        ),
    ] = 0,
    predictor: Annotated[
        Path | None,
        typer.Option(help="Accuracy predictor for --refit (default: the specialize record's, else the demo one)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the search --refit runs.")] = 0,
    threads: Annotated[
        int | None, typer.Option(min=1, help="Inference threads when timing (default: the table's, else 1).")
    ] = None,
    test_images: Annotated[
        int | None, typer.Option(min=1, help="Check and score on the first N test images (default: all).")
    ] = None,
    data: ScoredDataOpt = None,
    data_dir: DataDirOpt = None,
    calibration_images: Annotated[int, typer.Option(min=1, help="Training images for BatchNorm recalibration.")] = 2000,
    int8_calibration_images: Annotated[
        int, typer.Option(min=1, help="Training images (of those) that calibrate the int8 quantiser.")
    ] = 300,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed runs before each timing pass.")] = 10,
    runs: Annotated[int, typer.Option(min=1, help="Timed runs per pass.")] = 50,
    rounds: Annotated[int, typer.Option(min=1, help="Interleaved timing passes; the least disturbed is kept.")] = 5,
    as_json: JsonOpt = False,
) -> None:
    """Extract a subnet, recalibrate BatchNorm, convert (and with --int8 quantise), verify and time it.

    Writes NAME-fp32.EXT (and NAME-int8.EXT; NAME-fp16.plan with --fp16) to --out with a model card
    each (EXT.card.json and EXT.card.md: arch, MACs, accuracy, parity, latency with its backend,
    sha256, this command).
    Nothing appears under those names unless the whole export succeeds.

    Examples:\n
      ofa-edge export --format onnx --int8                       # the last specialize's arch\n
      ofa-edge export --format tflite --arch a.json --budget 1ms --test-images 2000\n
      ofa-edge export --format onnx --refit 2       # over budget: refit the table, search, export again\n
      ofa-edge export --format tflite -O benchmark_model=./benchmark_model   # after specialize for a phone\n
      ofa-edge export --format tensorrt --fp16 --int8 -O trtexec=/usr/src/tensorrt/bin/trtexec

    Parity and accuracy are checked with the runtime on this machine; latency is measured where the
    table was (a phone over adb with the same -O options as `profile`).
    """
    from ..export.closed_loop import export_with_refit
    from ..export.config import ExportConfig
    from ..export.specialized import resolve_export
    from ..profilers.base import Timing
    from ..search.budget import parse_latency

    config = ExportConfig(
        format=fmt, int8=int8, fp16=fp16, out_dir=out, name=name, supernet=supernet, data=data, data_dir=data_dir,
        calibration_images=calibration_images, int8_calibration_images=int8_calibration_images,
        test_images=test_images, finetune_epochs=finetune_epochs, finetune_images=finetune_images, table=table,
        budget_ms=parse_latency(budget) if budget is not None else None, device=device, threads=threads,
        backend_options=backend_options(option), timing=Timing(warmup, runs, rounds), command=command_line(ctx),
    )  # fmt: skip
    config.validate()  # an unknown format or a bad option first, before any arch or table is looked up
    resolved = resolve_export(config, arch_file, predictor=predictor)
    for note in resolved.notes:
        err.print(note if note.startswith("arch: ") else f"note: {note}")
    result, refits = export_with_refit(
        resolved, rounds=refit, seed=seed, progress=lambda message: err.print(f"export: {message}", style="dim")
    )
    if as_json:
        emit_json({**result.to_dict(), "refits": refits})
        return
    for r in refits:
        err.print(f"refit round {r['round']}: measured {r['measured_ms']:.3f} ms over budget; table now {r['table']}")
    _summary(result)


def _summary(result: Any) -> None:
    from rich.table import Table

    from ..export.pipeline import ACCURACY_TOLERANCE_POINTS, speed_words
    from ..latency.table import on_this_cpu

    acc, ver, lat = result.accuracy, result.verification, result.latency
    err.print(
        f"[bold]{result.format}[/bold] subnet at {result.resolution} px: MACs {fmt_count(result.macs)}, "
        f"params {fmt_count(result.params)}",
        markup=True,
    )
    table = Table("file", "top-1", "latency", "sha256")
    for f in result.files:
        ms = f"{f.latency['measured_ms']:.3f} ms" if f.latency else "-"
        table.add_row(f.path, f"{f.top1:.2f}%", ms, f.sha256[:12])
    listing.print(table)
    err.print(
        f"parity: fp32 file vs PyTorch max |diff| {ver['fp32_max_abs_diff']:.2e} "
        f"(tolerance {ver['fp32_tolerance']:g}), "
        f"same top-1 on {ver['fp32_top1_agreement']:.2%} of {ver['images']} test images"
    )
    for p in ("fp16", "int8"):
        if f"{p}_top1" in acc:
            err.print(
                f"{p}: top-1 agrees with fp32 on {acc[f'{p}_agreement_with_fp32']:.2%}; accuracy "
                f"{acc['fp32_top1']:.2f}% -> {acc[f'{p}_top1']:.2f}% ({-acc[f'{p}_drop_points']:+.2f} points)"
            )
    if lat:
        backend = lat["backend"]
        device, detail = str(backend.get("device")), str(backend.get("device_detail") or "")
        # A GPU's detail starts with its name (the device): said once.
        where = f" on {detail}" if detail.startswith(device) else f" on {device} ({detail})"
        where = "" if on_this_cpu(device) else where
        threads = f", {lat['threads']} thread(s)" if lat["threads"] else ""  # none for a GPU
        line = (
            f"latency ({lat['precision']}): {lat['measured_ms']:.3f} ms measured{where} with {backend['backend']} "
            f"{backend['version']}{threads}"
        )
        for p in ("fp16", "int8"):
            if f"{p}_speedup" in lat:
                line += f"; {speed_words(p, lat[f'{p}_speedup'])}"
        if lat["predicted_ms"] is not None:
            line += f"; table predicted {lat['predicted_ms']:.3f} ms ({lat['prediction_error']:+.0%})"
        if lat["budget_ms"] is not None:
            line += f"; budget {lat['budget_ms']:g} ms ({lat['over_budget']:+.0%})"
        err.print(line)
    for warning in result.warnings:
        err.print(f"warning: {warning}", style="yellow")
    if len(result.files) > 1 and (pick := result.recommended()) is not None:
        listing.print(f"ship: {result.file(pick).path} (the fastest file within "
                      f"{ACCURACY_TOLERANCE_POINTS:g} points of fp32's top-1)")  # fmt: skip
