"""Where a progressive-shrinking training step's time goes, and what a schedule costs on this machine.

One step of the demo's training (``mbv3-fmnist``, batch 128) is three parts, each timed apart:
drawing the batch (indexing, augmentation, resize, normalisation), the teacher's forward pass
(every phase after the full net distils from it), and forward + backward + SGD of the step's
subnets (1 in the full-net and kernel phases, 2 in the depth phases, 4 in the expand phases and the
sandwich rule). Each part is timed at each resolution, in fp32 and under bf16 autocast, in
interleaved rounds (a burst of load on a shared machine spoils one round of every variant, not
all of one), median over rounds. The steps use the schedule's own subnet sampling.

From those medians: each phase's projected time per epoch, and a schedule's projected total
(resolutions are drawn uniformly per batch, so a phase's step costs the mean over resolutions).

    python bench/step_time.py                                   # fp32 and bf16, 2 threads
    python bench/step_time.py --schedule fmnist-scratch --autocast off
    python bench/step_time.py --rounds 2 --steps 2              # a quick look

Prints a table on stderr and one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable

import torch
from rich.console import Console
from rich.table import Table

from ofa_edge import get_space
from ofa_edge.host import cpu_identity
from ofa_edge.nn.supernet import OFAMobileNetV3
from ofa_edge.train.data import BatchLoader, load_dataset
from ofa_edge.train.schedule import Phase, get_schedule
from ofa_edge.train.trainer import SubnetsLoss, TrainData, make_optimizer

# The kinds of step a schedule is made of: (label, example phase) in the demo schedule's order.
STEP_KINDS = ("full", "kernel", "depth", "expand", "sandwich")


def kind_of(phase: Phase) -> str:
    if phase.full_net:
        return "full"
    if phase.sandwich:
        return "sandwich"
    if phase.subnets_per_step >= 4:
        return "expand"
    if phase.subnets_per_step >= 2:
        return "depth"
    return "kernel"


def example_phases() -> dict[str, Phase]:
    phases = {kind_of(p): p for p in get_schedule("fmnist").phases}
    phases["sandwich"] = get_schedule("fmnist-sandwich").phases[-1]
    return phases


def median_seconds(fn: Callable[[], None], steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant per round")
    parser.add_argument("--autocast", nargs="+", default=["off", "bf16"], choices=("off", "bf16"))
    parser.add_argument("--schedule", nargs="+", default=["fmnist", "fmnist-scratch"],
                        help="schedules to project the cost of")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(stderr=True, width=150)

    space = get_space("mbv3-fmnist")
    schedule = get_schedule("fmnist")
    data = TrainData.from_dataset(load_dataset("fashion-mnist", "train"), schedule, seed=0, flip=True)
    loader = BatchLoader(data.train, schedule.batch_size, space.resolutions, data.normalization, channels_last=True)
    torch.manual_seed(0)
    net = OFAMobileNetV3(space).to(memory_format=torch.channels_last)
    teacher = OFAMobileNetV3(space).to(memory_format=torch.channels_last).eval()
    teacher.set_active(space.max_arch())
    optimizer = make_optimizer(net, schedule)
    for group in optimizer.param_groups:
        group["lr"] = 1e-4  # small: the weights must stay sane over the timed steps
    loss_module = SubnetsLoss(net, schedule.label_smoothing, schedule.kd_ratio)
    phases = example_phases()
    batches = {r: loader.make_batch(torch.arange(schedule.batch_size) + 1000 * i, 0, i, r)
               for i, r in enumerate(space.resolutions)}  # fmt: skip

    variants: dict[tuple[str, str, int, str], Callable[[], None]] = {}
    for r in space.resolutions:
        images, labels = batches[r]
        index = torch.randperm(len(data.train))[: schedule.batch_size]
        variants[("data", "-", r, "off")] = lambda r=r, index=index: loader.make_batch(index, 0, 7, r)
        for mode in args.autocast:
            enabled = mode == "bf16"

            def teacher_forward(images=images, enabled=enabled) -> None:
                with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
                    torch.softmax(teacher(images), dim=1)

            variants[("teacher", "-", r, mode)] = teacher_forward
            soft = torch.softmax(torch.randn(len(labels), space.num_classes), dim=1)
            for kind, phase in phases.items():
                rng = random.Random(f"{kind}-{r}")
                targets = None if kind == "full" else soft

                def step(images=images, labels=labels, phase=phase, rng=rng, enabled=enabled, r=r,
                         targets=targets) -> None:  # fmt: skip
                    archs = phase.step_archs(space, rng, resolution=r)
                    optimizer.zero_grad(set_to_none=True)
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
                        loss = loss_module(images, labels, targets, archs)
                    loss.backward()
                    optimizer.step()

                variants[("step", kind, r, mode)] = step

    console.print(f"{len(variants)} variants x {args.rounds} rounds x {args.steps} steps on {cpu_identity()} ...")
    for fn in variants.values():  # warm-up: one-off allocations and kernel selection
        fn()
    times: dict[tuple, list[float]] = {k: [] for k in variants}
    for _ in range(args.rounds):
        for key, fn in variants.items():
            times[key] += median_seconds(fn, args.steps)
    ms = {key: 1000 * statistics.median(v) for key, v in times.items()}

    table = Table(title=f"Training step parts, batch {schedule.batch_size}, {args.threads} threads (median ms)")
    for column in ("part", "subnets/step", *(f"{r} px {m}" for m in args.autocast for r in space.resolutions)):
        table.add_column(column, justify="right")
    rows = [("data", "-"), ("teacher", "-")] + [("step", k) for k in phases]
    for part, kind in rows:
        cells = []
        for mode in args.autocast:
            for r in space.resolutions:
                key = (part, kind, r, "off" if part == "data" else mode)
                cells.append(f"{ms[key]:.0f}")
        n = str(phases[kind].subnets_per_step) if part == "step" else "-"
        table.add_row(part if part != "step" else f"step: {kind}", n, *cells)
    console.print(table)

    steps_per_epoch = len(data.train) // schedule.batch_size
    projection = {}
    for mode in args.autocast:
        for name in args.schedule:
            sched = get_schedule(name)
            total, per_phase = 0.0, []
            for phase in sched.phases:
                kind = kind_of(phase)
                per_res = [
                    ms[("data", "-", r, "off")] + ms[("step", kind, r, mode)]
                    + (0.0 if kind == "full" else ms[("teacher", "-", r, mode)])
                    for r in space.resolutions
                ]  # fmt: skip
                step_ms = statistics.mean(per_res)
                seconds = step_ms / 1000 * steps_per_epoch * phase.epochs
                per_phase.append({"phase": phase.name, "kind": kind, "epochs": phase.epochs,
                                  "step_ms": round(step_ms, 1), "projected_min": round(seconds / 60, 1)})  # fmt: skip
                total += seconds
            projection[f"{name}/{mode}"] = {"phases": per_phase, "projected_h": round(total / 3600, 2)}
    summary = Table(title=f"Projected training time ({steps_per_epoch} steps per epoch; validation not included)")
    for column in ("schedule", "autocast", "epochs", "projected h"):
        summary.add_column(column, justify="right")
    for key, value in projection.items():
        name, mode = key.split("/")
        summary.add_row(name, mode, str(get_schedule(name).total_epochs), f"{value['projected_h']:.2f}")
    console.print(summary)
    print(json.dumps({
        "benchmark": "step_time",
        "machine": cpu_identity(),
        "threads": args.threads,
        "batch": schedule.batch_size,
        "ms": {"/".join(map(str, k)): round(v, 2) for k, v in ms.items()},
        "projection": projection,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
