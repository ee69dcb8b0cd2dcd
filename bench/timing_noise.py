"""How much a latency measurement moves on this machine, and which way of combining passes holds.

Converts the 16 corner subnets of a space (min/max depth, expand and kernel at the smallest and
largest resolution) for one backend, then times all of them in ``--processes`` fresh processes,
one after the other, each with ``--rounds`` interleaved passes of ``--warmup`` untimed and
``--runs`` timed calls per model (the profiler's own timing). From the same raw run times it
computes each candidate statistic and its spread across processes (largest / smallest - 1, per
model): what a table, its calibration and its validation, each made in its own process, disagree
by when nothing in the code differs. A last process times the smallest corner in passes
back to back for ``--series-seconds`` within one session: whether the movement is the process or
the machine's moment.

    python bench/timing_noise.py                          # onnxruntime, demo space, 6 processes
    python bench/timing_noise.py --backend openvino --processes 8

Run it on an otherwise idle machine. Prints a table on stderr and one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from ofa_edge.profilers.base import run_times

STATISTICS = {
    "median of pass medians (before)": lambda passes: float(np.median([np.median(p) for p in passes])),
    "best pass median (shipped)": lambda passes: float(min(np.median(p) for p in passes)),
    "10th percentile of all runs": lambda passes: float(np.percentile(np.concatenate(passes), 10)),
    "fastest single run": lambda passes: float(np.min(np.concatenate(passes))),
}


def _worker(backend_name: str, threads: int, paths: list[str], rounds: int, warmup: int, runs: int) -> None:
    """Time every model in ``rounds`` interleaved passes; print the raw per-run times as JSON."""
    from ofa_edge.profilers import make_backend

    backend = make_backend(backend_name, threads=threads)
    raw: dict[str, list[list[float]]] = {p: [] for p in paths}
    for _ in range(rounds):
        for path in paths:
            raw[path].append(_run_times(backend, Path(path), warmup, runs))
    print(json.dumps(raw))


def _run_times(backend, path: Path, warmup: int, runs: int) -> list[float]:
    """Per-run times (ms) of one model, timed as the backend's ``measure`` times it."""
    if backend.name not in ("onnxruntime", "openvino"):
        raise SystemExit(f"this bench times onnxruntime or openvino in-process, not {backend.name}")
    return run_times(backend.inference(path), warmup, runs)


def _series(backend_name: str, threads: int, path: str, seconds: float, runs: int) -> None:
    """Pass medians of one model, back to back in one session, for ``seconds``."""
    from ofa_edge.profilers import make_backend

    backend = make_backend(backend_name, threads=threads)
    medians = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        medians.append(backend.measure(Path(path), 5, runs).median_ms)
    print(json.dumps(medians))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="onnxruntime", help="a backend timed in-process: onnxruntime or openvino")
    parser.add_argument("--space", default="mbv3-fmnist")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--processes", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--series-seconds", type=float, default=20.0)
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--series", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.backend, args.threads, args.worker, args.rounds, args.warmup, args.runs)
        return
    if args.series:
        _series(args.backend, args.threads, args.series, args.series_seconds, args.runs)
        return

    from ofa_edge import corner_archs, get_space
    from ofa_edge.latency.profiling import subnet_model
    from ofa_edge.profilers import make_backend

    console = Console(stderr=True, width=130)
    space = get_space(args.space)
    backend = make_backend(args.backend, threads=args.threads)
    common = ["--backend", args.backend, "--threads", str(args.threads), "--rounds", str(args.rounds),
              "--runs", str(args.runs), "--warmup", str(args.warmup)]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="ofa-edge-noise-") as tmp:
        names, paths = [], []
        for r in sorted({min(space.resolutions), max(space.resolutions)}):
            for name, arch in corner_archs(space, r).items():
                module, example = subnet_model(space, arch)
                paths.append(str(backend.prepare(module, example, Path(tmp) / f"{name}-{r}{backend.model_suffix}")))
                names.append(f"{name}@{r}")
        processes = []
        for index in range(args.processes):
            console.print(f"process {index + 1}/{args.processes}")
            done = subprocess.run([sys.executable, __file__, *common, "--worker", *paths],
                                  check=True, capture_output=True, text=True)  # fmt: skip
            processes.append(json.loads(done.stdout.strip().splitlines()[-1]))
        smallest = paths[names.index(f"d2-e3-k3@{min(space.resolutions)}")]
        done = subprocess.run([sys.executable, __file__, *common, "--series", smallest,
                               "--series-seconds", str(args.series_seconds)],
                              check=True, capture_output=True, text=True)  # fmt: skip
        series = json.loads(done.stdout.strip().splitlines()[-1])

    rows = {}
    for stat, combine in STATISTICS.items():
        spreads, values = [], {}
        for name, path in zip(names, paths):
            per_process = [combine(raw[path]) for raw in processes]
            values[name] = per_process
            spreads.append(max(per_process) / min(per_process) - 1)
        rows[stat] = {
            "spread_median": statistics.median(spreads),
            "spread_worst": max(spreads),
            "within_10pct_of_each_other": sum(s <= 0.10 for s in spreads) / len(spreads),
            "per_process_ms": values,
        }
    result = {
        "command": shlex.join(["python", "bench/timing_noise.py", *sys.argv[1:]]),
        "backend": backend.describe().to_dict(),
        "processes": args.processes,
        "timing": {"rounds": args.rounds, "runs": args.runs, "warmup": args.warmup},
        "statistics": rows,
        "series_smallest": {"model": names[paths.index(smallest)], "pass_medians_ms": series,
                            "min": min(series), "median": statistics.median(series), "max": max(series)},
    }  # fmt: skip

    table = Table(title=f"{args.backend}: the 16 corners timed in {args.processes} fresh processes")
    for col in ("statistic", "spread across processes, median", "worst", "models with spread <= 10%"):
        table.add_column(col, justify="left" if col == "statistic" else "right")
    for stat, row in rows.items():
        table.add_row(stat, f"{row['spread_median']:.1%}", f"{row['spread_worst']:.1%}",
                      f"{row['within_10pct_of_each_other']:.0%}")  # fmt: skip
    console.print(table)
    s = result["series_smallest"]
    console.print(
        f"one session, {s['model']}: {len(series)} pass medians over {args.series_seconds:.0f} s, "
        f"min {s['min']:.3f} / median {s['median']:.3f} / max {s['max']:.3f} ms"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
