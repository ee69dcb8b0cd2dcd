"""The final pick by measurement: score a shortlist of the search's best subnets on held-out data.

The search returns the subnet whose *predicted* top-1 is highest among tens of thousands. The
maximum of many noisy predictions errs upward (the winner's curse): the pick is the subnet the
predictor over-rates most, not always the most accurate. Measuring a few near-best subnets on the
supernet's validation split (BatchNorm recalibrated, as ``predictor data`` scores them) and
keeping the best by measurement replaces that error by the smaller noise of one measurement.

The shortlist is the subnets of the search's Pareto front with the highest predicted top-1: all
meet every budget, and they differ in cost as well as in architecture (the search's final
population is mostly mutants of one subnet).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from ..errors import OFAEdgeError
from ..space.arch import Arch
from ..space.describe import describe_arch
from .specialize import Result


def shortlist(result: Result, size: int) -> list[tuple[Arch, float, float]]:
    """Up to ``size`` (arch, predicted top-1, predicted latency ms): the search's pick first, then
    the front's next best."""
    if size < 1:
        raise OFAEdgeError(f"a shortlist needs at least 1 subnet, got {size}")
    chosen = [(result.arch, result.accuracy, result.latency_ms)]
    if result.front is not None and size > 1:
        archs = result.front.archs(result.space)
        for i in np.argsort(-result.front.accuracy, kind="stable"):
            if len(chosen) == size:
                break
            if archs[i] != result.arch:
                chosen.append((archs[i], float(result.front.accuracy[i]), float(result.front.cost[i])))
    return chosen


def pick_by_measurement(
    result: Result,
    score: Callable[[Arch], float],
    size: int,
    progress: Callable[[int, int], None] | None = None,
) -> Result:
    """``result`` with its arch replaced by the shortlisted subnet that ``score`` (top-1 on
    held-out data) rates highest; ties keep the predictor's order. The result records every
    candidate's predicted and measured top-1, and a note when the pick changed."""
    candidates = shortlist(result, size)
    measured = []
    for done, (arch, _, _) in enumerate(candidates, 1):
        measured.append(float(score(arch)))
        if progress is not None:
            progress(done, len(candidates))
    best = max(range(len(candidates)), key=lambda i: (measured[i], -i))
    arch, predicted, latency_ms = candidates[best]
    table = [
        {"arch": a.to_dict(), "predicted_top1": round(p, 4), "measured_top1": round(m, 4), "latency_ms": ms}
        for (a, p, ms), m in zip(candidates, measured)
    ]
    notes = list(result.notes)
    if best != 0:
        notes.append(
            f"measured {len(candidates)} shortlisted subnets: kept the best measured ({measured[best]:.2f}% top-1, "
            f"predicted {predicted:.2f}%) over the predictor's pick "
            f"({measured[0]:.2f}%, predicted {candidates[0][1]:.2f}%)"
        )
    space = result.space
    return dataclasses.replace(
        result,
        arch=arch,
        accuracy=predicted,
        latency_ms=latency_ms,
        macs=space.macs(arch),
        params=space.params(arch),
        summary=describe_arch(space, arch),
        measured_top1=measured[best],
        shortlist=table,
        notes=notes,
    )
