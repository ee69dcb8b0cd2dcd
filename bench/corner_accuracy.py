"""Corner-subnet accuracy of several Fashion-MNIST supernets, side by side.

Each supernet's 8 corner subnets (min/max depth x expand x kernel) are scored at the largest and
the smallest resolution after BN recalibration on the same training images, on the held-out
validation split (the split the training run held out, read from the weights' metadata) or on
the test split. Use it to choose between two trainings on validation, then report test.

    python bench/corner_accuracy.py --supernet demo --supernet runs/more/supernet.safetensors
    python bench/corner_accuracy.py --supernet demo --split test

Prints a table on stderr and one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
from rich.console import Console
from rich.table import Table

import ofa_edge as oe
from ofa_edge.nn import read_metadata


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet", action="append", required=True, help="'demo' or a file; repeat to compare")
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--calibration-images", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(stderr=True, width=140)

    results: dict[str, dict] = {}
    for name in args.supernet:
        started = time.perf_counter()
        scorer = oe.SupernetScorer.open(name, split=args.split, calibration_images=args.calibration_images)
        report = scorer.score_corners()
        results[name] = {"schedule": read_metadata(name).get("schedule", "?"), "top1": report,
                         "mean": round(statistics.mean(v for r in report.values() for v in r.values()), 2),
                         "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
        console.print(f"{name}: scored in {results[name]['seconds']:.0f} s")

    table = Table(title=f"corner subnets, Fashion-MNIST {args.split} top-1 (%)")
    table.add_column("corner @ px")
    for name in args.supernet:
        table.add_column(f"{name} ({results[name]['schedule']})")
    first = results[args.supernet[0]]["top1"]
    for resolution, corners in first.items():
        for corner in corners:
            table.add_row(f"{corner} @ {resolution}",
                          *(f"{results[n]['top1'][resolution][corner]:.2f}" for n in args.supernet))  # fmt: skip
    table.add_row("mean", *(f"{results[n]['mean']:.2f}" for n in args.supernet))
    console.print(table)
    print(json.dumps({"benchmark": "corner_accuracy", "split": args.split, "results": results}))


if __name__ == "__main__":
    try:
        main()
    except oe.OFAEdgeError as error:  # a missing or unreadable supernet, missing data: one line
        sys.exit(f"error: {error}")
