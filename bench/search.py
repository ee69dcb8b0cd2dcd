"""Evolution search: ours (vectorised) against the reference OFA EvolutionFinder and random search.

One run, side by side, with the same accuracy predictor and the same latency table:

* **ours**: :func:`ofa_edge.search.evolution_search` (population 100, 500 generations);
* **reference**: ``ofa.nas.search_algorithm.evolution.EvolutionFinder`` from pip ``ofa`` (same
  hyper-parameters), fed through small adapters: its accuracy predictor encodes archs with our
  space and calls our predictor, its efficiency predictor is ``LatencyTable.predict`` per arch,
  its arch manager is the reference's own ``MobileNetArchEncoder``;
* **random**: :func:`ofa_edge.search.random_search` with as many predictor evaluations as ours.

Speed: wall time of each at the middle budget, median of ``--repeats`` runs. Quality: the
predicted top-1 each finds at 5 latency budgets across the table's feasible range (one run each,
``--seed``). Defaults: the demo space's shipped predictor and its onnxruntime CPU table.

    python bench/search.py
    python bench/search.py --predictor my.predictor.safetensors --table my-table
    python bench/search.py --no-reference                    # without pip ofa
    python bench/search.py --busy --no-reference --repeats 5  # + the search beside other work

``--busy``: ``specialize`` (the product's search, its numeric threads capped at one) at the middle
budget, alone and while another process multiplies matrices on every core, and the uncapped
search under the same load.

Run it on an otherwise idle machine. Prints a table on stderr and one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import random
import shlex
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from ofa_edge.errors import OFAEdgeError
from ofa_edge.latency.store import default_cpu_table as default_table
from ofa_edge.latency.table import load_table
from ofa_edge.search.efficiency import LatencyModel
from ofa_edge.search.evolution import Budget, evolution_search, random_search
from ofa_edge.search.predictor import AccuracyPredictor, demo_predictor_path
from ofa_edge.space.arch import Arch

FRACTIONS = (0.2, 0.35, 0.5, 0.7, 0.9)  # of the feasible latency range


# ------------------------------------------------------------------------ reference
def _install_import_stand_ins() -> None:
    """``ofa`` imports torchvision and PIL for its ImageNet pipeline (unused here; PyPI's
    torchvision does not import beside this torch): stand-in modules with the names it touches."""
    if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is not None:
        return
    pil = types.ModuleType("PIL")
    image = types.ModuleType("PIL.Image")
    for code, name in enumerate(("NEAREST", "BILINEAR", "BICUBIC", "LANCZOS", "HAMMING", "BOX")):
        setattr(image, name, code)
    pil.Image = image
    torchvision = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    transforms.RandomResizedCrop = type("RandomResizedCrop", (), {})
    functional = types.ModuleType("torchvision.transforms.functional")
    datasets = types.ModuleType("torchvision.datasets")
    torchvision.transforms, torchvision.datasets, transforms.functional = transforms, datasets, functional
    for name, module in {"PIL": pil, "PIL.Image": image, "torchvision": torchvision,
                         "torchvision.transforms": transforms, "torchvision.transforms.functional": functional,
                         "torchvision.datasets": datasets}.items():  # fmt: skip
        sys.modules.setdefault(name, module)


def load_reference() -> tuple[Any, Any] | None:
    """(EvolutionFinder, MobileNetArchEncoder) of pip ``ofa``, or None when it is not installed."""
    if importlib.util.find_spec("ofa") is None:
        return None
    _install_import_stand_ins()
    evolution = importlib.import_module("ofa.nas.search_algorithm.evolution")
    encoder = importlib.import_module("ofa.nas.accuracy_predictor.arch_encoder")
    return evolution.EvolutionFinder, encoder.MobileNetArchEncoder


def _arch(arch_dict: dict[str, Any]) -> Arch:
    return Arch(tuple(arch_dict["ks"]), tuple(arch_dict["e"]), tuple(arch_dict["d"]), int(arch_dict["image_size"]))


class ReferenceAccuracy:
    """The reference's accuracy-predictor interface over our predictor (our encoding, torch output)."""

    def __init__(self, predictor: Any, space: Any, arch_encoder: Any) -> None:
        self.predictor, self.space, self.arch_encoder = predictor, space, arch_encoder

    def predict_acc(self, arch_dicts: list[dict[str, Any]]) -> Any:
        import torch

        features = np.stack([self.space.encode(_arch(a)) for a in arch_dicts])
        return torch.from_numpy(np.asarray(self.predictor.predict_features(features), dtype=np.float64))

    predict_accuracy = predict_acc


class ReferenceEfficiency:
    """The reference's efficiency-predictor interface: our table's prediction, one arch at a time."""

    def __init__(self, table: Any, space: Any) -> None:
        self.table, self.space = table, space

    def get_efficiency(self, arch_dict: dict[str, Any]) -> float:
        return self.table.predict(self.space, _arch(arch_dict))


def run_reference(reference: tuple[Any, Any], predictor: Any, space: Any, table: Any, resolutions: tuple[int, ...],
                  budget: float, population: int, generations: int, seed: int) -> dict[str, Any]:  # fmt: skip
    finder_cls, encoder_cls = reference
    encoder = encoder_cls(
        image_size_list=list(resolutions),
        ks_list=list(space.kernel_choices),
        expand_list=list(space.expand_choices),
        depth_list=list(space.depth_choices),
        n_stage=space.num_stages,
    )
    finder = finder_cls(ReferenceEfficiency(table, space), ReferenceAccuracy(predictor, space, encoder),
                        population_size=population, max_time_budget=generations)  # fmt: skip
    random.seed(seed)
    np.random.seed(seed)
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # it prints its progress to stdout
        _, best = finder.run_evolution_search(constraint=budget, verbose=False)
    seconds = time.perf_counter() - started
    accuracy, arch_dict, latency = best
    return {"accuracy": float(accuracy), "latency_ms": float(latency), "arch": _arch(arch_dict).to_dict(),
            "seconds": seconds}  # fmt: skip


# ------------------------------------------------------------------------------ busy
_BUSY_LOOP = "import numpy as np\na = np.random.rand(1000, 1000)\nwhile True:\n    a @ a"


def run_specialize(predictor: Any, table_name: str, budget: float, seed: int) -> float:
    from ofa_edge.search.specialize import Target, specialize

    started = time.perf_counter()
    specialize(predictor, [Target(table_name, budget)], seed=seed)
    return time.perf_counter() - started


def busy_comparison(predictor: Any, model: LatencyModel, table_name: str, budget: float, args: argparse.Namespace,
                    console: Console) -> dict[str, Any]:  # fmt: skip
    """Wall time of the search alone and beside a process that keeps every core busy."""
    import subprocess

    alone = [run_specialize(predictor, table_name, budget, args.seed) for _ in range(args.repeats)]
    console.print("timing beside a busy process ...")
    load = subprocess.Popen([sys.executable, "-c", _BUSY_LOOP])
    try:
        time.sleep(2.0)  # let the load start
        busy = [run_specialize(predictor, table_name, budget, args.seed) for _ in range(args.repeats)]
        uncapped = [run_ours(predictor, model, budget, args.population, args.generations, args.seed)["seconds"]
                    for _ in range(args.repeats)]  # fmt: skip
    finally:
        load.kill()
    result = {"alone_s": statistics.median(alone), "busy_s": statistics.median(busy),
              "uncapped_busy_s": statistics.median(uncapped)}  # fmt: skip
    result["busy_over_alone"] = result["busy_s"] / result["alone_s"]
    return result


# ------------------------------------------------------------------------------ ours
def run_ours(predictor: Any, model: LatencyModel, budget: float, population: int, generations: int,
             seed: int) -> dict[str, Any]:  # fmt: skip
    started = time.perf_counter()
    result = evolution_search(model.space, predictor, [Budget(model, budget)], population_size=population,
                              generations=generations, seed=seed)  # fmt: skip
    seconds = time.perf_counter() - started
    return {"accuracy": result.accuracy, "latency_ms": model.table.predict(model.space, result.arch),
            "arch": result.arch.to_dict(), "seconds": seconds, "evaluations": result.evaluations}  # fmt: skip


def run_random(predictor: Any, model: LatencyModel, budget: float, evaluations: int, seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = random_search(model.space, predictor, [Budget(model, budget)], evaluations, seed=seed)
    except OFAEdgeError as exc:  # a budget too tight for random draws
        return {"accuracy": None, "error": str(exc), "seconds": time.perf_counter() - started}
    seconds = time.perf_counter() - started
    return {"accuracy": result.accuracy, "latency_ms": model.table.predict(model.space, result.arch),
            "arch": result.arch.to_dict(), "seconds": seconds, "evaluations": result.evaluations}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictor", type=Path, default=None, help="default: the demo supernet's shipped one")
    parser.add_argument("--table", default=None, help="default: onnxruntime-cpu-fp32-SPACE")
    parser.add_argument("--population", type=int, default=100)
    parser.add_argument("--generations", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method at the middle budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-reference", action="store_true", help="skip pip ofa's EvolutionFinder")
    parser.add_argument("--busy", action="store_true", help="also time the search beside a busy process")
    args = parser.parse_args()
    console = Console(stderr=True, width=130)
    command = shlex.join(["python", "bench/search.py", *sys.argv[1:]])
    try:
        predictor = AccuracyPredictor.load(args.predictor if args.predictor is not None else demo_predictor_path())
        space = predictor.space
        table_name = args.table or default_table(space.name)
        model = LatencyModel(load_table(table_name), space, name=table_name)
    except OFAEdgeError as exc:
        sys.exit(f"error: {exc}")
    reference = None if args.no_reference else load_reference()
    if reference is None and not args.no_reference:
        console.print("note: pip ofa is not installed; the reference column is skipped")
    lo, hi = model.range()
    budgets = [lo + f * (hi - lo) for f in FRACTIONS]
    middle = budgets[len(budgets) // 2]
    pop, gens = args.population, args.generations

    # Speed: every method at the middle budget, median of --repeats runs.
    console.print(f"timing at {middle:.3g} ms, {args.repeats} runs each ...")
    ours_runs = [run_ours(predictor, model, middle, pop, gens, args.seed) for _ in range(args.repeats)]
    evaluations = ours_runs[0]["evaluations"]
    random_runs = [run_random(predictor, model, middle, evaluations, args.seed) for _ in range(args.repeats)]
    reference_runs = [
        run_reference(reference, predictor, space, model.table, model.resolutions, middle, pop, gens, args.seed)
        for _ in range(args.repeats if reference is not None else 0)
    ]

    def median_s(runs: list[dict[str, Any]]) -> float | None:
        return statistics.median(r["seconds"] for r in runs) if runs else None

    speed = {"budget_ms": middle, "repeats": args.repeats, "ours_s": median_s(ours_runs),
             "reference_s": median_s(reference_runs), "random_s": median_s(random_runs)}  # fmt: skip
    speed["reference_over_ours"] = speed["reference_s"] / speed["ours_s"] if reference_runs else None
    speed["random_over_ours"] = speed["random_s"] / speed["ours_s"]

    busy = busy_comparison(predictor, model, table_name, middle, args, console) if args.busy else None

    # Quality: the predicted top-1 each finds at 5 budgets across the feasible range.
    rows = []
    for fraction, budget in zip(FRACTIONS, budgets):
        console.print(f"budget {budget:.3g} ms ({fraction:.0%} of the range) ...")
        ours = run_ours(predictor, model, budget, pop, gens, args.seed)
        row = {"fraction": fraction, "budget_ms": budget, "ours": ours,
               "random": run_random(predictor, model, budget, ours["evaluations"], args.seed),
               "reference": run_reference(reference, predictor, space, model.table, model.resolutions, budget, pop,
                                          gens, args.seed) if reference is not None else None}  # fmt: skip
        rows.append(row)

    def fmt(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    timing = Table(title=f"{space.name} on {table_name}: {pop} x {gens} evolution, {evaluations:,} evaluations")
    for column in ("method", "median wall (s)", "x ours"):
        timing.add_column(column, justify="right")
    timing.add_row("ours (vectorised)", fmt(speed["ours_s"], ".3f"), "1.0")
    reference_row = (fmt(speed["reference_s"], ".2f"), fmt(speed["reference_over_ours"], ".1f"))
    timing.add_row("reference EvolutionFinder", *reference_row)
    timing.add_row("random search", fmt(speed["random_s"], ".3f"), fmt(speed["random_over_ours"], ".1f"))
    console.print(timing)
    quality = Table(title="predicted top-1 (%) found under each budget (latency ms of the found subnet)")
    for column in ("budget (ms)", "ours", "reference", "random"):
        quality.add_column(column, justify="right")
    for row in rows:
        cells = []
        for key in ("ours", "reference", "random"):
            found = row[key]
            accuracy = found.get("accuracy") if found else None
            cells.append("-" if accuracy is None else f"{accuracy:.3f} ({found['latency_ms']:.3g})")
        quality.add_row(f"{row['budget_ms']:.3g} ({row['fraction']:.0%})", *cells)
    console.print(quality)
    if busy is not None:
        loaded = Table(title="specialize at the middle budget, beside a process busy on every core (median s)")
        for column in ("alone", "busy", "busy / alone", "busy, threads uncapped"):
            loaded.add_column(column, justify="right")
        loaded.add_row(f"{busy['alone_s']:.3f}", f"{busy['busy_s']:.3f}", f"{busy['busy_over_alone']:.2f}",
                       f"{busy['uncapped_busy_s']:.3f}")  # fmt: skip
        console.print(loaded)
    print(json.dumps({
        "benchmark": "search", "command": command, "space": space.name, "table": table_name,
        "table_label": model.table.label, "predictor": str(args.predictor or demo_predictor_path()),
        "population": pop, "generations": gens, "evaluations": evaluations, "seed": args.seed,
        "feasible_ms": [lo, hi], "speed": speed, "busy": busy, "budgets": rows,
        "reference": "ofa.nas.search_algorithm.evolution.EvolutionFinder" if reference is not None else None,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
