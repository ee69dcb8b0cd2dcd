"""Latency lookup tables: the JSON schema, loading with validation, prediction and calibration.

A table holds one latency per unit (see :mod:`ofa_edge.lut_units`) measured on one backend
configuration, plus a calibration fitted on whole-subnet measurements. A subnet's predicted
latency is ``a * (sum of its units) + c * (number of units) + b``, the scale ``a`` optionally
drifting with the resolution (see :class:`Calibration`):
standalone units run with hot caches and each pays a per-call overhead that a whole network pays
once, so the raw sum is biased, but closely proportional to the truth.

File layout (``schema_version`` 1)::

    {"schema": "ofa-edge/latency-table", "schema_version": 1,
     "space": {"name": ..., "config": {...}}, "backend": {BackendInfo}, "resolutions": [...],
     "created": ISO date, "command": "ofa-edge profile ...", "measure": {"warmup": .., "runs": ..},
     "complete": true, "entries": {key: {"median_ms", "p10_ms", "p90_ms", "samples", "statistic", "pass_spread"}},
     "calibration": {"model": "a*sum+b", "a", "b", "c", "d", "r0", "loo_mape": {model: error},
                     "points": [{"arch", "sum_ms", "units", "measured_ms", "pass_spread"}]} | null,
     "validation": {metrics..., "points": [...]} | null}

An entry's key is a unit's key (:mod:`ofa_edge.latency.units`), or ``KEY@RES`` for a unit
measured at input resolution RES: the official tables measure each resolution on its own, and a
unit whose key does not carry the resolution (the head's 1x1 layers, blocks at the same feature
size) has a different latency in each, so it is kept per resolution and looked up that way first.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArchError, OFAEdgeError
from ..fileio import atomic_write_text, read_user_json
from ..host import cpu_identity, same_cpu
from ..profilers.base import BackendInfo, Measurement
from ..space.space import space_from_config_dict
from .resnet_units import ResNetUnit
from .store import resolve_table_path
from .units import AnyArch, AnySpace, Unit, arch_units, classifier_units, unit_family

SCHEMA = "ofa-edge/latency-table"
SCHEMA_VERSION = 1
# Fields of the backend description that a table must match to answer a request.
MATCHED_FIELDS = ("backend", "device", "precision", "threads")
# A supernet with more classes than a table's space is priced with the table's classifier when
# that can move no subnet's latency by more than this share (tables aim at ±10%). With fewer
# classes the table's classifier is the larger one: its price errs on the safe side, always allowed.
CLASSIFIER_TOLERANCE = 0.05


class TableError(OFAEdgeError):
    """A latency table that is unreadable, malformed, or measured for something else."""


@dataclass
class Calibration:
    """measured ~= (a + d * (r - r0)) * unit_sum + c * unit_count + b, fitted on whole subnets (``points``).

    ``a`` corrects the scale (standalone units run with hot caches); ``c`` removes the per-call
    overhead that every standalone unit measurement carries but a whole subnet pays only once (it
    dominates at small inputs); ``b`` is the subnet's own fixed cost; ``d`` lets the scale drift
    with the input resolution ``r`` (around ``r0``, the points' median resolution): on the CPU
    runtimes measured here one scale left the smallest resolution's subnets 9 % low and the
    largest's 2 % low, and the search goes exactly to those corners. Each term is only kept when
    it earns its place: of the nested models in :attr:`MODELS` the fit keeps the one with the
    lowest leave-one-out relative error on the points (a 4-term fit to 20 noisy points can do
    worse than the raw sum). Fits minimise relative, not absolute, error: a 10 % miss matters as
    much on a 0.2 ms subnet as on a 2 ms one.
    """

    a: float = 1.0
    b: float = 0.0
    c: float = 0.0
    points: list[dict[str, Any]] = field(default_factory=list)
    model: str = "a*sum+c*units+b"
    loo_mape: dict[str, float] = field(default_factory=dict)  # leave-one-out error of each candidate
    host: str = ""  # the machine the points were measured on ('' when the table does not record it)
    d: float = 0.0  # change of the scale per pixel of input resolution
    r0: float = 0.0  # the resolution where the scale is ``a``

    # Nested candidates: each adds one column of [sum, 1, units, sum * (r - r0)] to the one before.
    MODELS = ("a*sum", "a*sum+b", "a*sum+c*units+b", "(a+d*(r-r0))*sum+c*units+b")

    def scale(self, resolution: float | np.ndarray) -> float | np.ndarray:
        """The multiplier of the unit sum at ``resolution``."""
        return self.a + self.d * (np.asarray(resolution, float) - self.r0) if self.d else self.a

    def apply(self, unit_sum_ms: float, unit_count: int, resolution: float | None = None) -> float:
        if self.d and resolution is None:
            raise ValueError(f"calibration {self.model} needs the subnet's resolution")
        scale = self.a if resolution is None else float(self.scale(resolution))
        return scale * unit_sum_ms + self.c * unit_count + self.b

    def describe(self) -> str:
        """The fitted formula with its numbers, e.g. ``measured = 1.369 x sum``."""
        text = f"measured = {self.a:.3f}"
        if self.d:
            text = f"measured = ({self.a:.3f} {self.d:+.4f} x (r - {self.r0:g}))"
        text += " x sum"
        if self.c:
            text += f" {self.c:+.4f} ms x entries"
        if self.b:
            text += f" {self.b:+.3f} ms"
        return text

    @staticmethod
    def _fit(design: np.ndarray, measured: np.ndarray) -> np.ndarray:
        # Rows divided by the measurement: least squares on relative error.
        return np.linalg.lstsq(design / measured[:, None], np.ones_like(measured), rcond=None)[0]

    def refit(self) -> None:
        if not self.points:
            return
        sums = np.array([p["sum_ms"] for p in self.points], float)
        counts = np.array([p["units"] for p in self.points], float)
        measured = np.array([p["measured_ms"] for p in self.points], float)
        resolutions = np.array([_point_resolution(p) for p in self.points], float)
        self.r0 = float(np.median(resolutions)) if not np.isnan(resolutions).any() else 0.0
        columns = np.stack([sums, np.ones_like(sums), counts, sums * (resolutions - self.r0)], axis=1)
        # At least 3 points per coefficient; the count term only where the counts differ, the
        # resolution term only where every point has a resolution and they differ.
        usable = 2
        if np.ptp(counts) > 0:
            usable = 3
            if not np.isnan(resolutions).any() and np.ptp(resolutions) > 0:
                usable = 4
        candidates = [m for terms, m in enumerate(self.MODELS, 1) if terms <= usable and len(measured) >= 3 * terms]
        candidates = candidates or [self.MODELS[0]]
        self.loo_mape = {}
        for terms, model in enumerate(candidates, 1):
            design = columns[:, :terms]
            errors = []
            for held_out in range(len(measured)):
                keep = np.arange(len(measured)) != held_out
                coef = self._fit(design[keep], measured[keep])
                errors.append(abs(design[held_out] @ coef - measured[held_out]) / measured[held_out])
            self.loo_mape[model] = float(np.mean(errors))
        # Simplest model within 1 % (relative) of the best: ties go to fewer terms.
        best = min(self.loo_mape.values())
        terms = next(t for t, m in enumerate(candidates, 1) if self.loo_mape[m] <= best * 1.01)
        self.model = candidates[terms - 1]
        coef = np.zeros(4)  # terms left out stay 0
        coef[:terms] = self._fit(columns[:, :terms], measured)
        self.a, self.b, self.c, self.d = (float(v) for v in coef)
        if not self.d:
            self.r0 = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "a": self.a, "b": self.b, "c": self.c, "d": self.d, "r0": self.r0,
                "host": self.host, "loo_mape": self.loo_mape, "points": self.points}  # fmt: skip

    def coefficients(self) -> dict[str, Any]:
        """The fitted numbers without the points (for summaries and JSON output)."""
        return {"model": self.model, "a": self.a, "b": self.b, "c": self.c, "d": self.d, "r0": self.r0,
                "points": len(self.points)}  # fmt: skip


def _point_resolution(point: dict[str, Any]) -> float:
    arch = point.get("arch")
    return float(arch["r"]) if isinstance(arch, dict) and "r" in arch else math.nan


@dataclass
class LatencyTable:
    space_name: str
    space_config: dict[str, Any]
    backend: dict[str, Any]
    resolutions: list[int]
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    command: str = ""
    measure: dict[str, Any] = field(default_factory=dict)
    complete: bool = False
    calibration: Calibration | None = None
    validation: dict[str, Any] | None = None

    # ------------------------------------------------------------------ building
    @classmethod
    def new(
        cls,
        space: AnySpace,
        info: BackendInfo,
        resolutions: list[int],
        command: str = "",
        measure: dict[str, Any] | None = None,
    ) -> LatencyTable:
        return cls(
            space.name, space.config_dict(), info.to_dict(), sorted(resolutions), command=command, measure=measure or {}
        )

    def add(self, key: str, measurement: Measurement) -> None:
        self.entries[key] = measurement.to_dict()

    def entry(self, key: str, resolution: int) -> dict[str, Any] | None:
        """The entry of unit ``key`` in a subnet at ``resolution``: the one measured at that
        resolution if the table keeps one, else the unit's own; None when absent."""
        return self.entries.get(f"{key}@{resolution}") or self.entries.get(key)

    # ----------------------------------------------------------------- predicting
    @property
    def label(self) -> str:
        b = self.backend
        threads = f", {b['threads']} thread{'s' if b['threads'] != 1 else ''}" if b.get("threads") else ""
        return f"{self.space_name} on {b['backend']} {b['device']} {b['precision']}{threads}"

    def _units(self, space: AnySpace, arch: AnyArch) -> list[Unit | ResNetUnit]:
        """The units that price ``arch`` of ``space`` here (see :meth:`pricing_space`)."""
        return arch_units(self.pricing_space(space), arch)

    def unit_sum(self, space: AnySpace, arch: AnyArch) -> float:
        """Sum of the table's entries for the units ``arch`` runs (ms)."""
        return self._sum(self._units(space, arch), arch)

    def _sum(self, units: list[Unit | ResNetUnit], arch: AnyArch) -> float:
        total = 0.0
        for unit in units:
            entry = self.entry(unit.key, arch.r)
            if entry is None:
                raise TableError(
                    f"table ({self.label}) has no entry for {unit.key} (resolution {arch.r}; table covers "
                    f"{', '.join(map(str, self.resolutions))}{'' if self.complete else ', profile incomplete'})"
                )
            total += entry["median_ms"]
        return total

    def breakdown(self, space: AnySpace, arch: AnyArch) -> list[dict[str, Any]]:
        """The entries ``arch`` uses, in forward order: ``{"key", "ms"}``."""
        units = self._units(space, arch)
        self._sum(units, arch)  # one clear error for a missing entry
        return [{"key": u.key, "ms": self.entry(u.key, arch.r)["median_ms"]} for u in units]

    def machine_warning(self) -> str | None:
        """One line when this table was measured on this machine's CPU but another CPU model, ISA
        level or core count (a table is only valid where it was measured); None otherwise, and
        None for a table calibrated on this CPU (its whole-subnet fit holds here: BENCHMARKS.md,
        "A first deploy on a new CPU")."""
        if not on_this_cpu(self.backend.get("device")) or self.backend.get("backend") == "imported":
            return None
        here, there = cpu_identity(), self.backend.get("device_detail", "")
        if same_cpu(there, here) or (self.calibration is not None and same_cpu(self.calibration.host, here)):
            return None
        return (
            f"table {self.label} was measured on '{there}', this machine is '{here}': its predictions may be off "
            "here; `ofa-edge profile` makes a table for this machine"
        )

    def predict(self, space: AnySpace, arch: AnyArch, calibrated: bool = True) -> float:
        units = self._units(space, arch)
        total = self._sum(units, arch)
        if calibrated and self.calibration is not None:
            return self.calibration.apply(total, len(units), arch.r)
        return total

    # ------------------------------------------------------------------ checking
    def space(self) -> AnySpace:
        return space_from_config_dict(self.space_config)

    def check_space(self, space: AnySpace) -> None:
        """One error unless this table prices ``space``'s subnets (see :meth:`pricing_space`)."""
        self.pricing_space(space)

    def pricing_space(self, space: AnySpace) -> AnySpace:
        """The space whose units price ``space``'s subnets here: ``space`` itself, or this table's
        own space when the two differ only in the classifier's number of classes (a supernet trained
        on a folder of N classes) and either ``space`` has fewer (the table then overprices by at
        most its classifier entry) or more that change no subnet's price by more than
        ``CLASSIFIER_TOLERANCE`` (see :meth:`classifier_gap`). A table holding an entry for
        ``space``'s own classifier (``profile --classes N``) prices it exactly. Any other difference
        is an error."""
        mine = self.space()
        diff = mine.differences(space)
        if not diff or (diff == ["num_classes"] and self._has_classifiers(space)):
            return space
        if diff == ["num_classes"]:
            if space.num_classes < mine.num_classes:
                return mine
            bound_ms, share = self.classifier_gap(space)
            if share <= CLASSIFIER_TOLERANCE:
                return mine
            raise TableError(
                f"table ({self.label}) prices a {mine.num_classes}-class classifier; this supernet has "
                f"{space.num_classes} classes, which may change a subnet's latency by up to {bound_ms:.3g} ms, "
                f"{share:.0%} of the smallest subnet's: more than the {CLASSIFIER_TOLERANCE:.0%} this table may "
                f"be off by for it; `ofa-edge profile --classes {space.num_classes}` measures your classifier into "
                "your table of this machine"
            )
        differs = ", ".join(diff)
        raise TableError(f"table is for space '{self.space_name}', not '{space.name}' (differs in: {differs})")

    def _has_classifiers(self, space: AnySpace) -> bool:
        """Whether this table holds an entry for every classifier ``space``'s subnets can run."""
        return all(self.entry(unit.key, self.resolutions[0]) for unit in classifier_units(space))

    def classifier_gap(self, space: AnySpace) -> tuple[float, float]:
        """How far pricing ``space``'s subnets with this table's classifier can be off: (ms, share of
        the smallest subnet's predicted latency). The classifier is one matrix-vector product, whose
        time scales with its outputs: the bound is the table's own classifier entry times the
        relative change in classes. (0, 0) when the classes agree."""
        mine = self.space()
        if mine.num_classes == space.num_classes:
            return 0.0, 0.0
        # The table's own classifier (`profile --classes` may have added others beside it); of a
        # family with one per last-stage width, the widest: the bound then holds for all of them.
        widest = max(classifier_units(mine), key=lambda unit: unit.in_channels)
        own = self.entry(widest.key, max(self.resolutions))
        if own is None:
            raise TableError(f"table ({self.label}) has no classifier entry to price another number of classes")
        bound_ms = own["median_ms"] * abs(space.num_classes - mine.num_classes) / mine.num_classes
        smallest = self.predict(mine, mine.min_arch(min(self.resolutions)))
        return bound_ms, bound_ms / smallest

    def classifier_note(self, space: AnySpace) -> str | None:
        """One line when this table prices ``space``'s subnets with its own classifier; None otherwise."""
        if self.pricing_space(space) is space:
            return None
        bound_ms, share = self.classifier_gap(space)
        direction = "over" if space.num_classes < self.space().num_classes else "under"
        return (
            f"table {self.label} prices a {self.space().num_classes}-class classifier, the supernet has "
            f"{space.num_classes} classes: predictions may be {direction} by up to {bound_ms:.3g} ms ({share:.1%} "
            "of the smallest subnet's)"
        )

    def check_request(self, **wanted: Any) -> None:
        """Refuse a table whose backend, device, precision or threads differ from ``wanted``."""
        diffs = [
            f"{name} {self.backend.get(name)!r} (requested {value!r})"
            for name, value in wanted.items()
            if value is not None and name in MATCHED_FIELDS and _norm(self.backend.get(name)) != _norm(value)
        ]
        if diffs:
            raise TableError(f"table ({self.label}) does not match the request: it has " + "; ".join(diffs))

    # ------------------------------------------------------------------- storage
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "space": {"name": self.space_name, "config": self.space_config},
            "backend": self.backend,
            "resolutions": self.resolutions,
            "created": self.created,
            "command": self.command,
            "measure": self.measure,
            "complete": self.complete,
            "entries": self.entries,
            "calibration": self.calibration.to_dict() if self.calibration else None,
            "validation": self.validation,
        }

    def save(self, path: Path) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def from_dict(cls, data: Any, source: str = "table") -> LatencyTable:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise TableError(f'{source} is not an ofa-edge latency table (no "schema": "{SCHEMA}")')
        if data.get("schema_version") != SCHEMA_VERSION:
            raise TableError(
                f"{source} has schema version {data.get('schema_version')}; this ofa-edge reads "
                f"version {SCHEMA_VERSION}"
            )
        try:
            entries = data["entries"]
            for key, entry in entries.items():
                value = entry["median_ms"]
                if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                    raise TableError(f"{source}: entry {key} has an invalid median_ms {value!r}")
            cal = data.get("calibration")
            calibration = (
                Calibration(
                    float(cal["a"]),
                    float(cal["b"]),
                    float(cal.get("c", 0.0)),
                    list(cal.get("points", [])),
                    str(cal.get("model", "a*sum+c*units+b")),
                    dict(cal.get("loo_mape", {})),
                    str(cal.get("host", "")),
                    float(cal.get("d", 0.0)),
                    float(cal.get("r0", 0.0)),
                )
                if cal
                else None
            )
            backend = data["backend"]
            missing = [f for f in MATCHED_FIELDS if f not in backend]
            if missing:
                raise TableError(f"{source}: backend description lacks {', '.join(missing)}")
            return cls(
                space_name=data["space"]["name"],
                space_config=data["space"]["config"],
                backend=backend,
                resolutions=[int(r) for r in data["resolutions"]],
                entries=entries,
                created=data.get("created", ""),
                command=data.get("command", ""),
                measure=data.get("measure", {}),
                complete=bool(data.get("complete", False)),
                calibration=calibration,
                validation=data.get("validation"),
            )
        except TableError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TableError(f"{source}: malformed latency table ({type(exc).__name__}: {exc})") from None


def _norm(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def on_this_cpu(device: Any) -> bool:
    """Whether a backend's ``device`` is this machine's CPU (not a phone, a GPU or an NPU)."""
    return _norm(device or "CPU") == "CPU"


def load_table(name_or_path: str | Path, space: str | None = None) -> LatencyTable:
    """A table by path, or by name (the user's ``latency_tables/`` first, then the shipped ones;
    with a ``space``, ``NAME`` also finds ``NAME-SPACE``, e.g. ``note10`` the note10 table of mbv3-w1.2)."""
    path = resolve_table_path(name_or_path, space)
    data = read_user_json(path, "latency table", TableError, hint="re-run the profile or restore it")
    return LatencyTable.from_dict(data, str(path))


def table_and_arch(table: str | Path, arch_path: str | Path) -> tuple[LatencyTable, AnySpace, AnyArch, str | None]:
    """A table, and the arch in ``arch_path`` read in the table's space: (table, space, arch, note).

    An arch JSON, an official OFA ``net.config`` or its folder (:func:`~ofa_edge.space.arch.read_arch`;
    an official net names its space, so ``note10`` finds its table), or an arch JSON of the table's
    own family where that has other fields (OFA-ResNet: ``d, e, w, r``). ``note``: one line for
    the user, or None.
    """
    from ..space.arch import Arch, read_arch

    try:
        source, error = read_arch(arch_path), None
    except ArchError as exc:
        source, error = None, exc
    t = load_table(table, source.space if source is not None else None)
    space = t.space()
    family = unit_family(space)
    if source is not None and isinstance(source.arch, family.arch_type):
        space, arch = source.fit(space, whose=f"the space of table {t.label}")
        return t, space, arch, source.note
    if error is not None and family.arch_type is Arch:
        raise error
    return t, space, space.validate(read_user_json(Path(arch_path), "arch file", ArchError)), None
