"""ofa-edge's search against the reference tutorial's EvolutionFinder on the official release.

Both search the ``ofa_mbv3_d234_e346_k357_w1.2`` space with the OFA authors' accuracy predictor
(``acc_predictor.pth``) and their Samsung Note10 latency tables, at budgets of 15, 20, 25, 30 and
40 ms, three seeds each, one thread:

* **ours**: ``ofa_edge.search.specialize`` with the shipped predictor ``ofa-mbv3-w1.2`` (the same
  file, converted) and the shipped ``note10`` table (population 100, 500 generations);
* **reference**: ``ofa/tutorial/evolution_finder.py`` of pip ``ofa`` (same hyper-parameters) with
  its own ``AccuracyPredictor`` holding ``acc_predictor.pth`` and its own ``LatencyTable`` reading
  the same YAML files (``tests/fixtures/official/``, unchanged copies of the published ones).

Per budget: predicted top-1 found (mean of the seeds), note10 latency of each pick by the
reference's own table, search wall time (median). Also the whole command's wall time
(``ofa-edge specialize --supernet ofa_mbv3_d234_e346_k357_w1.2 --table note10 --budget 25ms``,
median of 5 runs, no plot). Run on an idle machine.

    python bench/official_search.py
    python bench/official_search.py --budgets 25 --seeds 1      # quick look

Prints a table on stderr and one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search import _install_import_stand_ins  # the bench folder's shared stand-ins

from ofa_edge.search.predictor import load_predictor
from ofa_edge.search.specialize import Target, specialize

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "official"
SUPERNET = "ofa_mbv3_d234_e346_k357_w1.2"
RESOLUTIONS = (160, 176, 192, 208, 224)


def tutorial_module(name: str) -> ModuleType:
    """``ofa/tutorial/NAME.py`` of pip ``ofa``, loaded on its own (the package's ``__init__``
    imports download helpers this bench does not need)."""
    _install_import_stand_ins()
    spec = importlib.util.find_spec("ofa")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the reference package 'ofa' is not installed: run scripts/setup.sh")
    path = Path(next(iter(spec.submodule_search_locations))) / "tutorial" / f"{name}.py"
    module_spec = importlib.util.spec_from_file_location(f"ofa_tutorial_{name}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def reference_parts() -> tuple[Any, Any, Any]:
    """(EvolutionFinder class, its accuracy predictor, its note10 latency table), from local files."""
    import torch
    import yaml

    latency = tutorial_module("latency_table")
    accuracy = tutorial_module("accuracy_predictor")
    finder = tutorial_module("evolution_finder")
    predictor = accuracy.AccuracyPredictor(pretrained=False, device="cpu")
    predictor.model.load_state_dict(torch.load(FIXTURES / "acc_predictor.pth", map_location="cpu", weights_only=True))
    table = latency.LatencyTable.__new__(latency.LatencyTable)  # its __init__ downloads the files
    table.latency_tables = {}
    for r in RESOLUTIONS:
        estimator = latency.LatencyEstimator.__new__(latency.LatencyEstimator)
        estimator.lut = yaml.safe_load((FIXTURES / f"note10_{r}_lookup_table.yaml").read_text())
        table.latency_tables[r] = estimator
    return finder.EvolutionFinder, predictor, table


def run_reference(parts: tuple[Any, Any, Any], budget: float, seed: int) -> dict[str, Any]:
    finder_cls, predictor, table = parts
    finder = finder_cls("note10", budget, table, predictor)
    random.seed(seed)
    np.random.seed(seed)
    started = time.perf_counter()
    with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet), contextlib.redirect_stdout(quiet):
        _, (accuracy, arch, _) = finder.run_evolution_search()  # (its progress bar silenced)
    return {"accuracy": 100 * float(accuracy), "arch": arch, "seconds": time.perf_counter() - started}


def run_ours(predictor: Any, budget: float, seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    result = specialize(predictor, [Target("note10", budget)], seed=seed)[0]
    arch = result.arch
    spec = {"ks": list(arch.ks), "e": list(arch.e), "d": list(arch.d), "r": [arch.r]}
    return {"accuracy": result.accuracy, "arch": spec, "seconds": time.perf_counter() - started}


def command_wall(repeats: int) -> float:
    """Median wall time of the headline command, start to exit (imports included)."""
    times = []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(repeats):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "ofa_edge.cli", "specialize", "--supernet", SUPERNET, "--table",
                            "note10", "--budget", "25ms", "--no-plot", "--out", out],
                           check=True, capture_output=True)  # fmt: skip
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def compare(budgets: list[float], seeds: list[int]) -> list[dict[str, Any]]:
    import torch

    torch.set_num_threads(1)
    parts = reference_parts()
    ours_predictor = load_predictor("ofa-mbv3-w1.2")
    rows = []
    for budget in budgets:
        runs = {"ours": [run_ours(ours_predictor, budget, s) for s in seeds],
                "reference": [run_reference(parts, budget, s) for s in seeds]}  # fmt: skip
        row: dict[str, Any] = {"budget_ms": budget}
        for who, found in runs.items():
            latencies = [parts[2].predict_efficiency(f["arch"]) for f in found]  # the reference's own table
            row[who] = {"top1_mean": statistics.mean(f["accuracy"] for f in found),
                        "top1": [round(f["accuracy"], 3) for f in found],
                        "note10_ms": [round(x, 3) for x in latencies], "within_budget": max(latencies) <= budget,
                        "seconds_median": statistics.median(f["seconds"] for f in found)}  # fmt: skip
        row["speedup"] = row["reference"]["seconds_median"] / row["ours"]["seconds_median"]
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[15, 20, 25, 30, 40])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per budget")
    parser.add_argument("--command-repeats", type=int, default=5)
    args = parser.parse_args()
    console = Console(stderr=True)
    with threadpool_limits(limits=1):
        rows = compare(args.budgets, list(range(args.seeds)))
    wall = command_wall(args.command_repeats)
    table = Table("budget", "ours top-1", "ref top-1", "ours note10 ms", "ref note10 ms", "ours s", "ref s", "x")
    for row in rows:
        o, r = row["ours"], row["reference"]
        table.add_row(f"{row['budget_ms']:g} ms", f"{o['top1_mean']:.2f}", f"{r['top1_mean']:.2f}",
                      f"{max(o['note10_ms']):.2f}", f"{max(r['note10_ms']):.2f}", f"{o['seconds_median']:.2f}",
                      f"{r['seconds_median']:.1f}", f"{row['speedup']:.0f}")  # fmt: skip
    console.print(table)
    console.print(f"`ofa-edge specialize --supernet {SUPERNET} --table note10 --budget 25ms`: {wall:.2f} s wall")
    print(json.dumps({"rows": rows, "command_wall_s": wall, "seeds": args.seeds}, indent=1))


if __name__ == "__main__":
    main()
