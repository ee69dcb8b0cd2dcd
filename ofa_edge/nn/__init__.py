"""Networks: static layers, elastic (dynamic) ops, the supernet, the static subnet it extracts,
BatchNorm recalibration and safe checkpoint I/O."""

from .._lazy import lazy_exports

_EXPORTS = {
    "OFAMobileNetV3": ".supernet",
    "MobileNetV3Subnet": ".subnet",
    "recalibrate_bn": ".bn_calibration",
    "load_supernet": ".checkpoint",
    "save_supernet": ".checkpoint",
    "read_metadata": ".checkpoint",
    "state_fingerprint": ".checkpoint",
    "DEMO_NAME": ".checkpoint",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
