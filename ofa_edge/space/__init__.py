"""Search spaces: the elastic choices of a supernet and everything computed from an arch alone
(validation, sampling, evolution operators, predictor encoding, block specs, MACs, params).
Imports numpy only, never torch."""

from .arch import Arch, load_arch, save_arch
from .space import SPACE_NAMES, BlockSpec, SearchSpace, StageSpec, corner_archs, get_space, make_divisible

__all__ = [
    "SPACE_NAMES",
    "Arch",
    "BlockSpec",
    "SearchSpace",
    "StageSpec",
    "corner_archs",
    "get_space",
    "load_arch",
    "make_divisible",
    "save_arch",
]
