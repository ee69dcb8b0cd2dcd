"""CLI command ``deploy``: specialise, export and verify in one command (a thin layer over
:func:`ofa_edge.export.deploy.deploy`)."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .common import DataDirOpt, JsonOpt, OptionsOpt, ScoredDataOpt, backend_options, emit_json, err, listing


def register_deploy_command(app: typer.Typer) -> None:
    app.command("deploy")(deploy)


def deploy(
    budget: Annotated[
        list[str] | None,
        typer.Option("--budget", "-b", metavar="LATENCY",
                     help="Latency budget, e.g. 0.8ms or 800us; one per --table, or one for all. "
                     "Default: the middle of the table's feasible range."),
    ] = None,
    table: Annotated[
        list[str] | None,
        typer.Option("--table", "-t", metavar="NAME|PATH",
                     help="Latency table of a target (repeat for several). Default: this CPU's onnxruntime table "
                     "(yours from `ofa-edge profile` first, else the shipped one)."),
    ] = None,
    fmt: Annotated[
        list[str] | None,
        typer.Option("--format", "-f", help="onnx, openvino, tflite, tensorrt (repeat). Default: onnx."),
    ] = None,
    int8: Annotated[bool, typer.Option("--int8/--no-int8", help="Also export and verify static int8 files.")] = True,
    supernet: Annotated[
        str | None,
        typer.Option(help="Supernet checkpoint, or 'demo'. Default: demo, or with --predictor the supernet file "
                     "that predictor was trained on."),
    ] = None,
    predictor: Annotated[
        Path | None, typer.Option(help="Accuracy predictor of the supernet (default: the demo's shipped one).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (one subfolder per target).")] = Path(
        "deploy"
    ),
    data: ScoredDataOpt = None,
    data_dir: DataDirOpt = None,
    test_images: Annotated[
        int, typer.Option(min=1, help="Verify and score on the first N test images (more: a tighter top-1).")
    ] = 2000,
    threads: Annotated[
        int | None, typer.Option(min=1, help="Inference threads when timing (default: the table's).")
    ] = None,
    option: OptionsOpt = None,
    refit: Annotated[
        int | None,
        typer.Option(min=0, help="Rounds of the closed loop: a subnet measured over its budget refits the table "
                     "with its measurement, then search and export run again. Default: 2 for the default "
                     "target, 0 for tables you name."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the search.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Specialise the supernet for each target, then export, verify and time the chosen subnets.

    With no options: the demo supernet and its predictor, this CPU's onnxruntime table (this CPU is
    profiled first, once, when the table found was measured on another CPU), a budget in the middle
    of its feasible range, the closed loop on, ONNX fp32 and int8 checked on 2000 test images.
    Prints one summary: the chosen arch, predicted vs measured latency, fp32/int8 accuracy, and the
    file to ship (the fastest within 0.5 points of fp32's top-1).

    Examples:\n
      ofa-edge deploy\n
      ofa-edge deploy --budget 0.7ms --format onnx --format openvino --format tflite\n
      ofa-edge deploy -t onnxruntime-cpu-fp32-mbv3-fmnist -b 0.8ms -t tflite-cpu-fp32-mbv3-fmnist -b 2ms\n
      ofa-edge deploy -t tflite-pixel1-fp32-mbv3-fmnist -b 20ms -O benchmark_model=./benchmark_model

    A target whose table was measured on a phone (or a GPU) is timed there, with the -O options
    `profile` took; by default it exports only the format that backend times.
    """
    from ..export.deploy import deploy as run_deploy
    from ..search.budget import parse_latency

    started = time.perf_counter()
    budgets = [parse_latency(b) for b in budget or []]
    deployments = run_deploy(
        budgets, table, fmt, int8=int8, supernet=supernet, predictor=predictor, out_dir=out, data=data,
        data_dir=data_dir, test_images=test_images, threads=threads, backend_options=backend_options(option),
        refit_rounds=refit, seed=seed,
        command=shlex.join(["ofa-edge", *sys.argv[1:]]), progress=lambda message: err.print(message, style="dim"),
    )  # fmt: skip
    if as_json:
        emit_json({"deployments": [d.to_dict() for d in deployments]})
        return
    listing.print(_summary_table(deployments))
    for d in deployments:
        for note in dict.fromkeys(d.notes + [w for e in d.exports for w in e.warnings]):  # each once
            err.print(f"note: {note}")
        for r in d.refits:
            err.print(f"refit round {r['round']}: measured {r['measured_ms']:.3f} ms; table now {r['table']}")
    err.print(f"files and model cards in {out}/ (deploy took {time.perf_counter() - started:.0f} s)")



def _summary_table(deployments: list) -> Table:
    """One row per target and format: the choice, predicted and measured latency per precision,
    top-1 per precision, and the file to ship (the fastest within the accuracy tolerance)."""
    from ..export.card import fmt_ms, fmt_pct

    summary = Table(title="ofa-edge deploy", title_justify="left")
    for column in ("target", "budget", "arch", "format", "predicted", "measured fp32", "measured int8",
                   "top-1 fp32", "top-1 int8", "ship"):  # fmt: skip
        summary.add_column(column, overflow="fold")  # names are what --table takes: never cut short
    for d in deployments:
        c = d.choice
        first = [d.table, f"{d.budget_ms:.3f} ms", f"r{c.arch.r} d{''.join(map(str, c.arch.d))} pred {c.accuracy:.2f}%"]
        for i, e in enumerate(d.exports):
            lat = {f.precision: (f.latency or {}).get("measured_ms") for f in e.files}
            top1 = {f.precision: f.top1 for f in e.files}
            int8_ms = fmt_ms(lat.get("int8"))
            if lat.get("int8") is not None and lat.get("fp32") is not None and lat["int8"] >= lat["fp32"]:
                int8_ms += " (not faster)"
            pick = e.recommended()
            summary.add_row(
                *(first if i == 0 else ["", "", ""]), e.format, f"{c.latency_ms:.3f} ms" if i == 0 else "",
                fmt_ms(lat.get("fp32")), int8_ms, fmt_pct(top1.get("fp32")), fmt_pct(top1.get("int8")),
                Path(e.file(pick).path).name if pick else "-",
            )  # fmt: skip
    return summary
