"""How well latency predictions match measurements: the metrics every validation reports."""

from __future__ import annotations

import numpy as np

from ..errors import OFAEdgeError


def fidelity(predicted: list[float], measured: list[float]) -> dict[str, float]:
    """Share within +-10 %, Kendall's tau and mean absolute percentage error of predictions."""
    from scipy.stats import kendalltau

    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    if len(p) < 2:
        raise OFAEdgeError("need at least 2 measured subnets to judge a latency model")
    rel = np.abs(p - m) / m
    tau = kendalltau(p, m).statistic
    return {
        "within_10pct": float(np.mean(rel <= 0.10)),
        "kendall_tau": float(tau),
        "mape": float(np.mean(rel)),
        "mean_bias": float(np.mean((p - m) / m)),
    }
