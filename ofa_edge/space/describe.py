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
        slots = space.stage_slots[stage][:depth]
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


def layout_rows(space: SearchSpace) -> list[dict[str, str]]:
    """The space's layers, one row per stage (stem, first block, elastic stages, head), as
    ``space show`` prints them."""

    def depths(stage: int) -> str:
        choices = space.stage_depths(stage)
        return f"{min(choices)}-{max(choices)}" if len(choices) > 1 else str(choices[0])

    def row(stage: str, width: Any, stride: Any, act: str, se: str, blocks: str) -> dict[str, str]:
        return {"stage": stage, "width": str(width), "stride": str(stride), "activation": act, "SE": se,
                "blocks": blocks}  # fmt: skip

    rows = [
        row("stem", space.stem_width, space.stem_stride, space.stem_act, "-", "conv 3x3"),
        row("first", space.first_block_width, 1, space.first_block_act, "no", "MBConv k3 e1"),
    ]
    for i, st in enumerate(space.stages):
        rows.append(row(str(i + 1), st.width, st.stride, st.act, "yes" if st.se else "no", f"{depths(i)} MBConv"))
    if space.feature_mix_width:
        width, blocks = f"{space.final_expand_width}/{space.feature_mix_width}", "1x1, pool, 1x1, linear"
    else:
        width, blocks = space.final_expand_width, "1x1, pool, linear"
    rows.append(row("head", width, "-", space.head_act, "-", blocks))
    return rows
