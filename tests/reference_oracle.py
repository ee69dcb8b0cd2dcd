"""The reference OFA implementation (pip package ``ofa``) as a test oracle.

``ofa`` is a required test dependency (``scripts/setup.sh`` installs it): the parity tests fail,
with ``MISSING`` as the message, when it is not installed.

``ofa`` imports torchvision and PIL at import time for its ImageNet data pipeline, which these
tests never use (and PyPI's torchvision does not import beside the CPU torch here). We register
stand-in modules that provide only the names those imports touch, then import the reference
network code. The project's own code never imports ``ofa``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import types
from typing import Any

OFA_VERSION = "0.1.0.post202307202001"
MISSING = "the reference package 'ofa' is a test dependency: run scripts/setup.sh"


def _install_import_stand_ins() -> None:
    pil = types.ModuleType("PIL")
    image = types.ModuleType("PIL.Image")
    for code, name in enumerate(("NEAREST", "BILINEAR", "BICUBIC", "LANCZOS", "HAMMING", "BOX")):
        setattr(image, name, code)
    pil.Image = image
    torchvision = types.ModuleType("torchvision")
    torchvision._ofa_edge_stand_in = True
    transforms = types.ModuleType("torchvision.transforms")
    transforms.RandomResizedCrop = type("RandomResizedCrop", (), {})
    functional = types.ModuleType("torchvision.transforms.functional")
    datasets = types.ModuleType("torchvision.datasets")
    torchvision.transforms, torchvision.datasets, transforms.functional = transforms, datasets, functional
    for name, module in {
        "PIL": pil,
        "PIL.Image": image,
        "torchvision": torchvision,
        "torchvision.transforms": transforms,
        "torchvision.transforms.functional": functional,
        "torchvision.datasets": datasets,
    }.items():
        sys.modules.setdefault(name, module)


def reference_ofa_mbv3() -> Any | None:
    """The reference ``OFAMobileNetV3`` class, or None when the ``ofa`` package is not installed
    (the benches run without it; tests call ``require_reference_ofa_mbv3``)."""
    module = reference_module("ofa.imagenet_classification.elastic_nn.networks.ofa_mbv3")
    return None if module is None else module.OFAMobileNetV3


def reference_module(name: str) -> Any | None:
    """A module of the reference package (e.g. ``ofa.imagenet_classification.networks``,
    ``ofa.utils``) imported beside the stand-ins, or None when ``ofa`` is not installed."""
    if importlib.util.find_spec("ofa") is None:
        return None
    before = set(sys.modules)
    _install_import_stand_ins()
    try:
        module = importlib.import_module(name)
    finally:
        # Take the stand-ins out again so that other tests importing the real PIL get it.
        for stand_in in ("PIL", "PIL.Image", "torchvision", "torchvision.transforms",
                         "torchvision.transforms.functional", "torchvision.datasets"):  # fmt: skip
            if stand_in not in before and getattr(sys.modules.get(stand_in), "__name__", None) is not None:
                module_obj = sys.modules.get(stand_in)
                if module_obj is not None and getattr(module_obj, "__file__", None) is None:
                    del sys.modules[stand_in]
    return module


def require_reference_ofa_mbv3() -> Any:
    """The reference ``OFAMobileNetV3`` class; fails the calling test when ``ofa`` is not installed
    (or another version than ``OFA_VERSION`` is)."""
    return require_reference_module("ofa.imagenet_classification.elastic_nn.networks.ofa_mbv3").OFAMobileNetV3


def require_reference_module(name: str) -> Any:
    """:func:`reference_module`; fails the calling test when ``ofa`` is not installed (or another
    version than ``OFA_VERSION`` is)."""
    import pytest

    module = reference_module(name)
    if module is None:
        pytest.fail(MISSING, pytrace=False)
    installed = importlib.metadata.version("ofa")
    if installed != OFA_VERSION:
        pytest.fail(f"the reference package 'ofa' is {installed}, the tests need {OFA_VERSION}: run scripts/setup.sh",
                    pytrace=False)  # fmt: skip
    return module
