"""CLI command ``specialize``: the most accurate subnet under each device's budget.

Thin: options are parsed here, the search is :func:`ofa_edge.search.specialize.specialize`, the
files are :func:`ofa_edge.search.specialize.write_outputs`. The library is imported inside the
command, so ``--help`` stays fast.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import OFAEdgeError
from .common import JsonOpt, emit_json, err, fmt_count, listing

if TYPE_CHECKING:
    from ..search.specialize import Result

def register_specialize_command(app: typer.Typer) -> None:
    app.command("specialize")(specialize)


def specialize(
    budget: Annotated[
        list[str] | None,
        typer.Option(
            "--budget",
            "-b",
            metavar="LATENCY",
            help="Latency budget: a number with a unit, e.g. 25ms, 0.5ms or 250us. Repeat it with --table "
            "(paired in order), give one for every table, or several for one table.",
        ),
    ] = None,
    table: Annotated[
        list[str] | None,
        typer.Option(
            "--table",
            "-t",
            metavar="NAME|PATH",
            help="Latency table of a target device: a name (./latency_tables/ first, then the shipped tables; "
            "NAME also finds NAME-SPACE, e.g. note10) or a path; repeat for several devices. Default: the "
            "supernet's own (note10 for ofa_mbv3_d234_e346_k357_w1.2), else onnxruntime-cpu-fp32-SPACE, "
            "calibrated on this CPU first (once) when it was measured on another.",
        ),
    ] = None,
    macs: Annotated[
        str | None,
        typer.Option("--macs", metavar="COUNT", help="MACs budget for every target, e.g. 20M, 2.5M, 300K or 1.2G."),
    ] = None,
    params: Annotated[
        str | None,
        typer.Option("--params", metavar="COUNT", help="Parameter budget for every target, e.g. 2.5M or 800K."),
    ] = None,
    supernet: Annotated[
        str | None,
        typer.Option(
            "--supernet",
            metavar="NAME|CHECKPOINT",
            help="Supernet the predictor must belong to: a name of `ofa-edge weights list` (an official one "
            "needs no weights to search) or a checkpoint. Default: demo, or with --predictor the supernet "
            "that predictor records.",
        ),
    ] = None,
    predictor: Annotated[
        str | None,
        typer.Option(
            "--predictor",
            metavar="NAME|PATH",
            help="Accuracy predictor: a name (demo, ofa-mbv3-w1.2: the OFA authors' ImageNet predictor) or a "
            "file (`ofa-edge predictor train`, or an official acc_predictor.pth). Default: the supernet's own.",
        ),
    ] = None,
    algorithm: Annotated[
        str,
        typer.Option(
            metavar="evolution|nsga2",
            help="evolution (the reference OFA search: population 100, 500 generations) or nsga2 "
            "(pymoo NSGA-II on accuracy and latency: population 100, 200 generations).",
        ),
    ] = "evolution",
    seed: Annotated[int, typer.Option(help="Seed of the search (same seed, same subnet).")] = 0,
    population: Annotated[int, typer.Option(min=2, help="Population size.")] = 100,
    generations: Annotated[
        int | None, typer.Option(min=1, help="Generations (default: 500 for evolution, 200 for nsga2).")
    ] = None,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Folder for the arch JSON and Pareto plot of each target, and last.json."),
    ] = Path("specialized"),
    plot: Annotated[bool, typer.Option(help="Write a Pareto plot (PNG) per target.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Find the most accurate subnet under a latency budget on each target device.

    Budgets: latency as a number with a unit (25ms, 0.5ms, 250us); MACs and params as a count with
    an optional K, M or G suffix (20M, 2.5M, 300K). A budget below the fastest (smallest) subnet is
    an error that gives the feasible range; one above the slowest subnet constrains nothing.

    \b
    Examples:
      ofa-edge specialize --budget 0.8ms
      ofa-edge specialize --budget 250us --macs 20M --params 2.5M
      ofa-edge specialize --table onnxruntime-cpu-fp32-mbv3-fmnist --budget 0.8ms \\
                          --table tflite-cpu-fp32-mbv3-fmnist --budget 1ms
      ofa-edge specialize --budget 0.6ms --budget 1ms          (two budgets, one table)
      ofa-edge specialize --predictor my.predictor.safetensors --table my-table --budget 25ms
      ofa-edge specialize --supernet ofa_mbv3_d234_e346_k357_w1.2 --table note10 --budget 25ms

    Per target it writes OUT/TABLE-BUDGET.json (the arch, for `export`) and a Pareto plot
    OUT/TABLE-BUDGET.png, and OUT/last.json records this run so a later command can take
    the arch of the last specialize.
    """
    from rich.table import Table

    from ..fileio import check_output_folder
    from ..search.budget import parse_count
    from ..search.predictor import load_predictor
    from ..search.specialize import ALGORITHMS, make_targets, write_outputs
    from ..search.specialize import specialize as run_specialize

    if algorithm not in ALGORITHMS:
        raise OFAEdgeError(f"--algorithm must be one of {', '.join(ALGORITHMS)}, got '{algorithm}'")
    macs_budget = parse_count(macs, "MACs") if macs is not None else None
    params_budget = parse_count(params, "params") if params is not None else None
    if not budget and macs_budget is None and params_budget is None:
        raise OFAEdgeError("give a latency --budget (e.g. --budget 25ms, 0.5ms or 250us), or --macs / --params")
    check_output_folder(out)

    model = load_predictor(predictor, supernet)
    fingerprint = model.checked_supernet
    space = model.space

    if not table:
        table = [_default_table(supernet or model.supernet_path, space.name)]
    targets = make_targets(table, budget or [])
    results = run_specialize(
        model,
        targets,
        space=space,
        supernet=fingerprint,
        macs=macs_budget,
        params=params_budget,
        seed=seed,
        algorithm=algorithm,
        population_size=population,
        generations=generations,
    )
    record = {
        "command": shlex.join(["ofa-edge", *sys.argv[1:]]) if sys.argv[1:2] == ["specialize"] else "",
        "args": {
            "tables": [r.table for r in results],
            "budgets_ms": [t.latency_ms for t in targets],
            "macs": macs_budget,
            "params": params_budget,
            "algorithm": algorithm,
            "seed": seed,
            "population": population,
            "generations": generations,
        },
        # Resolved, so that `export` run from elsewhere takes the same file.
        "supernet": _supernet_record(supernet, predictor, model.supernet_path),
        "supernet_fingerprint": fingerprint or getattr(model, "supernet", None),
        "predictor": _predictor_record(predictor, supernet),
        "accuracy_measures": getattr(model, "measures", "top-1 predicted by the accuracy predictor"),
    }
    last = write_outputs(results, out, record, plot=plot)
    warnings = [w for w in (model.ranking_warning(), *(_machine_warning(r) for r in results)) if w]
    if as_json:
        keys = ("space", "supernet", "supernet_fingerprint", "predictor", "accuracy_measures")
        payload = {key: last[key] for key in keys}
        payload["results"] = [{**r.to_dict(), "arch_file": t["arch_file"], "plot": t["plot"]}
                              for r, t in zip(results, last["targets"])]  # fmt: skip
        payload["last"] = str((out / "last.json").resolve())
        payload["warnings"] = warnings
        emit_json(payload)
        return
    for warning in dict.fromkeys(warnings):
        err.print(f"warning: {warning}")
    for result, files in zip(results, last["targets"]):
        _print_result(result, files, Table)
    err.print(f"predicted top-1: {last['accuracy_measures']}; recorded in {out / 'last.json'}")


def _default_table(supernet: str | None, space: str) -> str:
    from ..latency.profiling import default_table

    name, note = default_table(supernet, space, warn=lambda message: err.print(message, style="dim"))
    if note:
        err.print(f"note: {note}")
    return name


def _supernet_record(supernet: str | None, predictor: str | None, recorded: str | None) -> str | None:
    """The supernet as `export` finds it again: a registry name, or an absolute path."""
    from ..hub.registry import REGISTRY

    if supernet is None:
        return "demo" if predictor is None else recorded
    return supernet if supernet in REGISTRY else str(Path(supernet).resolve())


def _predictor_record(predictor: str | None, supernet: str | None) -> str:
    """The predictor as a later command finds it again: its registry name, or an absolute path."""
    from ..hub.registry import PREDICTORS, REGISTRY
    from ..search.predictor import demo_predictor_path

    if predictor is None:
        entry = REGISTRY.get(str(supernet))
        return entry.predictor if entry is not None and entry.predictor and supernet != "demo" else str(
            demo_predictor_path())
    if predictor in PREDICTORS and not Path(predictor).exists():
        return predictor
    return str(Path(predictor).resolve())


def _machine_warning(result: Result) -> str | None:
    from ..latency.table import load_table

    try:
        return load_table(result.table).machine_warning()
    except (OFAEdgeError, AttributeError):
        return None


def _print_result(result: Result, files: dict[str, Any], table_cls: Any) -> None:
    from rich.markup import escape

    from ..search.specialize import format_budget

    listing.print(
        f"[bold]{escape(result.table)}[/bold] ({escape(result.table_label)}), budget {format_budget(result)}: "
        f"predicted top-1 [bold]{result.accuracy:.2f}%[/bold], latency [bold]{result.latency_ms:.3g} ms[/bold] "
        f"(feasible {result.feasible_ms[0]:.3g}-{result.feasible_ms[1]:.3g} ms), MACs {fmt_count(result.macs)}, "
        f"params {fmt_count(result.params)}, resolution {result.resolution}",
        markup=True,
    )
    for note in result.notes:
        err.print(f"note: {note}")
    from .space import stage_table

    listing.print(stage_table(result.summary["stages"], table_cls))
    front = len(result.front) if result.front is not None else 0
    plot = f", plot {files['plot']}" if files.get("plot") else ""
    err.print(
        f"{result.algorithm} (seed {result.seed}): {result.evaluations:,} subnets scored in {result.seconds:.2f} s, "
        f"{front} on the Pareto front; arch {files['arch_file']}{plot}"
    )
