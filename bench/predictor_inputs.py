"""Does a richer predictor input, or an ensemble, rank held-out subnets better than the one-hot MLP?

The split is the one ``ofa-edge predictor train`` uses (20% of the random subnets held out, seed 0).
For each input, the reference MLP (as ``predictor train`` fits it) is trained with several seeds;
the held-out Kendall tau of each seed and of the seeds' mean prediction (an ensemble) are reported.
Inputs:

* ``onehot``: :meth:`SearchSpace.encode`, what the shipped predictor reads;
* ``+stage``: plus, per stage, the share of its 4 slots at each kernel and expand choice and a
  one-hot depth (aggregates the MLP would otherwise have to learn from few rows);
* ``+stage+macs``: plus the standardised log of the subnet's MACs.

    python bench/predictor_inputs.py                 # the shipped demo data, ~2 min (1304 records)

Prints a table on stderr and one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy.stats import kendalltau

from ofa_edge.errors import OFAEdgeError
from ofa_edge.search.predictor import (
    DEMO_PREDICTOR,
    MLPConfig,
    load_accuracy_data,
    split_holdout,
    train_mlp_weights,
)
from ofa_edge.space.arch import Arch
from ofa_edge.space.space import SearchSpace, get_space


def stage_features(space: SearchSpace, arch: Arch) -> np.ndarray:
    values: list[float] = []
    for stage in range(space.num_stages):
        active = [stage * space.max_depth + i for i in range(arch.d[stage])]
        values += [sum(arch.ks[s] == k for s in active) / space.max_depth for k in space.kernel_choices]
        values += [sum(arch.e[s] == e for s in active) / space.max_depth for e in space.expand_choices]
        values += [float(arch.d[stage] == d) for d in space.depth_choices]
    return np.array(values, dtype=np.float32)


def fit_and_predict(x_train: np.ndarray, y_train: np.ndarray, x_held: np.ndarray, seed: int) -> np.ndarray:
    """The reference MLP as ``predictor train`` fits it, on any input width (the predictor file's
    class checks the width against the space's encoding, so its forward pass is repeated here)."""
    config = MLPConfig()
    tensors, base_acc = train_mlp_weights(x_train, y_train, seed, config)
    h = x_held.astype(np.float32)
    for i in range(config.layers):
        h = np.maximum(h @ tensors[f"layers.{i}.weight"].T + tensors[f"layers.{i}.bias"], 0)
    return (h @ tensors["regressor.weight"].T)[:, 0].astype(np.float64) + base_acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEMO_PREDICTOR.parent / "mbv3-fmnist-accuracy.jsonl"))
    parser.add_argument("--space", default="mbv3-fmnist")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    console = Console(stderr=True)

    try:
        space = get_space(args.space)
        data = load_accuracy_data(args.data, space)
    except OFAEdgeError as error:
        parser.error(str(error))
    train, held = split_holdout(data, 0.2, 0)
    stages = np.stack([stage_features(space, a) for a in data.archs])
    log_macs = np.log([space.macs(a) for a in data.archs])
    log_macs = ((log_macs - log_macs.mean()) / log_macs.std()).astype(np.float32)[:, None]
    inputs = {
        "onehot": data.features,
        "+stage": np.concatenate([data.features, stages], 1),
        "+stage+macs": np.concatenate([data.features, stages, log_macs], 1),
    }
    truth = data.top1[held]
    results: dict[str, dict] = {}
    for name, x in inputs.items():
        started = time.perf_counter()
        predictions = [fit_and_predict(x[train], data.top1[train], x[held], seed) for seed in range(args.seeds)]
        taus = [float(kendalltau(truth, p).statistic) for p in predictions]
        ensemble = np.mean(predictions, 0)
        results[name] = {
            "features": x.shape[1],
            "tau_per_seed": [round(t, 4) for t in taus],
            "tau_median": round(statistics.median(taus), 4),
            "tau_ensemble": round(float(kendalltau(truth, ensemble).statistic), 4),
            "rmse_ensemble": round(float(np.sqrt(np.mean((ensemble - truth) ** 2))), 4),
            "seconds": round(time.perf_counter() - started, 1),
        }
        console.print(f"{name}: {results[name]['seconds']:.0f} s")

    table = Table(title=f"held-out Kendall tau ({int(held.sum())} subnets, {int(train.sum())} training rows)")
    for column in ("input", "features", "tau per seed", "median", "ensemble", "ensemble RMSE"):
        table.add_column(column)
    for name, r in results.items():
        table.add_row(name, str(r["features"]), " ".join(f"{t:.3f}" for t in r["tau_per_seed"]),
                      f"{r['tau_median']:.3f}", f"{r['tau_ensemble']:.3f}", f"{r['rmse_ensemble']:.3f}")  # fmt: skip
    console.print(table)
    print(json.dumps({"benchmark": "predictor_inputs", "data": args.data, "heldout": int(held.sum()),
                      "results": results}))  # fmt: skip


if __name__ == "__main__":
    main()
