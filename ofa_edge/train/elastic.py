"""What progressive shrinking makes elastic in each supernet family: the one per-family place of
training.

A schedule's phase names the choices its subnets are drawn from (``kernel_choices``,
``expand_choices``, ``depth_choices``, ``width_choices``; None: all of the space's). Which of those
a family has, how a phase narrows them, how a subnet is drawn and which subnets are the corners,
differ:

* MBConv families (OFA-MobileNetV3, OFA-ProxylessNAS): kernel size, expand ratio, depth. A phase's
  choices are a narrower copy of the space (``SearchSpace.restrict``), whose ``sample`` draws one
  value per block slot.
* OFA-ResNet50: depth (the stem's residual conv and 0-2 extra blocks per stage), expand ratio and
  width multiplier. A phase's choices are a :class:`ResNetChoices`; a subnet is drawn as the
  reference draws one (expand ratios, then depths with the stem from the phase's largest or
  smallest depth, then width indices).

The schedule and the trainer reach these through :func:`elastic_family` and never name a family.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import OFAEdgeError
from ..nn.resnet import OFAResNet
from ..nn.supernet import OFAMobileNetV3
from ..space.arch import Arch
from ..space.resnet import ResNetArch, ResNetSpace
from ..space.space import SearchSpace, corner_archs

if TYPE_CHECKING:
    from .schedule import Phase

AnySpace = SearchSpace | ResNetSpace
AnyArch = Arch | ResNetArch
Supernet = OFAMobileNetV3 | OFAResNet

# Every phase field that restricts a choice, and what it restricts (for messages).
CHOICE_FIELDS = {
    "kernel_choices": "kernel size",
    "expand_choices": "expand ratio",
    "depth_choices": "depth",
    "width_choices": "width multiplier",
}


class ElasticFamily(Protocol):
    """How one family's phases narrow its choices and draw subnets from them."""

    name: str
    choice_fields: tuple[str, ...]  # the phase fields that apply, in progressive-shrinking order

    def phase_space(self, space: Any, phase: Phase | None) -> Any:
        """The choices ``phase`` draws from (None: every choice of ``space``)."""

    def check(self, space: Any, phase: Phase) -> None:
        """One line for a field value the family cannot take (beyond subset checks)."""

    def sample(self, sampling: Any, rng: random.Random, resolution: int) -> Any:
        """A random subnet of ``sampling`` at ``resolution``."""

    def corners(self, sampling: Any, resolution: int) -> dict[str, Any]:
        """The uniform subnets at the ends of every choice, by name."""


# ------------------------------------------------------------------- MBConv
class MBConvFamily:
    name = "mbconv"
    choice_fields = ("kernel_choices", "expand_choices", "depth_choices")

    def phase_space(self, space: SearchSpace, phase: Phase | None) -> SearchSpace:
        if phase is None:
            return space
        if phase.full_net:
            return space.restrict(
                kernel_choices=(max(space.kernel_choices),),
                expand_choices=(max(space.expand_choices),),
                depth_choices=(max(space.depth_choices),),
            )
        return space.restrict(phase.kernel_choices, phase.expand_choices, phase.depth_choices)

    def check(self, space: SearchSpace, phase: Phase) -> None:
        # Expand ratios are integers here; a fraction (a ResNet ratio) would build odd widths.
        for field in ("expand_choices", "trained_expands"):
            values = getattr(phase, field) or ()
            if any(not isinstance(v, int) for v in values):
                raise OFAEdgeError(f"{field} must be integers in space {space.name}, got {list(values)}")

    def sample(self, sampling: SearchSpace, rng: random.Random, resolution: int) -> Arch:
        drawn = sampling.sample(rng)
        return Arch(drawn.ks, drawn.e, drawn.d, resolution)

    def corners(self, sampling: SearchSpace, resolution: int) -> dict[str, Arch]:
        return corner_archs(sampling, resolution)


# ------------------------------------------------------------------- ResNet
@dataclass(frozen=True)
class ResNetChoices:
    """The choices of an OFA-ResNet phase: subsets of ``space``'s depths, expand ratios and width
    multipliers. The space itself stays whole: a subnet's width is an index into all of its
    multipliers, and its slot count follows its largest depth."""

    space: ResNetSpace
    depth_choices: tuple[int, ...]
    expand_choices: tuple[float, ...]
    width_choices: tuple[float, ...]  # multipliers, not indices

    @property
    def width_indices(self) -> tuple[int, ...]:
        return tuple(self.space.width_mult_choices.index(m) for m in self.width_choices)

    def uniform_arch(self, depth: int, expand: float, width_index: int, resolution: int) -> ResNetArch:
        space = self.space
        return ResNetArch(d=(depth,) * (space.num_stages + 1), e=(expand,) * space.num_slots,
                          w=(width_index,) * (space.num_stages + 2), r=resolution)  # fmt: skip

    def max_arch(self, resolution: int) -> ResNetArch:
        return self.uniform_arch(max(self.depth_choices), max(self.expand_choices), max(self.width_indices), resolution)

    def min_arch(self, resolution: int) -> ResNetArch:
        return self.uniform_arch(min(self.depth_choices), min(self.expand_choices), min(self.width_indices), resolution)

    def sample(self, rng: random.Random, resolution: int) -> ResNetArch:
        """Drawn in the reference's order; the stem's depth only from the largest and smallest."""
        space = self.space
        e = tuple(rng.choice(self.expand_choices) for _ in range(space.num_slots))
        d = (rng.choice((max(self.depth_choices), min(self.depth_choices))),)
        d += tuple(rng.choice(self.depth_choices) for _ in range(space.num_stages))
        w = tuple(rng.choice(self.width_indices) for _ in range(space.num_stages + 2))
        return ResNetArch(d=d, e=e, w=w, r=resolution)

    def corners(self, resolution: int) -> dict[str, ResNetArch]:
        multipliers = self.space.width_mult_choices
        corners = {}
        for d in (min(self.depth_choices), max(self.depth_choices)):
            for e in (min(self.expand_choices), max(self.expand_choices)):
                for w in (min(self.width_indices), max(self.width_indices)):
                    corners[f"d{d}-e{e}-w{multipliers[w]}"] = self.uniform_arch(d, e, w, resolution)
        return corners


def _subset(space: ResNetSpace, field: str, chosen: tuple | None, allowed: tuple) -> tuple:
    if chosen is None:
        return allowed
    values = tuple(sorted(set(chosen)))
    if not values or any(v not in allowed for v in values):
        raise OFAEdgeError(f"{field} {list(values)} is not a non-empty subset of {list(allowed)} in space {space.name}")
    return values


class ResNetFamily:
    name = "resnet"
    choice_fields = ("depth_choices", "expand_choices", "width_choices")

    def phase_space(self, space: ResNetSpace, phase: Phase | None) -> ResNetChoices:
        every = (space.depth_choices, space.expand_choices, space.width_mult_choices)
        if phase is None:
            return ResNetChoices(space, *every)
        if phase.full_net:
            return ResNetChoices(space, *((max(c),) for c in every))
        return ResNetChoices(
            space,
            _subset(space, "depth_choices", phase.depth_choices, space.depth_choices),
            _subset(space, "expand_choices", phase.expand_choices, space.expand_choices),
            _subset(space, "width_choices", phase.width_choices, space.width_mult_choices),
        )

    def check(self, space: ResNetSpace, phase: Phase) -> None:
        pass  # every value is checked as a subset of the space's choices

    def sample(self, sampling: ResNetChoices, rng: random.Random, resolution: int) -> ResNetArch:
        return sampling.sample(rng, resolution)

    def corners(self, sampling: ResNetChoices, resolution: int) -> dict[str, ResNetArch]:
        return sampling.corners(resolution)


_MBCONV, _RESNET = MBConvFamily(), ResNetFamily()
FAMILIES: dict[str, ElasticFamily] = {"mbv3": _MBCONV, "proxyless": _MBCONV, "resnet": _RESNET}


def elastic_family(family: str) -> ElasticFamily:
    """The training side of the supernet family named ``family`` (a space's ``family``)."""
    if family not in FAMILIES:
        raise OFAEdgeError(f"no progressive shrinking for supernet family '{family}' (known: {', '.join(FAMILIES)})")
    return FAMILIES[family]


def check_choice_fields(space: AnySpace, phase: Phase) -> None:
    """One line when ``phase`` restricts a choice ``space``'s family does not have."""
    family = elastic_family(space.family)
    for field, what in CHOICE_FIELDS.items():
        if field not in family.choice_fields and getattr(phase, field) is not None:
            raise OFAEdgeError(
                f"{field}: space {space.name} has no elastic {what} "
                f"(its phases choose {', '.join(family.choice_fields)})"
            )
    family.check(space, phase)

