"""Networks: static layers, elastic (dynamic) ops, the supernet, the static subnet it extracts,
BatchNorm recalibration and safe checkpoint I/O."""

from .bn_calibration import recalibrate_bn
from .checkpoint import DEMO_NAME, load_supernet, read_metadata, save_supernet
from .subnet import MobileNetV3Subnet
from .supernet import OFAMobileNetV3

__all__ = ["DEMO_NAME", "MobileNetV3Subnet", "OFAMobileNetV3", "load_supernet", "read_metadata", "recalibrate_bn",
           "save_supernet"]  # fmt: skip
