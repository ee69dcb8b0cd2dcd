"""Progressive-shrinking schedules, declared as data.

A schedule is a list of phases. Each phase fixes which choices subnets are sampled from, how many
subnets share one optimizer step (their gradients are summed), its epochs and learning rate, and
whether the expanded channels are re-sorted before it starts. The trainer only interprets this.

Presets
-------
``reference``  the paper's ImageNet schedule (epochs and learning rates of the reference code,
               whose per-GPU batch is 64; scale ``lr`` with your total batch size).
``fmnist``     the shipped demo on Fashion-MNIST (50k training images, batch 128): the same phase
               order and subnets per step, epochs sized for a 2-core CPU (its cost: BENCHMARKS.md).
``quick``      a CI-sized run: every phase for a few steps on a small subset.
``fmnist-extend``  more training for a supernet that finished ``fmnist`` (``--init-from``): the
               full net refreshed for 2 epochs (it becomes the new teacher), then 2 epochs sampling
               every choice as the last phase does (about 1.7 h on a 2-core VM 3.4x slower than
               the one ``fmnist`` was sized on). ``quick-extend`` is its CI-sized twin.
``fmnist-sandwich``  ``fmnist-extend`` with 3 epochs of the last phase under the sandwich rule:
               every step trains the largest and smallest subnets plus 2 random ones (random
               sampling alone let the largest subnet drift below its teacher and trained the
               smallest rarely; about 1.7 h on the slow VM). ``quick-sandwich`` is its CI-sized twin.
``fmnist-scratch``  the from-scratch demo schedule: a 12-epoch full-net phase (the teacher;
               ``fmnist`` had 8 and its largest subnet stopped at the teacher's 92.5%), the same
               progressive phases, and the last expand phase under the sandwich rule (largest and
               smallest subnet at every step). Meant to beat the 93.1% of the largest net trained
               alone, it did not: one run on a 2-core CPU (2:45) reached 92.67% for the largest
               subnet and was below the shipped demo on 13 of 16 corners (BENCHMARKS.md,
               "From-scratch demo run"). Its projected cost per machine: ``bench/step_time.py``.
               ``quick-scratch`` is its CI-sized twin.
``fmnist-distil``  ``fmnist-sandwich`` without its full-net phase, for ``--teacher``: 3 epochs of
               every choice under the sandwich rule, distilling from another network (e.g. the
               largest subnet trained alone, ``bench/alone.py``) instead of the supernet's own
               full net, which bounds its largest subnet. ``quick-distil`` is its CI-sized twin.
``fmnist-corners``  ``fmnist-distil`` with 5 subnets per step: the largest, the smallest, 2 other
               corners of the space (uniform kernel, expand and depth; the kernel-3 ones lagged
               their trained-alone selves by 0.85-2.08 points) and 1 random subnet. Meant with
               ``--teacher init``. ``quick-corners`` is its CI-sized twin.
``no-ps``      the ablation: ``fmnist`` with every phase after the full net sampling from the whole
               space (no progressive order, no channel re-sorting), same epochs, subnets per step,
               learning rates and distillation teacher.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, replace

from ..errors import OFAEdgeError
from ..space.arch import Arch
from ..space.space import SearchSpace, corner_archs


@dataclass(frozen=True)
class Phase:
    name: str
    epochs: int
    lr: float
    kernel_choices: tuple[int, ...] | None = None  # None: the space's full choice set
    expand_choices: tuple[int, ...] | None = None
    depth_choices: tuple[int, ...] | None = None
    subnets_per_step: int = 1
    warmup_epochs: float = 0.0
    # Re-sort expanded channels before this phase; the expand ratios whose widths were already
    # trained stay in front (see OFAMobileNetV3.sort_channels).
    sort_channels: bool = False
    trained_expands: tuple[int, ...] = ()
    # The full-net phase trains the max subnet without a teacher; later phases distil from it.
    full_net: bool = False
    # Sandwich rule (Yu et al., BigNAS): each step trains the phase's largest and smallest subnets
    # plus ``subnets_per_step - 2`` random ones, so the corners are trained at every step.
    sandwich: bool = False
    # How many of each step's subnets are corners of the phase's space (uniform kernel, expand and
    # depth), drawn at random without repeats (besides the sandwich's two). Random per-layer choices
    # almost never make a uniform kernel-3 net, and those corners lagged the same nets trained alone.
    corners: int = 0

    def __post_init__(self) -> None:
        if self.sandwich and self.subnets_per_step < 2:
            raise ValueError(f"phase {self.name}: the sandwich rule needs at least 2 subnets per step")
        if self.corners and (self.full_net or self.corners + 2 * self.sandwich > min(self.subnets_per_step, 8)):
            raise ValueError(f"phase {self.name}: {self.corners} corners do not fit its subnets per step")

    def sampling_space(self, space: SearchSpace) -> SearchSpace:
        if self.full_net:
            return space.restrict(
                kernel_choices=(max(space.kernel_choices),),
                expand_choices=(max(space.expand_choices),),
                depth_choices=(max(space.depth_choices),),
            )
        return space.restrict(self.kernel_choices, self.expand_choices, self.depth_choices)

    def step_archs(self, space: SearchSpace, rng: random.Random, resolution: int) -> list[Arch]:
        """The subnets one optimizer step trains, at the batch's resolution."""
        sampling = self.sampling_space(space)
        if self.full_net:
            return [sampling.max_arch(resolution)]
        fixed = [sampling.max_arch(resolution), sampling.min_arch(resolution)] if self.sandwich else []
        if self.corners:
            others = [a for a in corner_archs(sampling, resolution).values() if a not in fixed]
            fixed += rng.sample(others, self.corners)
        drawn = [sampling.sample(rng) for _ in range(self.subnets_per_step - len(fixed))]
        return fixed + [Arch(a.ks, a.e, a.d, resolution) for a in drawn]


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

    @property
    def total_epochs(self) -> int:
        return sum(p.epochs for p in self.phases)

    def fingerprint(self) -> str:
        """A short hash of everything that defines the schedule (resume refuses another one)."""
        record = asdict(self)
        for phase in record["phases"]:
            # Added after run folders existed; left out at its default so those still resume.
            for key in ("sandwich", "corners"):
                if not phase[key]:
                    del phase[key]
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return asdict(self)


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


def _sandwich_last(phases: tuple[Phase, ...]) -> tuple[Phase, ...]:
    return (*phases[:-1], replace(phases[-1], sandwich=True))


def _extension(
    full_epochs: int, all_epochs: int, lr: float, sandwich: bool = False, subnets_per_step: int = 4, corners: int = 0
) -> tuple[Phase, ...]:
    """Continue a trained supernet: refresh the full net (the teacher), then train every choice.
    With ``full_epochs=0`` there is no full-net phase: the run distils from a ``--teacher`` file."""
    every = Phase("all", all_epochs, lr, kernel_choices=(3, 5, 7), expand_choices=(3, 4, 6), depth_choices=(2, 3, 4),
                  subnets_per_step=subnets_per_step, sandwich=sandwich, corners=corners)  # fmt: skip
    if full_epochs == 0:
        return (every,)
    return (Phase("full", full_epochs, lr, full_net=True), every)


def _without_progression(schedule: Schedule, name: str) -> Schedule:
    phases = tuple(
        p if p.full_net else replace(p, kernel_choices=None, expand_choices=None, depth_choices=None,
                                     sort_channels=False, trained_expands=())
        for p in schedule.phases
    )  # fmt: skip
    return replace(schedule, name=name, phases=phases)


# Learning rates of the small-data schedules (batch 128; fmnist and quick share them).
_SMALL_DATA_LRS = {"full": 0.1, "kernel": 0.03, "depth-1": 0.01, "depth-2": 0.02, "expand-1": 0.01, "expand-2": 0.02}


def _presets() -> dict[str, Schedule]:
    reference = Schedule(
        "reference",
        _progressive(
            {"full": 180, "kernel": 120, "depth-1": 25, "depth-2": 120, "expand-1": 25, "expand-2": 120},
            {"full": 0.026, "kernel": 0.03, "depth-1": 0.0025, "depth-2": 0.0075,
             "expand-1": 0.0025, "expand-2": 0.0075},
            warmup=5,
        ),
        batch_size=64,
        val_images=10_000,
    )  # fmt: skip
    fmnist = Schedule(
        "fmnist",
        _progressive(
            {"full": 8, "kernel": 3, "depth-1": 1, "depth-2": 2, "expand-1": 1, "expand-2": 3},
            _SMALL_DATA_LRS,
            warmup=0.5,
        ),
    )  # fmt: skip
    quick = Schedule(
        "quick",
        _progressive(
            {"full": 1, "kernel": 1, "depth-1": 1, "depth-2": 1, "expand-1": 1, "expand-2": 1},
            _SMALL_DATA_LRS,
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
    scratch = Schedule(
        "fmnist-scratch",
        _sandwich_last(
            _progressive(
                {"full": 12, "kernel": 3, "depth-1": 1, "depth-2": 2, "expand-1": 1, "expand-2": 3},
                _SMALL_DATA_LRS,
                warmup=0.5,
            )
        ),
    )  # fmt: skip
    return {
        "reference": reference,
        "fmnist": fmnist,
        "fmnist-scratch": scratch,
        "fmnist-extend": replace(fmnist, name="fmnist-extend", phases=_extension(2, 2, lr=0.02)),
        "fmnist-sandwich": replace(fmnist, name="fmnist-sandwich", phases=_extension(2, 3, lr=0.02, sandwich=True)),
        "fmnist-distil": replace(fmnist, name="fmnist-distil", phases=_extension(0, 3, lr=0.02, sandwich=True)),
        "fmnist-corners": replace(
            fmnist,
            name="fmnist-corners",
            phases=_extension(0, 3, lr=0.02, sandwich=True, subnets_per_step=5, corners=2),
        ),
        "quick": quick,
        "quick-extend": replace(quick, name="quick-extend", phases=_extension(1, 1, lr=0.02)),
        "quick-sandwich": replace(quick, name="quick-sandwich", phases=_extension(1, 1, lr=0.02, sandwich=True)),
        "quick-distil": replace(quick, name="quick-distil", phases=_extension(0, 1, lr=0.02, sandwich=True)),
        "quick-corners": replace(
            quick, name="quick-corners", phases=_extension(0, 1, lr=0.02, sandwich=True, subnets_per_step=5, corners=2)
        ),
        "quick-scratch": replace(quick, name="quick-scratch", phases=_sandwich_last(quick.phases)),
        "no-ps": _without_progression(fmnist, "no-ps"),
        "quick-no-ps": _without_progression(quick, "quick-no-ps"),
    }


SCHEDULE_NAMES: tuple[str, ...] = tuple(_presets())


def get_schedule(name: str) -> Schedule:
    presets = _presets()
    if name not in presets:
        raise OFAEdgeError(f"unknown schedule '{name}' (known: {', '.join(presets)})")
    return presets[name]
