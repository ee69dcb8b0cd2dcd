"""ofa-edge: train one once-for-all supernet, specialise it for many edge devices."""

from .arch import Arch, load_arch, save_arch
from .errors import ArchError, CheckpointError, OFAEdgeError
from .space import SPACE_NAMES, SearchSpace, get_space
from .subnet import MobileNetV3Subnet
from .supernet import OFAMobileNetV3

__version__ = "0.1.0"

__all__ = [
    "SPACE_NAMES",
    "Arch",
    "ArchError",
    "CheckpointError",
    "MobileNetV3Subnet",
    "OFAEdgeError",
    "OFAMobileNetV3",
    "SearchSpace",
    "get_space",
    "load_arch",
    "save_arch",
]
