"""Accuracy data for the predictor: subnets of one supernet, each scored on the validation split.

Which subnets: first the space's corner subnets (min/max depth x expand x kernel) at every
resolution, then ``samples`` archs drawn uniformly over every choice and resolution from a seeded
generator, so the list is the same on every run and every rank. Each subnet gets BatchNorm
recalibrated on a fixed block of training images and its top-1 on the validation split (never
test: the predictor guides a search whose result is reported on test).

The file is JSON lines, one subnet per line, appended as each is measured; a run killed at any
moment and started again measures only what is missing. Under torchrun, rank ``k`` of ``n``
takes every ``n``-th measurement of the plan from the ``k``-th on; every line is one ``write`` on a file
opened for appending, so ranks share the file safely.

Noise floor: ``repeats`` of the random archs are scored a second time with another block of
calibration images (``calibration_subset`` 1). How much those pairs differ is the measurement's
own noise, the floor under any predictor's error.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import OFAEdgeError
from ..space.arch import Arch
from ..space.space import SearchSpace, corner_archs

if TYPE_CHECKING:  # torch is imported only where subnets are scored, so a search starts fast
    from ..train.evaluate import SupernetScorer

FORMAT = "ofa-edge-accuracy-data/1"


class AccuracyDataError(OFAEdgeError):
    """A data file that cannot be used (damaged, or of another supernet)."""


@dataclass(frozen=True)
class Job:
    """One measurement to make: arch number ``index`` of the plan, with a calibration subset."""

    index: int
    arch: Arch
    kind: str  # 'corner', 'random' or 'repeat'
    calibration_subset: int

    @property
    def key(self) -> tuple[int, int]:
        return self.index, self.calibration_subset


def plan(space: SearchSpace, samples: int, repeats: int, seed: int = 0) -> list[Job]:
    """Every measurement of a data file, in order: corners, random archs, then the repeats."""
    jobs: list[Job] = []
    for r in sorted(space.resolutions):
        jobs.extend(Job(len(jobs), arch, "corner", 0) for arch in corner_archs(space, r).values())
    rng = random.Random(seed)
    first_random = len(jobs)
    jobs.extend(Job(first_random + i, space.sample(rng), "random", 0) for i in range(samples))
    for i in range(min(repeats, samples)):
        job = jobs[first_random + i]
        jobs.append(Job(job.index, job.arch, "repeat", 1))
    return jobs


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a data file; a line cut short by a kill is skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("format") == FORMAT:
            records.append(record)
    return records


def _append_line(path: Path, record: dict[str, Any]) -> None:
    line = json.dumps(record) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # A kill may have left a line without its newline: start ours on a line of its own.
        if os.fstat(fd).st_size and not path.read_bytes().endswith(b"\n"):
            line = "\n" + line
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def collect_accuracy_data(
    scorer: SupernetScorer,
    out: Path,
    samples: int,
    repeats: int = 30,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    progress: Callable[[int, int, str], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Measure the plan's missing subnets (this rank's share), appending one line each; yields
    each new record. Refuses a file that holds another supernet's or another plan's records."""
    if samples < 1:
        raise OFAEdgeError(f"--samples must be at least 1, got {samples}")
    if repeats < 0:
        raise OFAEdgeError(f"--repeats must be 0 or more, got {repeats}")
    space = scorer.net.space
    from ..nn.checkpoint import state_fingerprint

    fingerprint = state_fingerprint(scorer.net.state_dict())
    existing = read_records(out)
    for record in existing:
        if record.get("supernet") != fingerprint:
            raise AccuracyDataError(
                f"{out} holds subnets of another supernet ({record.get('supernet')}, this one is {fingerprint}); "
                "write to a new file"
            )
        if record.get("seed") != seed or record.get("split") != scorer.split:
            raise AccuracyDataError(
                f"{out} was made with seed {record.get('seed')} on split {record.get('split')}; "
                f"this run asks for seed {seed} on {scorer.split}: write to a new file"
            )
    done = {(r["index"], r["calibration_subset"]) for r in existing}
    jobs = [j for position, j in enumerate(plan(space, samples, repeats, seed)) if position % world_size == rank]
    todo = [j for j in jobs if j.key not in done]
    block, available = len(scorer.data.calibration), len(scorer.train_part)
    if any(j.calibration_subset for j in todo) and 2 * block > available:
        # Found before the first measurement, not after an hour of them.
        raise AccuracyDataError(
            f"--repeats score subnets again with a second block of {block} calibration images, but the training "
            f"part holds {available}: pass --calibration-images {available // 2} (or fewer), or --repeats 0"
        )
    total = len(jobs)
    if progress:
        progress(total - len(todo), total, "")
    out.parent.mkdir(parents=True, exist_ok=True)
    for count, job in enumerate(todo, start=total - len(todo) + 1):
        scorer.use_calibration_subset(job.calibration_subset)
        started = time.perf_counter()
        top1 = scorer.score(job.arch)
        record = {
            "format": FORMAT,
            "index": job.index,
            "kind": job.kind,
            "arch": job.arch.to_dict(),
            "r": job.arch.r,
            "top1": round(top1, 4),
            "split": scorer.split,
            "images": scorer.images,
            "calibration_subset": job.calibration_subset,
            "calibration_images": len(scorer.data.calibration),
            "supernet": fingerprint,
            "seed": seed,
            "macs": space.macs(job.arch),
            "seconds": round(time.perf_counter() - started, 2),
        }
        _append_line(out, record)
        if progress:
            progress(count, total, f"{job.kind} r{job.arch.r} top-1 {top1:.2f}")
        yield record
