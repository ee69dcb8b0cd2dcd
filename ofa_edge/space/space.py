"""Search spaces: the elastic choices of an OFA-MobileNetV3 supernet, and everything that can be
computed from an arch without building a network (validation, sampling, mutation, crossover,
predictor encoding, block specs, MACs and params).

Presets
-------
``mbv3-w1.0`` / ``mbv3-w1.2``
    The official OFA ImageNet spaces (``ofa_mbv3_d234_e346_k357_w1.0`` / ``_w1.2``): 3x224 input,
    1000 classes, stem stride 2, stage strides 2,2,2,1,2, resolutions 128-224 (w1.2: 160-224) in
    steps of 4.

``mbv3-fmnist``
    The small-data demo space for 28x28 grey images and 10 classes, with the same elastic
    dimensions (5 elastic stages; kernel 3/5/7, expand 3/4/6, depth 2/3/4). Choices and why:

    * **1 input channel, 10 classes.**
    * **Stem stride 1, stage strides 2,2,2,1,2.** With the ImageNet stem stride of 2, a 28 px image
      would reach the last stage at 1x1 and the 7x7 kernels would see mostly padding. Stride 1
      keeps the first block at full resolution and ends at 2x2 (28 px) or 2x2 (20 px), the same
      downsampling depth as ImageNet relative to its input (224/32 = 7 there, 28/16 ~ 2 here).
    * **Width multiplier 0.75** of the MobileNetV3 base widths (stem 16, stages 24/32/64/88/120,
      head 720/960): trained alone, its largest and smallest subnets come within reach of the
      accuracy goals in a CPU-sized budget, where width 0.5 trains faster but lands lower (the
      measurements are in BENCHMARKS.md and the design notes).
    * **Resolutions 20, 24, 28.** Nets trained only at 28 px collapse at 20 px, so elastic
      resolution must be trained; three steps of 4 px keep a real latency/accuracy trade-off
      (20 px costs about half the MACs of 28 px) without the collapse seen at 16 px.
    * **Time budget.** Progressive shrinking costs about 40 max-net epochs (full net 8, kernel
      4 x 1.33, depth (2+4) x 1.8, expand (2+4) x 2.7, counting the teacher's forward and the mean
      sampled subnet's size), scaled by 0.75 for the mean pixel count of the three resolutions.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np

from ..errors import ArchError, OFAEdgeError
from .arch import Arch, is_resnet_dict
from .genome import MBConvGenome


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to a multiple of ``divisor``, never below ``divisor`` nor 10% below ``value``.

    This is the MobileNet rounding rule; the reference OFA code applies it to every width.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_output_size(size: int, stride: int) -> int:
    """Spatial size after a 'same'-padded (pad = k // 2) odd-kernel convolution."""
    return (size - 1) // stride + 1


@dataclass(frozen=True)
class StageSpec:
    """The fixed (non-elastic) properties of one elastic stage."""

    width: int
    stride: int
    act: str
    se: bool
    # Depth choices of this stage when they differ from the space's (ProxylessNAS's last stage
    # always has exactly one block); empty: the space's ``depth_choices``.
    depths: tuple[int, ...] = ()


@dataclass(frozen=True)
class BlockSpec:
    """One concrete MBConv block of a subnet: enough to build it, count it or profile it alone."""

    in_channels: int
    out_channels: int
    kernel: int
    mid_channels: int | None  # None: no inverted bottleneck (expand ratio 1, the first block)
    stride: int
    act: str
    se_channels: int | None  # None: no squeeze-excite
    shortcut: bool
    input_size: int

    @property
    def expanded_channels(self) -> int:
        return self.mid_channels if self.mid_channels is not None else self.in_channels

    @property
    def output_size(self) -> int:
        return conv_output_size(self.input_size, self.stride)

    def macs(self) -> int:
        mid = self.expanded_channels
        out_hw = self.output_size**2
        total = mid * self.kernel * self.kernel * out_hw + mid * self.out_channels * out_hw
        if self.mid_channels is not None:
            total += self.in_channels * mid * self.input_size**2
        if self.se_channels is not None:
            total += 2 * mid * self.se_channels  # two 1x1 convs on the pooled 1x1 map
        return total

    def params(self) -> int:
        mid = self.expanded_channels
        total = mid * self.kernel * self.kernel + 2 * mid  # depthwise conv + BN
        total += mid * self.out_channels + 2 * self.out_channels  # point-linear conv + BN
        if self.mid_channels is not None:
            total += self.in_channels * mid + 2 * mid  # inverted bottleneck conv + BN
        if self.se_channels is not None:
            total += 2 * mid * self.se_channels + self.se_channels + mid  # SE convs with bias
        return total


@dataclass(frozen=True)
class SearchSpace:
    """An OFA-MobileNetV3 search space: fixed macro-structure plus the elastic choices."""

    name: str
    in_channels: int
    num_classes: int
    resolutions: tuple[int, ...]
    stem_width: int
    stem_stride: int
    first_block_width: int
    stages: tuple[StageSpec, ...]
    final_expand_width: int
    feature_mix_width: int
    kernel_choices: tuple[int, ...] = (3, 5, 7)
    expand_choices: tuple[int, ...] = (3, 4, 6)
    depth_choices: tuple[int, ...] = (2, 3, 4)
    dropout: float = 0.1
    # Activation of the first block (always k3, expand 1, stride 1, no SE in MobileNetV3).
    first_block_act: str = "relu"
    # The family of MBConv network this space describes: "mbv3" (hswish stem, a head of final
    # expand, pooling, feature mix) or "proxyless" (ReLU6 throughout, a head of one 1x1 conv with
    # BatchNorm before pooling and no feature mix: ``feature_mix_width`` is 0).
    family: str = "mbv3"
    stem_act: str = "hswish"
    head_act: str = "hswish"
    bn_eps: float = 1e-5
    description: str = field(default="", compare=False)
    # Resolutions outside the training range at which a static net of this space is read (an
    # official specialised net at 236 or 260 px): validate accepts them, so MACs, params,
    # extraction and pricing work there, but nothing samples or encodes them. Not part of the
    # space's definition: equality, checkpoints and tables ignore them.
    static_resolutions: tuple[int, ...] = field(default=(), compare=False)

    # ----------------------------------------------------------------- structure
    @cached_property
    def genome(self) -> MBConvGenome:
        """This space's archs as gene rows, for the vectorised search (:mod:`.genome`)."""
        return MBConvGenome(self)

    @property
    def max_depth(self) -> int:
        return max(self.depth_choices)

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    def stage_depths(self, stage: int) -> tuple[int, ...]:
        """The depth choices of one stage (the space's, unless the stage fixes its own)."""
        return self.stages[stage].depths or self.depth_choices

    @property
    def stage_slots(self) -> tuple[range, ...]:
        """The ``ks``/``e`` slot indices of each stage: as many as its largest depth."""
        slots, start = [], 0
        for stage in range(self.num_stages):
            count = max(self.stage_depths(stage))
            slots.append(range(start, start + count))
            start += count
        return tuple(slots)

    @property
    def num_slots(self) -> int:
        """Block slots carried by ``ks``/``e``: the stages' largest depths summed (20 for
        OFA-MobileNetV3, 21 for OFA-ProxylessNAS)."""
        return self.stage_slots[-1].stop

    @staticmethod
    def mid_channels(in_channels: int, expand: int) -> int:
        """An MBConv block's expanded (middle) width: the one rule, for specs and the supernet alike."""
        return make_divisible(round(in_channels * expand), 8)

    @staticmethod
    def se_channels(channels: int) -> int:
        return make_divisible(channels // 4, 8)

    # ------------------------------------------------------------- arch handling
    def validate(self, arch: Arch | dict[str, Any]) -> Arch:
        """Return ``arch`` as an :class:`Arch` if it fits this space, else raise one clear line."""
        if not isinstance(arch, Arch):
            if not isinstance(arch, dict) or is_resnet_dict(arch):
                raise ArchError(f"an OFA-ResNet arch (d, e, w, r) does not fit space {self.name}, whose archs "
                                "are ks, e, d, r (the OFA-ResNet spaces: resnet50, resnet50-fmnist)")  # fmt: skip
            arch = Arch.from_dict(arch)
        for key, expected, what in (
            ("ks", self.num_slots, "one per block slot"),
            ("e", self.num_slots, "one per block slot"),
            ("d", self.num_stages, "one per stage"),
        ):
            got = len(getattr(arch, key))
            if got != expected:
                raise ArchError(f"arch field '{key}' has {got} entries; space {self.name} needs {expected} ({what})")
        for index, depth in enumerate(arch.d):
            if depth not in self.stage_depths(index):
                raise ArchError(
                    f"arch field 'd' index {index}: {depth} is not allowed in space {self.name} "
                    f"(allowed: {_fmt_choices(self.stage_depths(index))})"
                )
        arch = self._fill_skipped(arch)
        for key, allowed in (("ks", self.kernel_choices), ("e", self.expand_choices)):
            for index, value in enumerate(getattr(arch, key)):
                if value not in allowed:
                    raise ArchError(
                        f"arch field '{key}' index {index}: {value} is not allowed in space {self.name} "
                        f"(allowed: {_fmt_choices(allowed)})"
                    )
        if arch.r not in self.resolutions and arch.r not in self.static_resolutions:
            raise ArchError(
                f"arch field 'r': {arch.r} is not allowed in space {self.name} "
                f"(allowed: {_fmt_choices(self.resolutions)})"
            )
        return arch

    def _fill_skipped(self, arch: Arch) -> Arch:
        """``arch`` with a 0 kernel or expand ratio in a block its stage's depth skips replaced by
        the smallest choice: the official OFA code's arch encoder writes 0 there (no block). Such
        a slot is never built, so any allowed value means the same subnet."""
        skipped = {slot for stage, depth in enumerate(arch.d) for slot in self.stage_slots[stage][depth:]}
        if not any(arch.ks[i] == 0 or arch.e[i] == 0 for i in skipped):
            return arch
        ks = tuple(min(self.kernel_choices) if i in skipped and k == 0 else k for i, k in enumerate(arch.ks))
        e = tuple(min(self.expand_choices) if i in skipped and x == 0 else x for i, x in enumerate(arch.e))
        return Arch(ks=ks, e=e, d=arch.d, r=arch.r)

    def uniform_arch(self, kernel: int, expand: int, depth: int, r: int) -> Arch:
        """Every slot with one kernel and expand ratio; every stage at ``depth`` (or, for a stage
        without that choice, its nearest one)."""
        depths = tuple(min(self.stage_depths(s), key=lambda c: abs(c - depth)) for s in range(self.num_stages))
        return Arch((kernel,) * self.num_slots, (expand,) * self.num_slots, depths, r)

    def max_arch(self, r: int | None = None) -> Arch:
        r = max(self.resolutions) if r is None else r
        return self.uniform_arch(max(self.kernel_choices), max(self.expand_choices), self.max_depth, r)

    def min_arch(self, r: int | None = None) -> Arch:
        r = min(self.resolutions) if r is None else r
        return self.uniform_arch(min(self.kernel_choices), min(self.expand_choices), min(self.depth_choices), r)

    def sample(self, rng: random.Random | int | None = None) -> Arch:
        """A uniformly random arch (every slot, used or not, gets a value, as in the reference)."""
        rng = _as_rng(rng)
        return Arch(
            ks=tuple(rng.choice(self.kernel_choices) for _ in range(self.num_slots)),
            e=tuple(rng.choice(self.expand_choices) for _ in range(self.num_slots)),
            d=tuple(rng.choice(self.stage_depths(s)) for s in range(self.num_stages)),
            r=rng.choice(self.resolutions),
        )

    def mutate(self, arch: Arch, rng: random.Random | int | None = None, prob: float = 0.1) -> Arch:
        """Resample each gene (kernel, expand per slot; depth per stage; resolution) with ``prob``."""
        rng = _as_rng(rng)
        arch = self.validate(arch)

        def maybe(values: Sequence[int], choices: tuple[int, ...]) -> tuple[int, ...]:
            return tuple(rng.choice(choices) if rng.random() < prob else v for v in values)

        ks, e = maybe(arch.ks, self.kernel_choices), maybe(arch.e, self.expand_choices)
        d = tuple(rng.choice(self.stage_depths(s)) if rng.random() < prob else v for s, v in enumerate(arch.d))
        return Arch(ks=ks, e=e, d=d, r=rng.choice(self.resolutions) if rng.random() < prob else arch.r)

    def crossover(self, a: Arch, b: Arch, rng: random.Random | int | None = None) -> Arch:
        """Each gene from either parent with equal probability."""
        rng = _as_rng(rng)
        a, b = self.validate(a), self.validate(b)

        def pick(x: Sequence[int], y: Sequence[int]) -> tuple[int, ...]:
            return tuple(rng.choice((u, v)) for u, v in zip(x, y))

        return Arch(ks=pick(a.ks, b.ks), e=pick(a.e, b.e), d=pick(a.d, b.d), r=rng.choice((a.r, b.r)))

    def restrict(
        self,
        kernel_choices: Sequence[int] | None = None,
        expand_choices: Sequence[int] | None = None,
        depth_choices: Sequence[int] | None = None,
        resolutions: Sequence[int] | None = None,
    ) -> SearchSpace:
        """A narrower copy of this space (training phases sample from one). Choices must be subsets."""
        updates: dict[str, tuple[int, ...]] = {}
        for name, values in (
            ("kernel_choices", kernel_choices),
            ("expand_choices", expand_choices),
            ("depth_choices", depth_choices),
            ("resolutions", resolutions),
        ):
            if values is None:
                continue
            current = getattr(self, name)
            chosen = tuple(sorted(set(values)))
            extra = [v for v in chosen if v not in current]
            if not chosen or extra:
                raise OFAEdgeError(
                    f"{name} {list(chosen)} is not a non-empty subset of {list(current)} in space {self.name}"
                )
            updates[name] = chosen
        return replace(self, **updates)

    def with_resolution(self, r: int) -> SearchSpace:
        """This space, also accepting resolution ``r`` for a static net (see ``static_resolutions``).
        A network of these layers runs at any input size; only the supernet's accuracy there is
        untrained, which a static net measures for itself."""
        return with_static_resolution(self, r)

    def resolution_note(self, r: int) -> str | None:
        """One line when ``r`` lies outside the resolutions this space trains at, else None."""
        return static_resolution_note(self, r)

    def with_classes(self, num_classes: int) -> SearchSpace:
        """This space with a classifier of ``num_classes`` outputs (for a data set of that many
        classes). Checkpoints record the whole space, so the head size travels with the weights."""
        if num_classes < 1:
            raise OFAEdgeError(f"a classifier needs at least 1 class, got {num_classes}")
        return replace(self, num_classes=num_classes)

    # ------------------------------------------------------------ predictor input
    @property
    def encoding_size(self) -> int:
        per_slot = len(self.kernel_choices) + len(self.expand_choices)
        return self.num_slots * per_slot + len(self.resolutions)

    def encode(self, arch: Arch) -> np.ndarray:
        """One-hot kernel and expand per block slot (skipped slots all zero), then one-hot resolution.

        This is the reference OFA accuracy predictor's encoding; depth is implied by the zero slots.
        """
        arch = self.validate(arch)
        if arch.r not in self.resolutions:
            raise ArchError(
                f"resolution {arch.r} is outside space {self.name}'s resolutions: a predictor cannot score it"
            )
        n_k, n_e = len(self.kernel_choices), len(self.expand_choices)
        feature = np.zeros(self.encoding_size, dtype=np.float32)
        for _stage, _index, slot in self.active_slots(arch):
            base = slot * (n_k + n_e)
            feature[base + self.kernel_choices.index(arch.ks[slot])] = 1.0
            feature[base + n_k + self.expand_choices.index(arch.e[slot])] = 1.0
        feature[self.num_slots * (n_k + n_e) + self.resolutions.index(arch.r)] = 1.0
        return feature

    # ------------------------------------------------------------ analytic counts
    def active_slots(self, arch: Arch) -> Iterator[tuple[int, int, int]]:
        """(stage, index within stage, slot) of every block the arch keeps."""
        for stage, slots in enumerate(self.stage_slots):
            for index in range(arch.d[stage]):
                yield stage, index, slots[index]

    def stem_output_size(self, resolution: int) -> int:
        return conv_output_size(resolution, self.stem_stride)

    def first_block_spec(self, input_size: int) -> BlockSpec:
        """The fixed first block: k3, expand 1, stride 1, no SE."""
        return BlockSpec(
            in_channels=self.stem_width,
            out_channels=self.first_block_width,
            kernel=3,
            mid_channels=None,
            stride=1,
            act=self.first_block_act,
            se_channels=None,
            shortcut=self.stem_width == self.first_block_width,
            input_size=input_size,
        )

    def block_specs(self, arch: Arch) -> list[BlockSpec]:
        """The concrete blocks of ``arch``, the fixed first block included, in forward order."""
        arch = self.validate(arch)
        size = self.stem_output_size(arch.r)
        specs = [self.first_block_spec(size)]
        channels = self.first_block_width
        for stage, index, slot in self.active_slots(arch):
            spec = self.stages[stage]
            stride = spec.stride if index == 0 else 1
            specs.append(self.mbconv_spec(spec, channels, arch.ks[slot], arch.e[slot], stride, size))
            size = conv_output_size(size, stride)
            channels = spec.width
        return specs

    def mbconv_spec(
        self, stage: StageSpec, in_channels: int, kernel: int, expand: int, stride: int, input_size: int
    ) -> BlockSpec:
        """The MBConv block a slot of ``stage`` becomes with this kernel and expand ratio."""
        mid = self.mid_channels(in_channels, expand)
        return BlockSpec(
            in_channels=in_channels,
            out_channels=stage.width,
            kernel=kernel,
            mid_channels=mid,
            stride=stride,
            act=stage.act,
            se_channels=self.se_channels(mid) if stage.se else None,
            shortcut=stride == 1 and in_channels == stage.width,
            input_size=input_size,
        )

    def final_feature_size(self, resolution: int) -> int:
        size = self.stem_output_size(resolution)
        for spec in self.stages:
            size = conv_output_size(size, spec.stride)
        return size

    @property
    def classifier_in_features(self) -> int:
        """The width the classifier reads: the feature mix's, or the final expand's without one."""
        return self.feature_mix_width or self.final_expand_width

    def _stem_head_params(self) -> int:
        last = self.stages[-1].width
        return (
            self.in_channels * self.stem_width * 9
            + 2 * self.stem_width
            + last * self.final_expand_width
            + 2 * self.final_expand_width
            + self.final_expand_width * self.feature_mix_width  # no bias, no BN
            + self.classifier_in_features * self.num_classes
            + self.num_classes
        )

    def macs(self, arch: Arch) -> int:
        """Multiply-accumulates of the subnet for one image (convs and linears, as the reference counts)."""
        arch = self.validate(arch)
        stem_hw = self.stem_output_size(arch.r) ** 2
        final_hw = self.final_feature_size(arch.r) ** 2
        total = self.in_channels * self.stem_width * 9 * stem_hw
        total += sum(spec.macs() for spec in self.block_specs(arch))
        total += self.stages[-1].width * self.final_expand_width * final_hw
        total += self.final_expand_width * self.feature_mix_width + self.classifier_in_features * self.num_classes
        return total

    def params(self, arch: Arch) -> int:
        """Parameters of the extracted static subnet (BatchNorm affine included, buffers not)."""
        arch = self.validate(arch)
        return self._stem_head_params() + sum(spec.params() for spec in self.block_specs(arch))

    def supernet_params(self) -> int:
        """Parameters of the whole supernet: the max subnet plus the kernel transformation matrices."""
        kernels = sorted(self.kernel_choices)
        matrices_per_block = sum(k**4 for k in kernels[:-1])  # one (k*k)^2 matrix per smaller kernel
        return self.params(self.max_arch()) + self.num_slots * matrices_per_block

    # ---------------------------------------------------------------- reporting
    def config_dict(self) -> dict[str, Any]:
        """The fields that define the space (what a checkpoint stores to rebuild it)."""
        data = asdict(self)
        del data["static_resolutions"]  # a static net's reading, not the space's definition
        data["stages"] = [asdict(s) for s in self.stages]
        return data

    @classmethod
    def from_config_dict(cls, data: dict[str, Any]) -> SearchSpace:
        try:
            fields = dict(data)
            fields["stages"] = tuple(
                StageSpec(**{**stage, "depths": tuple(stage.get("depths", ()))}) for stage in fields["stages"]
            )
            for key in ("resolutions", "kernel_choices", "expand_choices", "depth_choices"):
                fields[key] = tuple(fields[key])
            return cls(**fields)
        except (KeyError, TypeError) as exc:
            raise OFAEdgeError(f"invalid search space description: {exc}") from None

    def differences(self, other: SearchSpace) -> list[str]:
        """Names of the defining fields in which two spaces differ (the description does not count)."""
        mine, theirs = self.config_dict(), other.config_dict()
        return [k for k in mine if k != "description" and mine[k] != theirs.get(k)]

    def to_dict(self) -> dict[str, Any]:
        data = self.config_dict()
        data["num_slots"] = self.num_slots
        data["supernet_params"] = self.supernet_params()
        top = max(self.resolutions)
        data["max_macs"] = self.macs(self.max_arch(top))
        data["min_macs"] = self.macs(self.min_arch(min(self.resolutions)))
        data["encoding_size"] = self.encoding_size
        return data


def space_from_config_dict(data: dict[str, Any]) -> SearchSpace:
    """A space of any family from its :meth:`~SearchSpace.config_dict` (the ``family`` field picks the class)."""
    from .resnet import ResNetSpace

    if isinstance(data, dict) and data.get("family") == ResNetSpace.family:
        return ResNetSpace.from_config_dict(data)  # type: ignore[return-value]
    return SearchSpace.from_config_dict(data)


def corner_archs(space: SearchSpace, resolution: int) -> dict[str, Arch]:
    """The 8 corners of the space (min/max depth x expand x kernel; OFA-ResNet: x width) at one
    resolution."""
    if hasattr(space, "corner_archs"):  # a family with its own corners
        return space.corner_archs(resolution)
    corners = {}
    for d in (min(space.depth_choices), max(space.depth_choices)):
        for e in (min(space.expand_choices), max(space.expand_choices)):
            for k in (min(space.kernel_choices), max(space.kernel_choices)):
                corners[f"d{d}-e{e}-k{k}"] = space.uniform_arch(k, e, d, resolution)
    return corners


def uniform_archs(space: SearchSpace) -> list[Arch]:
    """Every uniform subnet: one kernel, one expand ratio and one depth in every stage, at every
    resolution (the hand-made baseline a specialised subnet has to beat; the corners are among them)."""
    return [
        space.uniform_arch(k, e, d, r)
        for k, e, d, r in itertools.product(
            space.kernel_choices, space.expand_choices, space.depth_choices, space.resolutions
        )
    ]


def with_static_resolution(space: Any, r: int) -> Any:
    """``space`` (of any family), also accepting resolution ``r`` for a static net."""
    if r < 1:
        raise ArchError(f"resolution {r} is not a positive image size")
    if r in space.resolutions or r in space.static_resolutions:
        return space
    return replace(space, static_resolutions=tuple(sorted((*space.static_resolutions, r))))


def static_resolution_note(space: Any, r: int) -> str | None:
    """One line when ``r`` lies outside the resolutions ``space`` trains at, else None."""
    if r in space.resolutions:
        return None
    return (f"resolution {r} is outside the resolutions space {space.name} trains at "
            f"({_fmt_choices(space.resolutions)}): read as a static net at {r} px")  # fmt: skip


def _fmt_choices(values: Sequence[int]) -> str:
    values = list(values)
    steps = {b - a for a, b in itertools.pairwise(values)}
    if len(values) > 6 and len(steps) == 1:
        return f"{values[0]}..{values[-1]} in steps of {steps.pop()}"
    return ", ".join(str(v) for v in values)


def _as_rng(rng: random.Random | int | None) -> random.Random:
    if isinstance(rng, random.Random):
        return rng
    return random.Random(rng)


# --------------------------------------------------------------------- presets
_MBV3_BASE_WIDTHS = (16, 16, 24, 40, 80, 112, 160, 960, 1280)
_MBV3_STRIDES = (2, 2, 2, 1, 2)
_MBV3_ACTS = ("relu", "relu", "hswish", "hswish", "hswish")
_MBV3_SE = (False, True, False, True, True)


def mobilenetv3_space(
    name: str,
    width_mult: float,
    resolutions: Sequence[int],
    in_channels: int = 3,
    num_classes: int = 1000,
    stem_stride: int = 2,
    stage_strides: Sequence[int] = _MBV3_STRIDES,
    description: str = "",
) -> SearchSpace:
    """An OFA-MobileNetV3 space with the reference widths scaled by ``width_mult``."""
    widths = [make_divisible(w * width_mult, 8) for w in _MBV3_BASE_WIDTHS]
    stages = tuple(
        StageSpec(width=w, stride=s, act=a, se=se)
        for w, s, a, se in zip(widths[2:7], stage_strides, _MBV3_ACTS, _MBV3_SE)
    )
    return SearchSpace(
        name=name,
        in_channels=in_channels,
        num_classes=num_classes,
        resolutions=tuple(resolutions),
        stem_width=widths[0],
        stem_stride=stem_stride,
        first_block_width=widths[1],
        stages=stages,
        final_expand_width=widths[7],
        feature_mix_width=widths[8],
        description=description,
    )


def _presets() -> dict[str, SearchSpace]:
    from .proxyless import proxyless_presets  # builds on this module's classes
    from .resnet import resnet_presets

    return {
        "mbv3-w1.0": mobilenetv3_space(
            "mbv3-w1.0",
            1.0,
            range(128, 225, 4),
            description="official OFA-MobileNetV3 w1.0 ImageNet space (ofa_mbv3_d234_e346_k357_w1.0)",
        ),
        "mbv3-w1.2": mobilenetv3_space(
            "mbv3-w1.2",
            1.2,
            range(160, 225, 4),
            description="official OFA-MobileNetV3 w1.2 ImageNet space (ofa_mbv3_d234_e346_k357_w1.2)",
        ),
        "mbv3-fmnist": mobilenetv3_space(
            "mbv3-fmnist",
            0.75,
            (20, 24, 28),
            in_channels=1,
            num_classes=10,
            stem_stride=1,
            description="demo space for 28x28 grey images, 10 classes (Fashion-MNIST, MNIST)",
        ),
        **proxyless_presets(),
        **resnet_presets(),
    }


SPACE_NAMES: tuple[str, ...] = tuple(_presets())


def get_space(name: str) -> SearchSpace:
    """A preset search space by name (``SPACE_NAMES``: ``mbv3-w1.0``, ``mbv3-w1.2``, ``mbv3-fmnist``,
    ``proxyless-w1.3``, ``proxyless-fmnist``, ``resnet50``, ``resnet50-fmnist``; the last two are
    :class:`~ofa_edge.space.resnet.ResNetSpace` objects)."""
    presets = _presets()
    if name not in presets:
        raise OFAEdgeError(f"unknown space '{name}' (known: {', '.join(presets)})")
    return presets[name]
