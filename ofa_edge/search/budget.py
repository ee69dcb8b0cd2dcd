"""Budgets as people write them: ``25ms``, ``0.5ms``, ``250us`` for latency; ``20M``, ``2.5M``,
``300K``, ``1.2G`` (or a plain integer) for MACs and params. A malformed one is one error line
that names the accepted forms."""

from __future__ import annotations

import math
import re

from ..errors import OFAEdgeError

LATENCY_FORMS = "a positive number with a unit ms or us, e.g. 25ms, 0.5ms or 250us"
COUNT_FORMS = "a positive count with an optional K, M or G suffix, e.g. 20M, 2.5M, 300K or 1200000"

_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_LATENCY = re.compile(rf"^{_NUMBER}\s*(ms|us|µs)$", re.IGNORECASE)
_COUNT = re.compile(rf"^{_NUMBER}\s*([kmg]?)$", re.IGNORECASE)
_TO_MS = {"ms": 1.0, "us": 1e-3, "µs": 1e-3}
_SCALE = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}


class BudgetError(OFAEdgeError):
    """A budget that cannot be read."""


def parse_latency(text: str) -> float:
    """A latency budget in milliseconds: ``"25ms"`` -> 25.0, ``"250us"`` -> 0.25."""
    match = _LATENCY.match(str(text).strip())
    value = float(match.group(1)) * _TO_MS[match.group(2).lower()] if match else math.nan
    if not match or not value > 0:
        raise BudgetError(f"invalid latency budget {str(text)!r}: give {LATENCY_FORMS}")
    return value


def parse_count(text: str, what: str = "MACs") -> int:
    """A MACs or params budget: ``"20M"`` -> 20_000_000, ``"2.5M"`` -> 2_500_000, ``"300K"``."""
    match = _COUNT.match(str(text).strip())
    value = round(float(match.group(1)) * _SCALE[match.group(2).lower()]) if match else 0
    if value < 1:
        raise BudgetError(f"invalid {what} budget {str(text)!r}: give {COUNT_FORMS}")
    return value


def format_ms(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}g} ms"


def format_count(value: float) -> str:
    """``566M``, ``1.2K``: three significant digits, the suffix chosen after rounding (999,999 is ``1M``)."""
    rounded = float(f"{value:.3g}")
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(rounded) >= scale:
            return f"{rounded / scale:.3g}{suffix}"
    return f"{value:.0f}"
