"""What BatchNorm recalibration costs, the step that dominates scoring a subnet on the CPU.

Scoring one subnet for the predictor's data (`ofa-edge predictor data`) is BatchNorm recalibration
on 2000 training images in torch, then top-1 on 10,000 validation images through ONNX Runtime.
This bench times the recalibration of the demo supernet's largest, a middle and its smallest
subnet four ways, interleaved in one process (one thread, median of ``--repeats``):

- the per-channel statistics as ``torch.var_mean`` computes them (single-pass Welford; what
  ofa-edge used until 2026-11-29) or as the mean then the mean squared deviation (ofa-edge now,
  the reference's formula), and
- the supernet's weights in the default layout or channels-last (what training and scoring use).

It also checks that the two formulas give the same statistics (max abs difference of the
running variances) and the same top-1.

    python bench/bn_recalibration.py            # about 3 min on a 2-core VM
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table

from ofa_edge.nn import bn_calibration
from ofa_edge.nn.bn_calibration import recalibrate_bn
from ofa_edge.train.evaluate import SupernetScorer

FORMULAS = ("var_mean", "mean-then-deviation")


def welford_stats(self: bn_calibration._BatchStats, module, inputs, output) -> None:
    """The earlier statistics: torch.var_mean over (N, H, W), accumulated in float64."""
    x = inputs[0].detach()
    var, mean = torch.var_mean(x, dim=(0, 2, 3), correction=0)
    self.add(mean, var, x.shape[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(stderr=True, width=140)

    current = bn_calibration._BatchStats.__call__
    hooks = {"var_mean": welford_stats, "mean-then-deviation": current}
    scorer = SupernetScorer.open("demo", engine="onnxruntime")
    net, space = scorer.net, scorer.net.space
    archs = {"max": space.max_arch(28), "mid": space.sample(5), "min": space.min_arch(20)}
    layouts = {"default": torch.contiguous_format, "channels-last": torch.channels_last}

    rows = []
    for label, arch in archs.items():
        net.set_active(arch)
        batches = list(scorer.data.loader(scorer.data.calibration).epoch(0, resolution=arch.r))
        times: dict[tuple[str, str], list[float]] = {}
        variances: dict[str, torch.Tensor] = {}
        top1: dict[str, float] = {}
        try:
            for _ in range(args.repeats):
                for layout_name, layout in layouts.items():
                    net.to(memory_format=layout)
                    for formula in FORMULAS:
                        bn_calibration._BatchStats.__call__ = hooks[formula]
                        started = time.perf_counter()
                        recalibrate_bn(net, batches, max_images=len(scorer.data.calibration))
                        times.setdefault((layout_name, formula), []).append(time.perf_counter() - started)
                        variances[formula] = torch.cat([m.running_var for m in net.modules()
                                                        if isinstance(m, torch.nn.BatchNorm2d)])  # fmt: skip
            for formula in FORMULAS:  # top-1 with each formula's statistics
                bn_calibration._BatchStats.__call__ = hooks[formula]
                top1[formula] = scorer.score(arch)
        finally:
            bn_calibration._BatchStats.__call__ = current
            net.to(memory_format=torch.channels_last)
        medians = {key: statistics.median(v) for key, v in times.items()}
        baseline = medians[("default", "var_mean")]
        var_difference = float((variances["var_mean"] - variances["mean-then-deviation"]).abs().max())
        rows.append({
            "subnet": label,
            "resolution": arch.r,
            "seconds": {f"{layout}/{formula}": round(s, 3) for (layout, formula), s in medians.items()},
            "speedup_vs_default_var_mean": {f"{layout}/{formula}": round(baseline / s, 2)
                                            for (layout, formula), s in medians.items()},
            "max_abs_running_var_difference": var_difference,
            "top1": top1,
        })  # fmt: skip

    table = Table(title=f"BatchNorm recalibration on {len(scorer.data.calibration)} images, "
                        f"{args.threads} thread(s), median of {args.repeats} (seconds, speed-up)")  # fmt: skip
    keys = [f"{layout}/{formula}" for layout in layouts for formula in FORMULAS]
    for column in ("subnet", *keys, "max |dvar|", "top-1 (both)"):
        table.add_column(column)
    for row in rows:
        cells = [f"{row['seconds'][k]:.2f} ({row['speedup_vs_default_var_mean'][k]:.2f}x)" for k in keys]
        same = "/".join(f"{v:.2f}" for v in row["top1"].values())
        difference = f"{row['max_abs_running_var_difference']:.1e}"
        table.add_row(f"{row['subnet']} ({row['resolution']} px)", *cells, difference, same)
    console.print(table)
    print(json.dumps({"benchmark": "bn_recalibration", "threads": args.threads, "repeats": args.repeats, "rows": rows}))


if __name__ == "__main__":
    main()
