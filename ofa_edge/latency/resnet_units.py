"""The latency units of an OFA-ResNet subnet: its stem, each bottleneck, global pooling, classifier.

One unit per cost term of the family's genome (:class:`~ofa_edge.space.resnet.ResNetGenome`), in
forward order, keyed in the style of the official tables (a table holds one space's units)::

    ResNetStem-input:28x28x1-output:28x28x16-mid:8-middle:1-pool:0
    bottleneck-input:28x28x16-output:28x28x64-mid:16-stride:1-downsample:1
    AvgPool2D-input:4x4x512-output:1x1x512
    Logits-input:1x1x512-output:10

The stem is one unit (its convs, the middle residual conv when ``d[0]`` keeps it, the max-pool
when the space has one): its parts always run together, and a table of fewer, larger units sums
fewer per-call overheads. ``mid`` is the stem's first width, or a bottleneck's middle width.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..space.resnet import ResNetArch, ResNetBlockSpec, ResNetSpace, ResNetStemSpec
from ..space.space import conv_output_size
from .keys import shape_key_parts


@dataclass(frozen=True)
class ResNetUnit:
    """One separately measured piece of an OFA-ResNet subnet."""

    kind: str  # ResNetStem, bottleneck, AvgPool2D, Logits
    in_size: int
    in_channels: int
    out_size: int
    out_channels: int
    stem: ResNetStemSpec | None = None  # set for ResNetStem
    block: ResNetBlockSpec | None = None  # set for bottleneck

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The batch-1 input the unit takes inside the subnet (the classifier reads the pooled vector)."""
        if self.kind == "Logits":
            return (1, self.in_channels)
        return (1, self.in_channels, self.in_size, self.in_size)

    @property
    def key(self) -> str:
        parts = shape_key_parts(self.kind, self.in_size, self.in_channels, self.out_size, self.out_channels)
        if self.stem is not None:
            s = self.stem
            parts += [f"mid:{s.mid_channels}", f"middle:{int(s.keep_middle)}", f"pool:{int(s.max_pool)}"]
        if self.block is not None:
            b = self.block
            parts += [f"mid:{b.mid_channels}", f"stride:{b.stride}", f"downsample:{int(b.downsample)}"]
        return "-".join(parts)


def stem_unit(spec: ResNetStemSpec) -> ResNetUnit:
    return ResNetUnit("ResNetStem", spec.input_size, spec.in_channels, spec.output_size, spec.out_channels, stem=spec)


def block_unit(spec: ResNetBlockSpec) -> ResNetUnit:
    return ResNetUnit("bottleneck", spec.input_size, spec.in_channels, spec.output_size, spec.out_channels, block=spec)


def pool_unit(size: int, channels: int) -> ResNetUnit:
    return ResNetUnit("AvgPool2D", size, channels, 1, channels)


def logits_unit(features: int, classes: int) -> ResNetUnit:
    return ResNetUnit("Logits", 1, features, 1, classes)


def arch_units(space: ResNetSpace, arch: ResNetArch) -> list[ResNetUnit]:
    """The units ``arch`` (validated) runs, in forward order: stem, kept bottlenecks, pooling, classifier."""
    blocks = space.block_specs(arch)
    features = space.classifier_in_features(arch)
    last_size = blocks[-1].output_size if blocks else space.stem_spec(arch).output_size
    return [
        stem_unit(space.stem_spec(arch)),
        *(block_unit(spec) for spec in blocks),
        pool_unit(last_size, features),
        logits_unit(features, space.num_classes),
    ]


def classifier_units(space: ResNetSpace) -> list[ResNetUnit]:
    """The classifier's units: one per width of the last stage (its input is the pooled vector)."""
    widths = dict.fromkeys(space.stage_widths(space.num_stages - 1))
    return [logits_unit(width, space.num_classes) for width in widths]


def _stem_units(space: ResNetSpace, resolution: int) -> list[ResNetUnit]:
    base = space.min_arch(resolution)
    stems = []
    for keep in (False, True):
        d0 = space.max_depth if keep else min(space.depth_choices)
        for w0 in range(len(space.width_mult_choices)):
            for w1 in range(len(space.width_mult_choices)):
                arch = replace(base, d=(d0, *base.d[1:]), w=(w0, w1, *base.w[2:]))
                stems.append(stem_unit(space.stem_spec(arch)))
    return stems


def space_units(space: ResNetSpace, resolutions: tuple[int, ...] | None = None) -> list[ResNetUnit]:
    """Every distinct unit any subnet of ``space`` can run at ``resolutions``, without repeats.

    A stage's first block sees the width before the stage (the stem's or the previous stage's)
    and its stride; its later blocks share one shape per (width, expand) pair.
    """
    units: dict[str, ResNetUnit] = {}
    for resolution in resolutions or space.resolutions:
        found = _stem_units(space, resolution)
        size = space.stem_spec(space.min_arch(resolution)).output_size
        in_widths = space.stem_out_widths
        for stage in range(space.num_stages):
            stride, out_widths = space.strides[stage], space.stage_widths(stage)
            out_size = conv_output_size(size, stride)
            for index in range(min(2, len(space.stage_slots[stage]))):
                firsts = in_widths if index == 0 else (None,)
                for cin in dict.fromkeys(firsts):
                    for out in dict.fromkeys(out_widths):
                        for expand in space.expand_choices:
                            spec = ResNetBlockSpec(
                                in_channels=out if cin is None else cin,
                                mid_channels=space.mid_channels(out, expand),
                                out_channels=out,
                                stride=stride if index == 0 else 1,
                                input_size=size if index == 0 else out_size,
                                downsample=space.has_downsample(stage, index),
                            )
                            found.append(block_unit(spec))
            size, in_widths = out_size, out_widths
        found += [pool_unit(size, width) for width in in_widths]
        found += classifier_units(space)
        for unit in found:
            units.setdefault(unit.key, unit)
    return list(units.values())
