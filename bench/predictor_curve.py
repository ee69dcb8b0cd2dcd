"""Learning curve of the accuracy predictor: held-out Kendall tau against the number of training subnets.

The held-out subnets are fixed: the 100 that ``ofa-edge predictor train`` holds out (20%, seed 0)
of the first 500 random subnets of the data file (the file the shipped predictor was fitted on;
later records extend it). The reference MLP (as ``predictor train`` fits it) is trained on the
corner subnets plus N random subnets drawn from the rest, for 3 draws each; the mean tau is kept.

    python bench/predictor_curve.py                       # the shipped demo data, ~3 min
    python bench/predictor_curve.py --data acc.jsonl --sizes 100 400 800

Prints a table on stderr and one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import replace

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from scipy.stats import kendalltau

from ofa_edge.search.accuracy_data import plan
from ofa_edge.search.predictor import fit_mlp, load_accuracy_data, split_holdout
from ofa_edge.space.space import get_space

FIRST_SAMPLES = 500  # the random subnets the fixed held-out set is drawn from


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="ofa_edge/weights/mbv3-fmnist-accuracy.jsonl")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 300, 400, 600, 0],
                        help="training subnets (0: all)")  # fmt: skip
    parser.add_argument("--draws", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    space = get_space("mbv3-fmnist")
    data = load_accuracy_data(args.data, space)
    first = len(plan(space, 0, 0)) + FIRST_SAMPLES  # plan indices of the corners and first random subnets
    early = data.index < first
    keep = np.flatnonzero(early)
    prefix = replace(data, archs=tuple(data.archs[i] for i in keep), features=data.features[keep],
                     top1=data.top1[keep], index=data.index[keep], resolution=data.resolution[keep],
                     kind=tuple(data.kind[i] for i in keep))  # fmt: skip
    _, held_prefix = split_holdout(prefix, 0.2, 0)
    held = np.isin(data.index, prefix.index[held_prefix])
    corner = np.array([k == "corner" for k in data.kind])
    pool = np.flatnonzero(~held & ~corner)
    x = data.features
    rows = []
    for size in args.sizes:
        n = size or len(pool)
        taus = []
        for draw in range(args.draws):
            pick = np.random.default_rng(draw).permutation(pool)[:n]
            train = np.r_[np.flatnonzero(corner), pick]
            model = fit_mlp(space, "curve", x[train], data.top1[train], seed=draw)
            taus.append(float(kendalltau(model.predict_features(x[held]), data.top1[held]).statistic))
        rows.append({"train_random": int(min(n, len(pool))), "taus": [round(t, 3) for t in taus],
                     "mean_tau": round(statistics.mean(taus), 3)})  # fmt: skip
    table = Table(title=f"MLP held-out Kendall tau ({int(held.sum())} fixed held-out subnets, {args.draws} draws)")
    for column in ("random training subnets", "tau per draw", "mean"):
        table.add_column(column)
    for row in rows:
        table.add_row(str(row["train_random"]), " ".join(map(str, row["taus"])), f"{row['mean_tau']:.3f}")
    Console(stderr=True).print(table)
    print(json.dumps({"benchmark": "predictor_curve", "data": args.data, "held_out": int(held.sum()), "rows": rows}))


if __name__ == "__main__":
    main()
