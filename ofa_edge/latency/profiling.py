"""Profiling runs: measure every unit of a space into a table, then whole subnets to calibrate and
validate it. Each run saves the table (atomically) after every group of measurements, so a killed
run started again with the same command picks up where it stopped.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..errors import OFAEdgeError
from ..nn.subnet import MobileNetV3Subnet
from ..profilers.base import Backend, Measurement, Timing, combine_rounds
from ..space.arch import Arch
from ..space.space import SearchSpace
from .table import Calibration, LatencyTable, TableError, fidelity, load_table
from .units import arch_units, build_unit, space_units

# progress(done, total, label): called after each measurement
Progress = Callable[[int, int, str], None]


# Models converted, then timed interleaved, between two saves of the table: a killed run loses at
# most one group's measurements.
GROUP_SIZE = 16
DEFAULT_TIMING = Timing()  # frozen: safe to share as a default


def _no_progress(done: int, total: int, label: str) -> None:
    pass


def open_table(
    path: Path, space: SearchSpace, backend: Backend, resolutions: list[int], command: str, measure: dict[str, Any]
) -> tuple[LatencyTable, bool]:
    """The partial table at ``path`` to resume (checked against this request), or a new one."""
    info = backend.describe()
    if Path(path).exists():
        table = load_table(path)
        table.check_space(space)
        table.check_request(**{k: getattr(info, k) for k in ("backend", "device", "precision", "threads")})
        for field, name in (("version", f"{info.backend} version"), ("device_detail", "device")):
            if table.backend.get(field) != getattr(info, field):
                raise TableError(
                    f"{path} was measured with {name} {table.backend.get(field)!r}, this is "
                    f"{getattr(info, field)!r}; profile into a new file (--out)"
                )
        table.resolutions = sorted(set(table.resolutions) | set(resolutions))
        return table, True
    return LatencyTable.new(space, info, resolutions, command, measure), False


def measure_group(
    backend: Backend, models: list[tuple[torch.nn.Module, torch.Tensor]], workdir: Path, timing: Timing
) -> list[Measurement]:
    """Convert each (module, example input) for ``backend``, then time them all, interleaved.

    Each of ``timing.rounds`` passes times every model once; a model's latency is the median over
    passes (see :class:`Timing`).
    """
    paths = [
        backend.prepare(module, example, workdir / f"model{index}{backend.model_suffix}")
        for index, (module, example) in enumerate(models)
    ]
    try:
        passes: list[list[Measurement]] = [[] for _ in paths]
        for _ in range(timing.rounds):
            for path, measured in zip(paths, passes):
                measured.append(backend.measure(path, timing.warmup, timing.runs))
        return [combine_rounds(measured) for measured in passes]
    finally:
        for path in paths:
            path.unlink(missing_ok=True)


def _groups(items: list, size: int = GROUP_SIZE) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def profile_units(
    backend: Backend,
    space: SearchSpace,
    out: Path,
    resolutions: list[int] | None = None,
    timing: Timing = DEFAULT_TIMING,
    command: str = "",
    progress: Progress = _no_progress,
) -> LatencyTable:
    """Measure every distinct unit of ``space`` at ``resolutions`` into the table at ``out``."""
    resolutions = sorted(resolutions or space.resolutions)
    bad = [r for r in resolutions if r not in space.resolutions]
    if bad:
        raise OFAEdgeError(
            f"resolution {bad[0]} is not in space '{space.name}' (choices: {', '.join(map(str, space.resolutions))})"
        )
    table, _ = open_table(out, space, backend, resolutions, command, timing.to_dict())
    units = space_units(space, tuple(resolutions))
    todo = [u for u in units if u.key not in table.entries]
    done = len(units) - len(todo)
    progress(done, len(units), "")
    with tempfile.TemporaryDirectory(prefix="ofa-edge-profile-") as tmp:
        for group in _groups(todo):
            models = [(build_unit(space, unit), unit.example_input()) for unit in group]
            for unit, measured in zip(group, measure_group(backend, models, Path(tmp), timing)):
                table.add(unit.key, measured)
            table.save(out)
            done += len(group)
            progress(done, len(units), group[-1].key)
    table.complete = True
    table.save(out)
    return table


def sample_archs(space: SearchSpace, resolutions: list[int], count: int, seed: int) -> list[Arch]:
    """``count`` random archs (uniform choices, resolution from ``resolutions``), fixed by ``seed``."""
    rng = random.Random(seed)
    archs = []
    for _ in range(count):
        arch = space.sample(rng)
        archs.append(Arch(arch.ks, arch.e, arch.d, rng.choice(resolutions)))
    return archs


def subnet_model(space: SearchSpace, arch: Arch) -> tuple[torch.nn.Module, torch.Tensor]:
    """The static subnet of ``arch`` (eval mode) and a fixed example input for it."""
    net = MobileNetV3Subnet.from_arch(space, arch).eval()
    example = torch.randn(1, space.in_channels, arch.r, arch.r, generator=torch.Generator().manual_seed(0))
    return net, example


def _measure_points(
    table: LatencyTable,
    backend: Backend,
    space: SearchSpace,
    archs: list[Arch],
    points: list[dict[str, Any]],
    save: Callable[[], None],
    progress: Progress,
    timing: Timing,
) -> None:
    """Measure ``archs`` not yet in ``points`` (matched by arch), appending and saving after each group."""
    seen = {json.dumps(p["arch"], sort_keys=True) for p in points}
    todo = [arch for arch in archs if json.dumps(arch.to_dict(), sort_keys=True) not in seen]
    progress(len(points), len(archs), "")
    with tempfile.TemporaryDirectory(prefix="ofa-edge-subnets-") as tmp:
        for group in _groups(todo):
            models = [subnet_model(space, arch) for arch in group]
            for arch, measured in zip(group, measure_group(backend, models, Path(tmp), timing)):
                points.append(
                    {
                        "arch": arch.to_dict(),
                        "sum_ms": table.unit_sum(space, arch),
                        "units": len(arch_units(space, arch)),
                        "measured_ms": measured.median_ms,
                    }
                )
            save()
            progress(len(points), len(archs), f"r{group[-1].r}")


def calibrate(
    table: LatencyTable,
    backend: Backend,
    space: SearchSpace,
    out: Path,
    samples: int = 30,
    seed: int = 1,
    timing: Timing = DEFAULT_TIMING,
    progress: Progress = _no_progress,
) -> Calibration:
    """Fit the table's linear calibration on ``samples`` random subnets measured end to end."""
    if table.calibration is None:
        table.calibration = Calibration()
    archs = sample_archs(space, table.resolutions, samples, seed)
    calibration = table.calibration

    def save() -> None:
        calibration.refit()
        table.save(out)

    _measure_points(table, backend, space, archs, calibration.points, save, progress, timing)
    save()
    return calibration


def validate(
    table: LatencyTable,
    backend: Backend,
    space: SearchSpace,
    out: Path | None,
    samples: int = 100,
    seed: int = 2,
    timing: Timing = DEFAULT_TIMING,
    progress: Progress = _no_progress,
    extend: bool = False,
) -> dict[str, Any]:
    """Measure ``samples`` held-out random subnets; compare the raw sum and the calibrated prediction.

    The result (metrics plus every point) is stored in the table's ``validation`` field when ``out``
    is given. A killed validation (same seed, not complete) resumes from its points; a complete one
    is measured anew, so a validation always reports this machine now, never the stored numbers of
    the machine that made the table. ``extend`` adds subnets to a complete one instead (the
    fidelity bench grows it in slices).
    """
    if samples < 2:
        raise OFAEdgeError(f"validation needs at least 2 subnets (Kendall's tau compares pairs), got {samples}")
    previous = table.validation or {}
    resumable = previous.get("seed") == seed and (extend or not previous.get("complete", False))
    points: list[dict[str, Any]] = list(previous.get("points", [])) if resumable else []
    archs = sample_archs(space, table.resolutions, samples, seed)

    def save() -> None:
        if out is not None:
            table.validation = {"seed": seed, "samples": samples, "complete": False, "points": points}
            table.save(out)

    _measure_points(table, backend, space, archs, points, save, progress, timing)
    measured = [p["measured_ms"] for p in points]
    raw = [p["sum_ms"] for p in points]
    result: dict[str, Any] = {
        "seed": seed,
        "samples": len(points),
        "complete": True,
        "uncalibrated": fidelity(raw, measured),
    }
    if table.calibration is not None:
        cal = table.calibration
        result["calibrated"] = fidelity([cal.apply(p["sum_ms"], p["units"]) for p in points], measured)
        result["calibration"] = {"model": cal.model, "a": cal.a, "b": cal.b, "c": cal.c, "points": len(cal.points)}
    result["points"] = points
    if out is not None:
        table.validation = result
        table.save(out)
    return result
