"""Progressive-shrinking schedules, declared as data.

A schedule is a list of phases plus the settings they share. Each phase fixes which choices
subnets are sampled from, how many subnets share one optimizer step (their gradients are summed),
which of them are the space's corners, its epochs and learning rate, and whether the expanded
channels are re-sorted before it starts. A schedule also says where a run's weights start
(``init_from``) and who teaches the subnets (``teacher``). The trainer only interprets this.

Presets
-------
``reference``  the paper's ImageNet schedule (epochs and learning rates of the reference code,
               whose per-GPU batch is 64; scale ``lr`` with your total batch size).
``fmnist``     progressive shrinking on Fashion-MNIST (50k training images, batch 128): the
               paper's phase order and subnets per step, epochs sized for a 2-core CPU.
``quick``      a CI-sized run: every phase for a few steps on a small subset.

Each preset has the phases of the space's family: for MBConv spaces full net, kernel, depth,
expand; for OFA-ResNet spaces full net, depth, expand, width (see :mod:`.elastic`).

Any other schedule is a YAML or TOML file with the same fields (:mod:`.schedule_file`); the
project's ``recipes/`` folder holds the ones the shipped demo supernet was trained with.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import OFAEdgeError
from .elastic import AnyArch, AnySpace, check_choice_fields, elastic_family

# ``teacher`` (and ``teacher_other_resolutions``) value: the largest subnet of the ``init_from``
# weights, frozen, its BatchNorm recalibrated at each resolution it teaches.
INIT_FROM_TEACHER = "init_from"
TEACHER_OTHER_RESOLUTIONS = ("resize", INIT_FROM_TEACHER)
SCHEDULE_FILE_SUFFIXES = (".yaml", ".yml", ".toml")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise OFAEdgeError(message)


@dataclass(frozen=True)
class Phase:
    name: str
    epochs: int
    lr: float
    # The choices subnets are drawn from (None: the space's full choice set); a family uses some
    # of them (see .elastic). Expand ratios are integers in MBConv spaces, fractions in ResNet's;
    # width_choices are width multipliers (ResNet).
    kernel_choices: tuple[int, ...] | None = None
    expand_choices: tuple[int | float, ...] | None = None
    depth_choices: tuple[int, ...] | None = None
    width_choices: tuple[float, ...] | None = None
    subnets_per_step: int = 1
    warmup_epochs: float = 0.0
    # Re-sort expanded channels before this phase; the expand ratios whose widths were already
    # trained stay in front (see OFAMobileNetV3.sort_channels and OFAResNet.sort_channels).
    sort_channels: bool = False
    trained_expands: tuple[int | float, ...] = ()
    # The full-net phase trains the max subnet; later phases distil from it unless the schedule
    # names another teacher.
    full_net: bool = False
    # Sandwich rule (Yu et al., BigNAS): each step trains the phase's largest and smallest subnets
    # plus ``subnets_per_step - 2`` random ones, so the corners are trained at every step.
    sandwich: bool = False
    # How many of each step's subnets are corners of the phase's space (uniform kernel, expand and
    # depth), drawn at random without repeats (besides the sandwich's two). Random per-layer choices
    # almost never make a uniform kernel-3 net, and those corners lagged the same nets trained alone.
    corners: int = 0

    def __post_init__(self) -> None:
        n = self.subnets_per_step
        for ok, problem in (
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.lr > 0, f"lr must be greater than 0, got {self.lr}"),
            (n >= 1, f"subnets_per_step must be at least 1, got {n}"),
            (0 <= self.warmup_epochs <= self.epochs,
             f"warmup_epochs must be between 0 and epochs ({self.epochs}), got {self.warmup_epochs}"),
            (self.corners >= 0, f"corners must be 0 or more, got {self.corners}"),
            (not (self.sandwich and n < 2), f"sandwich needs subnets_per_step of at least 2, got {n}"),
            (not (self.full_net and (self.sandwich or self.corners)),
             "full_net trains the largest subnet alone; drop sandwich and corners"),
            (self.corners + 2 * self.sandwich <= n, f"{self.corners} corners do not fit its subnets_per_step ({n})"),
        ):  # fmt: skip
            _require(ok, f"phase '{self.name}': {problem}")

    def sampling_space(self, space: AnySpace) -> Any:
        """The choices this phase draws from: for an MBConv space a narrower copy of it, for a
        ResNet space a :class:`~.elastic.ResNetChoices`."""
        return elastic_family(space.family).phase_space(space, self)

    def check_space(self, space: AnySpace) -> None:
        """One clear error when this phase asks for choices ``space`` lacks."""
        where = f"phase '{self.name}'"
        family = elastic_family(space.family)
        try:
            check_choice_fields(space, self)
            sampling = self.sampling_space(space)
        except OFAEdgeError as error:
            raise OFAEdgeError(f"{where}: {error}") from None
        extra = sorted(set(self.trained_expands) - set(space.expand_choices))
        _require(not extra, f"{where}: trained_expands {extra} are not expand choices of space {space.name}")
        available = len(family.corners(sampling, max(space.resolutions))) - 2 * self.sandwich
        _require(self.corners <= available,
                 f"{where}: {self.corners} corners asked for; its choices have {available} more")  # fmt: skip

    def step_archs(self, space: AnySpace, rng: random.Random, resolution: int) -> list[AnyArch]:
        """The subnets one optimizer step trains, at the batch's resolution."""
        family = elastic_family(space.family)
        sampling = self.sampling_space(space)
        if self.full_net:
            return [sampling.max_arch(resolution)]
        fixed = [sampling.max_arch(resolution), sampling.min_arch(resolution)] if self.sandwich else []
        if self.corners:
            others = [a for a in family.corners(sampling, resolution).values() if a not in fixed]
            fixed += rng.sample(others, self.corners)
        drawn = [family.sample(sampling, rng, resolution) for _ in range(self.subnets_per_step - len(fixed))]
        return fixed + drawn


@dataclass(frozen=True)
class Schedule:
    name: str
    phases: tuple[Phase, ...]
    batch_size: int = 128
    momentum: float = 0.9
    weight_decay: float = 3e-5  # not applied to BatchNorm parameters and biases
    label_smoothing: float = 0.1
    kd_ratio: float = 1.0
    # Cap on training images per epoch (None: the whole training split); 'quick' uses it.
    images_per_epoch: int | None = None
    val_images: int = 10_000
    test_images: int | None = None  # cap for the final report (None: the whole test split)
    bn_calibration_images: int = 2000
    # Per-epoch validation of the corner subnets uses these smaller, fixed subsets.
    epoch_val_images: int = 2000
    epoch_calibration_images: int = 1000
    # Start from these weights instead of a random init: 'demo', an ofa-edge or an official OFA file.
    init_from: str | None = None
    # Who the subnets distil from: None, the run's own full net (its first phase must train it);
    # a weights file (a supernet, whose largest subnet teaches, or a net trained alone); or
    # 'init_from', the init_from weights' largest subnet, BatchNorm recalibrated per resolution.
    teacher: str | None = None
    # Who teaches at the resolutions a one-resolution teacher file was not trained at: 'resize'
    # (it sees the batch resized to its own) or 'init_from' (as above, at those resolutions).
    teacher_other_resolutions: str = "resize"

    def __post_init__(self) -> None:
        _require(len(self.phases) > 0, f"schedule {self.name}: it needs at least one phase")
        names = [p.name for p in self.phases]
        _require(len(set(names)) == len(names), f"schedule {self.name}: phase names repeat ({', '.join(names)})")
        for field, value, low in (("batch_size", self.batch_size, 1), ("val_images", self.val_images, 1),
                                  ("bn_calibration_images", self.bn_calibration_images, 1),
                                  ("epoch_val_images", self.epoch_val_images, 1),
                                  ("epoch_calibration_images", self.epoch_calibration_images, 1),
                                  ("images_per_epoch", self.images_per_epoch, 1),
                                  ("test_images", self.test_images, 1),
                                  ("weight_decay", self.weight_decay, 0), ("kd_ratio", self.kd_ratio, 0)):  # fmt: skip
            _require(value is None or value >= low, f"{field} must be at least {low}, got {value}")
        for field, value in (("momentum", self.momentum), ("label_smoothing", self.label_smoothing)):
            _require(0 <= value < 1, f"{field} must be at least 0 and below 1, got {value}")
        self._check_teacher()

    def _check_teacher(self) -> None:
        other = self.teacher_other_resolutions
        allowed = " or ".join(TEACHER_OTHER_RESOLUTIONS)
        _require(other in TEACHER_OTHER_RESOLUTIONS, f"teacher_other_resolutions must be {allowed}, got '{other}'")
        if self.teacher == INIT_FROM_TEACHER:
            _require(self.init_from is not None, "teacher: init_from needs init_from (its largest subnet teaches)")
            everywhere = "teacher: init_from teaches at every resolution; drop teacher_other_resolutions"
            _require(other == "resize", everywhere)
        if other == INIT_FROM_TEACHER:
            _require(self.teacher is not None, "teacher_other_resolutions: init_from needs a teacher file")
            _require(self.init_from is not None, "teacher_other_resolutions: init_from needs init_from")
        if self.teacher is None:
            _require(self.phases[0].full_net,
                     f"schedule {self.name} has no full-net phase to train a teacher from; set its teacher "
                     "(or give --teacher FILE): a supernet or a net trained alone, or init_from")  # fmt: skip

    @property
    def total_epochs(self) -> int:
        return sum(p.epochs for p in self.phases)

    def check_space(self, space: AnySpace) -> None:
        """One clear error, naming the phase, when a phase asks for choices ``space`` lacks."""
        for phase in self.phases:
            try:
                phase.check_space(space)
            except OFAEdgeError as error:
                raise OFAEdgeError(f"schedule {self.name}, {error}") from None

    def fingerprint(self) -> str:
        """A short hash of every field of the schedule: a run folder resumes only under the same one."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        record = asdict(self)
        for phase in record["phases"]:
            # Left out while unset, so that schedules without it keep the records and fingerprints
            # their run folders were started with.
            if phase["width_choices"] is None:
                del phase["width_choices"]
        return record


def _progressive(epochs: dict[str, int], lrs: dict[str, float], warmup: float) -> tuple[Phase, ...]:
    return (
        Phase("full", epochs["full"], lrs["full"], full_net=True, warmup_epochs=warmup),
        Phase("kernel", epochs["kernel"], lrs["kernel"], kernel_choices=(3, 5, 7), expand_choices=(6,),
              depth_choices=(4,), subnets_per_step=1, warmup_epochs=warmup),
        Phase("depth-1", epochs["depth-1"], lrs["depth-1"], kernel_choices=(3, 5, 7), expand_choices=(6,),
              depth_choices=(3, 4), subnets_per_step=2),
        Phase("depth-2", epochs["depth-2"], lrs["depth-2"], kernel_choices=(3, 5, 7), expand_choices=(6,),
              depth_choices=(2, 3, 4), subnets_per_step=2),
        Phase("expand-1", epochs["expand-1"], lrs["expand-1"], kernel_choices=(3, 5, 7), expand_choices=(4, 6),
              depth_choices=(2, 3, 4), subnets_per_step=4, sort_channels=True, trained_expands=(6,)),
        Phase("expand-2", epochs["expand-2"], lrs["expand-2"], kernel_choices=(3, 5, 7), expand_choices=(3, 4, 6),
              depth_choices=(2, 3, 4), subnets_per_step=4, sort_channels=True, trained_expands=(4, 6)),
    )  # fmt: skip


def _resnet_progressive(epochs: dict[str, int], lrs: dict[str, float], warmup: float) -> tuple[Phase, ...]:
    """OFA-ResNet's order: full net, elastic depth, expand ratio (middle channels re-sorted
    first), then width multiplier (re-sorted once more, each expand ratio's channels kept in its
    own tier, as the reference does before its first width phase). Choices are those of the
    ResNet50 spaces."""
    every_depth, every_expand = (0, 1, 2), (0.2, 0.25, 0.35)
    return (
        Phase("full", epochs["full"], lrs["full"], full_net=True, warmup_epochs=warmup),
        Phase("depth-1", epochs["depth-1"], lrs["depth-1"], depth_choices=(1, 2), expand_choices=(0.35,),
              width_choices=(1.0,), subnets_per_step=2),
        Phase("depth-2", epochs["depth-2"], lrs["depth-2"], depth_choices=every_depth, expand_choices=(0.35,),
              width_choices=(1.0,), subnets_per_step=2),
        Phase("expand-1", epochs["expand-1"], lrs["expand-1"], depth_choices=every_depth, expand_choices=(0.25, 0.35),
              width_choices=(1.0,), subnets_per_step=4, sort_channels=True, trained_expands=(0.35,)),
        Phase("expand-2", epochs["expand-2"], lrs["expand-2"], depth_choices=every_depth, expand_choices=every_expand,
              width_choices=(1.0,), subnets_per_step=4, sort_channels=True, trained_expands=(0.25, 0.35)),
        Phase("width-1", epochs["width-1"], lrs["width-1"], depth_choices=every_depth, expand_choices=every_expand,
              width_choices=(0.8, 1.0), subnets_per_step=4, sort_channels=True, trained_expands=every_expand),
        Phase("width-2", epochs["width-2"], lrs["width-2"], depth_choices=every_depth, expand_choices=every_expand,
              width_choices=(0.65, 0.8, 1.0), subnets_per_step=4),
    )  # fmt: skip


# The phase list of each family's presets (keyed by .elastic's family names); the epochs and
# learning rates below name the phases of all of them.
_PROGRESSIONS = {"mbconv": _progressive, "resnet": _resnet_progressive}

# Learning rates of the small-data schedules (batch 128; fmnist and quick share them).
_SMALL_DATA_LRS = {"full": 0.1, "kernel": 0.03, "depth-1": 0.01, "depth-2": 0.02, "expand-1": 0.01, "expand-2": 0.02,
                   "width-1": 0.01, "width-2": 0.02}  # fmt: skip
# The quick preset runs those batch-128 rates at batch 16. MBConv nets take that; a ResNet's full
# net diverged at it (logits near 1e6 after its 4 steps, every corner predicting one class), so
# for ResNet the rates scale with the batch, as the reference scales its rates.
_QUICK_LR_SCALE = {"mbconv": 1.0, "resnet": 16 / 128}


def _presets(family: str = "mbv3") -> dict[str, Schedule]:
    """The presets for a space of ``family``: the same sizes, that family's phases. The reference
    code has no ResNet schedule: its width phases take the epochs and rates of the expand phases."""
    kind = elastic_family(family).name
    phases = _PROGRESSIONS[kind]
    quick_lrs = {name: lr * _QUICK_LR_SCALE[kind] for name, lr in _SMALL_DATA_LRS.items()}
    reference = Schedule(
        "reference",
        phases(
            {"full": 180, "kernel": 120, "depth-1": 25, "depth-2": 120, "expand-1": 25, "expand-2": 120,
             "width-1": 25, "width-2": 120},
            {"full": 0.026, "kernel": 0.03, "depth-1": 0.0025, "depth-2": 0.0075,
             "expand-1": 0.0025, "expand-2": 0.0075, "width-1": 0.0025, "width-2": 0.0075},
            warmup=5,
        ),
        batch_size=64,
        val_images=10_000,
    )  # fmt: skip
    fmnist = Schedule(
        "fmnist",
        phases(
            {"full": 8, "kernel": 3, "depth-1": 1, "depth-2": 2, "expand-1": 1, "expand-2": 3, "width-1": 1,
             "width-2": 3},
            _SMALL_DATA_LRS,
            warmup=0.5,
        ),
    )  # fmt: skip
    quick = Schedule(
        "quick",
        phases(
            {"full": 1, "kernel": 1, "depth-1": 1, "depth-2": 1, "expand-1": 1, "expand-2": 1, "width-1": 1,
             "width-2": 1},
            quick_lrs,
            warmup=0.0,
        ),
        batch_size=16,
        images_per_epoch=64,
        val_images=200,
        test_images=200,
        bn_calibration_images=64,
        epoch_val_images=64,
        epoch_calibration_images=32,
    )  # fmt: skip
    return {"reference": reference, "fmnist": fmnist, "quick": quick}


SCHEDULE_NAMES: tuple[str, ...] = tuple(_presets())

# Schedules that earlier versions had as presets, and where each lives now: an old command or
# run folder is pointed there in its one-line error.
_QUICK_SIZES = " with the quick preset's sizes"
FORMER_PRESETS: dict[str, str] = {
    "fmnist-extend": "recipes/demo/02-extend.yaml",
    "fmnist-sandwich": "recipes/demo/03-sandwich.yaml",
    "fmnist-distil": "recipes/demo/05-distil.yaml",
    "fmnist-corners": "recipes/demo/06-corners.yaml",
    "fmnist-scratch": "recipes/fmnist-scratch.yaml",
    "no-ps": "bench/ps_ablation.py --base fmnist",
    "quick-extend": "recipes/demo/02-extend.yaml" + _QUICK_SIZES,
    "quick-sandwich": "recipes/demo/03-sandwich.yaml" + _QUICK_SIZES,
    "quick-distil": "recipes/demo/05-distil.yaml" + _QUICK_SIZES,
    "quick-corners": "recipes/demo/06-corners.yaml" + _QUICK_SIZES,
    "quick-scratch": "recipes/fmnist-scratch.yaml" + _QUICK_SIZES,
    "quick-no-ps": "bench/ps_ablation.py --base quick",
}


def get_schedule(name: str, family: str = "mbv3") -> Schedule:
    """A built-in preset by name, with the phases of the supernet ``family`` (a space's ``family``)."""
    presets = _presets(family)
    if name not in presets:
        if name in FORMER_PRESETS:
            raise OFAEdgeError(
                f"schedule '{name}' is no longer a preset: it is {FORMER_PRESETS[name]} (presets: {', '.join(presets)})"
            )
        raise OFAEdgeError(
            f"unknown schedule '{name}' (presets: {', '.join(presets)}; "
            f"or a schedule file ending in {', '.join(SCHEDULE_FILE_SUFFIXES)})"
        )
    return presets[name]


def resolve_schedule(schedule: str | Schedule, family: str = "mbv3") -> Schedule:
    """A schedule given as an object, a preset name (its phases those of the supernet ``family``),
    or the path of a YAML or TOML file."""
    if isinstance(schedule, Schedule):
        return schedule
    if schedule.lower().endswith(SCHEDULE_FILE_SUFFIXES):
        from .schedule_file import load_schedule_file

        return load_schedule_file(schedule)
    return get_schedule(schedule, family)
