"""Profiling runs: measure every unit of a space into a table, then whole subnets to calibrate and
validate it. Each run saves the table (atomically) after every group of measurements, so a killed
run started again with the same command picks up where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import OFAEdgeError
from ..fileio import check_output_folder, exclusive
from ..profilers.base import Backend, BackendInfo, Measurement, Timing, time_interleaved
from .fidelity import UNRANKED_TAU, fidelity
from .store import default_cpu_table, default_table_name, is_shipped, resolve_table_path, user_table_path, writable_path
from .table import Calibration, LatencyTable, TableError, load_table, on_this_cpu
from .unit_models import build_subnet, build_unit, example_input
from .units import AnyArch, AnySpace, arch_units, classifier_units, space_corners, space_units

# progress(done, total, label): called after each measurement
Progress = Callable[[int, int, str], None]


# Models converted, then timed interleaved, between two saves of the table: a killed run loses at
# most one group's measurements.
GROUP_SIZE = 16
DEFAULT_TIMING = Timing()  # frozen: safe to share as a default
# A model whose slowest timing pass is this much slower than its fastest was timed while something
# else used the machine. On an idle VM here a model's passes agree within a few percent; on a busy
# host they differ by 20-50% and tables fail validation by as much (BENCHMARKS.md, timing noise).
NOISY_PASS_SPREAD = 0.10


def _no_progress(done: int, total: int, label: str) -> None:
    pass


def open_table(
    path: Path, space: AnySpace, backend: Backend, resolutions: list[int], command: str, measure: dict[str, Any]
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
                    f"{getattr(info, field)!r}; profile into a new file (--out) or remove it"
                )
        if (mismatch := _int8_graph_mismatch(table.backend, info)) is not None:
            raise TableError(
                f"{path} holds units built as int8 graph {mismatch[0]}, this backend builds "
                f"{mismatch[1]}; profile into a new file (--out) or remove it"
            )
        table.resolutions = sorted(set(table.resolutions) | set(resolutions))
        return table, True
    return LatencyTable.new(space, info, resolutions, command, measure), False


def measure_group(
    backend: Backend, models: list[tuple[torch.nn.Module, torch.Tensor]], workdir: Path, timing: Timing
) -> list[Measurement]:
    """Convert each (module, example input) for ``backend``, then time them all, interleaved.

    Each of ``timing.rounds`` passes times every model once; a model's latency is its least
    disturbed pass (see :func:`~ofa_edge.profilers.base.combine_rounds`).
    """
    paths = [
        backend.prepare(module, example, workdir / f"model{index}{backend.model_suffix}")
        for index, (module, example) in enumerate(models)
    ]
    try:
        return time_interleaved([partial(backend.measure, path, timing.warmup, timing.runs) for path in paths],
                                timing.rounds)  # fmt: skip
    finally:
        for path in paths:
            path.unlink(missing_ok=True)


def _groups(items: list, size: int = GROUP_SIZE) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def profile_units(
    backend: Backend,
    space: AnySpace,
    out: Path,
    resolutions: list[int] | None = None,
    timing: Timing = DEFAULT_TIMING,
    command: str = "",
    progress: Progress = _no_progress,
    classes: Sequence[int] = (),
) -> LatencyTable:
    """Measure every distinct unit of ``space`` at ``resolutions`` into the table at ``out``, and
    the classifier of each of ``classes`` (supernets trained on data of that many classes)."""
    resolutions = sorted(resolutions or space.resolutions)
    bad = [r for r in resolutions if r not in space.resolutions]
    if bad:
        raise OFAEdgeError(
            f"resolution {bad[0]} is not in space '{space.name}' (choices: {', '.join(map(str, space.resolutions))})"
        )
    table, _ = open_table(out, space, backend, resolutions, command, timing.to_dict())
    units = space_units(space, tuple(resolutions))
    known = {unit.key for unit in units}
    for n in classes:
        if n != space.num_classes:
            extra = [u for u in classifier_units(space.with_classes(n)) if u.key not in known]
            units += extra
            known.update(u.key for u in extra)
    todo = [u for u in units if u.key not in table.entries]
    done = len(units) - len(todo)
    progress(done, len(units), "")
    with tempfile.TemporaryDirectory(prefix="ofa-edge-profile-") as tmp:
        for group in _groups(todo):
            models = [(build_unit(space, unit), example_input(unit)) for unit in group]
            for unit, measured in zip(group, measure_group(backend, models, Path(tmp), timing)):
                table.add(unit.key, measured)
            table.save(out)
            done += len(group)
            progress(done, len(units), group[-1].key)
    table.complete = True
    table.save(out)
    return table


def sample_archs(space: AnySpace, resolutions: list[int], count: int, seed: int) -> list[AnyArch]:
    """``count`` random archs (the space's sampling, resolution from ``resolutions``), fixed by ``seed``."""
    rng = random.Random(seed)
    archs = []
    for _ in range(count):
        arch = space.sample(rng)
        archs.append(dataclasses.replace(arch, r=rng.choice(resolutions)))
    return archs


def subnet_model(space: AnySpace, arch: AnyArch) -> tuple[torch.nn.Module, torch.Tensor]:
    """The static subnet of ``arch`` (eval mode) and a fixed example input for it."""
    net = build_subnet(space, arch)
    example = torch.randn(1, space.in_channels, arch.r, arch.r, generator=torch.Generator().manual_seed(0))
    return net, example


def _measure_points(
    table: LatencyTable,
    backend: Backend,
    space: AnySpace,
    archs: list[AnyArch],
    points: list[dict[str, Any]],
    save: Callable[[], None],
    progress: Progress,
    timing: Timing,
) -> None:
    """Measure ``archs`` not yet in ``points`` (matched by arch), appending and saving after each group.
    Progress counts ``archs`` only: ``points`` may hold more (an earlier, larger calibration)."""
    seen = {json.dumps(p["arch"], sort_keys=True) for p in points}
    todo = [arch for arch in archs if json.dumps(arch.to_dict(), sort_keys=True) not in seen]
    done = len(archs) - len(todo)
    progress(done, len(archs), "")
    with tempfile.TemporaryDirectory(prefix="ofa-edge-subnets-") as tmp:
        for group in _groups(todo):
            models = [subnet_model(space, arch) for arch in group]
            for arch, measured in zip(group, measure_group(backend, models, Path(tmp), timing)):
                point = {
                    "arch": arch.to_dict(),
                    "sum_ms": table.unit_sum(space, arch),
                    "units": len(arch_units(space, arch)),
                    "measured_ms": measured.median_ms,
                }
                if measured.pass_spread is not None:
                    point["pass_spread"] = measured.pass_spread
                points.append(point)
            save()
            done += len(group)
            progress(done, len(archs), f"r{group[-1].r}")


def latency_corners(space: AnySpace, resolutions: list[int]) -> list[AnyArch]:
    """The corners a search visits and additive tables miss most: the 8 corner subnets (min/max
    of each elastic dimension: depth, expand, and kernel or width) at the table's smallest and at
    its largest resolution."""
    ends = sorted({min(resolutions), max(resolutions)})
    return [arch for r in ends for arch in space_corners(space, r).values()]


def calibrate(
    table: LatencyTable,
    backend: Backend,
    space: AnySpace,
    out: Path,
    samples: int = 30,
    seed: int = 1,
    timing: Timing = DEFAULT_TIMING,
    progress: Progress = _no_progress,
    corners: bool = True,
) -> Calibration:
    """Fit the table's calibration on ``samples`` random subnets (plus the corner subnets, so the
    fit holds at the ends of the space) measured end to end on this machine.

    Stored points measured on another machine are dropped first: one calibration never mixes
    two machines' measurements. A new calibration drops the table's validation too: it checked
    predictions this table no longer makes.
    """
    if samples < 1:
        raise OFAEdgeError(f"calibration needs at least 1 subnet, got {samples}")
    here = backend.describe().device_detail
    if table.calibration is None or table.calibration.host != here:
        table.calibration = Calibration(host=here)
        table.validation = None
    archs = sample_archs(space, table.resolutions, samples, seed)
    if corners:
        archs += latency_corners(space, table.resolutions)
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
    space: AnySpace,
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
    here = backend.describe().device_detail
    resumable = (
        previous.get("seed") == seed
        and previous.get("host", here) == here
        and (extend or not previous.get("complete", False))
    )
    points: list[dict[str, Any]] = list(previous.get("points", [])) if resumable else []
    corner_points: list[dict[str, Any]] = list(previous.get("corner_points", [])) if resumable else []
    archs = sample_archs(space, table.resolutions, samples, seed)
    corners = latency_corners(space, table.resolutions)

    def save() -> None:
        if out is not None:
            table.validation = {"seed": seed, "samples": samples, "host": here, "complete": False,
                                "points": points, "corner_points": corner_points}  # fmt: skip
            table.save(out)

    _measure_points(table, backend, space, archs, points, save, progress, timing)
    _measure_points(table, backend, space, corners, corner_points, save, progress, timing)
    result: dict[str, Any] = {"seed": seed, "samples": len(points), "host": here, "complete": True}
    if (noise := _points_noise(points + corner_points)) is not None:
        result["host_noise"] = noise
    result.update(_fidelity_of(table, points))
    result["corners"] = {**_fidelity_of(table, corner_points), "subnets": _corner_rows(table, space, corner_points)}
    if table.calibration is not None:
        cal = table.calibration
        result["calibration"] = cal.coefficients()
    result["points"] = points
    result["corner_points"] = corner_points
    if out is not None:
        table.validation = result
        table.save(out)
    return result


def host_noise(spreads: Iterable[float | None]) -> dict[str, Any] | None:
    """How much the machine moved while models were timed: over the models timed in several passes,
    the median and 90th percentile of each one's pass spread (see ``Measurement.pass_spread``)."""
    values = [s for s in spreads if s is not None]
    if not values:
        return None
    return {"pass_spread_median": float(np.median(values)), "pass_spread_p90": float(np.percentile(values, 90)),
            "models": len(values)}  # fmt: skip


def noise_warning(noise: dict[str, Any] | None, what: str) -> str | None:
    """A warning when ``what`` (e.g. "the subnets were timed") happened on a busy machine."""
    if noise is None or noise["pass_spread_median"] <= NOISY_PASS_SPREAD:
        return None
    return (
        f"the machine was busy while {what}: each model's timing passes differed by a median of "
        f"{noise['pass_spread_median']:.0%} (over {NOISY_PASS_SPREAD:.0%}), so the numbers describe that "
        f"moment more than the table; measure again when nothing else runs"
    )


def table_noise(table: LatencyTable) -> dict[str, Any] | None:
    """:func:`host_noise` of a table's units (None when its entries record no pass spreads)."""
    return host_noise(entry.get("pass_spread") for entry in table.entries.values())


def _points_noise(points: list[dict[str, Any]]) -> dict[str, Any] | None:
    return host_noise(p.get("pass_spread") for p in points)


def _warn_if_busy(noise: dict[str, Any] | None, what: str, warn: Callable[[str], None]) -> None:
    if (message := noise_warning(noise, what)) is not None:
        warn(message)


def _warn_if_unranked(calibration: Calibration, warn: Callable[[str], None]) -> None:
    """A warning when the subnets measured end to end do not rise with the table's unit sums: the
    table then cannot rank subnets, whatever its calibration (a broken timing set-up, such as a
    benchmark tool that reports the same time for every model)."""
    sums = [p["sum_ms"] for p in calibration.points]
    measured = [p["measured_ms"] for p in calibration.points]
    if len(sums) < 4:
        return
    # Every subnet measured the same: no tau (scipy would warn on the constant input).
    tau = fidelity(sums, measured)["kendall_tau"] if np.ptp(measured) > 0 else float("nan")
    if not tau >= UNRANKED_TAU:  # NaN included
        warn(
            f"the {len(sums)} calibration subnets' measured latencies do not follow the table's sums (Kendall tau "
            f"{tau:.2f}; measured {min(measured):.3f}-{max(measured):.3f} ms): this table cannot rank subnets; "
            "check how the backend times models"
        )


def _fidelity_of(table: LatencyTable, points: list[dict[str, Any]]) -> dict[str, Any]:
    """Fidelity of the raw block sum and of the calibrated prediction on measured ``points``."""
    measured = [p["measured_ms"] for p in points]
    result = {"uncalibrated": fidelity([p["sum_ms"] for p in points], measured)}
    if table.calibration is not None:
        cal = table.calibration
        result["calibrated"] = fidelity([cal.apply(p["sum_ms"], p["units"], p["arch"]["r"]) for p in points], measured)
    return result


def _corner_rows(table: LatencyTable, space: AnySpace, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each corner subnet: its name, measurement, prediction and relative error."""
    names = {}
    for r in {p["arch"]["r"] for p in points}:
        for name, arch in space_corners(space, r).items():
            names[json.dumps(arch.to_dict(), sort_keys=True)] = f"{name}@{r}"
    rows = []
    for p in points:
        arch = p["arch"]
        predicted = table.calibration.apply(p["sum_ms"], p["units"], arch["r"]) if table.calibration else p["sum_ms"]
        rows.append({
            "name": names.get(json.dumps(arch, sort_keys=True), f"r{arch['r']}"),
            "measured_ms": p["measured_ms"],
            "predicted_ms": predicted,
            "error": predicted / p["measured_ms"] - 1,
        })  # fmt: skip
    return rows


# ----------------------------------------------------------------- public entry points
def backend_for_table(table: LatencyTable, options: dict[str, Any] | None = None) -> tuple[Backend, list[str]]:
    """The backend a table was measured with, configured as the table records (device,
    threads, precision), and warnings where this machine or runtime differs from the table's."""
    from ..profilers import make_backend

    b = table.backend
    if b["backend"] == "imported":
        raise OFAEdgeError("an imported table has no backend here to measure with")
    backend = make_backend(
        b["backend"], device=b["device"], threads=b.get("threads") or 1, precision=b["precision"], **(options or {})
    )
    require_available(backend)
    info = backend.describe()
    warnings = [
        f"table {name} is {b.get(name)!r}, this machine has {getattr(info, name)!r}; its entries may not transfer"
        for name in ("version", "device_detail")
        if getattr(info, name) != b.get(name)
    ]
    warnings += timing_setting_warnings(b, info)
    return backend, warnings


def timing_setting_warnings(table_backend: dict[str, Any], info: BackendInfo) -> list[str]:
    """Warnings where ``info``'s backend would time other than the table was measured: another
    int8 graph, or another setting the backend records (CPU affinity on a phone, execution provider,
    delegate, ...). The binary's path is not a setting: it may differ between machines."""
    warnings = []
    if (warning := int8_graph_warning(table_backend, info)) is not None:
        warnings.append(warning)
    recorded = table_backend.get("extra") or {}
    for key in sorted(recorded.keys() & info.extra.keys() - {"int8_forms", "int8_quantizer", "binary"}):
        if recorded[key] != info.extra[key]:
            warnings.append(
                f"the table was measured with {key}={recorded[key]!r}, this timing uses {info.extra[key]!r}"
                f" (pass -O {key}={recorded[key]} to time as the table did)"
            )
    return warnings


def int8_graph_warning(table_backend: dict[str, Any], info: BackendInfo) -> str | None:
    """A warning when a table's units were built as another int8 graph (export forms, quantiser)
    than ``info``'s backend (and export) builds: the table then prices another graph."""
    if (mismatch := _int8_graph_mismatch(table_backend, info)) is None:
        return None
    return (
        f"table units were built as int8 graph {mismatch[0]}, this backend (and export) builds "
        f"{mismatch[1]}: it prices another graph; profile the table again"
    )


def _int8_graph_mismatch(table_backend: dict[str, Any], info: BackendInfo) -> tuple[str, str] | None:
    """(the table's int8 graph, ``info``'s), described, when they differ. An int8 table made before
    units were built as export builds them records no forms (which means none) and no quantiser."""

    def graph(precision: str, extra: dict[str, Any]) -> tuple[list[str], str] | None:
        if precision != "int8":
            return None
        return extra.get("int8_forms", []), extra.get("int8_quantizer", "unrecorded")

    table = graph(table_backend.get("precision", ""), table_backend.get("extra", {}))
    built = graph(info.precision, info.extra)
    if table == built:
        return None

    def describe(g: tuple[list[str], str] | None) -> str:
        return "none" if g is None else f"(forms {g[0]}, quantiser {g[1]})"

    return describe(table), describe(built)


def require_available(backend: Backend) -> None:
    ok, why = backend.availability()
    if not ok:
        raise OFAEdgeError(f"backend '{backend.name}' is not available here: {why}")


def profile_table(
    backend: str = "onnxruntime",
    space: AnySpace | str = "mbv3-fmnist",
    device: str = "CPU",
    threads: int = 1,
    precision: str = "fp32",
    resolutions: list[int] | None = None,
    out: Path | None = None,
    calibration_samples: int = 30,
    timing: Timing = DEFAULT_TIMING,
    options: dict[str, Any] | None = None,
    command: str = "",
    progress: Progress = _no_progress,
    calibration_progress: Progress = _no_progress,
    warn: Callable[[str], None] = lambda message: None,
    classes: Sequence[int] = (),
) -> tuple[LatencyTable, Path]:
    """Profile every distinct block of ``space`` on a backend into a table, then calibrate it on
    ``calibration_samples`` whole subnets plus the corner subnets (0: no calibration).
    ``classes``: also measure a classifier of each of these sizes, so that the table prices
    supernets of that many classes exactly (its space keeps the preset's classifier).

    The table goes to ``out``, by default ``latency_tables/BACKEND-DEVICE-PRECISION-SPACE.json``
    in the user's folder (see :mod:`ofa_edge.latency.store`). A killed profile started again with
    the same arguments measures only what is missing. Returns the table and its path.
    """
    from ..profilers import make_backend
    from ..space.space import get_space

    sp = get_space(space) if isinstance(space, str) else space
    if calibration_samples < 0 or calibration_samples == 1:
        raise OFAEdgeError(f"calibration samples must be 0 (no calibration) or at least 2, got {calibration_samples}")
    if any(n < 2 for n in classes):
        raise OFAEdgeError(f"a classifier needs at least 2 classes, got --classes {min(classes)}")
    be = make_backend(backend, device=device, threads=threads, precision=precision, **(options or {}))
    require_available(be)
    if out is None:
        name = default_table_name(backend, _table_device(device, be), precision, threads, sp.name)
        out = user_table_path(name + _resolutions_suffix(sp, resolutions))
    out = Path(out)
    if is_shipped(out):
        raise OFAEdgeError(f"{out} is a table shipped with ofa-edge; profile into your own file (--out)")
    check_output_folder(out.parent)
    with exclusive(out, "table"):
        table = profile_units(be, sp, out, resolutions, timing, command, progress, classes)
        _warn_if_busy(table_noise(table), "the blocks were timed", warn)
        if calibration_samples > 0:
            cal = calibrate(table, be, sp, out, calibration_samples, timing=timing, progress=calibration_progress)
            _warn_if_busy(_points_noise(cal.points), "the calibration subnets were timed", warn)
            _warn_if_unranked(cal, warn)
    return table, out


def _resolutions_suffix(space: AnySpace, resolutions: Sequence[int] | None) -> str:
    """``-r20-24`` for a table of some of the space's resolutions: a partial table never takes the
    name of a complete one (which searches and exports find by that name)."""
    if not resolutions or set(resolutions) >= set(space.resolutions):
        return ""
    return "-r" + "-".join(str(r) for r in sorted(set(resolutions)))


def _table_device(requested: str, backend: Backend) -> str:
    """The device part of a default table name: the device asked for, unless the backend reads the
    default (CPU) as its own default device, as TensorRT reads it as the first GPU: then the device
    the table records (the GPU's name), so that the name does not say "cpu"."""
    if not on_this_cpu(requested):
        return requested
    recorded = str(backend.describe().device)
    return requested if on_this_cpu(recorded) else re.sub(r"[^a-z0-9]+", "-", recorded.lower()).strip("-")


def calibrate_table(
    table: str | Path,
    samples: int = 30,
    seed: int = 1,
    fresh: bool = False,
    timing: Timing = DEFAULT_TIMING,
    options: dict[str, Any] | None = None,
    progress: Progress = _no_progress,
    warn: Callable[[str], None] = lambda message: None,
) -> tuple[Calibration, Path]:
    """(Re)fit a table's calibration from subnets measured now, on this machine. A shipped table is
    copied to the user's folder first (never modified in place). Returns the fit and the path written."""
    path = resolve_table_path(table)
    t = load_table(path)
    backend, warnings = backend_for_table(t, options)
    for message in warnings:
        warn(message)
    if fresh:
        t.calibration = None
    out = writable_path(path)
    if out != path:
        warn(f"{path.stem} ships with ofa-edge: the calibrated copy goes to {out}")
    check_output_folder(out.parent)
    with exclusive(out, "table"):
        calibration = calibrate(t, backend, t.space(), out, samples, seed, timing, progress)
    _warn_if_busy(_points_noise(calibration.points), "the calibration subnets were timed", warn)
    _warn_if_unranked(calibration, warn)
    return calibration, out


def validate_table(
    table: str | Path,
    samples: int = 100,
    seed: int = 2,
    record: bool = True,
    timing: Timing = DEFAULT_TIMING,
    options: dict[str, Any] | None = None,
    progress: Progress = _no_progress,
    warn: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Measure held-out random subnets and the corner subnets on this machine, now, and report how
    well the table predicts them (within ±10%, Kendall's tau, MAPE; corners apart). With ``record``
    the result is stored in the table (a shipped table: in its copy in the user's folder)."""
    path = resolve_table_path(table)
    t = load_table(path)
    backend, warnings = backend_for_table(t, options)
    for message in warnings:
        warn(message)
    out = writable_path(path) if record else None
    if out is not None:
        check_output_folder(out.parent)
    with exclusive(out, "table") if out is not None else nullcontext():
        result = validate(t, backend, t.space(), out, samples, seed, timing, progress)
    result["table"] = str(out or path)
    _warn_if_busy(result.get("host_noise"), "the subnets were timed", warn)
    return result


# Measuring this CPU on the way to a first deploy: fewer calibration subnets and timing passes than
# `latency calibrate` takes by default (BENCHMARKS.md, "A first deploy on a new CPU").
FIRST_RUN_CALIBRATION = 12
FIRST_RUN_TIMING = Timing(warmup=5, runs=30, rounds=3)


def table_for_this_cpu(
    space: str,
    calibration_samples: int = FIRST_RUN_CALIBRATION,
    timing: Timing = FIRST_RUN_TIMING,
    progress: Progress = _no_progress,
    warn: Callable[[str], None] = lambda message: None,
) -> tuple[str, str | None]:
    """The name of this CPU's onnxruntime table (fp32, 1 thread) for ``space`` and a note. A table
    of that name measured on another CPU is calibrated here first (whole subnets measured on this
    CPU: as faithful as profiling every block here, at less cost); with no table at all, this CPU
    is profiled. Either goes to the user's folder under that name, where later commands find it."""
    name = default_cpu_table(space)
    try:
        found = load_table(name)
    except TableError:
        found = None
    if found is not None and found.machine_warning() is None:
        return name, None
    if found is None:
        warn(f"no {name} table: profiling this CPU first (once)")
        _, out = profile_table("onnxruntime", space, "CPU", 1, "fp32", out=user_table_path(name),
                               calibration_samples=calibration_samples, timing=timing, progress=progress,
                               calibration_progress=progress, warn=warn)  # fmt: skip
        return name, f"this CPU was profiled into {out}; later commands use it"
    warn(f"the {name} table was measured on '{found.backend.get('device_detail')}': calibrating it on this CPU "
         "first (once)")  # fmt: skip
    _, out = calibrate_table(name, calibration_samples, fresh=True, timing=timing, progress=progress, warn=warn)
    return name, f"the table was calibrated on this CPU into {out}; later commands use it"


def default_table(
    supernet: str | None,
    space: str,
    progress: Progress = _no_progress,
    warn: Callable[[str], None] = lambda message: None,
) -> tuple[str, str | None]:
    """The table a search uses when none is named, and a note: the supernet's own (the registry's,
    e.g. ``note10`` for the official w1.2 supernet, whose predictor and table were published
    together), else this CPU's (:func:`table_for_this_cpu`)."""
    from ..hub.registry import REGISTRY

    entry = REGISTRY.get(str(supernet))
    if entry is not None and entry.table:
        return entry.table, f"latency table {entry.table}, the default of {entry.name} (--table picks another)"
    return table_for_this_cpu(space, progress=progress, warn=warn)
