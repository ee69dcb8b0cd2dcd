"""Per-stage summaries of archs and spaces, for people and for JSON output, for every family.

``describe_arch`` and ``layout_rows`` pick the family's summary by ``space.family``; the rows
they return are plain dicts whose keys are the columns a CLI table shows.
"""

from __future__ import annotations

from typing import Any

from .arch import Arch
from .resnet import ResNetArch, ResNetSpace
from .space import SearchSpace


def describe_arch(space: Any, arch: Any) -> dict[str, Any]:
    """A per-stage summary of an arch plus its MACs and params (``stages``: one dict per stage)."""
    stages = _resnet_stages(space, arch) if isinstance(space, ResNetSpace) else _mbconv_stages(space, arch)
    return {
        "space": space.name,
        "arch": arch.to_dict(),
        "resolution": arch.r,
        "depths": list(arch.d),
        "stages": stages,
        "macs": space.macs(arch),
        "params": space.params(arch),
    }


def _mbconv_stages(space: SearchSpace, arch: Arch) -> list[dict[str, Any]]:
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
    return stages


def _resnet_stages(space: ResNetSpace, arch: ResNetArch) -> list[dict[str, Any]]:
    """The stem as stage 0 (its middle conv kept or skipped), then each stage's kept blocks."""
    arch = space.validate(arch)
    stem = space.stem_spec(arch)
    stages: list[dict[str, Any]] = [{
        "stage": 0, "depth": 3 if stem.keep_middle else 2, "expands": [],
        "mid_channels": [stem.mid_channels], "out_channels": stem.out_channels,
    }]  # fmt: skip
    specs = space.block_specs(arch)
    for stage in range(space.num_stages):
        kept = [(slot, spec) for (s, _, slot), spec in zip(space.active_slots(arch), specs) if s == stage]
        stages.append({
            "stage": stage + 1,
            "depth": len(kept),
            "expands": [arch.e[slot] for slot, _ in kept],
            "mid_channels": [spec.mid_channels for _, spec in kept],
            "out_channels": space.stage_widths(stage)[arch.w[stage + 2]],
        })  # fmt: skip
    return stages


def choices_line(space: Any) -> str:
    """The space's elastic choices in one line."""
    if isinstance(space, ResNetSpace):
        return (f"extra depth {list(space.depth_choices)} (stem middle conv: skipped below {space.max_depth}), "
                f"expand {list(space.expand_choices)}, width {list(space.width_mult_choices)}")  # fmt: skip
    choices = (space.kernel_choices, space.expand_choices, space.depth_choices)
    return "kernel {}, expand {}, depth {}".format(*map(list, choices))


def layout_rows(space: Any) -> list[dict[str, str]]:
    """The space's layers, one row per stage (stem, elastic stages, head), as ``space show``
    prints them."""
    if isinstance(space, ResNetSpace):
        return _resnet_rows(space)
    return _mbconv_rows(space)


def _row(stage: str, width: Any, stride: Any, act: str, se: str, blocks: str) -> dict[str, str]:
    return {"stage": stage, "width": str(width), "stride": str(stride), "activation": act, "SE": se, "blocks": blocks}


def _mbconv_rows(space: SearchSpace) -> list[dict[str, str]]:
    def depths(stage: int) -> str:
        choices = space.stage_depths(stage)
        return f"{min(choices)}-{max(choices)}" if len(choices) > 1 else str(choices[0])

    rows = [
        _row("stem", space.stem_width, space.stem_stride, space.stem_act, "-", "conv 3x3"),
        _row("first", space.first_block_width, 1, space.first_block_act, "no", "MBConv k3 e1"),
    ]
    for i, st in enumerate(space.stages):
        rows.append(_row(str(i + 1), st.width, st.stride, st.act, "yes" if st.se else "no", f"{depths(i)} MBConv"))
    if space.feature_mix_width:
        width, blocks = f"{space.final_expand_width}/{space.feature_mix_width}", "1x1, pool, 1x1, linear"
    else:
        width, blocks = space.final_expand_width, "1x1, pool, linear"
    rows.append(_row("head", width, "-", space.head_act, "-", blocks))
    return rows


def _resnet_rows(space: ResNetSpace) -> list[dict[str, str]]:
    def widths(values: tuple[int, ...]) -> str:
        return "/".join(map(str, values))

    pool = ", max-pool" if space.max_pool else ""
    rows = [_row("stem", widths(space.stem_out_widths), space.stem_stride, "relu", "-",
                 f"conv 3x3, (conv 3x3), conv 3x3{pool}")]  # fmt: skip
    for stage, (base, stride) in enumerate(zip(space.base_depths, space.strides)):
        low, high = base + min(space.depth_choices), base + space.max_depth
        rows.append(_row(str(stage + 1), widths(space.stage_widths(stage)), stride, "relu", "no",
                         f"{low}-{high} bottleneck"))  # fmt: skip
    rows.append(_row("head", widths(space.stage_widths(space.num_stages - 1)), "-", "-", "-", "pool, linear"))
    return rows
