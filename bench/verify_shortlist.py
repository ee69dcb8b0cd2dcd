"""Does measuring a shortlist beat trusting the accuracy predictor for the final pick?

The search picks the subnet the predictor ranks highest, and a maximum over 50,000 noisy
predictions is biased upward (the winner's curse). This bench asks whether scoring a shortlist
on the supernet's *validation* split and keeping the best by measurement gives a subnet that is
more accurate on the *test* split, which neither the predictor nor the pick ever sees.

At ``--budgets`` latency budgets spread over the feasible range of the table (default: the demo
space's onnxruntime CPU table; latency is the table's, nothing is timed):

* ``specialize`` with the shipped predictor; the shortlist is its pick, then the subnets of its
  Pareto front with the highest predicted top-1 (all within the budget);
* the 2 uniform subnets (one kernel, expand and depth everywhere) the predictor ranks highest
  within the budget are scored too, as a second, wider shortlist;
* every subnet is scored on val and on test (BatchNorm recalibrated on the same 2000 training
  images, onnxruntime), once each: subnets shared between budgets are scored once.

Reported per budget: the test top-1 of the predictor's pick, of the val-best of the first 4 and
of all ``--shortlist`` front subnets, of the val-best with the uniform ones added, and of the best
on test (an oracle, for scale). Summary: mean gain over the predictor's pick, its standard error
over budgets, and how often it is >= 0; the pick's predicted minus val top-1; val minus test
top-1 of the mixed and of the uniform subnets. Prints JSON on stdout, a table on stderr.

    python bench/verify_shortlist.py                 # ~23 min on the 2-core VMs (12 budgets: 27:40)
    python bench/verify_shortlist.py --budgets 4 --shortlist 4
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time

import numpy as np
from rich.console import Console
from rich.table import Table

import ofa_edge as oe
from ofa_edge.errors import OFAEdgeError
from ofa_edge.latency.store import default_cpu_table
from ofa_edge.search.efficiency import LatencyModel, feasible_range
from ofa_edge.search.predictor import AccuracyPredictor, demo_predictor_path
from ofa_edge.search.specialize import Result, Target, specialize
from ofa_edge.space.space import uniform_archs


def shortlist(result: Result, size: int) -> list[tuple[oe.Arch, float, float]]:
    """Up to ``size`` (arch, predicted top-1, predicted ms): the search's pick, then the front's next best."""
    chosen = [(result.arch, result.accuracy, result.latency_ms)]
    archs = result.front.archs(result.space)
    for i in np.argsort(-result.front.accuracy, kind="stable"):
        if len(chosen) == size:
            break
        if archs[i] != result.arch:
            chosen.append((archs[i], float(result.front.accuracy[i]), float(result.front.cost[i])))
    return chosen


def val_best(candidates: list[dict], count: int | None = None) -> dict:
    """The candidate with the highest val top-1 among the first ``count`` (``max`` keeps the first
    of equals, so the predictor's order breaks ties)."""
    return max(candidates[:count], key=lambda c: c["val"])


def val_minus_test(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Mean and sd of val top-1 minus test top-1 over the distinct scored subnets, uniform and
    mixed apart (how much of its val score a subnet keeps on test)."""
    distinct = {json.dumps(c["arch"], sort_keys=True): c for r in rows for c in r["candidates"]}
    out = {}
    for kind, uniform in (("mixed", False), ("uniform", True)):
        drops = [c["val"] - c["test"] for c in distinct.values() if c["uniform"] == uniform]
        out[kind] = {"subnets": len(drops), "mean": round(statistics.mean(drops), 3),
                     "sd": round(statistics.stdev(drops), 3) if len(drops) > 1 else None}  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=None, help="latency table (default: the demo space's onnxruntime CPU table)")
    parser.add_argument("--budgets", type=int, default=10)
    parser.add_argument("--shortlist", type=int, default=8)
    args = parser.parse_args()
    if args.budgets < 2 or args.shortlist < 1:
        parser.error("--budgets needs at least 2 (the summary's standard error) and --shortlist at least 1")
    console = Console(stderr=True, width=160)
    command = shlex.join(["python", "bench/verify_shortlist.py", *sys.argv[1:]])
    started = time.perf_counter()

    predictor = AccuracyPredictor.load(demo_predictor_path())
    space = predictor.space
    try:
        table = oe.load_table(args.table or default_cpu_table(space.name))
        model = LatencyModel(table, space)
    except OFAEdgeError as exc:
        parser.error(str(exc))
    low, high = feasible_range(model, space)
    budgets = np.linspace(low, high, args.budgets + 2)[1:-1]
    uniform = uniform_archs(space)
    uniform_ms = np.array([table.predict(space, a) for a in uniform])
    uniform_pred = predictor.predict(uniform)

    scorers = {split: oe.SupernetScorer.open("demo", split=split, engine="onnxruntime") for split in ("val", "test")}
    scores: dict[oe.Arch, dict[str, float]] = {}

    def scored(arch: oe.Arch) -> dict[str, float]:
        if arch not in scores:
            scores[arch] = {split: scorer.score(arch) for split, scorer in scorers.items()}
        return scores[arch]

    rows = []
    for number, budget in enumerate(budgets, 1):
        result = specialize(predictor, [Target(table, float(budget))], space=space)[0]
        candidates = [{"arch": arch, "predicted": predicted, "ms": ms, "uniform": False}
                      for arch, predicted, ms in shortlist(result, args.shortlist)]  # fmt: skip
        fits = np.flatnonzero(uniform_ms <= budget)
        for i in fits[np.argsort(-uniform_pred[fits], kind="stable")][:2]:
            if all(uniform[i] != c["arch"] for c in candidates):
                candidates.append({"arch": uniform[i], "predicted": float(uniform_pred[i]),
                                   "ms": float(uniform_ms[i]), "uniform": True})  # fmt: skip
        for c in candidates:
            c.update(scored(c["arch"]))
        front_only = [c for c in candidates if not c["uniform"]]
        picks = {
            "predictor": front_only[0],
            "val-best of 4": val_best(front_only, 4),
            f"val-best of {len(front_only)}": val_best(front_only),
            "val-best + uniform": val_best(candidates),
            "test oracle": max(candidates, key=lambda c: c["test"]),
        }
        rows.append({
            "budget_ms": round(float(budget), 4),
            "candidates": [{**c, "arch": c["arch"].to_dict()} for c in candidates],
            "picks": {name: {"test": c["test"], "val": c["val"], "predicted": c["predicted"], "uniform": c["uniform"],
                             "shortlist_rank": candidates.index(c)} for name, c in picks.items()},
        })  # fmt: skip
        console.print(f"budget {number}/{len(budgets)} ({budget:.3f} ms): {len(candidates)} candidates, "
                      f"{len(scores)} subnets scored so far, {time.perf_counter() - started:.0f} s")  # fmt: skip

    names = list(rows[0]["picks"])
    summary = {}
    for name in names[1:]:
        gains = [r["picks"][name]["test"] - r["picks"]["predictor"]["test"] for r in rows]
        summary[name] = {
            "mean_gain": round(statistics.mean(gains), 3),
            "se": round(statistics.stdev(gains) / len(gains) ** 0.5, 3),
            "at_least_as_good": sum(g >= 0 for g in gains),
            "budgets": len(gains),
        }
    every = [c for r in rows for c in r["candidates"]]
    bias = [c["predicted"] - c["val"] for r in rows for c in r["candidates"][:1]]
    result = {
        "benchmark": "verify_shortlist",
        "command": command,
        "table": table.label,
        "predictor": str(demo_predictor_path()),
        "shortlist": args.shortlist,
        "subnets_scored": len(scores),
        "seconds": round(time.perf_counter() - started),
        "val_test_pearson": round(float(np.corrcoef([c["val"] for c in every], [c["test"] for c in every])[0, 1]), 3),
        "pick_predicted_minus_val_mean": round(statistics.mean(bias), 3),
        "val_minus_test": val_minus_test(rows),
        "summary": summary,
        "rows": rows,
    }
    print(json.dumps(result))

    view = Table(title=f"test top-1 of each pick (shortlist {args.shortlist}; picked on val, reported on test)")
    view.add_column("budget ms")
    for name in names:
        view.add_column(name)
    for r in rows:
        cells = [f"{r['picks'][n]['test']:.2f}" + (" (u)" if r["picks"][n]["uniform"] else "") for n in names]
        view.add_row(f"{r['budget_ms']:.3f}", *cells)
    view.add_row("mean gain", "-", *(f"{summary[n]['mean_gain']:+.3f} ± {summary[n]['se']}" for n in names[1:]))
    console.print(view)


if __name__ == "__main__":
    main()
