"""Import of the official OFA latency lookup tables (YAML, one file per resolution)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from ..profilers.base import BackendInfo, Measurement
from ..space.space import SPACE_NAMES, get_space
from .table import LatencyTable, TableError
from .units import space_units

_YAML_NAME = re.compile(r"(\d+)_lookup_table\.ya?ml$")


def _read_yaml_table(path: Path) -> dict[str, dict[str, Any]]:
    """One official file: layer key -> entry (our format)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise TableError(f"lookup table not found: {path}") from None
    except yaml.YAMLError as exc:
        raise TableError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not data:
        raise TableError(f"{path}: expected a mapping of layer keys to {{count, mean, var}}")
    entries = {}
    for key, value in data.items():
        if not isinstance(value, dict) or not isinstance(value.get("mean"), (int, float)):
            raise TableError(f"{path}: entry {key!r} has no numeric 'mean'")
        var = value.get("var")
        std = math.sqrt(var) if isinstance(var, (int, float)) and var >= 0 else None
        entries[str(key)] = Measurement(float(value["mean"]), None, None, int(value.get("count", 0)), "mean",
                                        std).to_dict()  # fmt: skip
    return entries


def _resolution_of(path: Path) -> int:
    match = _YAML_NAME.search(Path(path).name)
    if not match:
        raise TableError(f"{path}: expected a file named like 160_lookup_table.yaml (resolution first)")
    return int(match.group(1))


def merge_per_resolution(per_file: dict[int, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """One entry per key where every file that has it agrees; ``KEY@RES`` entries where they
    differ (each resolution was measured on its own: a 1x1 head layer has another latency in each)."""
    merged: dict[str, dict[str, Any]] = {}
    keys = {key for entries in per_file.values() for key in entries}
    for key in sorted(keys):
        found = {r: entries[key] for r, entries in per_file.items() if key in entries}
        if len({e["median_ms"] for e in found.values()}) == 1:
            merged[key] = next(iter(found.values()))
        else:
            merged.update({f"{key}@{r}": e for r, e in sorted(found.items())})
    return merged


def _missing_units(entries: dict[str, dict[str, Any]], space_name: str, resolutions: list[int]) -> list[str]:
    """Keys of ``space_name``'s units that the entries cannot price at ``resolutions``."""
    space = get_space(space_name)
    return [
        f"{u.key} (resolution {r})"
        for r in resolutions
        for u in space_units(space, (r,))
        if f"{u.key}@{r}" not in entries and u.key not in entries
    ]


def _space_for(entries: dict[str, dict[str, Any]], resolutions: list[int], space_name: str | None,
               paths: list[Path]) -> str:  # fmt: skip
    """``space_name`` when the entries price all its subnets, or the preset they price when none
    is given; one line otherwise (files measured for another width or family)."""
    names = [space_name] if space_name else list(SPACE_NAMES)
    missing: list[str] = []
    for name in names:
        missing = _missing_units(entries, name, resolutions)
        if not missing:
            return name
    files = ", ".join(p.name for p in paths)
    if space_name:
        raise TableError(f"{files} lack {len(missing)} unit(s) of space {space_name}, e.g. {missing[0]}: "
                         "they were measured for another space")  # fmt: skip
    raise TableError(f"{files} price no preset space completely ({', '.join(SPACE_NAMES)}); pass --space")


def import_official_tables(paths: list[Path], space_name: str | None = None, device: str = "imported",
                           provenance: dict[str, Any] | None = None) -> LatencyTable:  # fmt: skip
    """Official OFA lookup tables (``{res}_lookup_table.yaml``, entries with count/mean/var, in ms)
    as one table of ``space_name`` (default: the preset space they price). ``provenance`` (source,
    licence...) is recorded with the backend description."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise TableError("give the official table files to import ({res}_lookup_table.yaml)")
    per_file = {_resolution_of(p): _read_yaml_table(p) for p in paths}
    entries = merge_per_resolution(per_file)
    space = get_space(_space_for(entries, sorted(per_file), space_name, paths))
    info = BackendInfo(
        "imported",
        "official-ofa-yaml",
        device,
        "imported from official OFA lookup tables",
        None,
        "fp32",
        extra={"files": [p.name for p in paths], **(provenance or {})},
    )
    table = LatencyTable.new(space, info, sorted(per_file))
    table.entries = entries
    table.complete = True
    return table
