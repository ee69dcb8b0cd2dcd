"""Parser for the stdout of TFLite's ``benchmark_model`` (every format in backend-tools.md).

Timings, newest format first:
  ``Inference timings in us: Init: 855, First inference: 49060, Warmup (avg): 34825.1, Inference (avg): 33209.4``
  ``Average inference timings in us: Warmup: 34825.1, Init: 855, Inference: 33209.4`` (older)
  neither: the last ``count=50 first=.. curr=.. min=.. max=.. avg=.. std=..`` line (TF 1.x), which
  belongs to the timed runs (the one before it, if any, to the warm-up).
Op profiling (``--enable_op_profiling=true``): ``=== Run Order ===``, ``=== Top by Computation
Time ===`` and ``=== Summary by node type ===`` sections, each a header row of ``[column]`` names
and tab-separated rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import OFAEdgeError


class BenchmarkOutputError(OFAEdgeError):
    """benchmark_model printed something this parser does not recognise."""


@dataclass(frozen=True)
class BenchmarkTimings:
    inference_avg_us: float
    inference_std_us: float | None = None
    runs: int | None = None
    init_us: float | None = None
    first_us: float | None = None
    warmup_avg_us: float | None = None
    source: str = ""  # which line the average came from


@dataclass
class OpTable:
    title: str  # 'Run Order', 'Top by Computation Time', 'Summary by node type'
    context: str  # 'init' (profile of the initialisation) or 'runs'
    columns: list[str]
    rows: list[dict[str, str]] = field(default_factory=list)


_NUMBER = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_NEW = re.compile(r"Inference timings in us:(.*)")
_OLD = re.compile(r"Average inference timings in us:(.*)")
_FIELD = re.compile(r"([A-Za-z][A-Za-z ()]*?):\s*" + _NUMBER)
_COUNT = re.compile(r"count=(\d+)(.*)")
_KV = re.compile(r"(\w+)=" + _NUMBER)
_SECTION = re.compile(r"^=+\s*(.+?)\s*=+$")
_COLUMN = re.compile(r"\[([^\]]+)\]")


def _fields(text: str) -> dict[str, float]:
    return {name.strip(): float(value) for name, value in _FIELD.findall(text)}


def parse_timings(text: str) -> BenchmarkTimings:
    """The inference latency summary; :class:`BenchmarkOutputError` if there is none."""
    counts = [
        (int(m.group(1)), dict((k, float(v)) for k, v in _KV.findall(m.group(2))))
        for m in map(_COUNT.search, text.splitlines())
        if m
    ]
    timed = counts[-1] if counts else None
    std = timed[1].get("std") if timed else None
    runs = timed[0] if timed else None
    for line in text.splitlines():
        if match := _NEW.search(line):
            f = _fields(match.group(1))
            if "Inference (avg)" in f:
                return BenchmarkTimings(
                    f["Inference (avg)"],
                    std,
                    runs,
                    f.get("Init"),
                    f.get("First inference"),
                    f.get("Warmup (avg)"),
                    "Inference timings in us",
                )
        if match := _OLD.search(line):
            f = _fields(match.group(1))
            if "Inference" in f:
                return BenchmarkTimings(
                    f["Inference"], std, runs, f.get("Init"), None, f.get("Warmup"), "Average inference timings in us"
                )
    if timed and "avg" in timed[1]:
        first = timed[1].get("first")
        return BenchmarkTimings(timed[1]["avg"], std, runs, None, first, None, "count= line")
    head = next((line for line in text.splitlines() if line.strip()), "<empty>")
    raise BenchmarkOutputError(f"no inference timings in benchmark_model output (it began: {head[:80]!r})")


def parse_op_tables(text: str) -> list[OpTable]:
    """The op-profiling tables, in the order printed (empty when profiling was off)."""
    tables: list[OpTable] = []
    context = "runs"
    current: OpTable | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if "Profiling Info for Benchmark Initialization" in line:
            context = "init"
            continue
        if "Profiling Info for Regular Benchmark Runs" in line:
            context = "runs"
            continue
        if section := _SECTION.match(line):
            current = OpTable(section.group(1), context, [])
            tables.append(current)
            continue
        if current is None or not line:
            if not line:
                current = None if current is not None and current.rows else current
            continue
        if not current.columns:
            current.columns = [c.strip() for c in _COLUMN.findall(line)]
            continue
        cells = [c.strip() for c in raw.split("\t") if c.strip()]
        if len(cells) != len(current.columns):
            raise BenchmarkOutputError(
                f"op table '{current.title}': a row has {len(cells)} cells for "
                f"{len(current.columns)} columns: {line[:80]!r}"
            )
        # Op names print as '[name]'; keep the name.
        cells = [c[1:-1] if c.startswith("[") and c.endswith("]") else c for c in cells]
        current.rows.append(dict(zip(current.columns, cells)))
    return tables
