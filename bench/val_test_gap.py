"""How much of its validation score does a subnet keep on test: searched, random and uniform subnets.

``bench/verify_shortlist.py`` found the searched (mixed) subnets losing about twice as much top-1
from the validation split to the test split as uniform ones (0.315 against 0.149 points). Two
explanations predict different things for subnets nobody selected:

* **selection**: the predictor learnt from val scores, so the subnets it ranks highest are partly
  those with val-specific luck, which they lose on test; then *random* mixed subnets keep their
  val score as well as uniform ones do, and only the searched ones lose more;
* **a property of mixed subnets**: then random mixed subnets lose as much as the searched ones.

Scored, each on val and on test (BatchNorm recalibrated on the same 2000 training images,
onnxruntime; the demo supernet): the search's pick at ``--budgets`` budgets over the feasible range
of the demo's onnxruntime CPU table, ``--random`` subnets drawn uniformly from the space, and every
uniform subnet (one kernel, expand ratio and depth everywhere) at ``--uniform-resolution``.
Reported per group: mean and sd of val minus test top-1, its standard error, and the same at
28 px only. Prints JSON on stdout and a table on stderr.

    python bench/val_test_gap.py                     # 28 min on the AMD VM (8 + 48 + 27 subnets, ~20 s each)
    python bench/val_test_gap.py --budgets 2 --random 4 --uniform-resolution 20
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import statistics
import sys
import time

import numpy as np
from rich.console import Console
from rich.table import Table

import ofa_edge as oe
from ofa_edge.latency.store import default_cpu_table
from ofa_edge.search.efficiency import LatencyModel, feasible_range
from ofa_edge.search.predictor import AccuracyPredictor, demo_predictor_path
from ofa_edge.search.specialize import Target, specialize
from ofa_edge.space.space import uniform_archs


def gap_summary(rows: list[dict]) -> dict[str, float | int | None]:
    """Mean, sd and standard error of val minus test top-1 over ``rows``."""
    drops = [r["val"] - r["test"] for r in rows]
    if not drops:
        return {"subnets": 0, "mean": None, "sd": None, "se": None}
    sd = statistics.stdev(drops) if len(drops) > 1 else None
    return {"subnets": len(drops), "mean": round(statistics.mean(drops), 3),
            "sd": None if sd is None else round(sd, 3),
            "se": None if sd is None else round(sd / len(drops) ** 0.5, 3)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, default=8, help="search picks at budgets over the feasible range")
    parser.add_argument("--random", type=int, default=48, help="random subnets drawn from the whole space")
    parser.add_argument("--uniform-resolution", type=int, default=28)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.budgets < 1 or args.random < 2:
        parser.error("--budgets needs at least 1 and --random at least 2 (a standard deviation)")
    predictor = AccuracyPredictor.load(demo_predictor_path())
    space = predictor.space
    if args.uniform_resolution not in space.resolutions:
        parser.error(f"--uniform-resolution must be one of {', '.join(map(str, space.resolutions))}")
    console = Console(stderr=True, width=140)
    command = shlex.join(["python", "bench/val_test_gap.py", *sys.argv[1:]])
    started = time.perf_counter()

    table = oe.load_table(default_cpu_table(space.name))
    low, high = feasible_range(LatencyModel(table, space), space)
    budgets = np.linspace(low, high, args.budgets + 2)[1:-1]
    groups: dict[str, list[oe.Arch]] = {
        "searched": [specialize(predictor, [Target(table, float(b))], space=space)[0].arch for b in budgets],
        "random": [space.sample(random.Random(args.seed * 1000 + i)) for i in range(args.random)],
        "uniform": [a for a in uniform_archs(space) if a.r == args.uniform_resolution],
    }
    scorers = {split: oe.SupernetScorer.open("demo", split=split, engine="onnxruntime") for split in ("val", "test")}
    scores: dict[oe.Arch, dict[str, float]] = {}
    total = len({a for archs in groups.values() for a in archs})
    rows: dict[str, list[dict]] = {}
    for name, archs in groups.items():
        rows[name] = []
        for arch in archs:
            if arch not in scores:
                scores[arch] = {split: scorer.score(arch) for split, scorer in scorers.items()}
                if len(scores) % 10 == 0:
                    console.print(f"{len(scores)}/{total} subnets scored, {time.perf_counter() - started:.0f} s")
            predicted = float(predictor.predict([arch])[0])
            rows[name].append({"arch": arch.to_dict(), "predicted": predicted, **scores[arch]})

    summary = {name: {"all": gap_summary(r), "r28": gap_summary([x for x in r if x["arch"]["r"] == 28])}
               for name, r in rows.items()}  # fmt: skip
    result = {
        "benchmark": "val_test_gap",
        "command": command,
        "predictor": str(demo_predictor_path()),
        "subnets_scored": len(scores),
        "seconds": round(time.perf_counter() - started),
        "val_minus_test": summary,
        "rows": rows,
    }
    print(json.dumps(result))

    view = Table(title="val minus test top-1 (points): mean ± standard error (subnets)")
    for column in ("group", "all resolutions", "28 px only", "mean val", "mean test", "mean predicted"):
        view.add_column(column)
    for name, r in rows.items():
        cells = []
        for part in ("all", "r28"):
            s = summary[name][part]
            if s["mean"] is None:
                cells.append("-")
            else:
                se = "" if s["se"] is None else f" ± {s['se']:.3f}"
                cells.append(f"{s['mean']:+.3f}{se} ({s['subnets']})")
        view.add_row(name, *cells, *(f"{statistics.mean(x[k] for x in r):.2f}" for k in ("val", "test", "predicted")))
    console.print(view)


if __name__ == "__main__":
    main()
