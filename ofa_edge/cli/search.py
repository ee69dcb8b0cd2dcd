"""CLI commands for specialisation: ``predictor data``, ``predictor train`` and ``specialize``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import JsonOpt, ProgressBar, emit_json, err

predictor_app = typer.Typer(
    help="Accuracy predictor of a supernet: measure subnets (data), then fit the predictor (train).",
    no_args_is_help=True,
)

SupernetOpt = Annotated[
    str, typer.Option("--supernet", help="Supernet checkpoint, or 'demo' for the shipped Fashion-MNIST one.")
]


@predictor_app.command("data")
def predictor_data(
    out: Annotated[Path, typer.Option("--out", help="JSON-lines file; appended to, and resumed from.")],
    supernet: SupernetOpt = "demo",
    samples: Annotated[int, typer.Option(help="Random subnets (uniform over every choice), after the corners.")] = 500,
    repeats: Annotated[
        int, typer.Option(help="Random subnets scored again with another calibration subset (noise floor).")
    ] = 30,
    data: Annotated[str, typer.Option("--data", help="fashion-mnist, mnist, or a class-folder path.")] = "fashion-mnist",
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Folder with the IDX files.")] = None,
    calibration_images: Annotated[int, typer.Option(help="Training images for BN recalibration.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the sampled archs.")] = 0,
    engine: Annotated[
        str, typer.Option(help="Scoring engine: onnxruntime (fast, fp32) or torch.")
    ] = "onnxruntime",
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads per process (default: all cores).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Score subnets of a supernet on the validation split, one JSON line each (resumable).

    Corner subnets first, then --samples uniform random ones, then --repeats of those again with
    another calibration subset. Run it again after a stop: it measures only what is missing.
    Under torchrun (--nproc_per_node=N -m ofa_edge.cli predictor data ...) the ranks share the work.
    """
    import os

    import torch

    from ..search.accuracy_data import collect
    from ..train import SupernetScorer

    if threads is not None:
        torch.set_num_threads(threads)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    scorer = SupernetScorer.open(supernet, data, data_dir, "val", calibration_images=calibration_images, engine=engine)
    for warning in scorer.warnings:
        err.print(f"warning: {warning}")
    records = []
    with ProgressBar("predictor data", enabled=rank == 0) as bar:
        for record in collect(scorer, out, samples, repeats, seed, rank, world, progress=bar):
            records.append(record)
    summary = {"out": str(out), "measured": len(records), "rank": rank,
               "seconds": round(sum(r["seconds"] for r in records), 1)}  # fmt: skip
    if as_json:
        emit_json(summary)
    elif rank == 0:
        err.print(f"{out}: measured {len(records)} subnets in {summary['seconds']:.0f} s")
