"""The architecture config of one subnet: the contract shared with the official OFA code.

An arch is ``{"ks": [...], "e": [...], "d": [...], "r": 224}``: ``ks`` and ``e`` hold one entry per
block slot (stages x max depth; slots past a stage's depth are carried but unused), ``d`` one
entry per stage, ``r`` the input resolution. Whether the values fit a given space is checked by
:meth:`ofa_edge.space.SearchSpace.validate`; this module only handles shape and I/O.

Where an arch is read, an official OFA specialised net is read too: its ``net.config`` (with the
``run.config`` beside it), or the folder holding both (:func:`read_arch`,
:mod:`ofa_edge.space.official_net`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ArchError
from ..fileio import atomic_write_text, read_user_json

if TYPE_CHECKING:
    from .space import SearchSpace

NET_CONFIG, RUN_CONFIG = "net.config", "run.config"


@dataclass(frozen=True)
class Arch:
    ks: tuple[int, ...]
    e: tuple[int, ...]
    d: tuple[int, ...]
    r: int

    def to_dict(self) -> dict[str, Any]:
        return {"ks": list(self.ks), "e": list(self.e), "d": list(self.d), "r": self.r}

    @classmethod
    def from_dict(cls, data: Any) -> Arch:
        if not isinstance(data, dict):
            raise ArchError(f"arch must be a JSON object with keys ks, e, d, r; got {type(data).__name__}")
        data = dict(data)
        # The official OFA code names the resolution "image_size" in some places.
        if "r" not in data and "image_size" in data:
            data["r"] = data.pop("image_size")
        missing = [k for k in ("ks", "e", "d", "r") if k not in data]
        if missing:
            raise ArchError(f"arch is missing field(s) {', '.join(missing)} (expected ks, e, d, r)")
        fields: dict[str, Any] = {}
        for key in ("ks", "e", "d"):
            value = data[key]
            if not isinstance(value, (list, tuple)) or not all(_is_int(v) for v in value):
                raise ArchError(f"arch field '{key}' must be a list of integers, got {value!r}")
            fields[key] = tuple(int(v) for v in value)
        # The official OFA tutorial's ArchManager (and its EvolutionFinder's results) write the
        # resolution as a one-element list, e.g. "r": [224].
        if isinstance(data["r"], list) and len(data["r"]) == 1:
            data["r"] = data["r"][0]
        if not _is_int(data["r"]):
            raise ArchError(f"arch field 'r' must be an integer resolution, got {data['r']!r}")
        return cls(ks=fields["ks"], e=fields["e"], d=fields["d"], r=int(data["r"]))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ArchSource:
    """An arch as read from a file, with what the file says besides.

    ``space``: the space an official net's layers belong to (None for an arch JSON, which names
    none); ``note``: one line for the user (a resolution outside that space's training range), or
    None; ``origin``: the file, for error lines."""

    arch: Arch
    space: str | None = None
    note: str | None = None
    origin: str = "arch"

    def space_name(self, given: str | None, default: str) -> str:
        """The space to read the arch in: the file's, else ``given`` (the user's choice), else
        ``default``; one line when the user chose another space than the file's."""
        if self.space is None:
            return given or default
        if given is not None and given != self.space:
            raise ArchError(self._not_of(given, "--space"))
        return self.space

    def fit(
        self, space: SearchSpace, whose: str = "the space asked for", static: bool = False
    ) -> tuple[SearchSpace, Arch]:
        """(space, the arch validated in it). A static net (an official net, or any arch when
        ``static``) may be read at a resolution outside the space's training range: the space
        returned then accepts it (``SearchSpace.with_resolution``). ``whose`` names ``space`` in
        the line said when the file's space is another."""
        if self.space is not None and self.space != space.name:
            raise ArchError(self._not_of(space.name, whose))
        if static or self.space is not None:
            space = space.with_resolution(self.arch.r)
        return space, space.validate(self.arch)

    def _not_of(self, other: str, whose: str) -> str:
        return f"{self.origin} is a net of space {self.space}, not of {other} ({whose})"


def read_arch(path: str | os.PathLike[str]) -> ArchSource:
    """An arch from an arch JSON file, an official OFA ``net.config`` (its image size from the
    ``run.config`` beside it) or a folder holding both; any problem is one :class:`ArchError` line."""
    # Imported here: official_net reads spaces, and the space module imports this one.
    from .official_net import is_net_config

    path = Path(path)
    if path.is_dir():
        if not (path / NET_CONFIG).is_file():
            raise ArchError(f"{path} is a folder without a {NET_CONFIG} (an official OFA net: {NET_CONFIG} and "
                            f"{RUN_CONFIG}); an arch is a JSON file")  # fmt: skip
        path = path / NET_CONFIG
    data = read_user_json(path, "arch file", ArchError)
    if is_net_config(data):
        return _read_net_config(path, data)
    return ArchSource(arch_from_dict(data), origin=str(path))


def is_resnet_dict(data: Any) -> bool:
    """Whether an arch dict is of the OFA-ResNet form: it has widths ``w`` (the reference writes
    ``"ks": 3`` there too, a number where MobileNetV3's ``ks`` is a list)."""
    return isinstance(data, dict) and "w" in data and not isinstance(data.get("ks"), list)


def arch_from_dict(data: Any) -> Any:
    """An arch of the family its fields name: ``ks, e, d, r`` (OFA-MobileNetV3, ProxylessNAS) or
    ``d, e, w, r`` (OFA-ResNet)."""
    if is_resnet_dict(data):
        from .resnet import ResNetArch

        return ResNetArch.from_dict(data)
    return Arch.from_dict(data)


def _read_net_config(path: Path, net: Any) -> ArchSource:
    from .official_net import read_net_config
    from .space import get_space

    run_path = path.parent / RUN_CONFIG
    if not run_path.is_file():
        raise ArchError(f"{path} is an OFA net.config; its image size is in the {RUN_CONFIG} published with it: "
                        f"put that file beside it ({run_path})")  # fmt: skip
    run = read_user_json(run_path, RUN_CONFIG, ArchError)
    space, arch = read_net_config(net, run, str(path))
    return ArchSource(arch, space, get_space(space).resolution_note(arch.r), str(path))


def load_arch(path: str | os.PathLike[str]) -> Arch:
    """Read an arch: a JSON file, an official net.config or its folder (see :func:`read_arch`);
    any problem is one :class:`ArchError` line."""
    return read_arch(path).arch


def save_arch(arch: Arch, path: str | os.PathLike[str]) -> None:
    """Write an arch JSON file atomically (temp file in the same folder, then rename)."""
    atomic_write_text(Path(path), json.dumps(arch.to_dict(), indent=2) + "\n")
