"""Search: populations of archs, efficiency models, evolution and NSGA-II under budgets, and
specialisation for several devices at once. Names load on first use (pymoo and matplotlib only
when NSGA-II or a plot needs them)::

    import ofa_edge as oe
    results = oe.specialize(predictor, [oe.Target("onnxruntime-cpu-fp32-mbv3-fmnist", 0.3)])

(``ofa_edge.search.specialize`` is the module; the function is ``ofa_edge.specialize``.)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "Population": ".population",
    "encode_population": ".population",
    "LatencyModel": ".efficiency",
    "CostModel": ".efficiency",
    "macs_model": ".efficiency",
    "params_model": ".efficiency",
    "feasible_range": ".efficiency",
    "Budget": ".evolution",
    "Front": ".evolution",
    "SearchResult": ".evolution",
    "FeaturePredictor": ".evolution",
    "evolution_search": ".evolution",
    "random_search": ".evolution",
    "nondominated": ".evolution",
    "nsga2_search": ".nsga",
    "parse_latency": ".budget",
    "parse_count": ".budget",
    "BudgetError": ".budget",
    "Target": ".specialize",
    "Result": ".specialize",
    "plot_front": ".specialize",
    "write_outputs": ".specialize",
}
_ALIASES = {"encode_population": "encode"}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ofa_edge.search' has no attribute '{name}'")
    value = getattr(importlib.import_module(module, __name__), _ALIASES.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
