"""The units a latency lookup table is keyed by: stem, each MBConv block, and the head's parts.

Keys use the official OFA table format (``ofa/nas/efficiency_predictor/latency_lookup_table.py``),
so tables imported from the reference's YAML files and tables we measure ourselves are read by one
predictor::

    Conv-input:28x28x1-output:28x28x16
    expanded_conv-input:14x14x24-output:14x14x24-expand:72-kernel:3-stride:1-idskip:1-se:0-hs:0
    Conv_1-input:2x2x120-output:2x2x720      AvgPool2D-input:2x2x720-output:1x1x720
    Conv_2-input:1x1x720-output:1x1x960      Logits-input:1x1x960-output:10

``expand`` is the block's middle (expanded) channel count, as in the reference's OFA-MobileNetV3
tables, not the ratio. OFA-ProxylessNAS units use the same form (``se:0``, and ``hs:0`` for its
ReLU6): a table holds the units of one space, so the key only has to tell that space's units
apart. (The reference's own ProxylessNAS tables write the ratio and fold pooling into ``Logits``;
they cover other widths than w1.3 and are not imported.)
A subnet's units depend only on its arch; the space's distinct units are what profiling measures.
OFA-ResNet spaces have units of their own (:mod:`ofa_edge.latency.resnet_units`): the functions
here pick a space's family's units (:func:`unit_family`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ArchError, OFAEdgeError
from ..space.arch import Arch
from ..space.resnet import ResNetArch, ResNetSpace
from ..space.space import BlockSpec, SearchSpace, conv_output_size, corner_archs
from . import resnet_units
from .keys import shape_key_parts
from .resnet_units import ResNetUnit

AnySpace = SearchSpace | ResNetSpace
AnyArch = Arch | ResNetArch


@dataclass(frozen=True)
class Unit:
    """One separately measured piece of a subnet."""

    kind: str  # Conv, expanded_conv, Conv_1, AvgPool2D, Conv_2, Logits
    in_size: int
    in_channels: int
    out_size: int
    out_channels: int
    block: BlockSpec | None = None  # set for expanded_conv

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The batch-1 NCHW input the unit takes."""
        return (1, self.in_channels, self.in_size, self.in_size)

    @property
    def key(self) -> str:
        parts = shape_key_parts(self.kind, self.in_size, self.in_channels, self.out_size, self.out_channels)
        if self.block is not None:
            b = self.block
            parts += [
                f"expand:{b.expanded_channels}",
                f"kernel:{b.kernel}",
                f"stride:{b.stride}",
                f"idskip:{int(b.shortcut)}",
                f"se:{int(b.se_channels is not None)}",
                f"hs:{int(b.act == 'hswish')}",
            ]
        return "-".join(parts)


def _block_unit(spec: BlockSpec) -> Unit:
    return Unit("expanded_conv", spec.input_size, spec.in_channels, spec.output_size, spec.out_channels, spec)


def _stem_unit(space: SearchSpace, resolution: int) -> Unit:
    return Unit("Conv", resolution, space.in_channels, space.stem_output_size(resolution), space.stem_width)


def _head_units(space: SearchSpace, resolution: int) -> list[Unit]:
    """Final expand, pooling, feature mix (a space without one has no ``Conv_2``), classifier."""
    size = space.final_feature_size(resolution)
    last, expand, mix = space.stages[-1].width, space.final_expand_width, space.feature_mix_width
    units = [Unit("Conv_1", size, last, size, expand), Unit("AvgPool2D", size, expand, 1, expand)]
    if mix:
        units.append(Unit("Conv_2", 1, expand, 1, mix))
    return [*units, classifier_unit(space)]


def classifier_unit(space: SearchSpace) -> Unit:
    """The classifier's unit (one per space: its input is the pooled 1x1 feature at any resolution)."""
    return Unit("Logits", 1, space.classifier_in_features, 1, space.num_classes)


def _mbconv_arch_units(space: SearchSpace, arch: Arch) -> list[Unit]:
    blocks = [_block_unit(spec) for spec in space.block_specs(arch)]
    return [_stem_unit(space, arch.r), *blocks, *_head_units(space, arch.r)]


def _mbconv_space_units(space: SearchSpace, resolutions: tuple[int, ...] | None = None) -> list[Unit]:
    """Within a stage, the first block differs from the rest (stride, input channels); the later
    blocks of a stage share one shape, so each (kernel, expand) pair is one unit per position kind.
    """
    units: dict[str, Unit] = {}
    for resolution in resolutions or space.resolutions:
        size = space.stem_output_size(resolution)
        found = [_stem_unit(space, resolution), _block_unit(space.first_block_spec(size))]
        channels = space.first_block_width
        for stage, slots in zip(space.stages, space.stage_slots):
            for position in ("first", "rest")[: len(slots)]:
                stride = stage.stride if position == "first" else 1
                in_channels = channels if position == "first" else stage.width
                in_size = size if position == "first" else conv_output_size(size, stage.stride)
                for kernel in space.kernel_choices:
                    for expand in space.expand_choices:
                        spec = space.mbconv_spec(stage, in_channels, kernel, expand, stride, in_size)
                        found.append(_block_unit(spec))
            size = conv_output_size(size, stage.stride)
            channels = stage.width
        found += _head_units(space, resolution)
        for unit in found:
            units.setdefault(unit.key, unit)
    return list(units.values())


# ------------------------------------------------------------------- families
@dataclass(frozen=True)
class UnitFamily:
    """How the subnets of one family of spaces split into latency units."""

    arch_type: type
    arch_fields: str  # the fields of the family's arch JSON, for error lines
    arch_units: Callable[[Any, Any], list[Any]]  # (space, validated arch) -> units in forward order
    space_units: Callable[[Any, tuple[int, ...] | None], list[Any]]
    classifier_units: Callable[[Any], list[Any]]  # every classifier a subnet of the space can run
    corner_archs: Callable[[Any, int], dict[str, Any]]  # (space, resolution) -> name -> arch


_MBCONV = UnitFamily(
    Arch, "ks, e, d, r", _mbconv_arch_units, _mbconv_space_units, lambda space: [classifier_unit(space)], corner_archs
)
_FAMILIES: dict[str, UnitFamily] = {
    "mbv3": _MBCONV,
    "proxyless": _MBCONV,
    "resnet": UnitFamily(
        ResNetArch,
        "d, e, w, r",
        resnet_units.arch_units,
        resnet_units.space_units,
        resnet_units.classifier_units,
        lambda space, resolution: space.corner_archs(resolution),
    ),
}


def unit_family(space: AnySpace) -> UnitFamily:
    """The unit functions of ``space``'s family."""
    family = getattr(space, "family", None)
    if family not in _FAMILIES:
        raise OFAEdgeError(f"space '{space.name}' is of family '{family}', which has no latency units")
    return _FAMILIES[family]


def arch_units(space: AnySpace, arch: AnyArch | dict[str, Any]) -> list[Unit | ResNetUnit]:
    """The units ``arch`` runs, in forward order (its predicted latency is their sum)."""
    family = unit_family(space)
    if not isinstance(arch, (family.arch_type, dict)):
        raise ArchError(
            f"a {type(arch).__name__} is not an arch of space '{space.name}' (its archs have fields "
            f"{family.arch_fields})"
        )
    return family.arch_units(space, space.validate(arch))


def space_units(space: AnySpace, resolutions: tuple[int, ...] | None = None) -> list[Unit | ResNetUnit]:
    """Every distinct unit any subnet of ``space`` can run at ``resolutions``, without repeats."""
    return unit_family(space).space_units(space, resolutions)


def classifier_units(space: AnySpace) -> list[Unit | ResNetUnit]:
    """Every classifier unit a subnet of ``space`` can run (one for an MBConv space, whose
    classifier input is fixed; one per last-stage width for OFA-ResNet)."""
    return unit_family(space).classifier_units(space)


def space_corners(space: AnySpace, resolution: int) -> dict[str, Any]:
    """The 8 corner subnets of ``space`` at ``resolution`` (min/max of each elastic dimension), by name."""
    return unit_family(space).corner_archs(space, resolution)
