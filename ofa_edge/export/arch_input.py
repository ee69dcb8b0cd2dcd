"""The arch an export is asked for, in the form of its supernet's family.

An arch file names no family; its fields do. The MBConv families (OFA-MobileNetV3,
OFA-ProxylessNAS) write ``{"ks", "e", "d", "r"}``, OFA-ResNet ``{"d", "e", "w", "r"}``: an arch is
parsed by the fields only its form has (:func:`parse_arch`), and checked against the supernet's
space once that is known (:func:`fit_arch`), where an arch of another family is one line. Each
family's part is one :class:`ArchForm` in :data:`ARCH_FORMS`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ArchError, OFAEdgeError
from ..fileio import read_user_json
from ..hub.registry import get_entry, is_registered
from ..nn.checkpoint import FORMAT, read_metadata
from ..space.arch import Arch, ArchSource, arch_from_dict, read_arch
from ..space.official_net import is_net_config
from ..space.resnet import ResNetArch, ResNetSpace
from ..space.space import SearchSpace, get_space, space_from_config_dict

ExportArch = Arch | ResNetArch
AnySpace = SearchSpace | ResNetSpace


@dataclass(frozen=True)
class RequestedArch:
    """An arch as asked for, before it is checked against a space. ``official``: the official net
    it was read from (its space and resolution note), None for an arch JSON or object."""

    arch: ExportArch
    origin: str = "the arch"
    official: ArchSource | None = None


@dataclass(frozen=True)
class FittedArch:
    """An arch validated in ``space``; ``note``: one line when it is read as a static net at a
    resolution outside the space's training range (``space`` then accepts it)."""

    space: AnySpace
    arch: ExportArch
    note: str | None = None


def _fit_static(requested: RequestedArch, space: AnySpace, whose: str) -> FittedArch:
    # An exported net is static: a space reads it at any resolution (with_resolution).
    source = requested.official or ArchSource(requested.arch, origin=requested.origin)
    space, arch = source.fit(space, whose=whose, static=True)
    return FittedArch(space, arch, space.resolution_note(arch.r))


@dataclass(frozen=True)
class ArchForm:
    """How one family writes and checks an arch: its class, its fields, and how an arch is
    validated in a space of the family."""

    label: str
    arch_type: type
    fields: tuple[str, ...]
    fit: Callable[[RequestedArch, Any, str], FittedArch]

    def describe(self) -> str:
        return f"{self.label} ({', '.join(self.fields)})"


MBCONV_FORM = ArchForm("an MBConv arch", Arch, ("ks", "e", "d", "r"), _fit_static)
RESNET_FORM = ArchForm("an OFA-ResNet arch", ResNetArch, ("d", "e", "w", "r"), _fit_static)
ARCH_FORMS: dict[str, ArchForm] = {"mbv3": MBCONV_FORM, "proxyless": MBCONV_FORM, "resnet": RESNET_FORM}


def form_of_space(space: AnySpace) -> ArchForm:
    if space.family not in ARCH_FORMS:
        raise OFAEdgeError(f"space {space.name} is of family '{space.family}', which export does not know")
    return ARCH_FORMS[space.family]


def _form_of_arch(arch: ExportArch) -> ArchForm:
    return next(form for form in ARCH_FORMS.values() if isinstance(arch, form.arch_type))


def parse_arch(data: Any) -> ExportArch:
    """An arch object parsed in the form its fields name (the MBConv form when none does: its
    message then says what is missing); shapes and types only."""
    return arch_from_dict(data)


def requested_arch(arch: ExportArch | ArchSource | RequestedArch | dict | str | os.PathLike[str]) -> RequestedArch:
    """What :func:`~ofa_edge.export.export_subnet` takes as an arch, as a :class:`RequestedArch`."""
    if isinstance(arch, RequestedArch):
        return arch
    if isinstance(arch, ArchSource):
        return RequestedArch(arch.arch, arch.origin, arch if arch.space is not None else None)
    if isinstance(arch, (Arch, ResNetArch)):
        return RequestedArch(arch)
    if isinstance(arch, dict):
        return RequestedArch(parse_arch(arch))
    return read_export_arch(arch)


def read_export_arch(path: str | os.PathLike[str]) -> RequestedArch:
    """An arch JSON file of any family, or an official OFA net (``net.config`` or its folder, read by
    :func:`~ofa_edge.space.arch.read_arch`); any problem is one :class:`ArchError` line."""
    path = Path(path)
    if path.is_dir():
        return requested_arch(read_arch(path))
    data = read_user_json(path, "arch file", ArchError)
    if is_net_config(data):
        return requested_arch(read_arch(path))
    return RequestedArch(parse_arch(data), str(path))


def fit_arch(requested: RequestedArch, space: AnySpace, whose: str = "the supernet's space") -> FittedArch:
    """``requested`` validated in ``space`` (``whose`` names it in error lines); an arch of another
    family's form is one line naming both forms."""
    form = form_of_space(space)
    if not isinstance(requested.arch, form.arch_type):
        given = _form_of_arch(requested.arch)
        raise ArchError(
            f"{requested.origin} is {given.describe()}; space {space.name} ({whose}) takes {form.describe()}"
        )
    return form.fit(requested, space, whose)


def stored_space(supernet: str | os.PathLike[str]) -> AnySpace | None:
    """The space of a supernet known without reading its tensors: the one an ofa-edge checkpoint
    records, or a registered name's preset; None otherwise (an official file, a missing one)."""
    metadata = read_metadata(supernet)
    if metadata.get("format") == FORMAT and "space" in metadata:
        try:
            return space_from_config_dict(json.loads(metadata["space"]))
        except (json.JSONDecodeError, OFAEdgeError):
            return None  # loading the checkpoint says what is wrong with it
    if is_registered(str(supernet)):
        return get_space(get_entry(str(supernet)).space)
    return None


def check_supernet_takes(requested: RequestedArch, supernet: str, space: AnySpace | None = None) -> None:
    """One line, before any export work, when ``supernet``'s space (``space``, else the one it
    records) does not take the arch; nothing when that space is not known without loading it."""
    space = space if space is not None else stored_space(supernet)
    if space is not None:
        fit_arch(requested, space, whose=f"the space of supernet {supernet}")
