"""Official OFA specialised nets read as archs: a ``net.config`` (the layers of a static net, as
the reference implementation writes them: ``first_conv``, ``blocks``, the head layers,
``classifier``) and the ``image_size`` of its ``run.config``. OFA-MobileNetV3 nets
(``MobileNetV3``: ``final_expand_layer`` and a ``feature_mix_layer`` after pooling) and
OFA-ProxylessNAS nets (``ProxylessNASNets``: one ``feature_mix_layer`` with BatchNorm before
pooling) are read.

A net.config names no space and no arch: its space is recognised by its widths (the first conv's
output channels pick the space, then every layer must match that space's
structure), and its arch is read block by block (a stage's depth is its number of blocks, each
block's kernel is its ``kernel_size``, its expand ratio its ``mid_channels`` over its
``in_channels``). Every mismatch is one :class:`ArchError` line naming the layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

from ..errors import ArchError
from .arch import Arch
from .space import SearchSpace, _fmt_choices, get_space

# The spaces of the official OFA supernets whose specialised nets this reads, by the reference's
# network class name.
FAMILIES = {"MobileNetV3": ("mbv3-w1.0", "mbv3-w1.2"), "ProxylessNASNets": ("proxyless-w1.3",)}
_TITLES = {"MobileNetV3": "OFA-MobileNetV3", "ProxylessNASNets": "OFA-ProxylessNAS"}
_READS = "ofa-edge reads OFA-MobileNetV3 and OFA-ProxylessNAS nets (MobileNetV3, ProxylessNASNets)"
# The reference's activation names for ofa-edge's.
_REFERENCE_ACT = {"relu": "relu", "relu6": "relu6", "hswish": "h_swish"}
_MBCONV_NAMES = ("MBConvLayer", "MBInvertedConvLayer")  # the reference's current and older names


def is_net_config(data: Any) -> bool:
    """Whether parsed JSON is a net.config (layers) rather than an arch (``ks``, ``e``, ``d``, ``r``)."""
    return isinstance(data, dict) and "blocks" in data and "ks" not in data


def read_net_config(net: Any, run: Any, origin: str) -> tuple[str, Arch]:
    """(space name, arch) of the official specialised net whose ``net.config`` is ``net`` and
    whose ``run.config`` is ``run``. The arch's resolution is the run's ``image_size``, accepted
    even outside the space's training range (a static net; see ``SearchSpace.with_resolution``).
    ``origin`` (the file) starts every error line."""
    family = _check_family(net, origin)
    reader = _NetReader(origin, _space_of(net, family, origin))
    reader.check_fixed_layers(net)
    blocks = reader.mbconv_blocks(net["blocks"])
    reader.check_first_block(blocks[0])
    depths, kernels, expands = reader.read_stages(blocks[1:])
    size = _image_size(run, origin)
    arch = Arch(ks=tuple(kernels), e=tuple(expands), d=tuple(depths), r=size)
    return reader.space.name, reader.space.with_resolution(size).validate(arch)  # fills skipped slots as for any arch


def _check_family(net: Any, origin: str) -> str:
    """The net's reference class name, if this reads that family."""
    name = net.get("name") if isinstance(net, dict) else None
    if name not in FAMILIES:
        raise ArchError(f"{origin} is a net of type {name!r}; {_READS}")
    return name


def _space_of(net: dict[str, Any], family: str, origin: str) -> SearchSpace:
    """The family's space whose stem width is the first conv's output channels (the widths differ
    from the first layer on)."""
    first = net.get("first_conv")
    width = first.get("out_channels") if isinstance(first, dict) else None
    for name in FAMILIES[family]:
        if get_space(name).stem_width == width:
            return get_space(name)
    widths = ", ".join(f"{name}: {get_space(name).stem_width}" for name in FAMILIES[family])
    title = _TITLES[family]
    raise ArchError(f"{origin}: first_conv has {width} output channels, which fits no {title} space ({widths})")


def _image_size(run: Any, origin: str) -> int:
    size = run.get("image_size") if isinstance(run, dict) else None
    # Training run.configs may list several sizes; a specialised net's has one.
    if isinstance(size, list) and len(size) == 1:
        size = size[0]
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ArchError(f'{origin}: its run.config gives no image size (expected "image_size": an integer)')
    return size


@dataclass(frozen=True)
class _Block:
    """The fields of one MBConv block of a net.config that decide its place in the space."""

    where: str  # "blocks[5]", for error lines
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    expand_ratio: float
    mid_channels: int | None
    act: str
    se: bool
    shortcut: bool

    @property
    def middle(self) -> int:
        """The expanded width the reference builds (``mid_channels``, else in x expand)."""
        return self.mid_channels if self.mid_channels is not None else round(self.in_channels * self.expand_ratio)


class _NetReader:
    """Reads one net.config against one space; every check raises one line on a mismatch."""

    def __init__(self, origin: str, space: SearchSpace) -> None:
        self.origin = origin
        self.space = space

    def fail(self, where: str, text: str) -> NoReturn:
        raise ArchError(f"{self.origin}: {where}: {text}")

    def field(self, layer: Any, key: str, where: str, kind: type | tuple[type, ...] = int) -> Any:
        value = layer.get(key) if isinstance(layer, dict) else None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.fail(where, f"'{key}' is {value!r}, expected {getattr(kind, '__name__', 'a number')}")
        return value

    def expect(self, where: str, key: str, got: Any, want: Any) -> None:
        if got != want:
            self.fail(where, f"{key} {got}, but space {self.space.name} has {want}")

    # --------------------------------------------------------------- fixed layers
    def check_fixed_layers(self, net: dict[str, Any]) -> None:
        """The stem conv and the head: their widths must be the space's."""
        sp = self.space
        final_expand = {"in_channels": sp.stages[-1].width, "out_channels": sp.final_expand_width}
        if sp.feature_mix_width:  # OFA-MobileNetV3: final expand, pooling, a bare 1x1 feature mix
            head = {
                "final_expand_layer": final_expand,
                "feature_mix_layer": {"in_channels": sp.final_expand_width, "out_channels": sp.feature_mix_width},
            }
        else:  # OFA-ProxylessNAS names its one head conv (with BatchNorm) the feature mix
            head = {"feature_mix_layer": final_expand}
        for where, expected in (
            ("first_conv", {"in_channels": sp.in_channels, "out_channels": sp.stem_width, "kernel_size": 3,
                            "stride": sp.stem_stride}),
            *head.items(),
            ("classifier", {"in_features": sp.classifier_in_features, "out_features": sp.num_classes}),
        ):  # fmt: skip
            layer = net.get(where)
            for key, want in expected.items():
                self.expect(where, key, self.field(layer, key, where), want)
        # A feature mix with BatchNorm where the space has none (or the reverse) is another net.
        self.expect("feature_mix_layer", "use_bn", net["feature_mix_layer"].get("use_bn"), not sp.feature_mix_width)

    # ------------------------------------------------------------------- blocks
    def mbconv_blocks(self, blocks: Any) -> list[_Block]:
        if not isinstance(blocks, list) or not blocks:
            self.fail("blocks", "expected a non-empty list of blocks")
        return [self.mbconv(block, f"blocks[{index}]") for index, block in enumerate(blocks)]

    def mbconv(self, block: Any, where: str) -> _Block:
        conv = block.get("conv", block.get("mobile_inverted_conv")) if isinstance(block, dict) else None
        name = conv.get("name") if isinstance(conv, dict) else None
        if name not in _MBCONV_NAMES:
            self.fail(where, f"a {name or 'layer of no known type'}, not an MBConv block")
        if conv.get("groups") is not None:  # grouped depthwise convs: another net
            self.fail(where, f"groups {conv['groups']}, but space {self.space.name} has none")
        mid = conv.get("mid_channels")
        return _Block(
            where=where,
            in_channels=self.field(conv, "in_channels", where),
            out_channels=self.field(conv, "out_channels", where),
            kernel=self.field(conv, "kernel_size", where),
            stride=self.field(conv, "stride", where),
            expand_ratio=self.field(conv, "expand_ratio", where, (int, float)),
            mid_channels=None if mid is None else self.field(conv, "mid_channels", where),
            act=self.field(conv, "act_func", where, str),
            se=self.field(conv, "use_se", where, bool),
            shortcut=block.get("shortcut") is not None,
        )

    def check_first_block(self, block: _Block) -> None:
        """The fixed first block: k3, expand 1, stride 1, no SE, into the first block's width."""
        spec = self.space.first_block_spec(0)
        where = f"{block.where} (the first block)"
        for key, got, want in (
            ("in_channels", block.in_channels, spec.in_channels),
            ("out_channels", block.out_channels, spec.out_channels),
            ("kernel_size", block.kernel, spec.kernel),
            ("stride", block.stride, spec.stride),
            ("expand_ratio", block.expand_ratio, 1),
            ("act_func", block.act, _REFERENCE_ACT.get(spec.act, spec.act)),
            ("use_se", block.se, False),
            ("shortcut", block.shortcut, spec.shortcut),
        ):
            self.expect(where, key, got, want)

    def read_stages(self, blocks: list[_Block]) -> tuple[list[int], list[int], list[int]]:
        """(depths, kernels, expand ratios) of the elastic stages: one kernel and expand ratio per
        slot, 0 in the slots past a stage's depth (no block there)."""
        sp = self.space
        depths: list[int] = []
        kernels = [0] * sp.num_slots
        expands = [0] * sp.num_slots
        channels = sp.first_block_width
        for block in blocks:
            stage, index = self.place(block, depths)
            slot = sp.stage_slots[stage][index]
            kernels[slot], expands[slot] = self.check_block(block, stage, index, channels)
            channels = block.out_channels
        if len(depths) != sp.num_stages:
            self.fail(
                "blocks", f"{len(depths)} stage(s) after the first block, but space {sp.name} has {sp.num_stages}"
            )
        self.check_depth(len(depths) - 1, depths[-1])
        return depths, kernels, expands

    def place(self, block: _Block, depths: list[int]) -> tuple[int, int]:
        """(stage, index in stage) of the next block: its output width continues the current stage
        or starts the next one, as in the reference, where a stage's blocks share one width."""
        sp = self.space
        stage = len(depths) - 1
        if stage >= 0 and block.out_channels == sp.stages[stage].width:
            most = len(sp.stage_slots[stage])
            if depths[-1] == most:
                self.fail(block.where, f"one block too many: stage {stage + 1} already has {most}, "
                                       f"the most space {sp.name} allows")  # fmt: skip
            depths[-1] += 1
            return stage, depths[-1] - 1
        if stage + 1 < sp.num_stages and block.out_channels == sp.stages[stage + 1].width:
            if stage >= 0:
                self.check_depth(stage, depths[-1])
            depths.append(1)
            return stage + 1, 0
        widths = [f"{sp.stages[s].width} (stage {s + 1})" for s in (stage, stage + 1) if 0 <= s < sp.num_stages]
        self.fail(block.where, f"out_channels {block.out_channels}, but space {sp.name} has {' or '.join(widths)} here")

    def check_depth(self, stage: int, depth: int) -> None:
        allowed = self.space.stage_depths(stage)
        if depth not in allowed:
            self.fail(f"stage {stage + 1}", f"{depth} block(s), but space {self.space.name} allows "
                                            f"{_fmt_choices(allowed)}")  # fmt: skip

    def check_block(self, block: _Block, stage: int, index: int, channels: int) -> tuple[int, int]:
        """(kernel, expand ratio) of a stage's block, after checking it is the block the space has there."""
        sp = self.space
        where = f"{block.where} (stage {stage + 1}, block {index + 1})"
        stride = sp.stages[stage].stride if index == 0 else 1
        # The structure of the slot (kernel and expand ratio change none of these fields).
        spec = sp.mbconv_spec(sp.stages[stage], channels, sp.kernel_choices[0], sp.expand_choices[0], stride, 0)
        for key, got, want in (
            ("in_channels", block.in_channels, spec.in_channels),
            ("stride", block.stride, spec.stride),
            ("act_func", block.act, _REFERENCE_ACT.get(spec.act, spec.act)),
            ("use_se", block.se, spec.se_channels is not None),
            ("shortcut", block.shortcut, spec.shortcut),
        ):
            self.expect(where, key, got, want)
        if block.kernel not in sp.kernel_choices:
            self.fail(
                where, f"kernel_size {block.kernel}, but space {sp.name} allows {_fmt_choices(sp.kernel_choices)}"
            )
        return block.kernel, self.expand_ratio(block, where)

    def expand_ratio(self, block: _Block, where: str) -> int:
        """The space's expand ratio that gives this block's middle width from its input width."""
        sp = self.space
        choices = _fmt_choices(sp.expand_choices)
        if block.expand_ratio == 1:  # the reference builds no inverted bottleneck then, whatever mid_channels says
            self.fail(where, f"expand_ratio 1, but space {sp.name} allows {choices}")
        for expand in sp.expand_choices:
            if sp.mid_channels(block.in_channels, expand) == block.middle:
                return expand
        self.fail(where, f"mid_channels {block.middle} is in_channels {block.in_channels} times none of space "
                         f"{sp.name}'s expand ratios ({choices})")  # fmt: skip
