"""CLI commands for latency: ``backends``, ``profile``, ``tables list|import``, ``latency predict|validate|calibrate``.

Thin: each command parses options, calls one library function and prints. Library modules that
import torch or a runtime are imported inside the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..errors import OFAEdgeError
from .common import (
    JsonOpt,
    OptionsOpt,
    OutOpt,
    ProgressBar,
    SpaceOpt,
    backend_options,
    emit_json,
    err,
    listing,
    make_typer,
    resumable,
)

tables_app = make_typer("Manage latency lookup tables (import the official OFA YAML tables).")
latency_app = make_typer("Predict, calibrate and validate subnet latency from a lookup table.")

WarmupOpt = Annotated[int, typer.Option(help="Untimed runs before timing each model.")]
RunsOpt = Annotated[int, typer.Option(help="Timed runs per model in each pass (the median is kept).")]
RoundsOpt = Annotated[
    int, typer.Option(help="Interleaved timing passes over each group of models; the least disturbed pass is kept.")
]


def register_latency_commands(app: typer.Typer) -> None:
    app.command("backends")(backends)
    app.command("profile")(profile)
    app.add_typer(tables_app, name="tables")
    app.add_typer(latency_app, name="latency")


# ------------------------------------------------------------------- backends
def backends(as_json: JsonOpt = False) -> None:
    """List the latency backends (built-in and third-party plugins), their versions and availability."""
    from ..profilers import list_backends

    rows = list_backends()
    if as_json:
        emit_json({"backends": rows})
        return
    table = Table("backend", "available", "version / why not", "precisions")
    for r in rows:
        table.add_row(r["backend"], "yes" if r["available"] else "no", r["detail"], ", ".join(r["precisions"]))
    listing.print(table)


# -------------------------------------------------------------------- profile
def _parse_resolutions(text: str | None) -> list[int] | None:
    if not text:
        return None
    parts = text.replace(" ", "").split(",")
    if not all(part.isdigit() for part in parts):
        raise OFAEdgeError(f"--resolutions expects comma-separated integers like 160,224, got {text!r}")
    return [int(part) for part in parts]


def _timing(warmup: int, runs: int, rounds: int) -> Any:
    from ..profilers.base import Timing

    return Timing(warmup, runs, rounds)


def _command_line() -> str:
    return shlex.join(["ofa-edge", *sys.argv[1:]])


def profile(
    backend: Annotated[
        str, typer.Option("--backend", "-b", help="Latency backend (see `ofa-edge backends`).")
    ] = "onnxruntime",
    device: Annotated[
        str,
        typer.Option(
            "--device",
            "-d",
            help="CPU (this machine), an OpenVINO device (GPU, NPU), or a phone named in the devices file (tflite).",
        ),
    ] = "CPU",
    space: SpaceOpt = "mbv3-fmnist",
    threads: Annotated[int, typer.Option(min=1, help="Inference threads (1 is steadiest on shared machines).")] = 1,
    precision: Annotated[
        str, typer.Option(help="fp32, int8 (onnxruntime, openvino, tensorrt), bf16 (openvino), fp16 (tensorrt).")
    ] = "fp32",
    resolutions: Annotated[
        str | None, typer.Option(help="Comma-separated input sizes (default: all of the space's).")
    ] = None,
    out: OutOpt = None,
    calibration_samples: Annotated[
        int,
        typer.Option(help="Random subnets measured end to end to calibrate the sum, plus the corners (0: skip)."),
    ] = 30,
    warmup: WarmupOpt = 10,
    runs: RunsOpt = 50,
    rounds: RoundsOpt = 5,
    option: OptionsOpt = None,
    classes: Annotated[
        list[int] | None,
        typer.Option(
            "--classes",
            metavar="N",
            help="Also measure a classifier of N outputs (repeatable), for supernets trained on data of N "
            "classes; the table then prices them exactly. Run it again with --classes on a table you have: "
            "only the classifier is measured.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure every distinct block of a space on a backend into a latency lookup table, then calibrate it.

    The table goes to latency_tables/BACKEND-DEVICE-PRECISION-SPACE.json in the working directory
    (or --out); `--table NAME` then finds it, before a shipped table of the same name. Stopped or
    killed mid-run, the same command resumes where it stopped (saved after every group of 16 blocks).
    With --precision int8, blocks are built in the int8 form and with the quantiser `export --int8`
    ships for the backend's format (onnxruntime: pooling, hard-swish and depthwise channels
    rewritten; openvino: nncf; see README).

    Examples:\n
      ofa-edge profile                                   # demo space, onnxruntime, this CPU, 1 thread\n
      ofa-edge profile --backend openvino --precision int8\n
      ofa-edge profile --backend tflite --device pixel1 -O benchmark_model=./benchmark_model\n
      ofa-edge profile --classes 100                     # + the classifier of a 100-class supernet
    """
    from ..latency.profiling import profile_table, table_noise

    timing = _timing(warmup, runs, rounds)
    parsed = _parse_resolutions(resolutions)
    with resumable("profile"), ProgressBar(f"profile {backend} {precision}") as bar, ProgressBar("calibrate") as cal:
        table, path = profile_table(
            backend, space, device, threads, precision, parsed, out, calibration_samples, timing,
            backend_options(option), _command_line(), progress=bar, calibration_progress=cal, warn=_warn,
            classes=classes or (),
        )  # fmt: skip
    cal = table.calibration
    summary = {
        "table": str(path),
        "entries": len(table.entries),
        "resolutions": table.resolutions,
        "backend": table.backend,
        "calibration": cal.coefficients() if cal else None,
        "host_noise": table_noise(table),
    }
    if as_json:
        emit_json(summary)
    else:
        cal_text = f"; calibration {cal.describe()}" if cal else ""
        err.print(f"wrote {path}: {len(table.entries)} entries ({table.label}){cal_text}")


# ---------------------------------------------------------------- tables
@tables_app.command("import")
def tables_import(
    files: Annotated[list[Path], typer.Argument(help="Official OFA tables named {res}_lookup_table.yaml.")],
    space: Annotated[
        str | None,
        typer.Option("--space", "-s", help="Space the tables price (default: the preset whose units they all hold)."),
    ] = None,
    device: Annotated[
        str, typer.Option("--device", "-d", help="Name of the device they were measured on, e.g. note10.")
    ] = "imported",
    source: Annotated[
        str | None, typer.Option(help="Where the files come from (a URL or a note), recorded in the table.")
    ] = None,
    licence: Annotated[str | None, typer.Option(help="The files' licence, recorded in the table.")] = None,
    out: OutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Convert official OFA latency lookup tables (YAML: key -> count/mean/var in ms) into one ofa-edge table.

    Written to latency_tables/imported-DEVICE-SPACE.json in the working directory unless --out is given.
    Files that do not price every subnet of the space are refused.

    \b
    Example:
      ofa-edge tables import note10/*_lookup_table.yaml --device note10
    """
    from ..fileio import check_output_file
    from ..latency.official import import_official_tables
    from ..latency.store import user_table_path

    provenance = {k: v for k, v in (("source", source), ("licence", licence)) if v}
    table = import_official_tables(list(files), space, device, provenance)
    out = out or user_table_path(f"imported-{device.lower()}-{table.space_name}")
    check_output_file(out)
    words = ["ofa-edge", "tables", "import", *map(str, files), "--space", table.space_name, "--device", device]
    table.command = shlex.join(words)
    table.save(out)
    if as_json:
        emit_json({"table": str(out), "space": table.space_name, "entries": len(table.entries),
                   "resolutions": table.resolutions})  # fmt: skip
    else:
        err.print(f"wrote {out}: {len(table.entries)} entries of space {table.space_name} at resolutions "
                  f"{', '.join(map(str, table.resolutions))}")  # fmt: skip


@tables_app.command("list")
def tables_list(as_json: JsonOpt = False) -> None:
    """List your tables (latency_tables/ here) and the shipped ones, with their validation results.

    A shipped table hidden by one of yours of the same name is marked 'shadowed'.
    """
    from ..latency import TableError, load_table
    from ..latency.store import list_tables

    rows = []
    for stored in list_tables():
        row: dict[str, Any] = {"name": stored.name, "origin": stored.origin, "shadowed": stored.shadowed,
                               "path": str(stored.path)}  # fmt: skip
        try:
            t = load_table(stored.path)
        except TableError as exc:
            rows.append({**row, "error": str(exc)})
            continue
        v = (t.validation or {}).get("calibrated") or {}
        rows.append({**row, "label": t.label, "threads": t.backend.get("threads"), "entries": len(t.entries),
                     "resolutions": t.resolutions, "within_10pct": v.get("within_10pct"),
                     "kendall_tau": v.get("kendall_tau")})  # fmt: skip
    if as_json:
        emit_json({"tables": rows})
        return
    table = Table()
    # Names are what users pass to --table: never shortened (they already say backend, device,
    # precision and space); the other columns give what the name does not.
    table.add_column("name", no_wrap=True, min_width=max((len(r["name"]) for r in rows), default=4))
    table.add_column("where")
    table.add_column("px", overflow="fold")
    for column in ("thr", "entries", "±10%", "tau"):
        table.add_column(column)
    for r in rows:
        where = "shipped (shadowed)" if r["shadowed"] else r["origin"]
        if "error" in r:
            table.add_row(r["name"], where, r["error"])
            continue
        w, tau = r["within_10pct"], r["kendall_tau"]
        table.add_row(
            r["name"],
            where,
            ",".join(map(str, r["resolutions"])),
            str(r["threads"] or "-"),
            str(r["entries"]),
            f"{w:.0%}" if w is not None else "-",
            f"{tau:.3f}" if tau is not None else "-",
        )
    listing.print(table)


# --------------------------------------------------------------------- latency
TableOpt = Annotated[
    str, typer.Option("--table", "-t", help="Table file, or a table name (see `ofa-edge tables list`).")
]


@latency_app.command("predict")
def latency_predict(
    table: TableOpt,
    arch: Annotated[
        Path,
        typer.Option(
            "--arch",
            "-a",
            help="Arch JSON ({ks, e, d, r}; OFA-ResNet: {d, e, w, r}), or an official OFA net.config or its folder.",
        ),
    ],
    breakdown: Annotated[bool, typer.Option(help="Also list each entry of the table the arch uses.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Predicted latency of an arch: the sum of its table entries, then the table's calibration."""
    from ..latency.table import table_and_arch

    t, sp, a, note = table_and_arch(table, arch)
    if note:
        err.print(f"note: {note}")
    result: dict[str, Any] = {
        "table": t.label,
        "arch": a.to_dict(),
        "predicted_ms": t.predict(sp, a),
        "sum_ms": t.unit_sum(sp, a),
        "calibrated": t.calibration is not None,
    }
    if breakdown:
        result["entries"] = t.breakdown(sp, a)
    if (warning := t.machine_warning()) is not None:  # after the input checks: a refusal stays one line
        err.print(f"warning: {warning}")
    if as_json:
        emit_json(result)
        return
    if breakdown:
        rows = Table("entry", "ms")
        for entry in result["entries"]:
            rows.add_row(entry["key"], f"{entry['ms']:.4f}")
        listing.print(rows)
    note = "" if t.calibration else " (table has no calibration: raw sum)"
    err.print(f"predicted {result['predicted_ms']:.3f} ms on {t.label}; sum of entries {result['sum_ms']:.3f} ms{note}")


def _warn(message: str) -> None:
    err.print(f"warning: {message}")


@latency_app.command("validate")
def latency_validate(
    table: TableOpt,
    samples: Annotated[int, typer.Option(min=2, help="Random subnets to measure end to end.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the random subnets (held out from calibration's).")] = 2,
    record: Annotated[bool, typer.Option(help="Store the results in the table file (a shipped table: a copy).")] = True,
    warmup: WarmupOpt = 10,
    runs: RunsOpt = 50,
    rounds: RoundsOpt = 5,
    option: OptionsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure random and corner subnets end to end, now, and report how well the table predicts them.

    Reports the share predicted within ±10%, Kendall's tau and MAPE for the raw sum of entries and
    the calibrated prediction side by side; the 16 corner subnets (min/max depth, expand, and kernel
    or width, at the smallest and largest resolution) are reported apart. Also reports how much each
    subnet's timing passes differed (host_noise), and warns when the machine was busy meanwhile.
    """
    from ..latency.profiling import validate_table

    timing = _timing(warmup, runs, rounds)
    with resumable("validate"), ProgressBar("validate") as bar:
        result = validate_table(table, samples, seed, record, timing, backend_options(option), bar, _warn)
    summary = {k: v for k, v in result.items() if k not in ("points", "corner_points")}
    if as_json:
        emit_json(summary)
        return
    rows = Table("subnets", "prediction", "within ±10%", "Kendall tau", "MAPE", "mean bias")
    for group, metrics in (("random", result), ("corners", result["corners"])):
        for name in ("uncalibrated", "calibrated"):
            if name in metrics:
                m = metrics[name]
                rows.add_row(group, name, f"{m['within_10pct']:.1%}", f"{m['kendall_tau']:.3f}", f"{m['mape']:.1%}",
                             f"{m['mean_bias']:+.1%}")  # fmt: skip
    noise = result.get("host_noise")
    noise_text = (
        f"; each subnet's timing passes differed by a median of {noise['pass_spread_median']:.1%}" if noise else ""
    )
    counts = f"{result['samples']} random subnets, {len(result['corner_points'])} corners"
    err.print(f"{result['table']}: {counts}{noise_text}")
    listing.print(rows)
    corners = Table("corner", "measured ms", "predicted ms", "error")
    for c in result["corners"]["subnets"]:
        corners.add_row(c["name"], f"{c['measured_ms']:.3f}", f"{c['predicted_ms']:.3f}", f"{c['error']:+.1%}")
    listing.print(corners)


@latency_app.command("calibrate")
def latency_calibrate(
    table: TableOpt,
    samples: Annotated[int, typer.Option(min=1, help="Random subnets to measure end to end (plus the corners).")] = 30,
    seed: Annotated[int, typer.Option(help="Seed of the random subnets.")] = 1,
    fresh: Annotated[
        bool, typer.Option(help="Drop the stored calibration points first (done anyway for another machine's).")
    ] = False,
    warmup: WarmupOpt = 10,
    runs: RunsOpt = 50,
    rounds: RoundsOpt = 5,
    option: OptionsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """(Re)fit a table's calibration from whole-subnet measurements made now, on this machine.

    A shipped table is never modified: the calibrated copy goes to latency_tables/ here, and is
    found first by name from then on.
    """
    from ..latency.profiling import calibrate_table

    timing = _timing(warmup, runs, rounds)
    with resumable("calibrate"), ProgressBar("calibrate") as bar:
        cal, out = calibrate_table(table, samples, seed, fresh, timing, backend_options(option), bar, _warn)
    if as_json:
        emit_json({"table": str(out), **cal.coefficients()})
    else:
        err.print(f"{out}: {cal.describe()} ({len(cal.points)} subnets)")
