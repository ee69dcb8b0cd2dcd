"""How well latency predictions match measurements: the metrics every validation reports."""

from __future__ import annotations

import numpy as np

from ..errors import OFAEdgeError

# Kendall tau under which a model cannot rank subnets for a search, whether a latency table's sums
# against measured times (the shipped tables' calibration points: 0.86-0.91) or an accuracy
# predictor against held-out subnets (the shipped demo predictor: 0.79 overall, 0.58 within a
# resolution).
UNRANKED_TAU = 0.3


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
