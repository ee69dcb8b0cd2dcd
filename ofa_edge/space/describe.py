"""A per-stage summary of an arch, for people and for JSON output."""

from __future__ import annotations

from typing import Any

from .arch import Arch
from .space import SearchSpace


def describe_arch(space: SearchSpace, arch: Arch) -> dict[str, Any]:
    """A per-stage summary of an arch plus its MACs and params."""
    specs = space.block_specs(arch)[1:]  # without the fixed first block
    stages: list[dict[str, Any]] = []
    position = 0
    for stage, depth in enumerate(arch.d):
        blocks = specs[position : position + depth]
        position += depth
        slots = [stage * space.max_depth + i for i in range(depth)]
        stages.append(
            {
                "stage": stage + 1,
                "depth": depth,
                "kernels": [arch.ks[s] for s in slots],
                "expands": [arch.e[s] for s in slots],
                "mid_channels": [b.mid_channels for b in blocks],
                "out_channels": space.stages[stage].width,
            }
        )
    return {
        "space": space.name,
        "arch": arch.to_dict(),
        "resolution": arch.r,
        "depths": list(arch.d),
        "stages": stages,
        "macs": space.macs(arch),
        "params": space.params(arch),
    }
