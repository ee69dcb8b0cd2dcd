"""CLI commands for latency: ``backends``, ``profile``, ``tables import``, ``latency predict|validate|calibrate``."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..errors import OFAEdgeError
from ..latency.profiling import calibrate, profile_units, validate
from ..latency.table import (
    LatencyTable,
    TableError,
    import_official_tables,
    load_table,
    resolve_table_path,
    tables_dir,
)
from ..profilers import backend_names, load_backend_class, make_backend
from ..profilers.base import Backend, Timing
from ..space.arch import load_arch
from ..space.space import get_space
from .common import JsonOpt, ProgressBar, SpaceOpt, emit_json, err

tables_app = typer.Typer(
    help="Manage latency lookup tables (import the official OFA YAML tables).", no_args_is_help=True
)
latency_app = typer.Typer(
    help="Predict, calibrate and validate subnet latency from a lookup table.", no_args_is_help=True
)

OptionsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        "-o",
        help="Backend option KEY=VALUE, repeatable (tflite on a phone: "
        "benchmark_model=PATH, affinity=f0, devices_file=PATH, adb=PATH; tensorrt: trtexec=PATH, gpu=0).",
    ),
]
WarmupOpt = Annotated[int, typer.Option(help="Untimed runs before timing each model.")]
RunsOpt = Annotated[int, typer.Option(help="Timed runs per model in each pass (the median is kept).")]
RoundsOpt = Annotated[
    int, typer.Option(help="Interleaved timing passes over each group of models; the median over passes is kept.")
]


def register_latency_commands(app: typer.Typer) -> None:
    app.command("backends")(backends)
    app.command("profile")(profile)
    app.add_typer(tables_app, name="tables")
    app.add_typer(latency_app, name="latency")


def _options(pairs: list[str] | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise OFAEdgeError(f"--option expects KEY=VALUE, got {pair!r}")
        options[key.strip()] = value
    return options


# ------------------------------------------------------------------- backends
def backends(as_json: JsonOpt = False) -> None:
    """List the latency backends (built-in and third-party plugins), their versions and availability."""
    rows = []
    for name in backend_names():
        try:
            cls = load_backend_class(name)
            ok, detail = cls().availability()
            precisions = list(getattr(cls, "precisions", ()))
        except OFAEdgeError as exc:
            ok, detail, precisions = False, str(exc), []
        rows.append({"backend": name, "available": ok, "detail": detail, "precisions": precisions})
    if as_json:
        emit_json({"backends": rows})
        return
    table = Table("backend", "available", "version / why not", "precisions")
    for r in rows:
        table.add_row(r["backend"], "yes" if r["available"] else "no", r["detail"], ", ".join(r["precisions"]))
    err.print(table)


# -------------------------------------------------------------------- profile
def _default_out(backend: str, device: str, precision: str, threads: int, space: str) -> Path:
    suffix = "" if threads == 1 else f"-t{threads}"
    return Path("latency_tables") / f"{backend}-{device.lower()}-{precision}{suffix}-{space}.json"


def _parse_resolutions(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise OFAEdgeError(f"--resolutions expects comma-separated integers like 160,224, got {text!r}") from None


def _available(backend: Backend, name: str) -> None:
    ok, why = backend.availability()
    if not ok:
        raise OFAEdgeError(f"backend '{name}' is not available here: {why}")


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
    threads: Annotated[int, typer.Option(help="Inference threads (1 is steadiest on shared machines).")] = 1,
    precision: Annotated[
        str, typer.Option(help="fp32, int8 (onnxruntime, openvino, tensorrt), bf16 (openvino), fp16 (tensorrt).")
    ] = "fp32",
    resolutions: Annotated[
        str | None, typer.Option(help="Comma-separated input sizes (default: all of the space's).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Table file (default latency_tables/BACKEND-DEVICE-PRECISION-SPACE.json)."),
    ] = None,
    calibration_samples: Annotated[
        int, typer.Option(help="Random subnets measured end to end to calibrate the sum (0: skip).")
    ] = 30,
    warmup: WarmupOpt = 10,
    runs: RunsOpt = 50,
    rounds: RoundsOpt = 5,
    option: OptionsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure every distinct block of a space on a backend into a latency lookup table, then calibrate it.

    Killed mid-run, the same command resumes where it stopped (the table is saved after every group of 16 blocks).

    Examples:\n
      ofa-edge profile                                   # demo space, onnxruntime, this CPU, 1 thread\n
      ofa-edge profile --backend openvino --precision int8\n
      ofa-edge profile --backend tflite --device pixel1 -o benchmark_model=./benchmark_model
    """
    sp = get_space(space)
    be = make_backend(backend, device=device, threads=threads, precision=precision, **_options(option))
    _available(be, backend)
    out = out or _default_out(backend, device, precision, threads, space)
    timing = Timing(warmup, runs, rounds)
    command = shlex.join(["ofa-edge", *sys.argv[1:]]) if sys.argv else "ofa-edge profile"
    with ProgressBar(f"profile {backend} {precision}", enabled=True) as bar:
        table = profile_units(be, sp, out, _parse_resolutions(resolutions), timing, command, bar)
    if calibration_samples > 0:
        with ProgressBar("calibrate", enabled=True) as bar:
            calibrate(table, be, sp, out, calibration_samples, timing=timing, progress=bar)
    summary = {
        "table": str(out),
        "entries": len(table.entries),
        "resolutions": table.resolutions,
        "backend": table.backend,
        "calibration": {
            "a": table.calibration.a,
            "b": table.calibration.b,
            "c": table.calibration.c,
            "points": len(table.calibration.points),
        }
        if table.calibration
        else None,
    }
    if as_json:
        emit_json(summary)
    else:
        cal = summary["calibration"]
        cal_text = f"; calibration {_fmt_cal(cal)}" if cal else ""
        err.print(f"wrote {out}: {len(table.entries)} entries ({table.label}){cal_text}")


# ---------------------------------------------------------------- tables import
@tables_app.command("import")
def tables_import(
    files: Annotated[list[Path], typer.Argument(help="Official OFA tables named {res}_lookup_table.yaml.")],
    space: SpaceOpt = "mbv3-w1.0",
    device: Annotated[
        str, typer.Option("--device", "-d", help="Name of the device they were measured on, e.g. note10.")
    ] = "imported",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Table file to write (default latency_tables/imported-DEVICE-SPACE.json)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Convert official OFA latency lookup tables (YAML: key -> count/mean/var in ms) into one ofa-edge table."""
    table = import_official_tables(list(files), space, device)
    out = out or Path("latency_tables") / f"imported-{device.lower()}-{space}.json"
    table.command = shlex.join(["ofa-edge", "tables", "import", *map(str, files), "--space", space, "--device", device])
    table.save(out)
    if as_json:
        emit_json({"table": str(out), "entries": len(table.entries), "resolutions": table.resolutions})
    else:
        err.print(f"wrote {out}: {len(table.entries)} entries at resolutions {', '.join(map(str, table.resolutions))}")


@tables_app.command("list")
def tables_list(as_json: JsonOpt = False) -> None:
    """List the latency tables shipped in latency_tables/ with their validation results."""
    rows = []
    for path in sorted(tables_dir().glob("*.json")):
        try:
            t = load_table(path)
        except TableError as exc:
            rows.append({"name": path.stem, "error": str(exc)})
            continue
        v = (t.validation or {}).get("calibrated") or {}
        rows.append(
            {
                "name": path.stem,
                "label": t.label,
                "threads": t.backend.get("threads"),
                "entries": len(t.entries),
                "resolutions": t.resolutions,
                "within_10pct": v.get("within_10pct"),
                "kendall_tau": v.get("kendall_tau"),
            }
        )
    if as_json:
        emit_json({"tables": rows})
        return
    table = Table()
    # Names are what users pass to --table: never shortened (they already say backend, device,
    # precision and space); the other columns give what the name does not.
    table.add_column("name", no_wrap=True, min_width=max((len(r["name"]) for r in rows), default=4))
    table.add_column("px", overflow="fold")
    for column in ("thr", "blocks", "±10%", "tau"):
        table.add_column(column)
    for r in rows:
        if "error" in r:
            table.add_row(r["name"], r["error"])
            continue
        w, tau = r["within_10pct"], r["kendall_tau"]
        table.add_row(
            r["name"],
            ",".join(map(str, r["resolutions"])),
            str(r["threads"] or "-"),
            str(r["entries"]),
            f"{w:.0%}" if w is not None else "-",
            f"{tau:.3f}" if tau is not None else "-",
        )
    err.print(table)


# --------------------------------------------------------------------- latency
TableOpt = Annotated[
    str, typer.Option("--table", "-t", help="Table file, or the name of a shipped table (see `ofa-edge tables list`).")
]


@latency_app.command("predict")
def latency_predict(
    table: TableOpt,
    arch: Annotated[Path, typer.Option("--arch", "-a", help="Arch JSON ({ks, e, d, r}).")],
    breakdown: Annotated[bool, typer.Option(help="Also list each block's table entry.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Predicted latency of an arch: the sum of its blocks' entries, then the table's calibration."""
    t = load_table(table)
    sp = t.space()
    a = sp.validate(load_arch(arch))
    raw = t.unit_sum(sp, a)
    calibrated = t.predict(sp, a)
    result: dict[str, Any] = {
        "table": t.label,
        "arch": a.to_dict(),
        "predicted_ms": calibrated,
        "sum_ms": raw,
        "calibrated": t.calibration is not None,
    }
    if breakdown:
        from ..latency.units import arch_units

        result["units"] = [{"key": u.key, "ms": t.entries[u.key]["median_ms"]} for u in arch_units(sp, a)]
    if as_json:
        emit_json(result)
        return
    if breakdown:
        rows = Table("unit", "ms")
        for u in result["units"]:
            rows.add_row(u["key"], f"{u['ms']:.4f}")
        err.print(rows)
    note = "" if t.calibration else " (table has no calibration: raw sum)"
    err.print(f"predicted {calibrated:.3f} ms on {t.label}; block sum {raw:.3f} ms{note}")


def _backend_for(t: LatencyTable, option: list[str] | None) -> Backend:
    b = t.backend
    if b["backend"] == "imported":
        raise OFAEdgeError("an imported table has no backend here to measure with")
    be = make_backend(
        b["backend"], device=b["device"], threads=b.get("threads") or 1, precision=b["precision"], **_options(option)
    )
    _available(be, b["backend"])
    info = be.describe()
    for field in ("version", "device_detail"):
        if getattr(info, field) != b.get(field):
            err.print(
                f"warning: table {field} is {b.get(field)!r}, this machine has {getattr(info, field)!r}; "
                "its entries may not transfer"
            )
    return be


@latency_app.command("validate")
def latency_validate(
    table: TableOpt,
    samples: Annotated[int, typer.Option(help="Random subnets to measure end to end.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the random subnets (held out from calibration's).")] = 2,
    record: Annotated[bool, typer.Option(help="Store the results in the table file.")] = True,
    warmup: WarmupOpt = 10,
    runs: RunsOpt = 50,
    rounds: RoundsOpt = 5,
    option: OptionsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure random subnets end to end and report how well the table predicts them.

    Reports the share predicted within ±10%, Kendall's tau and MAPE for the raw block sum and the
    calibrated prediction side by side.
    """
    t = load_table(table)
    sp = t.space()
    be = _backend_for(t, option)
    out = resolve_table_path(table) if record else None
    with ProgressBar("validate", enabled=True) as bar:
        result = validate(t, be, sp, out, samples, seed, Timing(warmup, runs, rounds), bar)
    summary = {k: v for k, v in result.items() if k != "points"}
    if as_json:
        emit_json({"table": t.label, **summary})
        return
    rows = Table("prediction", "within ±10%", "Kendall tau", "MAPE", "mean bias")
    for name in ("uncalibrated", "calibrated"):
        if name in result:
            m = result[name]
            rows.add_row(
                name,
                f"{m['within_10pct']:.1%}",
                f"{m['kendall_tau']:.3f}",
                f"{m['mape']:.1%}",
                f"{m['mean_bias']:+.1%}",
            )
    err.print(f"{t.label}: {result['samples']} random subnets")
    err.print(rows)


@latency_app.command("calibrate")
def latency_calibrate(
    table: TableOpt,
    samples: Annotated[int, typer.Option(help="Random subnets to measure end to end.")] = 30,
    seed: Annotated[int, typer.Option(help="Seed of the random subnets.")] = 1,
    fresh: Annotated[
        bool, typer.Option(help="Drop the stored calibration points first (e.g. on a new machine).")
    ] = False,
    warmup: WarmupOpt = 10,
    runs: RunsOpt = 50,
    rounds: RoundsOpt = 5,
    option: OptionsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """(Re)fit a table's calibration from whole-subnet measurements made now, on this machine."""
    t = load_table(table)
    sp = t.space()
    be = _backend_for(t, option)
    if fresh:
        t.calibration = None
    out = resolve_table_path(table)
    with ProgressBar("calibrate", enabled=True) as bar:
        cal = calibrate(t, be, sp, out, samples, seed, Timing(warmup, runs, rounds), bar)
    if as_json:
        emit_json({"table": str(out), "a": cal.a, "b": cal.b, "c": cal.c, "points": len(cal.points)})
    else:
        err.print(f"{out}: {_fmt_cal({'a': cal.a, 'b': cal.b, 'c': cal.c})} ({len(cal.points)} subnets)")


def _fmt_cal(cal: dict[str, float]) -> str:
    return f"measured = {cal['a']:.3f} x sum {cal['c']:+.4f} ms x blocks {cal['b']:+.3f} ms"
