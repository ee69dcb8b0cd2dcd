"""Import of the official OFA latency lookup tables (YAML, one file per resolution)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from ..profilers.base import BackendInfo, Measurement
from ..space.space import get_space
from .table import LatencyTable, TableError

_YAML_NAME = re.compile(r"(\d+)_lookup_table\.ya?ml$")


def import_official_tables(paths: list[Path], space_name: str, device: str) -> LatencyTable:
    """Official OFA lookup tables (``{res}_lookup_table.yaml``, entries with count/mean/var, in ms)."""
    import yaml

    space = get_space(space_name)
    entries: dict[str, dict[str, Any]] = {}
    resolutions: list[int] = []
    for path in paths:
        match = _YAML_NAME.search(Path(path).name)
        if not match:
            raise TableError(f"{path}: expected a file named like 160_lookup_table.yaml (resolution first)")
        try:
            data = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise TableError(f"lookup table not found: {path}") from None
        except yaml.YAMLError as exc:
            raise TableError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict) or not data:
            raise TableError(f"{path}: expected a mapping of layer keys to {{count, mean, var}}")
        for key, value in data.items():
            if not isinstance(value, dict) or "mean" not in value:
                raise TableError(f"{path}: entry {key!r} has no 'mean'")
            var = value.get("var")
            std = math.sqrt(var) if isinstance(var, (int, float)) and var >= 0 else None
            entries[str(key)] = Measurement(
                float(value["mean"]), None, None, int(value.get("count", 0)), "mean", std
            ).to_dict()
        resolutions.append(int(match.group(1)))
    info = BackendInfo(
        "imported",
        "official-ofa-yaml",
        device,
        "imported from official OFA lookup tables",
        None,
        "fp32",
        extra={"files": [Path(p).name for p in paths]},
    )
    table = LatencyTable.new(space, info, resolutions)
    table.entries = entries
    table.complete = True
    return table
