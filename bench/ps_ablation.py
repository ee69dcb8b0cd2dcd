"""Progressive shrinking vs. no progressive shrinking, same budget, side by side.

Both arms follow the phases of a preset (``fmnist``, or ``quick`` for a smoke run: same epochs,
learning rates, subnets per step and distillation teacher) on a subset of Fashion-MNIST; the no-PS
arm (:func:`without_progression`) samples every phase after the full net from the whole space,
without channel re-sorting. The full-net phase is identical in both
arms (same seed, same choices, deterministic training), so it is trained once and both arms
continue from it; it also provides their shared KD teacher. Then the 8 corner subnets of each arm
are scored on the Fashion-MNIST test split after BN recalibration.

    python bench/ps_ablation.py                     # 5000 training images per epoch
    python bench/ps_ablation.py --images-per-epoch 2000 --out runs/ablation-small
    python bench/ps_ablation.py --base quick --test-images 200 --out /tmp/ps-smoke   # a minute
    python bench/ps_ablation.py --summarize runs/ps-ablation runs/ps-ablation-s1   # several seeds

Prints a table on stderr and one JSON object on stdout; the JSON is also written to
``OUT/result.json``, so results of several seeds can be compared later.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from ofa_edge import get_space
from ofa_edge.fileio import atomic_write_text
from ofa_edge.nn.checkpoint import load_supernet
from ofa_edge.train.data import load_dataset
from ofa_edge.train.schedule import Schedule, get_schedule
from ofa_edge.train.trainer import Position, TrainConfig, TrainData, Trainer, final_report


def shrink(schedule: Schedule, images_per_epoch: int | None) -> Schedule:
    """``schedule`` on ``images_per_epoch`` training images per epoch (None: as it is)."""
    return schedule if images_per_epoch is None else replace(schedule, images_per_epoch=images_per_epoch)


def without_progression(schedule: Schedule) -> Schedule:
    """The ablation arm: ``schedule`` with every phase after the full net sampling from the whole
    space (no progressive order, no channel re-sorting); epochs, learning rates, subnets per step
    and the distillation teacher stay as they are."""
    phases = tuple(
        p if p.full_net else replace(p, kernel_choices=None, expand_choices=None, depth_choices=None,
                                     sort_channels=False, trained_expands=())
        for p in schedule.phases
    )  # fmt: skip
    return replace(schedule, name=f"{schedule.name}-no-ps", phases=phases)


# What --summarize reads from each run's result.json (all written by main()).
_RESULT_FIELDS = ("images_per_epoch", "epochs", "test_images", "resolution", "gain_per_corner", "mean_gain")


def mean_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """Student-t confidence interval of the mean of ``values`` (runs as independent samples);
    None for fewer than two."""
    if len(values) < 2:
        return None
    from scipy import stats

    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    mean = statistics.mean(values)
    return float(mean - half), float(mean + half)


def summarize(folders: list[Path], console: Console) -> None:
    """Per-corner gains of several finished runs (seeds) side by side, and their mean."""
    results = []
    for folder in folders:
        path = folder / "result.json"
        if not path.exists():
            raise SystemExit(f"error: {path} not found (has the run in {folder} finished?)")
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError:
            raise SystemExit(f"error: {path} is not valid JSON (rerun that seed to rewrite it)") from None
        missing = [k for k in _RESULT_FIELDS if k not in result] if isinstance(result, dict) else _RESULT_FIELDS
        if missing:
            raise SystemExit(f"error: {path} lacks {', '.join(missing)} (not written by this bench; rerun that seed)")
        results.append(result)
    settings = {(r["images_per_epoch"], r["epochs"], r["test_images"], r["resolution"], frozenset(r["gain_per_corner"]))
                for r in results}  # fmt: skip
    if len(settings) > 1:
        raise SystemExit("error: these runs differ in images per epoch, epochs, test images, resolution or corners")
    corners = list(results[0]["gain_per_corner"])
    table = Table(title=f"PS - no-PS, test top-1 points, {len(results)} runs")
    table.add_column("corner")
    for r in results:
        table.add_column(f"seed {r.get('seed', '?')}")
    for column in ("mean", "PS >= no-PS"):
        table.add_column(column)
    mean_gain = {}
    for corner in corners:
        gains = [r["gain_per_corner"][corner] for r in results]
        mean_gain[corner] = round(statistics.mean(gains), 2)
        wins = sum(g >= 0 for g in gains)
        table.add_row(corner, *(f"{g:+.2f}" for g in gains), f"{mean_gain[corner]:+.2f}", f"{wins}/{len(gains)}")
    per_run = [r["mean_gain"] for r in results]
    overall = statistics.mean(per_run)
    table.add_row("mean", *(f"{g:+.2f}" for g in per_run), f"{overall:+.2f}", "")
    console.print(table)
    interval = mean_interval(per_run)
    if interval is not None:
        console.print(f"mean gain {overall:+.2f} points, 95% interval (t, {len(per_run) - 1} degrees of freedom) "
                      f"{interval[0]:+.2f} to {interval[1]:+.2f}: "
                      f"{'excludes' if interval[0] > 0 or interval[1] < 0 else 'includes'} zero")  # fmt: skip
    print(json.dumps({
        "benchmark": "ps_ablation_summary",
        "runs": [str(f) for f in folders],
        "seeds": [r.get("seed") for r in results],
        "mean_gain_per_corner": mean_gain,
        "mean_gain": round(overall, 2),
        "mean_gain_stdev_over_runs": round(statistics.stdev(per_run), 2) if len(per_run) > 1 else None,
        "mean_gain_95_interval": [round(v, 2) for v in interval] if interval is not None else None,
    }))  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", choices=("fmnist", "quick"), default="fmnist", help="the preset both arms follow")
    parser.add_argument("--images-per-epoch", type=int, default=None,
                        help="default: 5000 for fmnist, the preset's own for quick")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("runs/ps-ablation"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-images", type=int, default=10_000)
    parser.add_argument("--summarize", type=Path, nargs="+", metavar="OUT",
                        help="Train nothing: compare the result.json of finished runs (e.g. seeds).")  # fmt: skip
    args = parser.parse_args()
    if args.images_per_epoch is None and args.base == "fmnist":
        args.images_per_epoch = 5000
    return args


def train_arms(args: argparse.Namespace, ps: Schedule, data: TrainData, console: Console) -> tuple[dict, dict]:
    """Train both arms (each resumes in its folder); returns their trainers and wall seconds."""
    space = get_space("mbv3-fmnist")

    def log(kind: str, info: dict) -> None:
        if kind == "epoch_end":
            console.print(f"  {info['phase']} epoch {info['epoch'] + 1}: loss {info['loss']:.3f}, "
                          f"{info['images_per_s']:.0f} img/s")  # fmt: skip

    def trainer(schedule: Schedule, folder: Path) -> Trainer:  # reads the run folder's checkpoint when built
        return Trainer(TrainConfig(space, schedule, folder, "fashion-mnist", args.seed, validate_every_epoch=False),
                       data, on_event=log)  # fmt: skip

    trainers, timings = {}, {}
    started = time.perf_counter()
    console.print(f"PS arm ({len(data.train)} images per epoch) ...")
    trainers["ps"] = trainer(ps, args.out / "ps")
    trainers["ps"].run()
    timings["ps_s"] = time.perf_counter() - started

    # The no-PS arm starts where the shared full-net phase ended: its weights and its teacher.
    started = time.perf_counter()
    no_ps, no_ps_dir = without_progression(ps), args.out / "no-ps"
    no_ps_dir.mkdir(parents=True, exist_ok=True)
    if not (no_ps_dir / "checkpoint.safetensors").exists():
        seeding = trainer(no_ps, no_ps_dir)
        seeding.net.load_state_dict(load_supernet(args.out / "ps" / "phase-full.safetensors").state_dict())
        shutil.copyfile(args.out / "ps" / "teacher.safetensors", no_ps_dir / "teacher.safetensors")
        full_steps = ps.phases[0].epochs * seeding.loader.batches_per_epoch()
        seeding.position = Position(phase=1, epoch=0, batch=0, step=full_steps)
        seeding.save_checkpoint(torch.optim.SGD(seeding.net.parameters(), lr=0.0))
    console.print("no-PS arm ...")
    trainers["no-ps"] = trainer(no_ps, no_ps_dir)
    trainers["no-ps"].run()
    timings["no_ps_s"] = time.perf_counter() - started
    return trainers, timings


def main() -> None:
    args = parse_args()
    console = Console(stderr=True, width=120)
    if args.summarize:
        summarize(args.summarize, console)
        return
    torch.set_num_threads(args.threads)
    test = load_dataset("fashion-mnist", "test")
    test = test.subset(torch.arange(min(args.test_images, len(test))))
    ps = shrink(get_schedule(args.base), args.images_per_epoch)
    data = TrainData.from_dataset(load_dataset("fashion-mnist", "train"), ps, seed=args.seed, flip=True)
    trainers, timings = train_arms(args, ps, data, console)

    calibration = data.train.subset(torch.arange(min(ps.bn_calibration_images, len(data.train))))
    console.print(f"scoring 8 corner subnets x 2 arms on {len(test)} test images ...")
    top = max(trainers["ps"].config.space.resolutions)
    results = {
        name: final_report(t.net, calibration, test, data.normalization)[str(top)] for name, t in trainers.items()
    }
    corners = list(results["ps"])
    gains = [results["ps"][c] - results["no-ps"][c] for c in corners]
    table = Table(title=f"Fashion-MNIST test top-1 (%), {len(test)} images, {top} px, "
                        f"{len(data.train)} train images/epoch, {ps.total_epochs} epochs")  # fmt: skip
    for column in ("corner", "PS", "no-PS", "PS - no-PS"):
        table.add_column(column)
    for corner, gain in zip(corners, gains):
        table.add_row(corner, f"{results['ps'][corner]:.2f}", f"{results['no-ps'][corner]:.2f}", f"{gain:+.2f}")
    table.add_row("mean", f"{statistics.mean(results['ps'].values()):.2f}",
                  f"{statistics.mean(results['no-ps'].values()):.2f}", f"{statistics.mean(gains):+.2f}")  # fmt: skip
    console.print(table)
    result = json.dumps({
        "benchmark": "ps_ablation",
        "seed": args.seed,
        "base": args.base,
        "images_per_epoch": len(data.train),
        "epochs": ps.total_epochs,
        "test_images": len(test),
        "resolution": top,
        "top1": results,
        "gain_per_corner": dict(zip(corners, [round(g, 2) for g in gains])),
        "mean_gain": round(statistics.mean(gains), 2),
        "ps_better_on_every_corner": all(g >= 0 for g in gains),
        "wall_s": {k: round(v, 1) for k, v in timings.items()},
    })  # fmt: skip
    atomic_write_text(args.out / "result.json", result + "\n")
    print(result)


if __name__ == "__main__":
    main()
