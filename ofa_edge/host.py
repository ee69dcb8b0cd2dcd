"""What this machine is, in the detail a latency measurement depends on.

A CPU's model name alone does not tell machines apart: cloud VMs report "AMD EPYC" for hosts
whose speed differs 3x, mostly by the vector ISA they expose (AVX-512 or only AVX2) and the cores
they get. Tables record all three, and a table measured elsewhere is flagged when used here.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def _cpuinfo() -> tuple[str, set[str]]:
    model, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags


def isa_level(flags: set[str]) -> str:
    """The widest x86 vector extension the CPU exposes (or the machine type elsewhere)."""
    if "avx512f" in flags:
        return "AVX-512"
    if "avx2" in flags:
        return "AVX2"
    if "avx" in flags:
        return "AVX"
    return platform.machine()


def cpu_identity() -> str:
    """``"MODEL (ISA, N cores)"``, e.g. ``"AMD EPYC 9B14 (AVX-512, 2 cores)"``."""
    model, flags = _cpuinfo()
    return f"{model} ({isa_level(flags)}, {os.cpu_count() or 1} cores)"


def same_cpu(recorded: str, here: str | None = None) -> bool:
    """Whether a table's recorded CPU is this one. Older tables record the model name only; those
    cannot be told apart from another VM of the same model, so they never count as this CPU."""
    return recorded == (here or cpu_identity())
