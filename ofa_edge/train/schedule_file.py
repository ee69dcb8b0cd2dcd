"""Schedules as YAML or TOML files: the fields of a preset, each mistake one line.

A file holds the fields of :class:`~.schedule.Schedule` at its top level and a list ``phases`` of
:class:`~.schedule.Phase` fields; anything left out takes the default. ``name`` defaults to the
file's stem. Relative paths in ``init_from`` and ``teacher`` are read from the folder the command
runs in, like paths given on the command line.

    name: my-schedule
    batch_size: 128
    init_from: demo
    phases:
      - {name: all, epochs: 3, lr: 0.02, subnets_per_step: 4, sandwich: true}
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import yaml

from ..errors import OFAEdgeError
from .schedule import Phase, Schedule

SCHEDULE_FIELDS = tuple(f.name for f in fields(Schedule))
PHASE_FIELDS = tuple(f.name for f in fields(Phase))
REQUIRED_PHASE_FIELDS = tuple(f.name for f in fields(Phase) if f.default is MISSING)
_HINTS = {**typing.get_type_hints(Schedule), **typing.get_type_hints(Phase)}


def load_schedule_file(path: str | Path) -> Schedule:
    """The schedule in a ``.yaml``/``.yml`` or ``.toml`` file; every mistake is one
    :class:`OFAEdgeError` line that starts with the file's path and names the field (and phase)."""
    path = Path(path)
    if not path.is_file():
        raise OFAEdgeError(f"schedule file {path} not found")
    record = _read_mapping(path)
    try:
        return schedule_from_dict(record, default_name=path.stem)
    except OFAEdgeError as error:
        raise OFAEdgeError(f"{path}: {error}") from None


def schedule_from_dict(record: Mapping[str, Any], default_name: str = "schedule") -> Schedule:
    """A :class:`Schedule` from a file's fields, checked: unknown fields, types, then values."""
    _check_known(record, SCHEDULE_FIELDS, "")
    if "phases" not in record:
        raise OFAEdgeError("missing field 'phases' (a list of phases, each with at least name, epochs and lr)")
    raw_phases = record["phases"]
    if not isinstance(raw_phases, list) or not raw_phases:
        raise OFAEdgeError(f"phases must be a non-empty list of phases, got {raw_phases!r}")
    phases = tuple(_phase(index, raw) for index, raw in enumerate(raw_phases, start=1))
    values = {key: _coerce(value, key, "") for key, value in record.items() if key != "phases"}
    values.setdefault("name", default_name)
    return Schedule(phases=phases, **values)


def _read_mapping(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if path.suffix.lower() == ".toml":
        toml = _toml_module()
        try:
            record = toml.loads(text)
        except toml.TOMLDecodeError as error:
            raise OFAEdgeError(f"{path}: not valid TOML ({error})") from None
    else:
        try:
            record = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise OFAEdgeError(f"{path}: not valid YAML ({where}{problem})") from None
    if not isinstance(record, dict):
        raise OFAEdgeError(f"{path}: a schedule file holds fields such as name and phases, got {type(record).__name__}")
    return record


def _toml_module() -> types.ModuleType:
    """tomllib (Python 3.11+), else the tomli package it came from."""
    try:
        import tomllib
    except ModuleNotFoundError:
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise OFAEdgeError("TOML schedules need Python 3.11+ or the tomli package; write it as YAML") from None
    return tomllib


def _phase(index: int, raw: Any) -> Phase:
    where = f"phase {index}"
    if not isinstance(raw, Mapping):
        raise OFAEdgeError(f"{where}: a phase holds fields such as name, epochs and lr, got {raw!r}")
    if isinstance(raw.get("name"), str):
        where = f"phase {index} ('{raw['name']}')"
    _check_known(raw, PHASE_FIELDS, where)
    missing = [name for name in REQUIRED_PHASE_FIELDS if name not in raw]
    if missing:
        raise OFAEdgeError(f"{where}: missing field {', '.join(repr(m) for m in missing)}")
    values = {key: _coerce(value, key, where) for key, value in raw.items()}
    try:
        return Phase(**values)
    except OFAEdgeError as error:  # the phase names itself; say which one in the file it is, too
        raise OFAEdgeError(str(error).replace(f"phase '{values['name']}'", where, 1)) from None


def _check_known(record: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in record:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            prefix = f"{where}: " if where else ""
            raise OFAEdgeError(f"{prefix}unknown field '{key}' ({hint}allowed: {', '.join(allowed)})")


def _coerce(value: Any, field: str, where: str) -> Any:
    """``value`` as the type ``field`` is declared with, or one line naming the field (and phase)."""
    hint = _HINTS[field]
    converted = _convert(value, hint)
    if converted is _INVALID:
        prefix = f"{where}: " if where else ""
        raise OFAEdgeError(f"{prefix}{field} must be {_describe(hint)}, got {value!r}")
    return converted


_INVALID = object()


def _convert(value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if _is_number_hint(hint):
        return value if _is_int(value) else _as_float(value)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(value, inner)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            return _INVALID
        items = [_convert(v, args[0]) for v in value]
        return _INVALID if any(i is _INVALID for i in items) else tuple(items)
    if hint is bool:
        return value if isinstance(value, bool) else _INVALID
    if hint is int:
        return value if _is_int(value) else _INVALID
    if hint is float:
        return _as_float(value)
    if hint is str:
        return value if isinstance(value, str) else _INVALID
    raise TypeError(f"no file form for {hint}")  # a field type this module was not taught


def _is_number_hint(hint: Any) -> bool:
    """``int | float``: a number that stays an integer when written as one (an expand ratio is 4
    in an MBConv space, 0.25 in a ResNet one)."""
    return typing.get_origin(hint) in (types.UnionType, typing.Union) and set(typing.get_args(hint)) == {int, float}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_float(value: Any) -> Any:
    if isinstance(value, bool):
        return _INVALID
    if isinstance(value, int | float):
        return float(value)
    # YAML 1.1 reads 3e-5 (no dot) as a string; take it as the number it was meant to be.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return _INVALID
    return _INVALID


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if _is_number_hint(hint):
        return "a number"
    if origin in (types.UnionType, typing.Union):
        (inner,) = [a for a in args if a is not type(None)]
        return f"{_describe(inner)} or null"
    if origin is tuple:
        return "a list of integers" if args[0] is int else "a list of numbers"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[hint]
