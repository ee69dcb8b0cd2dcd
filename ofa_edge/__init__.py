"""ofa-edge: train one once-for-all supernet, specialise it for many edge devices.

Everything a user needs is importable from here; names load on first use, so ``import ofa_edge``
(and the CLI's ``--help``) does not pay for torch until a network is touched::

    import ofa_edge as oe
    space = oe.get_space("mbv3-fmnist")
    net = oe.load_supernet("demo")
"""

from __future__ import annotations

from ._lazy import lazy_exports
from ._version import __version__ as __version__

# public name -> module (relative to this package) that defines it, in pipeline order
_EXPORTS: dict[str, str] = {
    # errors
    "OFAEdgeError": ".errors",
    "ArchError": ".errors",
    "CheckpointError": ".errors",
    # space: choices, archs, counting
    "SPACE_NAMES": ".space",
    "Arch": ".space",
    "SearchSpace": ".space",
    "get_space": ".space",
    "load_arch": ".space",
    "read_arch": ".space.arch",
    "save_arch": ".space",
    "describe_arch": ".space.describe",
    # nn: supernet, subnets, checkpoints, BatchNorm
    "REGISTRY": ".hub",
    "get_entry": ".hub",
    "find_weights": ".hub.cache",
    "OFAMobileNetV3": ".nn",
    "MobileNetV3Subnet": ".nn",
    "load_supernet": ".nn",
    "save_supernet": ".nn",
    "recalibrate_bn": ".nn",
    # train: data, schedules, training, scoring
    "load_dataset": ".train",
    "SCHEDULE_NAMES": ".train",
    "get_schedule": ".train",
    "train_supernet": ".train.run",
    "SupernetScorer": ".train",
    "evaluate_arch": ".train",
    "corner_archs": ".space",
    # latency: backends and tables
    "list_backends": ".profilers",
    "make_backend": ".profilers",
    "LatencyTable": ".latency",
    "load_table": ".latency",
    "list_tables": ".latency.store",
    "profile_table": ".latency.profiling",
    "validate_table": ".latency.profiling",
    "calibrate_table": ".latency.profiling",
    # search: accuracy predictor, budgets, specialisation
    "collect_accuracy_data": ".search.accuracy_data",
    "load_accuracy_data": ".search.predictor",
    "train_predictor": ".search.predictor",
    "AccuracyPredictor": ".search.predictor",
    "load_predictor": ".search.predictor",
    "Target": ".search.specialize",
    "specialize": ".search.specialize",
    # export: convert, verify, time; deploy = specialise + export
    "export_subnet": ".export.pipeline",
    "ExportConfig": ".export.config",
    "deploy": ".export.deploy",
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
