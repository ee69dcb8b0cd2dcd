"""The OFA-ResNet50 family's spaces: elastic depth, bottleneck expand ratio and width.

The network: a 3-conv input stem (conv, an optional residual conv, conv; all 3x3 conv-BN-ReLU), a
3x3 max-pool, four stages of ResNet bottleneck blocks (1x1 reduce, 3x3 with the stage's stride,
1x1 expand; an avg-pool + 1x1 conv shortcut where the shape changes), global average pooling and
a linear classifier.

An arch is ``{"d": [5 ints], "e": [18 floats], "w": [6 ints], "r": int}``, the reference's form:

* ``d[0]`` is the stem: the middle (residual) stem conv runs only when ``d[0]`` is the largest
  depth choice (2); the reference samples it from {0, 2}. ``d[1..4]`` add 0-2 blocks to each
  stage's base depth (2, 2, 4, 2), so a stage keeps its first ``base + d`` of ``base + 2`` slots.
* ``e`` holds one expand ratio per block slot (18 = 4+4+6+4, unused slots included). A block's
  middle width is ``make_divisible(round(out_width * e))``: it follows the block's *output* width.
* ``w`` holds width-multiplier *indices*: ``w[0]`` the first two stem convs, ``w[1]`` the last stem
  conv, ``w[2..5]`` every block of stage 0..3.

Presets
-------
``resnet50``
    The official OFA ImageNet space (``ofa_resnet50_d0-1-2_e0.2-0.25-0.35_w0.65-0.8-1.0``): 3x224
    input, 1000 classes, resolutions 128, 144, 160, 176, 192, 224, 240, 256. The reference package
    records no resolution list for this net; these are the sizes its published accuracy predictor
    (``ofa_resnet50_acc_predictor.pth``, 82 inputs: 8 resolutions + 2 + 18 + 54) is built with, so
    :meth:`ResNetSpace.encode` feeds that predictor unchanged.

``resnet50-fmnist``
    A small-data demo space for 28x28 grey images (Fashion-MNIST): 1 input channel, 10 classes,
    resolutions 20, 24, 28, the same elastic choices. The ImageNet stem (stride 2) and max-pool
    reduce 32x in all, which takes a 28 px image to 1x1 before the last stage; with stem stride 1
    and no max-pool the reduction is 8x (28 px ends at 4x4, 20 px at 3x3), so the 3x3 convs of
    the last stage still see a spatial map. Base widths are a quarter of ResNet50's (stem 16,
    stages 64/128/256/512), so the supernet trains on a 2-core CPU.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from ..errors import ArchError, OFAEdgeError
from .arch import _is_int, is_resnet_dict
from .genome import Genome, Term
from .space import conv_output_size, make_divisible, static_resolution_note, with_static_resolution

KERNEL = 3  # every 3x3 conv of the family (stem convs and the bottleneck's middle conv)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fmt(values: Sequence[Any]) -> str:
    return ", ".join(str(v) for v in values)


@dataclass(frozen=True)
class ResNetArch:
    """One OFA-ResNet subnet: depths ``d``, expand ratios ``e``, width indices ``w``, resolution ``r``."""

    d: tuple[int, ...]
    e: tuple[float, ...]
    w: tuple[int, ...]
    r: int

    def to_dict(self) -> dict[str, Any]:
        return {"d": list(self.d), "e": list(self.e), "w": list(self.w), "r": self.r}

    @classmethod
    def from_dict(cls, data: Any) -> ResNetArch:
        """Read the reference's arch dict (``image_size`` for ``r``, ``r`` as ``[224]`` accepted);
        other keys are ignored. Shapes and types only: :meth:`ResNetSpace.validate` checks values."""
        if not isinstance(data, dict):
            raise ArchError(f"a ResNet arch must be a JSON object with keys d, e, w, r; got {type(data).__name__}")
        data = dict(data)
        if "r" not in data and "image_size" in data:
            data["r"] = data.pop("image_size")
        missing = [k for k in ("d", "e", "w", "r") if k not in data]
        if missing:
            raise ArchError(f"ResNet arch is missing field(s) {', '.join(missing)} (expected d, e, w, r)")
        for key, check, what in (("d", _is_int, "integers"), ("e", _is_number, "numbers"), ("w", _is_int, "integers")):
            value = data[key]
            if not isinstance(value, (list, tuple)) or not all(check(v) for v in value):
                raise ArchError(f"arch field '{key}' must be a list of {what}, got {value!r}")
        r = data["r"]
        if isinstance(r, (list, tuple)) and len(r) == 1:
            r = r[0]
        if not _is_int(r):
            raise ArchError(f"arch field 'r' must be an integer resolution, got {data['r']!r}")
        return cls(
            d=tuple(int(v) for v in data["d"]),
            e=tuple(float(v) for v in data["e"]),
            w=tuple(int(v) for v in data["w"]),
            r=int(r),
        )


@dataclass(frozen=True)
class ResNetStemSpec:
    """The input stem of a subnet: conv (stride), optional residual conv, conv, optional max-pool."""

    in_channels: int
    mid_channels: int
    out_channels: int
    stride: int
    input_size: int
    keep_middle: bool
    max_pool: bool

    @property
    def conv_size(self) -> int:
        """Spatial size of the three stem convs' outputs."""
        return conv_output_size(self.input_size, self.stride)

    @property
    def output_size(self) -> int:
        return conv_output_size(self.conv_size, 2) if self.max_pool else self.conv_size

    def _convs(self) -> list[tuple[int, int]]:
        convs = [(self.in_channels, self.mid_channels)]
        if self.keep_middle:
            convs.append((self.mid_channels, self.mid_channels))
        return [*convs, (self.mid_channels, self.out_channels)]

    def macs(self) -> int:
        return sum(cin * cout * KERNEL * KERNEL for cin, cout in self._convs()) * self.conv_size**2

    def params(self) -> int:
        return sum(cin * cout * KERNEL * KERNEL + 2 * cout for cin, cout in self._convs())


@dataclass(frozen=True)
class ResNetBlockSpec:
    """One bottleneck block of a subnet: 1x1 in->mid, 3x3 mid->mid (stride), 1x1 mid->out, and,
    when ``downsample``, an avg-pool (stride) + 1x1 in->out + BN shortcut (else identity)."""

    in_channels: int
    mid_channels: int
    out_channels: int
    stride: int
    input_size: int
    downsample: bool

    @property
    def output_size(self) -> int:
        return conv_output_size(self.input_size, self.stride)

    def macs(self) -> int:
        mid, out_hw = self.mid_channels, self.output_size**2
        total = self.in_channels * mid * self.input_size**2
        total += (mid * mid * KERNEL * KERNEL + mid * self.out_channels) * out_hw
        if self.downsample:
            total += self.in_channels * self.out_channels * out_hw  # after the avg-pool
        return total

    def params(self) -> int:
        mid, out = self.mid_channels, self.out_channels
        total = self.in_channels * mid + mid * mid * KERNEL * KERNEL + mid * out + 2 * (2 * mid + out)
        if self.downsample:
            total += self.in_channels * out + 2 * out
        return total


@dataclass(frozen=True)
class ResNetSpace:
    """An OFA-ResNet search space: fixed macro-structure plus the elastic choices."""

    family: ClassVar[str] = "resnet"

    name: str
    in_channels: int
    num_classes: int
    resolutions: tuple[int, ...]
    stem_stride: int = 2
    max_pool: bool = True
    base_stem_width: int = 64
    base_stage_widths: tuple[int, ...] = (256, 512, 1024, 2048)
    strides: tuple[int, ...] = (1, 2, 2, 2)
    base_depths: tuple[int, ...] = (2, 2, 4, 2)
    depth_choices: tuple[int, ...] = (0, 1, 2)
    expand_choices: tuple[float, ...] = (0.2, 0.25, 0.35)
    width_mult_choices: tuple[float, ...] = (0.65, 0.8, 1.0)
    dropout: float = 0.0
    bn_eps: float = 1e-5
    description: str = field(default="", compare=False)
    # Resolutions outside the training range at which a static net is read (as in SearchSpace).
    static_resolutions: tuple[int, ...] = field(default=(), compare=False)

    # ----------------------------------------------------------------- structure
    @cached_property
    def genome(self) -> ResNetGenome:
        """This space's archs as gene rows, for the vectorised search (:mod:`.genome`)."""
        return ResNetGenome(self)

    @property
    def num_stages(self) -> int:
        return len(self.base_depths)

    @property
    def max_depth(self) -> int:
        return max(self.depth_choices)

    @property
    def num_slots(self) -> int:
        """Block slots carried by ``e``: every stage's base depth plus the largest extra depth."""
        return sum(self.base_depths) + self.num_stages * self.max_depth

    @property
    def stage_slots(self) -> tuple[range, ...]:
        """The slots (indices into ``e`` and the supernet's blocks) of each stage."""
        return tuple(
            range(
                sum(self.base_depths[:s]) + s * self.max_depth,
                sum(self.base_depths[: s + 1]) + (s + 1) * self.max_depth,
            )
            for s in range(self.num_stages)
        )

    @property
    def stem_out_widths(self) -> tuple[int, ...]:
        """Output width of the last stem conv, per width index."""
        return tuple(make_divisible(self.base_stem_width * m) for m in self.width_mult_choices)

    @property
    def stem_mid_widths(self) -> tuple[int, ...]:
        """Width of the first two stem convs, per width index (half the stem output, re-rounded)."""
        return tuple(make_divisible(w // 2) for w in self.stem_out_widths)

    def stage_widths(self, stage: int) -> tuple[int, ...]:
        """Output width of ``stage``'s blocks, per width index."""
        return tuple(make_divisible(self.base_stage_widths[stage] * m) for m in self.width_mult_choices)

    @staticmethod
    def mid_channels(out_channels: int, expand: float) -> int:
        """A bottleneck's middle width: from its *output* width, as the reference computes it."""
        return make_divisible(round(out_channels * expand))

    def max_mid_channels(self, stage: int) -> int:
        return self.mid_channels(max(self.stage_widths(stage)), max(self.expand_choices))

    def has_downsample(self, stage: int, index: int) -> bool:
        """Whether slot ``index`` of ``stage`` has a conv shortcut: its stride is not 1 or its
        input width choices differ from its output width choices (as in the reference supernet,
        so the static subnet has exactly the supernet's modules)."""
        if index > 0:
            return False
        in_widths = self.stem_out_widths if stage == 0 else self.stage_widths(stage - 1)
        return self.strides[stage] != 1 or in_widths != self.stage_widths(stage)

    # ------------------------------------------------------------- arch handling
    def validate(self, arch: ResNetArch | dict[str, Any]) -> ResNetArch:
        """Return ``arch`` as a :class:`ResNetArch` if it fits this space, else raise one clear line."""
        if not isinstance(arch, ResNetArch):
            if not isinstance(arch, dict) or not is_resnet_dict(arch):
                raise ArchError(f"an arch of ks, e, d, r (OFA-MobileNetV3, ProxylessNAS) does not fit space "
                                f"{self.name}, whose archs are d, e, w, r (OFA-ResNet)")  # fmt: skip
            arch = ResNetArch.from_dict(arch)
        for key, expected, what in (
            ("d", self.num_stages + 1, "the stem, then one per stage"),
            ("e", self.num_slots, "one per block slot"),
            ("w", self.num_stages + 2, "two for the stem, then one per stage"),
        ):
            got = len(getattr(arch, key))
            if got != expected:
                raise ArchError(f"arch field '{key}' has {got} entries; space {self.name} needs {expected} ({what})")
        widths = tuple(range(len(self.width_mult_choices)))
        for key, allowed in (("d", self.depth_choices), ("e", self.expand_choices), ("w", widths)):
            for index, value in enumerate(getattr(arch, key)):
                if value not in allowed:
                    raise ArchError(
                        f"arch field '{key}' index {index}: {value} is not allowed in space {self.name} "
                        f"(allowed: {_fmt(allowed)})"
                    )
        if arch.r not in self.resolutions and arch.r not in self.static_resolutions:
            raise ArchError(
                f"arch field 'r': {arch.r} is not allowed in space {self.name} (allowed: {_fmt(self.resolutions)})"
            )
        return arch

    def keeps_stem_block(self, arch: ResNetArch) -> bool:
        """Whether the stem's middle (residual) conv runs: only at the largest ``d[0]``."""
        return arch.d[0] == self.max_depth

    def max_arch(self, r: int | None = None) -> ResNetArch:
        return ResNetArch(
            d=(self.max_depth,) * (self.num_stages + 1),
            e=(max(self.expand_choices),) * self.num_slots,
            w=(len(self.width_mult_choices) - 1,) * (self.num_stages + 2),
            r=max(self.resolutions) if r is None else r,
        )

    def min_arch(self, r: int | None = None) -> ResNetArch:
        return ResNetArch(
            d=(min(self.depth_choices),) * (self.num_stages + 1),
            e=(min(self.expand_choices),) * self.num_slots,
            w=(0,) * (self.num_stages + 2),
            r=min(self.resolutions) if r is None else r,
        )

    def sample(self, rng: random.Random | int | None = None) -> ResNetArch:
        """A random arch drawn as the reference draws one (expand ratios, then depths with the
        stem from {max, min} only, then widths; the resolution last)."""
        rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        e = tuple(rng.choice(self.expand_choices) for _ in range(self.num_slots))
        d = (rng.choice((self.max_depth, min(self.depth_choices))),)
        d += tuple(rng.choice(self.depth_choices) for _ in range(self.num_stages))
        w = tuple(rng.choice(range(len(self.width_mult_choices))) for _ in range(self.num_stages + 2))
        return ResNetArch(d=d, e=e, w=w, r=rng.choice(self.resolutions))

    def corner_archs(self, resolution: int) -> dict[str, ResNetArch]:
        """The 8 corners of the space (min/max depth x expand x width, every entry alike) at one
        resolution, named like ``d0-e0.2-w0.65`` (the width by its multiplier)."""
        depths, expands = self.depth_choices, self.expand_choices
        ends = (0, len(self.width_mult_choices) - 1)
        return {
            f"d{d}-e{e}-w{self.width_mult_choices[w]}": ResNetArch(
                (d,) * (self.num_stages + 1), (e,) * self.num_slots, (w,) * (self.num_stages + 2), resolution
            )
            for d in (min(depths), max(depths))
            for e in (min(expands), max(expands))
            for w in ends
        }

    # ------------------------------------------------------------ analytic counts
    def stem_spec(self, arch: ResNetArch) -> ResNetStemSpec:
        arch = self.validate(arch)
        return ResNetStemSpec(
            in_channels=self.in_channels,
            mid_channels=self.stem_mid_widths[arch.w[0]],
            out_channels=self.stem_out_widths[arch.w[1]],
            stride=self.stem_stride,
            input_size=arch.r,
            keep_middle=self.keeps_stem_block(arch),
            max_pool=self.max_pool,
        )

    def active_slots(self, arch: ResNetArch) -> list[tuple[int, int, int]]:
        """(stage, index within stage, slot) of every block ``arch`` keeps, in forward order."""
        return [
            (stage, index, self.stage_slots[stage][index])
            for stage in range(self.num_stages)
            for index in range(self.base_depths[stage] + arch.d[stage + 1])
        ]

    def block_specs(self, arch: ResNetArch) -> list[ResNetBlockSpec]:
        """The bottleneck blocks of ``arch`` in forward order."""
        stem = self.stem_spec(arch)
        channels, size = stem.out_channels, stem.output_size
        specs = []
        for stage, index, slot in self.active_slots(arch):
            out = self.stage_widths(stage)[arch.w[stage + 2]]
            stride = self.strides[stage] if index == 0 else 1
            spec = ResNetBlockSpec(
                in_channels=channels,
                mid_channels=self.mid_channels(out, arch.e[slot]),
                out_channels=out,
                stride=stride,
                input_size=size,
                downsample=self.has_downsample(stage, index),
            )
            specs.append(spec)
            channels, size = out, spec.output_size
        return specs

    def classifier_in_features(self, arch: ResNetArch) -> int:
        return self.stage_widths(self.num_stages - 1)[arch.w[-1]]

    def macs(self, arch: ResNetArch | dict[str, Any]) -> int:
        """Multiply-accumulates for one image: convs and the classifier, as the reference counts."""
        arch = self.validate(arch)
        total = self.stem_spec(arch).macs() + sum(spec.macs() for spec in self.block_specs(arch))
        return total + self.classifier_in_features(arch) * self.num_classes

    def params(self, arch: ResNetArch | dict[str, Any]) -> int:
        """Parameters of the extracted static subnet (BatchNorm affine included, buffers not)."""
        arch = self.validate(arch)
        total = self.stem_spec(arch).params() + sum(spec.params() for spec in self.block_specs(arch))
        return total + (self.classifier_in_features(arch) + 1) * self.num_classes

    # ------------------------------------------------------------ predictor input
    @property
    def encoding_size(self) -> int:
        widths = (self.num_stages + 2) * len(self.width_mult_choices)
        return len(self.resolutions) + 2 + widths + self.num_slots * len(self.expand_choices)

    def encode(self, arch: ResNetArch | dict[str, Any]) -> np.ndarray:
        """The reference ``ResNetArchEncoder.arch2feature``: one-hot resolution; the stem as 2
        slots (first: ``d[0] == 0``, second: ``d[0] > 0``, so ``d[0] = 1`` reads as a kept stem
        block, as in the reference, though the net skips it); one-hot width index per ``w`` entry;
        one-hot expand ratio per kept block slot (skipped slots all zero)."""
        arch = self.validate(arch)
        feature = np.zeros(self.encoding_size, dtype=np.float32)
        feature[self.resolutions.index(arch.r)] = 1.0
        offset = len(self.resolutions)
        feature[offset + (1 if arch.d[0] > 0 else 0)] = 1.0
        offset += 2
        n_w = len(self.width_mult_choices)
        for group, index in enumerate(arch.w):
            feature[offset + group * n_w + index] = 1.0
        offset += len(arch.w) * n_w
        n_e = len(self.expand_choices)
        for _stage, _index, slot in self.active_slots(arch):
            feature[offset + slot * n_e + self.expand_choices.index(arch.e[slot])] = 1.0
        return feature

    # ---------------------------------------------------------------- reporting
    def with_classes(self, num_classes: int) -> ResNetSpace:
        """This space with a classifier of ``num_classes`` outputs."""
        if num_classes < 1:
            raise OFAEdgeError(f"a classifier needs at least 1 class, got {num_classes}")
        return replace(self, num_classes=num_classes)

    def config_dict(self) -> dict[str, Any]:
        """The fields that define the space, JSON-safe (what a checkpoint stores to rebuild it)."""
        data: dict[str, Any] = {"family": self.family}
        for key, value in asdict(self).items():
            data[key] = list(value) if isinstance(value, tuple) else value
        del data["static_resolutions"]  # a static net's reading, not the space's definition
        return data

    def to_dict(self) -> dict[str, Any]:
        """The definition plus what follows from it (as ``space show --json`` prints it)."""
        return {
            **self.config_dict(),
            "num_slots": self.num_slots,
            "supernet_params": self.supernet_params(),
            "max_macs": self.macs(self.max_arch()),
            "min_macs": self.macs(self.min_arch()),
            "encoding_size": self.encoding_size,
        }

    def supernet_params(self) -> int:
        """Parameters of the whole supernet: its largest subnet (no extra tensors are elastic)."""
        return self.params(self.max_arch())

    def with_resolution(self, r: int) -> ResNetSpace:
        """This space, also accepting resolution ``r`` for a static net (see ``SearchSpace.with_resolution``)."""
        return with_static_resolution(self, r)

    def resolution_note(self, r: int) -> str | None:
        """One line when ``r`` lies outside the resolutions this space trains at, else None."""
        return static_resolution_note(self, r)

    def differences(self, other: Any) -> list[str]:
        """Names of the defining fields in which two spaces differ (the description does not count)."""
        mine, theirs = self.config_dict(), other.config_dict()
        return [k for k in mine if k != "description" and mine[k] != theirs.get(k)]

    @classmethod
    def from_config_dict(cls, data: dict[str, Any]) -> ResNetSpace:
        try:
            fields = dict(data)
            family = fields.pop("family", cls.family)
            if family != cls.family:
                raise OFAEdgeError(f"space description is of family '{family}', not '{cls.family}'")
            for key, value in fields.items():
                if isinstance(value, list):
                    fields[key] = tuple(value)
            return cls(**fields)
        except (KeyError, TypeError) as exc:
            raise OFAEdgeError(f"invalid ResNet search space description: {exc}") from None


# --------------------------------------------------------------------- presets
def resnet_space(
    name: str,
    resolutions: Sequence[int],
    in_channels: int = 3,
    num_classes: int = 1000,
    stem_stride: int = 2,
    max_pool: bool = True,
    width_scale: float = 1.0,
    description: str = "",
) -> ResNetSpace:
    """An OFA-ResNet50 space; ``width_scale`` scales the base stem and stage widths (before the
    elastic width multipliers and their rounding)."""
    base = ResNetSpace(name="", in_channels=in_channels, num_classes=num_classes, resolutions=())
    return replace(
        base,
        name=name,
        resolutions=tuple(resolutions),
        stem_stride=stem_stride,
        max_pool=max_pool,
        base_stem_width=round(base.base_stem_width * width_scale),
        base_stage_widths=tuple(round(w * width_scale) for w in base.base_stage_widths),
        description=description,
    )


def resnet_presets() -> dict[str, ResNetSpace]:
    return {
        "resnet50": resnet_space(
            "resnet50",
            (128, 144, 160, 176, 192, 224, 240, 256),
            description="official OFA-ResNet50 ImageNet space (ofa_resnet50_d0-1-2_e0.2-0.25-0.35_w0.65-0.8-1.0)",
        ),
        "resnet50-fmnist": resnet_space(
            "resnet50-fmnist",
            (20, 24, 28),
            in_channels=1,
            num_classes=10,
            stem_stride=1,
            max_pool=False,
            width_scale=0.25,
            description="demo ResNet50 space for 28x28 grey images, 10 classes (Fashion-MNIST, MNIST)",
        ),
    }


RESNET_SPACE_NAMES: tuple[str, ...] = tuple(resnet_presets())


def get_resnet_space(name: str) -> ResNetSpace:
    """A preset OFA-ResNet space by name: ``resnet50`` or ``resnet50-fmnist``."""
    presets = resnet_presets()
    if name not in presets:
        raise OFAEdgeError(f"unknown ResNet space '{name}' (known: {', '.join(presets)})")
    return presets[name]


# ------------------------------------------------------------------ genes
class ResNetGenome(Genome):
    """OFA-ResNet genes: depth index per ``d`` entry (the stem's from {min, max} only: the
    reference never samples the middle value, and the net reads it as a skip), expand index per
    slot, width index per ``w`` entry, resolution. Terms: the stem (reading ``d[0]``, ``w[0]``,
    ``w[1]``), one per block slot (its expand, its stage's width and, for a stage's first block,
    the width before it), then pooling and the classifier (reading the last width)."""

    def __init__(self, space: ResNetSpace) -> None:
        self.space = space
        stages, slots = space.num_stages, space.num_slots
        self.stem_depths = (min(space.depth_choices), space.max_depth)
        n_w = len(space.width_mult_choices)
        counts = [2] + [len(space.depth_choices)] * stages + [len(space.expand_choices)] * slots
        self.counts = np.array(counts + [n_w] * (stages + 2) + [len(space.resolutions)], dtype=np.intp)
        d0, e0, w0, r = 0, stages + 1, stages + 1 + slots, len(self.counts) - 1
        self.fields = {"d": slice(d0, e0), "e": slice(e0, w0), "w": slice(w0, r), "r": slice(r, None)}
        blocks = []
        for stage, stage_slots in enumerate(space.stage_slots):
            for index, slot in enumerate(stage_slots):
                width_in = (w0 + stage + 1,) if index == 0 else ()
                blocks.append(Term(f"slot{slot}", (r, e0 + slot, w0 + stage + 2, *width_in)))
        self.terms = (
            Term("stem", (r, d0, w0, w0 + 1)),
            *blocks,
            Term("pool", (r, r - 1)),
            Term("classifier", (r, r - 1)),
        )
        self.activity_columns = tuple(range(1, stages + 1))
        # slot -> (its stage's depth column, the least extra depth that keeps it)
        self._slot_stage = np.array([1 + s for s, ss in enumerate(space.stage_slots) for _ in ss])
        self._slot_needs = np.array([i - b + 1 for ss, b in zip(space.stage_slots, space.base_depths)
                                     for i in range(len(ss))])  # fmt: skip
        self._depths = np.asarray(space.depth_choices)

    def slot_active(self, genes: np.ndarray) -> np.ndarray:
        return self._depths[genes[:, self._slot_stage]] >= self._slot_needs

    def active(self, genes: np.ndarray) -> np.ndarray:
        n = len(genes)
        return np.concatenate([np.ones((n, 1), bool), self.slot_active(genes), np.ones((n, 2), bool)], axis=1)

    def to_archs(self, genes: np.ndarray) -> list[ResNetArch]:
        sp = self.space
        d = np.column_stack([np.asarray(self.stem_depths)[genes[:, 0]], self._depths[self.part(genes, "d")[:, 1:]]])
        e = np.asarray(sp.expand_choices)[self.part(genes, "e")].tolist()
        r = np.asarray(sp.resolutions)[genes[:, -1]].tolist()
        return [ResNetArch(tuple(a), tuple(b), tuple(c), int(z))
                for a, b, c, z in zip(d.tolist(), e, self.part(genes, "w").tolist(), r)]  # fmt: skip

    def from_archs(self, archs: Sequence[ResNetArch]) -> np.ndarray:
        sp = self.space
        rows = []
        for a in archs:
            stem = self.stem_depths.index(sp.max_depth if sp.keeps_stem_block(a) else min(sp.depth_choices))
            depths = [sp.depth_choices.index(v) for v in a.d[1:]]
            expands = [sp.expand_choices.index(v) for v in a.e]
            rows.append([stem, *depths, *expands, *a.w, sp.resolutions.index(a.r)])
        return np.array(rows, dtype=np.intp).reshape(len(archs), len(self.counts))

    def features(self, genes: np.ndarray) -> np.ndarray:
        """As :meth:`ResNetSpace.encode`: resolution, stem kept or not, widths, kept expands."""
        sp, n = self.space, len(genes)
        n_r, n_w, n_e = len(sp.resolutions), len(sp.width_mult_choices), len(sp.expand_choices)
        features = np.zeros((n, sp.encoding_size), dtype=np.float32)
        rows = np.arange(n)[:, None]
        features[rows[:, 0], genes[:, -1]] = 1.0
        features[rows[:, 0], n_r + genes[:, 0]] = 1.0
        w = self.part(genes, "w")
        features[rows, n_r + 2 + np.arange(w.shape[1]) * n_w + w] = 1.0
        base = n_r + 2 + w.shape[1] * n_w + np.arange(sp.num_slots) * n_e
        features[rows, base + self.part(genes, "e")] = self.slot_active(genes).astype(np.float32)
        return features

    def used(self, genes: np.ndarray) -> np.ndarray:
        genes = genes.copy()
        e = genes[:, self.fields["e"]]
        genes[:, self.fields["e"]] = np.where(self.slot_active(genes), e, -1)
        return genes

    def representatives(self) -> list[ResNetArch]:
        """Every depth at its max but the stem's (both), one expand in every slot, and widths
        alternating between two choices: every pair of neighbouring widths occurs."""
        sp = self.space
        n_groups, n_w = sp.num_stages + 2, len(sp.width_mult_choices)
        archs = []
        for r in sp.resolutions:
            for x in sp.expand_choices:
                for stem in self.stem_depths:
                    for a, b in itertools.product(range(n_w), repeat=2):
                        w = tuple(a if i % 2 == 0 else b for i in range(n_groups))
                        d = (stem,) + (sp.max_depth,) * sp.num_stages
                        archs.append(ResNetArch(d, (x,) * sp.num_slots, w, r))
        return archs

    def term_counts(self, arch: ResNetArch, count: str) -> list[int]:
        sp = self.space
        blocks = [getattr(spec, count)() for spec in sp.block_specs(arch)]
        features = sp.classifier_in_features(arch)
        classifier = features * sp.num_classes + (sp.num_classes if count == "params" else 0)
        return [getattr(sp.stem_spec(arch), count)(), *blocks, 0, classifier]
