"""How well lookup tables predict whole-subnet latency, per backend, with the cost of making them.

For each backend: profile every block of the space into a table (timed), fit the calibration on
``--calibration`` random subnets, then measure ``--samples`` held-out random subnets end to end and
compare them with the raw block sum and the calibrated prediction (share within +-10 %, Kendall's
tau, MAPE). The two sets are measured in alternating slices (``--slices``) so that slow drift of
the machine's speed does not turn into a calibration bias. The tables written are the ones
shipped in latency_tables/ when ``--out-dir`` is that.

    python bench/latency_fidelity.py                                    # onnxruntime + openvino, demo space
    python bench/latency_fidelity.py --backends onnxruntime --precision int8
    python bench/latency_fidelity.py --space mbv3-w1.0 --resolutions 224 --backends onnxruntime

Run it on an otherwise idle machine (1 inference thread by default). Prints a table on stderr and
one JSON object on stdout. An existing table in --out-dir is resumed, not re-measured; pass
--fresh to start over.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ofa_edge import get_space
from ofa_edge.latency.profiling import calibrate, profile_units, validate
from ofa_edge.profilers import make_backend
from ofa_edge.profilers.base import Timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="onnxruntime,openvino")
    parser.add_argument("--space", default="mbv3-fmnist")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--resolutions", default=None, help="comma-separated (default: all of the space's)")
    parser.add_argument("--calibration", type=int, default=30)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing passes per group of models")
    parser.add_argument("--slices", type=int, default=5, help="alternate calibration and validation this many times")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/latency-fidelity"))
    parser.add_argument("--fresh", action="store_true", help="delete existing tables first")
    args = parser.parse_args()
    console = Console(stderr=True, width=130)
    space = get_space(args.space)
    resolutions = [int(r) for r in args.resolutions.split(",")] if args.resolutions else list(space.resolutions)
    command = shlex.join(["python", "bench/latency_fidelity.py", *sys.argv[1:]])

    timing = Timing(args.warmup, args.runs, args.rounds)
    results = []
    for name in args.backends.split(","):
        backend = make_backend(name, threads=args.threads, precision=args.precision)
        ok, why = backend.availability()
        if not ok:
            console.print(f"{name}: skipped ({why})")
            continue
        suffix = "" if args.threads == 1 else f"-t{args.threads}"
        out = args.out_dir / f"{name}-{backend.device.lower()}-{args.precision}{suffix}-{args.space}.json"
        if args.fresh:
            out.unlink(missing_ok=True)
        console.print(f"{name}: profiling {args.space} at {resolutions} into {out} ...")
        started = time.perf_counter()
        table = profile_units(backend, space, out, resolutions, timing, command)
        profile_s = time.perf_counter() - started
        # Calibration and held-out subnets are measured in alternating slices: this VM's speed
        # drifts by a few percent over minutes, and measuring all of one set, then all of the
        # other, would show that drift as a calibration bias.
        calibrate_s = validate_s = 0.0
        for piece in range(1, args.slices + 1):
            started = time.perf_counter()
            calibrate(table, backend, space, out, round(args.calibration * piece / args.slices), timing=timing)
            calibrate_s += time.perf_counter() - started
            started = time.perf_counter()
            count = round(args.samples * piece / args.slices)
            result = validate(table, backend, space, out, count, timing=timing, extend=True)
            validate_s += time.perf_counter() - started
        measured = [p["measured_ms"] for p in result["points"]]
        results.append({
            "backend": name,
            "version": table.backend["version"],
            "precision": args.precision,
            "threads": args.threads,
            "space": args.space,
            "resolutions": resolutions,
            "entries": len(table.entries),
            "profile_s": round(profile_s, 1),
            "calibrate_s": round(calibrate_s, 1),
            "validate_s": round(validate_s, 1),
            "calibration": result.get("calibration"),
            "samples": result["samples"],
            "measured_ms_range": [round(min(measured), 3), round(max(measured), 3)],
            "uncalibrated": {k: round(v, 4) for k, v in result["uncalibrated"].items()},
            "calibrated": {k: round(v, 4) for k, v in result["calibrated"].items()},
            "table": str(out),
        })  # fmt: skip

    table = Table(title=f"{args.space}, {args.precision}, {args.threads} thread(s): predicted vs measured, "
                        f"{args.samples} held-out random subnets")  # fmt: skip
    for column in ("backend", "blocks", "profile s", "prediction", "within ±10%", "Kendall tau", "MAPE", "bias"):
        table.add_column(column)
    for r in results:
        for kind in ("uncalibrated", "calibrated"):
            m = r[kind]
            table.add_row(r["backend"] if kind == "uncalibrated" else "", str(r["entries"]) if kind == "uncalibrated"
                          else "", f"{r['profile_s']:.0f}" if kind == "uncalibrated" else "", kind,
                          f"{m['within_10pct']:.0%}", f"{m['kendall_tau']:.3f}", f"{m['mape']:.1%}",
                          f"{m['mean_bias']:+.1%}")  # fmt: skip
    console.print(table)
    print(json.dumps({"benchmark": "latency_fidelity", "command": command, "results": results}))


if __name__ == "__main__":
    main()
