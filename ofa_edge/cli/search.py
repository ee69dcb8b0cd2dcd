"""CLI commands for specialisation: ``predictor data``, ``predictor train`` and ``specialize``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .common import (
    DataDirOpt,
    JsonOpt,
    ProgressBar,
    ScoredDataOpt,
    emit_json,
    err,
    listing,
    make_typer,
    print_reading,
    resumable,
)

predictor_app = make_typer("Accuracy predictor of a supernet: measure subnets (data), then fit the predictor (train).")

SupernetOpt = Annotated[
    str, typer.Option("--supernet", help="Supernet checkpoint, or 'demo' for the shipped Fashion-MNIST one.")
]


@predictor_app.command("data")
def predictor_data(
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON-lines file; appended to, and resumed from.")],
    supernet: SupernetOpt = "demo",
    samples: Annotated[int, typer.Option(help="Random subnets (uniform over every choice), after the corners.")] = 500,
    repeats: Annotated[
        int, typer.Option(help="Random subnets scored again with another calibration subset (noise floor).")
    ] = 30,
    data: ScoredDataOpt = None,
    data_dir: DataDirOpt = None,
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

    from ..fileio import check_output_file
    from ..search.accuracy_data import collect_accuracy_data
    from ..train import SupernetScorer

    check_output_file(out)
    if threads is not None:
        torch.set_num_threads(threads)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    scorer = SupernetScorer.open(supernet, data, data_dir, "val", calibration_images=calibration_images, engine=engine,
                                 progress=print_reading if rank == 0 else None)  # fmt: skip
    for warning in scorer.warnings:
        err.print(f"warning: {warning}")
    records = []
    with resumable("predictor data"), ProgressBar("predictor data", enabled=rank == 0) as bar:
        for record in collect_accuracy_data(scorer, out, samples, repeats, seed, rank, world, progress=bar):
            records.append(record)
    summary = {"out": str(out), "measured": len(records), "rank": rank,
               "seconds": round(sum(r["seconds"] for r in records), 1)}  # fmt: skip
    if as_json:
        emit_json(summary)
    elif rank == 0:
        err.print(f"{out}: measured {len(records)} subnets in {summary['seconds']:.0f} s")


@predictor_app.command("train")
def predictor_train(
    data: Annotated[Path, typer.Option("--data", help="JSON-lines file written by `predictor data`.")],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Predictor file to write (one safetensors file: weights and metadata)."),
    ],
    supernet: SupernetOpt = "demo",
    holdout: Annotated[float, typer.Option(help="Share of the random subnets held out to compare the models.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the held-out split and of the MLP.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Fit the accuracy predictor of a supernet on its `predictor data` file.

    Fits the reference MLP and a ridge regression on the arch encoding, compares them on held-out
    subnets (RMSE, Kendall tau overall and within each resolution) beside the repeat-measurement
    noise floor, keeps the better one refitted on all the data, and writes it to --out.
    """
    from ..fileio import check_output_file
    from ..nn.checkpoint import load_supernet, state_fingerprint
    from ..search.predictor import load_accuracy_data, train_predictor

    check_output_file(out)
    net = load_supernet(supernet)
    # The fingerprint the data file records was taken before any BN recalibration: so is this one.
    fingerprint = state_fingerprint(net.state_dict())
    dataset = load_accuracy_data(data, net.space, supernet_fingerprint=fingerprint)
    if not as_json:
        err.print(f"{data}: {len(dataset)} subnets, {len(dataset.repeats)} repeat pairs; fitting mlp and ridge ...")
    predictor, report = train_predictor(dataset, holdout=holdout, seed=seed)
    predictor.supernet_path = supernet if supernet == "demo" else str(Path(supernet).resolve())
    predictor.save(out)
    warning = predictor.ranking_warning()
    if as_json:
        emit_json({"out": str(out), **report, "warnings": [warning] if warning else []})
        return
    _print_predictor_report(report)
    err.print(f"wrote {out} ({report['kept']}, {report['refit']})")
    if warning:
        err.print(f"warning: {warning}")


def _print_predictor_report(report: dict[str, Any]) -> None:
    from rich.table import Table

    def fmt(value: float | None, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    # One tau column per resolution fits a terminal for the demo's 3, not for ImageNet's 25 (--json has them).
    resolutions = sorted(report["heldout_resolutions"], key=int)
    resolutions = resolutions if len(resolutions) <= 4 else []
    floor = report["noise_floor"]
    per_r = f"; r{resolutions[0]} etc.: tau within that resolution" if resolutions else ""
    table = Table(
        title=f"{report['heldout']} held-out subnets of {report['records']} (seed {report['seed']})",
        caption=f"tau in r: mean Kendall tau within a resolution{per_r}; "
        f"noise floor: {floor['count']} subnets measured twice (other BN-calibration images)",
    )
    table.add_column("", no_wrap=True)
    for header in ("RMSE", "MAE", "tau", "tau in r", *(f"r{r}" for r in resolutions)):
        table.add_column(header, justify="right", no_wrap=True)
    for name, scores in report["models"].items():
        label = f"{name} (kept)" if name == report["kept"] else name
        by_r = scores["kendall_tau_by_resolution"]
        table.add_row(
            label, fmt(scores["rmse"]), fmt(scores["mae"]), fmt(scores["kendall_tau"]),
            fmt(scores["kendall_tau_within_resolution"]), *(fmt(by_r.get(r)) for r in resolutions),
        )  # fmt: skip
    constant = report["constant"]
    table.add_row("constant", fmt(constant["rmse"]), fmt(constant["mae"]), "-", "-", *("-" for _ in resolutions))
    by_r = floor["kendall_tau_by_resolution"]
    table.add_row(
        "noise floor", fmt(floor["rmse"]), "-", fmt(floor["kendall_tau"]),
        fmt(floor["kendall_tau_within_resolution"]), *(fmt(by_r.get(r)) for r in resolutions),
    )  # fmt: skip
    listing.print(table)
    if floor["repeat_std"] is not None:
        err.print(
            f"one measurement's repeat std: {floor['repeat_std']:.3f} points "
            f"(RMSE between repeats {fmt(floor['rmse'])}); "
            f"kept {report['kept']}: {report['selected_by']}"
        )
    else:
        err.print(f"no repeat pairs in the data: no noise floor; kept {report['kept']}: {report['selected_by']}")
