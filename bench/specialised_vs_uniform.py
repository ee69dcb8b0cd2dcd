"""Specialised subnets against the best uniform subnet under the same latency budget.

One run: profile a fresh onnxruntime table of the demo space on this machine (or reuse --table),
then at 5 budgets spread over the table's feasible range:

* **specialised**: ``specialize`` with the demo supernet's shipped accuracy predictor;
* **uniform**: among the 81 uniform subnets (one kernel, one expand, one depth in every stage, any
  resolution) whose *measured* latency is within the budget, the one the same predictor ranks
  first.

Both are then measured here: latency (onnxruntime, 1 thread, interleaved passes, median) and
Fashion-MNIST test top-1 after BatchNorm recalibration (the demo supernet, 2000 training images).
The uniform subnets' latencies are measured once, before the budgets. Prints JSON, then a table.

The closed loop (``--refit-rounds``, the loop of ``ofa-edge deploy --refit``,
:func:`ofa_edge.export.closed_loop.search_until_within_budget`): a specialised subnet measured over
its budget becomes a calibration point of a working copy of the table, and the search runs again
under a target tightened by the miss; the new choice is measured. The copy keeps what it learnt
for the following budgets, as a user's table would. Both the first choice (open loop) and the
last (closed loop) are reported.

    python bench/specialised_vs_uniform.py                      # ~10 min on the 2-core VMs
    python bench/specialised_vs_uniform.py --table my-table     # skip the profile
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

import ofa_edge as oe
from ofa_edge.export.closed_loop import search_until_within_budget
from ofa_edge.latency.profiling import measure_group, subnet_model
from ofa_edge.latency.store import resolve_table_path
from ofa_edge.profilers import make_backend
from ofa_edge.profilers.base import Timing
from ofa_edge.search.efficiency import LatencyModel, feasible_range
from ofa_edge.search.predictor import AccuracyPredictor, demo_predictor_path
from ofa_edge.search.specialize import Target, specialize
from ofa_edge.space.space import uniform_archs


def measure(space: oe.SearchSpace, archs: list[oe.Arch], timing: Timing, workdir: Path) -> list[float]:
    backend = make_backend("onnxruntime", threads=1)
    times: list[float] = []
    for start in range(0, len(archs), 16):
        group = [subnet_model(space, arch) for arch in archs[start : start + 16]]
        times += [m.median_ms for m in measure_group(backend, group, workdir, timing)]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", help="onnxruntime table of mbv3-fmnist made on this machine (default: profile one)")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/specialised-vs-uniform"))
    parser.add_argument("--budgets", type=int, default=5)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--refit-rounds", type=int, default=2, help="closed-loop rounds per budget (0: open loop)")
    args = parser.parse_args()
    console = Console(stderr=True, width=150)
    command = shlex.join(["python", "bench/specialised_vs_uniform.py", *sys.argv[1:]])
    args.out_dir.mkdir(parents=True, exist_ok=True)
    timing = Timing(10, args.runs, args.rounds)
    started = time.perf_counter()
    if args.table is None:
        console.print("profiling a fresh onnxruntime table of mbv3-fmnist (1 thread) ...")
        _, table_path = oe.profile_table("onnxruntime", "mbv3-fmnist", out=args.out_dir / "table.json", timing=timing)
    else:
        table_path = resolve_table_path(args.table)
    working = args.out_dir / "table-refit.json"  # the closed loop teaches this copy, never the input
    working.write_bytes(Path(table_path).read_bytes())
    table = oe.load_table(working)
    space = table.space()
    predictor = AccuracyPredictor.load(demo_predictor_path(), space=space)

    console.print("measuring the 81 uniform subnets ...")
    uniform = uniform_archs(space)
    uniform_ms = measure(space, uniform, timing, args.out_dir)
    uniform_acc = predictor.predict(uniform)
    model = LatencyModel(table, space)
    low, high = feasible_range(model, space)
    budgets = np.linspace(low, high, args.budgets + 2)[1:-1]  # strictly inside the range

    scorer = oe.SupernetScorer.open("demo", split="test", engine="onnxruntime")
    rows = []
    for budget in budgets:
        chosen = specialize(predictor, [Target(table, float(budget))], space=space)[0]
        fits = [i for i, ms in enumerate(uniform_ms) if ms <= budget]
        best_uniform = max(fits, key=lambda i: uniform_acc[i]) if fits else None
        specialised_ms = measure(space, [chosen.arch], timing, args.out_dir)[0]
        first = {"arch": chosen.arch.to_dict(), "predicted_ms": chosen.latency_ms, "measured_ms": specialised_ms}
        measured = {chosen.arch: specialised_ms}

        def measure_once(arch: oe.Arch, _table_ref: object, measured: dict = measured) -> float:
            if arch not in measured:
                measured[arch] = measure(space, [arch], timing, args.out_dir)[0]
            return measured[arch]

        loop = search_until_within_budget(
            chosen.arch, measure_once, table_ref=working, table=table, budget_ms=float(budget), predictor=predictor,
            space=space, supernet=None, rounds=args.refit_rounds, progress=console.print,
        )  # fmt: skip
        if loop.choice is not None:
            chosen, specialised_ms = loop.choice, measured[loop.choice.arch]
            table = oe.load_table(working)
        row = {
            "budget_ms": round(float(budget), 4),
            "open_loop": first,
            "refits": len(loop.refits),
            "search_targets_ms": [r["search_target_ms"] for r in loop.refits],
            "specialised": {"arch": chosen.arch.to_dict(), "predicted_ms": chosen.latency_ms,
                            "measured_ms": specialised_ms, "predicted_top1": chosen.accuracy,
                            "test_top1": scorer.score(chosen.arch)},
        }  # fmt: skip
        if best_uniform is not None:
            arch = uniform[best_uniform]
            row["uniform"] = {"arch": arch.to_dict(), "measured_ms": uniform_ms[best_uniform],
                              "predicted_top1": float(uniform_acc[best_uniform]),
                              "test_top1": scorer.score(arch)}  # fmt: skip
        rows.append(row)
        console.print(f"budget {budget:.3f} ms done")

    result = {"benchmark": "specialised_vs_uniform", "command": command, "table": str(table_path),
              "host": table.backend.get("device_detail"), "seconds": round(time.perf_counter() - started),
              "rows": rows}  # fmt: skip
    print(json.dumps(result))
    view = Table(title="specialised vs best uniform subnet (onnxruntime, 1 thread; test top-1 after BN recalibration)")
    for column in ("budget ms", "open-loop ms", "refits", "spec. ms", "spec. top-1", "uniform", "unif. ms",
                   "unif. top-1", "spec. >= unif."):  # fmt: skip
        view.add_column(column)
    for row in rows:
        s, u = row["specialised"], row.get("uniform")
        name = "-"
        if u:
            a = u["arch"]
            name = f"k{a['ks'][0]} e{a['e'][0]} d{a['d'][0]} r{a['r']}"
        view.add_row(
            f"{row['budget_ms']:.3f}", f"{row['open_loop']['measured_ms']:.3f}", str(row["refits"]),
            f"{s['measured_ms']:.3f}", f"{s['test_top1']:.2f}", name,
            f"{u['measured_ms']:.3f}" if u else "-", f"{u['test_top1']:.2f}" if u else "-",
            ("yes" if s["test_top1"] >= u["test_top1"] else "no") if u else "-",
        )  # fmt: skip
    console.print(view)


if __name__ == "__main__":
    main()
