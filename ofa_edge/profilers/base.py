"""The one small protocol every latency backend implements, and the numbers it returns.

A backend turns a torch module into its own model format (:meth:`Backend.prepare`), times that
model (:meth:`Backend.measure`), and says what it is (:meth:`Backend.describe`) and whether it can
run here (:meth:`Backend.availability`). Everything that changes a latency number (runtime version,
device, threads, precision, CPU affinity) belongs in :class:`BackendInfo`: it becomes the table's
provenance and decides whether a table fits a request.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import OFAEdgeError
from ..host import cpu_identity

if TYPE_CHECKING:  # annotations only: timing and table code runs without importing torch
    import torch
    from torch import nn


@dataclass(frozen=True)
class Measurement:
    """Latency of one model: a central value and its spread, in milliseconds."""

    median_ms: float
    p10_ms: float | None
    p90_ms: float | None
    samples: int
    # 'median' when we timed each run ourselves; 'mean' when a tool reports only an average
    # (TFLite's benchmark_model), whose spread is then the standard deviation in ``std_ms``.
    statistic: str = "median"
    std_ms: float | None = None
    # Several timing passes combined (combine_rounds): the slowest pass's central value over the
    # fastest's, minus 1. The model did not change between passes, so this is how much the machine
    # moved while it was timed.
    pass_spread: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        return cls(
            **{k: data.get(k) for k in ("median_ms", "p10_ms", "p90_ms", "samples", "std_ms", "pass_spread")},
            statistic=data.get("statistic", "median"),
        )


def summarize(times_ms: list[float]) -> Measurement:
    """Median and 10th/90th percentiles of per-run times."""
    if not times_ms:
        raise ValueError("no timed runs")
    ordered = sorted(times_ms)
    if len(ordered) >= 2:
        deciles = statistics.quantiles(ordered, n=10, method="inclusive")
        p10, p90 = deciles[0], deciles[-1]
    else:
        p10 = p90 = ordered[0]
    return Measurement(statistics.median(ordered), p10, p90, len(ordered))


def combine_rounds(rounds: list[Measurement]) -> Measurement:
    """One model's latency from several timing passes: the pass least disturbed by other load.

    The latency of a model is what it costs when nothing else competes for the core, so the pass
    with the lowest central value is kept whole (its spread too), as ``timeit`` advises: load from
    elsewhere only ever adds time. On these shared VMs the host's load comes in bursts of seconds
    that slow every run inside them by up to 50%; the median over passes followed those bursts
    (the same model measured 0.21 or 0.31 ms from one process to the next) and the best pass
    halves that spread (BENCHMARKS.md, "Timing noise on a shared host")."""
    if not rounds:
        raise ValueError("no timing passes")
    best = min(rounds, key=lambda m: m.median_ms)
    spread = max(m.median_ms for m in rounds) / best.median_ms - 1 if len(rounds) > 1 and best.median_ms > 0 else None
    return replace(best, samples=sum(m.samples for m in rounds), pass_spread=spread)


def time_interleaved(measures: Sequence[Callable[[], Measurement]], rounds: int) -> list[Measurement]:
    """Each of ``rounds`` passes calls every measure once (model after model, then again), and each
    model's latency is its least disturbed pass (:func:`combine_rounds`): a burst of load on a
    shared machine spoils one pass of every model rather than all the runs of one."""
    passes: list[list[Measurement]] = [[] for _ in measures]
    for _ in range(rounds):
        for measure, measured in zip(measures, passes):
            measured.append(measure())
    return [combine_rounds(measured) for measured in passes]


@dataclass(frozen=True)
class Timing:
    """How models are timed: ``rounds`` passes over a group of models, each pass ``warmup``
    untimed then ``runs`` timed calls per model. Spreading a model's runs over passes means a burst
    of load on a shared machine spoils one pass of many models, not all the runs of one; the
    least disturbed pass is kept (:func:`combine_rounds`)."""

    warmup: int = 10
    runs: int = 50
    rounds: int = 5

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.runs < 1 or self.rounds < 1:
            raise OFAEdgeError(
                f"timing needs warmup >= 0, runs >= 1 and rounds >= 1 (got {self.warmup}, {self.runs}, {self.rounds})"
            )

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def run_times(run: Callable[[], Any], warmup: int, runs: int, min_seconds: float = 0.0) -> list[float]:
    """Call ``run`` ``warmup`` times untimed, then at least ``runs`` times (and ``min_seconds``)
    timed; the per-run times in milliseconds."""
    for _ in range(warmup):
        run()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < runs or time.perf_counter() - started < min_seconds:
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def time_runs(run: Callable[[], Any], warmup: int, runs: int, min_seconds: float = 0.0) -> Measurement:
    """:func:`run_times` summarised: median and 10th/90th percentiles."""
    return summarize(run_times(run, warmup, runs, min_seconds))


def host_cpu() -> str:
    """This machine's CPU: model, vector ISA level and core count (what a CPU table is valid for)."""
    return cpu_identity()


@dataclass(frozen=True)
class BackendInfo:
    """What a measurement is valid for: recorded in each table and compared on load."""

    backend: str
    version: str
    device: str  # a device name: CPU, GPU.0, pixel1...
    device_detail: str  # host CPU model, adb serial and phone model, GPU name
    threads: int | None
    precision: str
    input_layout: str = "NCHW"
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. CPU affinity, transport

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Backend(Protocol):
    """A latency backend. Construct it with ``(device, threads, precision, **options)``."""

    name: str
    precisions: tuple[str, ...]
    model_suffix: str  # file suffix of the backend's model format (per precision), e.g. '.onnx'

    def availability(self) -> tuple[bool, str]:
        """(usable here?, why not / which version)."""
        ...

    def describe(self) -> BackendInfo: ...

    def prepare(self, module: nn.Module, example: torch.Tensor, path: Path) -> Path:
        """Convert ``module`` (eval mode, fed ``example``) into the backend's format at ``path``."""
        ...

    def measure(self, model: Path, warmup: int, runs: int) -> Measurement:
        """Time ``model`` (a file from :meth:`prepare`) on the device with batch 1."""
        ...


class BackendUnavailable(RuntimeError):
    """The backend's runtime or device is missing here."""
