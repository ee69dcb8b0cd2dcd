"""Corner subnets of the demo space trained alone: the baseline once-for-all subnets are judged by.

Each corner (min/max depth x expand x kernel of ``mbv3-fmnist``) is trained as a plain network:
the demo space narrowed to that corner's single kernel, expand ratio and depth at one resolution,
so the "supernet" the trainer builds *is* the subnet, and its full-net phase is ordinary training.
Everything else is what the supernet's training uses: the same Fashion-MNIST training part (the
same 10,000 validation images held out, by seed), augmentation, batch size, SGD with momentum,
label smoothing, warm-up and cosine learning rate. Then each is scored like the supernet's corners:
BatchNorm recalibrated on the first 2000 training images, top-1 on the test split.

Each corner trains in its own run folder (``OUT/CORNER-sSEED``) and resumes there after a kill;
a finished corner is read back, not trained again.

    python bench/alone.py --corners d4-e6-k7 d2-e3-k3          # 2 corners, 10 epochs, about 45 min here
    python bench/alone.py --device auto --corners all           # all 8 (on a GPU when one is present)
    python bench/alone.py --epochs 1 --images-per-epoch 2000 --corners d2-e3-k3 --out runs/alone-quick

Prints a table on stderr and one JSON object on stdout (also written to ``OUT/result.json``).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from ofa_edge import get_space
from ofa_edge.errors import OFAEdgeError
from ofa_edge.fileio import atomic_write_text
from ofa_edge.space.space import SearchSpace, corner_archs
from ofa_edge.train.data import load_dataset
from ofa_edge.train.evaluate import EvalData, evaluate_arch
from ofa_edge.train.schedule import Phase, Schedule, get_schedule
from ofa_edge.train.trainer import TrainConfig, TrainData, Trainer


def alone_schedule(epochs: int, images_per_epoch: int | None) -> Schedule:
    """Plain training: one full-net phase with the demo's full-net learning rate and warm-up."""
    fmnist = get_schedule("fmnist")
    full = fmnist.phases[0]
    phase = Phase("full", epochs, full.lr, full_net=True, warmup_epochs=full.warmup_epochs)
    return replace(fmnist, name=f"alone-{epochs}", phases=(phase,), images_per_epoch=images_per_epoch)


def corner_space(space: SearchSpace, name: str, resolution: int) -> SearchSpace:
    arch = corner_archs(space, resolution)[name]
    return space.restrict(kernel_choices=[arch.ks[0]], expand_choices=[arch.e[0]], depth_choices=[arch.d[0]],
                          resolutions=[resolution])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corners", nargs="+", default=["d4-e6-k7", "d2-e3-k3"],
                        help="corner names (d2-e3-k3 ... d4-e6-k7), or 'all'")  # fmt: skip
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--resolution", type=int, default=28)
    parser.add_argument("--images-per-epoch", type=int, default=None, help="default: the whole training part")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/alone"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--autocast", default="off", choices=("off", "bf16"))
    parser.add_argument("--test-images", type=int, default=10_000)
    parser.add_argument("--data-dir", type=Path, default=None, help="Fashion-MNIST's IDX files (default: Debian's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(stderr=True, width=140)

    demo = get_space("mbv3-fmnist")
    names = list(corner_archs(demo, args.resolution)) if args.corners == ["all"] else args.corners
    unknown = set(names) - set(corner_archs(demo, args.resolution))
    if unknown:
        raise SystemExit(f"error: unknown corner(s) {sorted(unknown)} (known: {', '.join(corner_archs(demo, 28))})")
    schedule = alone_schedule(args.epochs, args.images_per_epoch)
    dataset = load_dataset("fashion-mnist", "train", args.data_dir)
    test = load_dataset("fashion-mnist", "test", args.data_dir)
    test = test.subset(torch.arange(min(args.test_images, len(test))))
    data = TrainData.from_dataset(dataset, schedule, seed=args.seed, flip=True)
    calibration = data.train.subset(torch.arange(min(schedule.bn_calibration_images, len(data.train))))

    results = {}
    for name in names:
        folder = args.out / f"{name}-s{args.seed}"
        done = folder / "result.json"
        if done.exists():
            results[name] = json.loads(done.read_text())
            console.print(f"{name}: finished earlier ({results[name]['test_top1']:.2f}%), read from {done}")
            continue
        space = corner_space(demo, name, args.resolution)

        def log(kind: str, info: dict, name: str = name) -> None:
            if kind == "epoch_end":
                console.print(f"  {name} epoch {info['epoch'] + 1}/{args.epochs}: loss {info['loss']:.3f}, "
                              f"{info['images_per_s']:.0f} img/s")  # fmt: skip
            elif kind == "resumed":
                console.print(f"  {name}: resuming at step {info['step']} (saved {info['saved_at']})")

        config = TrainConfig(space, schedule, folder, "fashion-mnist", args.seed, validate_every_epoch=False,
                             device=args.device, autocast=args.autocast)  # fmt: skip
        trainer = Trainer(config, data, on_event=log)
        console.print(f"{name}: training alone, {args.epochs} epochs at {args.resolution} px ...")
        started = time.perf_counter()
        trainer.run()
        seconds = time.perf_counter() - started
        arch = space.max_arch(args.resolution)
        eval_data = EvalData(calibration, test, data.normalization, device=trainer.device)
        top1 = evaluate_arch(trainer.net, arch, eval_data)
        results[name] = {
            "corner": name,
            "arch": corner_archs(demo, args.resolution)[name].to_dict(),
            "test_top1": round(top1, 2),
            "epochs": args.epochs,
            "images_per_epoch": len(data.train),
            "seed": args.seed,
            "train_s_this_session": round(seconds, 1),
            "steps": trainer.position.step,
            "device": trainer.device_description(),
            "autocast": args.autocast,
        }
        atomic_write_text(done, json.dumps(results[name], indent=2) + "\n")

    table = Table(title=f"Trained alone: test top-1 at {args.resolution} px ({args.epochs} epochs, seed {args.seed})")
    for column in ("corner", "test top-1 (%)", "train time this session (s)", "device"):
        table.add_column(column)
    for name, r in results.items():
        table.add_row(name, f"{r['test_top1']:.2f}", f"{r['train_s_this_session']:.0f}", str(r["device"]))
    console.print(table)
    payload = {"benchmark": "alone", "resolution": args.resolution, "epochs": args.epochs, "seed": args.seed,
               "test_images": len(test), "corners": results}  # fmt: skip
    atomic_write_text(args.out / "result.json", json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload))


if __name__ == "__main__":
    try:
        main()
    except OFAEdgeError as error:  # missing data, a bad device: one line
        raise SystemExit(f"error: {error}") from None
