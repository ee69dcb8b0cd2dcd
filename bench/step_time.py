"""What a training schedule costs on this machine: its kinds of step timed, then projected.

One progressive-shrinking step (``mbv3-fmnist``) is three parts, each timed apart: drawing the
batch (indexing, augmentation, resize, normalisation), the teacher's forward pass (every phase
that distils), and forward + backward + SGD of the step's subnets. Every distinct kind of step
among the schedules asked for (the full net; N subnets drawn from given choices; the sandwich
rule; corners per step) is timed at each resolution, in fp32 and/or under bf16 autocast, in
interleaved rounds (a burst of load on a shared machine spoils one round of every variant, not
all of one), median over rounds, with the phase's own subnet sampling. Scoring a corner subnet
(BatchNorm recalibration, then top-1) is timed too: runs score the 8 corners after every epoch
and 16 corner subnets on the test split at the end.

From those medians: each phase's projected time, each schedule's total, and a chain's total. A
folder of recipes (``recipes/demo``) is a chain: its files in order, plus the nets ``--alone``
names (trained alone by ``bench/alone.py`` at 28 px), as ``scripts/train_demo.sh`` runs them.

    python bench/step_time.py                                                 # fmnist, fp32 and bf16
    python bench/step_time.py --schedule recipes/fmnist-scratch.yaml --autocast off
    python bench/step_time.py --schedule recipes/demo --alone d4-e6-k7 d4-e6-k3 --autocast off
    python bench/step_time.py --rounds 1 --steps 1                            # a quick look

Prints tables on stderr and one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from ofa_edge import get_space
from ofa_edge.host import cpu_identity
from ofa_edge.nn.bn_calibration import recalibrate_bn
from ofa_edge.nn.supernet import OFAMobileNetV3
from ofa_edge.space.space import SearchSpace, corner_archs
from ofa_edge.train.data import BatchLoader, ImageDataset, load_dataset
from ofa_edge.train.evaluate import EvalData, top1
from ofa_edge.train.schedule import SCHEDULE_FILE_SUFFIXES, Phase, Schedule, get_schedule, resolve_schedule
from ofa_edge.train.trainer import SubnetsLoss, TrainData, make_optimizer

ALONE_RESOLUTION = 28  # bench/alone.py's default
ALONE_EPOCHS = 10
TEST_IMAGES = 10_000  # Fashion-MNIST's test split, which each run's final report scores


@dataclass(frozen=True)
class Stage:
    """One training run of a chain: a schedule's phases and settings, or a net trained alone."""

    name: str
    phases: tuple[Phase, ...]
    settings: Schedule  # batch size, images per epoch, scoring sizes
    alone: bool = False  # one arch at one resolution, on labels only, scored once at the end

    @classmethod
    def of(cls, schedule: Schedule) -> Stage:
        return cls(schedule.name, schedule.phases, schedule)

    @property
    def epochs(self) -> int:
        return sum(p.epochs for p in self.phases)


def step_key(phase: Phase) -> tuple:
    """What decides a step's cost: which subnets it trains and how many (not epochs or lr)."""
    return (phase.full_net, phase.kernel_choices, phase.expand_choices, phase.depth_choices,
            phase.subnets_per_step, phase.sandwich, phase.corners)  # fmt: skip


def step_label(phase: Phase) -> str:
    if phase.full_net:
        return "full net"
    named = (("k", phase.kernel_choices), ("e", phase.expand_choices), ("d", phase.depth_choices))
    choices = " ".join(f"{p}{''.join(map(str, c)) if c else '*'}" for p, c in named)
    extra = (" sandwich" if phase.sandwich else "") + (f" +{phase.corners} corners" if phase.corners else "")
    return f"{choices} x{phase.subnets_per_step}{extra}"


def alone_stage(space: SearchSpace, corner: str) -> Stage:
    """A net trained alone as bench/alone.py trains it: the fmnist full-net phase's settings, its
    epochs, one arch at one resolution (a phase whose only choice is that corner)."""
    arch = corner_archs(space, ALONE_RESOLUTION)[corner]
    fmnist = get_schedule("fmnist")
    phase = Phase(f"alone {corner}", ALONE_EPOCHS, fmnist.phases[0].lr, kernel_choices=(arch.ks[0],),
                  expand_choices=(arch.e[0],), depth_choices=(arch.d[0],))  # fmt: skip
    return Stage(f"alone {corner}", (phase,), fmnist, alone=True)


def load_chains(specs: list[str], alone: list[str], space: SearchSpace) -> dict[str, list[Stage]]:
    """Each spec's stages: a preset or file is one; a folder of recipes is its files in order,
    plus the ``alone`` nets first."""
    chains = {}
    for spec in specs:
        folder = Path(spec)
        if folder.is_dir():
            files = sorted(p for p in folder.iterdir() if p.suffix in SCHEDULE_FILE_SUFFIXES)
            chains[spec] = [alone_stage(space, c) for c in alone] + [Stage.of(resolve_schedule(str(p))) for p in files]
        else:
            chains[spec] = [Stage.of(resolve_schedule(spec))]
    return chains


def median_seconds(fn: Callable[[], None], steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


class Bench:
    """The supernet, teacher, batches and optimizer the timed variants share."""

    def __init__(self, space: SearchSpace, train: ImageDataset, normalization, batch_size: int) -> None:
        self.space, self.train, self.normalization, self.batch_size = space, train, normalization, batch_size
        self.loader = BatchLoader(train, batch_size, space.resolutions, normalization, channels_last=True)
        torch.manual_seed(0)
        self.net = OFAMobileNetV3(space).to(memory_format=torch.channels_last)
        self.teacher = OFAMobileNetV3(space).to(memory_format=torch.channels_last).eval()
        self.teacher.set_active(space.max_arch())
        self.optimizer = make_optimizer(self.net, get_schedule("fmnist"))
        for group in self.optimizer.param_groups:
            group["lr"] = 1e-4  # small: the weights must stay sane over the timed steps
        self.loss = SubnetsLoss(self.net, 0.1, 1.0)
        self.batches = {r: self.loader.make_batch(torch.arange(batch_size) + 1000 * i, 0, i, r)
                        for i, r in enumerate(space.resolutions)}  # fmt: skip

    def data_variant(self, r: int) -> Callable[[], None]:
        index = torch.randperm(len(self.train))[: self.batch_size]
        return lambda: self.loader.make_batch(index, 0, 7, r)

    def teacher_variant(self, r: int, autocast: bool) -> Callable[[], None]:
        images = self.batches[r][0]

        def forward() -> None:
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                torch.softmax(self.teacher(images), dim=1)

        return forward

    def step_variant(self, phase: Phase, r: int, autocast: bool, distils: bool) -> Callable[[], None]:
        images, labels = self.batches[r]
        soft = torch.softmax(torch.randn(len(labels), self.space.num_classes), dim=1) if distils else None
        rng = random.Random(f"{step_key(phase)}-{r}")

        def step() -> None:
            archs = phase.step_archs(self.space, rng, resolution=r)
            self.optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = self.loss(images, labels, soft, archs)
            loss.backward()
            self.optimizer.step()

        return step

    def scoring_variants(self, images: int) -> dict[tuple, Callable[[], None]]:
        """Recalibrating BatchNorm on, and scoring, ``images`` images for each corner subnet at the
        largest resolution (what a run's per-epoch validation and final report repeat)."""
        r = max(self.space.resolutions)
        data = EvalData(self.train.subset(torch.arange(images)), self.train.subset(torch.arange(images)),
                        self.normalization)  # fmt: skip
        variants = {}
        for name, arch in corner_archs(self.space, r).items():

            def calibrate(arch=arch) -> None:
                self.net.set_active(arch)
                recalibrate_bn(self.net, data.loader(data.calibration).epoch(0, resolution=r), max_images=images)

            def score(arch=arch) -> None:
                self.net.set_active(arch)
                top1(self.net, data.loader(data.scored), r)

            variants[("calibrate", name, r, "off")] = calibrate
            variants[("score", name, r, "off")] = score
        return variants


def build_variants(bench: Bench, chains: dict[str, list[Stage]], modes: list[str], images: int) -> dict:
    """Every (part, step kind, resolution, autocast) to time, once per distinct step kind."""
    variants: dict[tuple, Callable[[], None]] = {}
    phases = {step_key(p): p for stages in chains.values() for s in stages for p in s.phases}
    for r in bench.space.resolutions:
        variants[("data", "-", r, "off")] = bench.data_variant(r)
        for mode in modes:
            variants[("teacher", "-", r, mode)] = bench.teacher_variant(r, mode == "bf16")
            for phase in phases.values():
                step = bench.step_variant(phase, r, mode == "bf16", distils=not phase.full_net)
                variants[("step", step_label(phase), r, mode)] = step
    variants.update(bench.scoring_variants(images))
    return variants


def measure(variants: dict, rounds: int, steps: int) -> dict[tuple, float]:
    """Median milliseconds of each variant over interleaved rounds, after one warm-up call each."""
    for fn in variants.values():  # one-off allocations and kernel selection
        fn()
    times: dict[tuple, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for key, fn in variants.items():
            times[key] += median_seconds(fn, steps)
    return {key: 1000 * statistics.median(v) for key, v in times.items()}


def scoring_seconds(ms: dict[tuple, float], images: int, calibration_images: int, scored_images: int) -> float:
    """Seconds to score one corner subnet: calibration and scoring scale with their image counts."""
    calibrate = statistics.mean(v for k, v in ms.items() if k[0] == "calibrate") / 1000 / images
    score = statistics.mean(v for k, v in ms.items() if k[0] == "score") / 1000 / images
    return calibrate * calibration_images + score * scored_images


def project_stage(stage: Stage, ms: dict, mode: str, space: SearchSpace, batch: int, train_images: int,
                  images: int) -> dict:  # fmt: skip
    """A run's projected minutes: its steps (timed at ``batch``; the time per image scales to the
    stage's own batch size), the per-epoch validation and the final report."""
    sched = stage.settings
    per_epoch_images = min(sched.images_per_epoch or train_images, train_images)
    resolutions = [ALONE_RESOLUTION] if stage.alone else list(space.resolutions)
    phases, train_s = [], 0.0
    for phase in stage.phases:
        distils = not (phase.full_net or stage.alone)
        step_ms = statistics.mean(
            ms[("data", "-", r, "off")] + ms[("step", step_label(phase), r, mode)]
            + (ms[("teacher", "-", r, mode)] if distils else 0.0)
            for r in resolutions
        )  # fmt: skip
        seconds = step_ms / 1000 / batch * per_epoch_images * phase.epochs
        phases.append({"phase": phase.name, "step": step_label(phase), "epochs": phase.epochs,
                       "step_ms": round(step_ms, 1), "projected_min": round(seconds / 60, 1)})  # fmt: skip
        train_s += seconds
    if stage.alone:  # bench/alone.py scores its corner once, on the test split
        scoring_s = scoring_seconds(ms, images, sched.bn_calibration_images, TEST_IMAGES)
    else:  # 8 corners after every epoch; 8 corners at 2 resolutions on the test split at the end
        epoch_s = 8 * scoring_seconds(ms, images, sched.epoch_calibration_images, sched.epoch_val_images)
        report_s = 16 * scoring_seconds(ms, images, sched.bn_calibration_images, sched.test_images or TEST_IMAGES)
        scoring_s = epoch_s * stage.epochs + report_s
    return {"name": stage.name, "epochs": stage.epochs, "phases": phases, "train_min": round(train_s / 60, 1),
            "scoring_min": round(scoring_s / 60, 1), "projected_h": round((train_s + scoring_s) / 3600, 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant per round")
    parser.add_argument("--autocast", nargs="+", default=["off", "bf16"], choices=("off", "bf16"))
    parser.add_argument("--schedule", nargs="+", default=["fmnist"],
                        help="presets, schedule files, or folders of recipes (a chain) to project")  # fmt: skip
    parser.add_argument("--alone", nargs="*", default=[], metavar="CORNER",
                        help="nets a folder's chain trains alone first (e.g. d4-e6-k7 d4-e6-k3)")  # fmt: skip
    parser.add_argument("--scoring-images", type=int, default=256, help="images per timed scoring pass")
    parser.add_argument("--data-dir", type=Path, default=None, help="Fashion-MNIST's IDX files (default: Debian's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(stderr=True, width=160)

    space = get_space("mbv3-fmnist")
    chains = load_chains(args.schedule, args.alone, space)
    batch = chains[args.schedule[0]][-1].settings.batch_size
    data = TrainData.from_dataset(load_dataset("fashion-mnist", "train", args.data_dir), get_schedule("fmnist"),
                                  seed=0, flip=True)  # fmt: skip
    bench = Bench(space, data.train, data.normalization, batch)
    variants = build_variants(bench, chains, args.autocast, args.scoring_images)
    console.print(f"{len(variants)} variants x {args.rounds} rounds x {args.steps} steps on {cpu_identity()} ...")
    ms = measure(variants, args.rounds, args.steps)
    show_steps(console, ms, space, args.autocast, batch, args.threads)
    sizes = (batch, len(data.train), args.scoring_images)
    projection = {
        f"{spec}/{mode}": [project_stage(s, ms, mode, space, *sizes) for s in stages]
        for spec, stages in chains.items() for mode in args.autocast
    }  # fmt: skip
    show_projection(console, projection, len(data.train) // batch)
    print(json.dumps({
        "benchmark": "step_time",
        "machine": cpu_identity(),
        "threads": args.threads,
        "batch": batch,
        "ms": {"/".join(map(str, k)): round(v, 2) for k, v in ms.items()},
        "projection": {k: {"stages": v, "projected_h": round(sum(s["projected_h"] for s in v), 2)}
                       for k, v in projection.items()},
    }))  # fmt: skip


def show_steps(console: Console, ms: dict, space: SearchSpace, modes: list[str], batch: int, threads: int) -> None:
    table = Table(title=f"Training step parts, batch {batch}, {threads} threads (median ms)")
    for column in ("part", *(f"{r} px {m}" for m in modes for r in space.resolutions)):
        table.add_column(column, justify="right")
    rows = dict.fromkeys((k[0], k[1]) for k in ms if k[0] in ("data", "teacher", "step"))
    for part, kind in rows:
        cells = [ms.get((part, kind, r, "off" if part == "data" else m)) for m in modes for r in space.resolutions]
        table.add_row(kind if part == "step" else part, *(f"{c:.0f}" if c is not None else "-" for c in cells))
    console.print(table)


def show_projection(console: Console, projection: dict, steps_per_epoch: int) -> None:
    table = Table(title=f"Projected time ({steps_per_epoch} steps per 50k-image epoch; scoring = corners each epoch "
                        "and at the end)")  # fmt: skip
    for column in ("schedule", "autocast", "run", "epochs", "train h", "scoring h", "total h"):
        table.add_column(column, justify="right")
    for key, stages in projection.items():
        spec, mode = key.rsplit("/", 1)
        for s in stages:
            table.add_row(spec, mode, s["name"], str(s["epochs"]), f"{s['train_min'] / 60:.2f}",
                          f"{s['scoring_min'] / 60:.2f}", f"{s['projected_h']:.2f}")  # fmt: skip
        if len(stages) > 1:
            table.add_row(spec, mode, "all", str(sum(s["epochs"] for s in stages)), "", "",
                          f"{sum(s['projected_h'] for s in stages):.2f}")  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    main()
