"""Progressive shrinking vs. no progressive shrinking, same budget, side by side.

Both arms follow the ``fmnist`` schedule's phases (same epochs, learning rates, subnets per step
and distillation teacher) on a subset of Fashion-MNIST; ``no-ps`` samples every phase after the
full net from the whole space, without channel re-sorting. The full-net phase is identical in both
arms (same seed, same choices, deterministic training), so it is trained once and both arms
continue from it; it also provides their shared KD teacher. Then the 8 corner subnets of each arm
are scored on the Fashion-MNIST test split after BN recalibration.

    python bench/ps_ablation.py                     # 5000 training images per epoch
    python bench/ps_ablation.py --images-per-epoch 2000 --out runs/ablation-small

Prints a table on stderr and one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ofa_edge import get_space
from ofa_edge.checkpoint import load_supernet
from ofa_edge.data import load_dataset
from ofa_edge.schedule import Schedule, get_schedule
from ofa_edge.train import Position, TrainConfig, TrainData, Trainer, final_report


def shrink(schedule: Schedule, images_per_epoch: int) -> Schedule:
    return replace(schedule, images_per_epoch=images_per_epoch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images-per-epoch", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=Path("runs/ps-ablation"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-images", type=int, default=10_000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(stderr=True, width=120)

    space = get_space("mbv3-fmnist")
    dataset = load_dataset("fashion-mnist", "train")
    test = load_dataset("fashion-mnist", "test")
    test = test.subset(torch.arange(min(args.test_images, len(test))))
    ps = shrink(get_schedule("fmnist"), args.images_per_epoch)
    no_ps = shrink(get_schedule("no-ps"), args.images_per_epoch)
    data = TrainData.from_dataset(dataset, ps, seed=args.seed, flip=True)

    def log(kind: str, info: dict) -> None:
        if kind == "epoch_end":
            console.print(f"  {info['phase']} epoch {info['epoch'] + 1}: loss {info['loss']:.3f}, "
                          f"{info['images_per_s']:.0f} img/s")  # fmt: skip

    timings = {}
    started = time.perf_counter()
    ps_trainer = Trainer(TrainConfig(space, ps, args.out / "ps", "fashion-mnist", args.seed,
                                     validate_every_epoch=False), data, on_event=log)  # fmt: skip
    console.print(f"PS arm ({args.images_per_epoch} images per epoch) ...")
    ps_trainer.run()
    timings["ps_s"] = time.perf_counter() - started

    # The no-PS arm starts where the shared full-net phase ended: its weights and its teacher.
    started = time.perf_counter()
    no_ps_dir = args.out / "no-ps"
    no_ps_dir.mkdir(parents=True, exist_ok=True)

    def build_no_ps_trainer() -> Trainer:  # reads the run folder's checkpoint when built
        return Trainer(TrainConfig(space, no_ps, no_ps_dir, "fashion-mnist", args.seed,
                                   validate_every_epoch=False), data, on_event=log)  # fmt: skip

    if not (no_ps_dir / "checkpoint.safetensors").exists():
        # Seed the arm's run folder with a checkpoint at the end of the shared full-net phase.
        seeding = build_no_ps_trainer()
        full = load_supernet(args.out / "ps" / "phase-full.safetensors")
        seeding.net.load_state_dict(full.state_dict())
        shutil.copyfile(args.out / "ps" / "teacher.safetensors", no_ps_dir / "teacher.safetensors")
        full_steps = ps.phases[0].epochs * seeding.loader.batches_per_epoch()
        seeding.position = Position(phase=1, epoch=0, batch=0, step=full_steps)
        seeding.save_checkpoint(torch.optim.SGD(seeding.net.parameters(), lr=0.0))
    no_ps_trainer = build_no_ps_trainer()
    console.print("no-PS arm ...")
    no_ps_trainer.run()
    timings["no_ps_s"] = time.perf_counter() - started

    calibration = data.train.subset(torch.arange(min(2000, len(data.train))))
    console.print(f"scoring 8 corner subnets x 2 arms on {len(test)} test images ...")
    top = max(space.resolutions)
    results = {}
    for name, trainer in (("ps", ps_trainer), ("no-ps", no_ps_trainer)):
        results[name] = final_report(trainer.net, calibration, test, data.normalization)[str(top)]

    corners = list(results["ps"])
    gains = [results["ps"][c] - results["no-ps"][c] for c in corners]
    table = Table(title=f"Fashion-MNIST test top-1 (%), {len(test)} images, {top} px, "
                        f"{args.images_per_epoch} train images/epoch, {ps.total_epochs} epochs")  # fmt: skip
    for column in ("corner", "PS", "no-PS", "PS - no-PS"):
        table.add_column(column)
    for corner, gain in zip(corners, gains):
        table.add_row(corner, f"{results['ps'][corner]:.2f}", f"{results['no-ps'][corner]:.2f}", f"{gain:+.2f}")
    table.add_row("mean", f"{statistics.mean(results['ps'].values()):.2f}",
                  f"{statistics.mean(results['no-ps'].values()):.2f}", f"{statistics.mean(gains):+.2f}")  # fmt: skip
    console.print(table)
    print(json.dumps({
        "benchmark": "ps_ablation",
        "images_per_epoch": args.images_per_epoch,
        "epochs": ps.total_epochs,
        "test_images": len(test),
        "resolution": top,
        "top1": results,
        "gain_per_corner": dict(zip(corners, [round(g, 2) for g in gains])),
        "mean_gain": round(statistics.mean(gains), 2),
        "ps_better_on_every_corner": all(g >= 0 for g in gains),
        "wall_s": {k: round(v, 1) for k, v in timings.items()},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
