"""The architecture config of one subnet: the contract shared with the official OFA code.

An arch is ``{"ks": [...], "e": [...], "d": [...], "r": 224}``: ``ks`` and ``e`` hold one entry per
block slot (stages x max depth; slots past a stage's depth are carried but unused), ``d`` one
entry per stage, ``r`` the input resolution. Whether the values fit a given space is checked by
:meth:`ofa_edge.space.SearchSpace.validate`; this module only handles shape and I/O.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ArchError
from ..fileio import atomic_write_text, read_user_json


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


def load_arch(path: str | os.PathLike[str]) -> Arch:
    """Read an arch JSON file; any problem is one :class:`ArchError` line."""
    data = read_user_json(Path(path), "arch file", ArchError)
    return Arch.from_dict(data)


def save_arch(arch: Arch, path: str | os.PathLike[str]) -> None:
    """Write an arch JSON file atomically (temp file in the same folder, then rename)."""
    atomic_write_text(Path(path), json.dumps(arch.to_dict(), indent=2) + "\n")
