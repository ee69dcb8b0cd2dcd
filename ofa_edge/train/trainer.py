"""Progressive-shrinking training of a supernet: the paper's core procedure.

One optimizer step: draw a batch (its resolution sampled from the space), compute the teacher's
soft labels (from phase 2 on), take ``subnets_per_step`` archs from the phase's choices (random,
or the largest and smallest plus random ones under the sandwich rule, see ``Phase``), add up
each subnet's loss (label-smoothed CE + KD soft-target CE) and take one SGD step on the sum, so
their gradients are summed as in the reference. Learning rate: linear warm-up then cosine, per
phase, a pure function of the step, so nothing about it needs saving.

Resuming: every random choice of step ``s`` (batch order and augmentation, resolution, sampled
archs, dropout) is derived from ``(seed, s)``, and checkpoints hold weights, momentum buffers and
the position (phase, epoch, batch). A run killed at any moment and restarted with the same command
therefore continues from its last checkpoint and ends with the same weights as an uninterrupted
run.

Distributed: under ``torchrun`` the per-step loss module is wrapped in DistributedDataParallel
(gloo on CPU, NCCL on GPU, ``find_unused_parameters`` since a subnet leaves weights unused). All
ranks derive the same archs and resolution from the step; each rank reads its own shard of every
batch. Rank 0 alone writes checkpoints and logs.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from ..errors import OFAEdgeError
from ..fileio import atomic_write_bytes, atomic_write_text, safetensors_metadata
from ..nn.bn_calibration import recalibrate_bn
from ..nn.checkpoint import (
    build_supernet,
    load_supernet,
    read_metadata,
    save_supernet,
    space_mismatch,
    state_fingerprint,
)
from ..space.space import corner_archs
from .data import BatchLoader, ImageDataset, Normalization, split_train_val
from .elastic import AnyArch, AnySpace, Supernet
from .evaluate import EvalData, evaluate_arch
from .schedule import FORMER_PRESETS, INIT_FROM_TEACHER, Phase, Schedule

# A format-1 checkpoint's schedule fingerprint covers fewer fields than a schedule has now, so it
# cannot be checked against one: such a run folder is refused, naming where its schedule went.
TRAIN_FORMAT = "ofa-edge-train/2"
FORMER_TRAIN_FORMAT = "ofa-edge-train/1"


def soft_cross_entropy(logits: torch.Tensor, soft_targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a distribution (the teacher's softmax), averaged over the batch."""
    return -(soft_targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def distillation_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    soft_targets: torch.Tensor | None,
    label_smoothing: float,
    kd_ratio: float,
) -> torch.Tensor:
    """Label-smoothed CE, plus ``kd_ratio`` x CE against the teacher's soft labels when given."""
    loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    if soft_targets is not None:
        loss = loss + kd_ratio * soft_cross_entropy(logits, soft_targets)
    return loss


class SubnetsLoss(nn.Module):
    """The summed loss of several subnets on one batch, in one forward call (so DDP sees one)."""

    def __init__(self, net: Supernet, label_smoothing: float, kd_ratio: float) -> None:
        super().__init__()
        self.net = net
        self.label_smoothing = label_smoothing
        self.kd_ratio = kd_ratio

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor, soft_targets: torch.Tensor | None, archs: list[AnyArch]
    ) -> torch.Tensor:
        total = images.new_zeros(())
        for arch in archs:
            self.net.set_active(arch)
            total = total + distillation_loss(
                self.net(images), labels, soft_targets, self.label_smoothing, self.kd_ratio
            )
        return total


def learning_rate(phase: Phase, step_in_phase: int, steps_per_epoch: int) -> float:
    total = max(1, phase.epochs * steps_per_epoch)
    warmup = int(phase.warmup_epochs * steps_per_epoch)
    if step_in_phase < warmup:
        return phase.lr * (step_in_phase + 1) / warmup
    progress = (step_in_phase - warmup) / max(1, total - warmup)
    return 0.5 * phase.lr * (1 + math.cos(math.pi * progress))


def make_optimizer(net: nn.Module, schedule: Schedule) -> torch.optim.SGD:
    """SGD with Nesterov momentum; no weight decay on BatchNorm parameters and biases."""
    decay, no_decay = [], []
    for name, param in net.named_parameters():
        (no_decay if name.endswith("bias") or ".bn." in name else decay).append(param)
    return torch.optim.SGD(
        [{"params": decay, "weight_decay": schedule.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=0.0,
        momentum=schedule.momentum,
        nesterov=True,
    )


@dataclass
class Position:
    """Where training stands: the next batch to run."""

    phase: int = 0
    epoch: int = 0
    batch: int = 0
    step: int = 0  # global optimizer steps done

    def to_dict(self) -> dict[str, int]:
        return {"phase": self.phase, "epoch": self.epoch, "batch": self.batch, "step": self.step}


@dataclass
class TrainData:
    train: ImageDataset
    val: ImageDataset
    normalization: Normalization
    flip: bool = True

    @classmethod
    def from_dataset(cls, dataset: ImageDataset, schedule: Schedule, seed: int, flip: bool) -> TrainData:
        train, val = split_train_val(dataset, min(schedule.val_images, len(dataset) // 5), seed=seed)
        if schedule.images_per_epoch is not None:
            train = train.subset(torch.arange(min(schedule.images_per_epoch, len(train))))
        return cls(train, val, Normalization.of(train), flip)


@dataclass
class TrainConfig:
    space: AnySpace
    schedule: Schedule
    out: Path
    data_name: str
    seed: int = 0
    # Where the data was read (an image folder, or the IDX files' --data-dir), as an absolute path,
    # so that commands scoring the weights later find it from any folder. Not part of the run's
    # identity (a copied run folder resumes where the data lives elsewhere). Where the weights
    # start and who teaches are the schedule's (init_from, teacher).
    data_location: str | None = None
    checkpoint_every: int = 50  # steps
    channels_last: bool = True
    # "cpu", "cuda" (or "cuda:N"), or "auto": CUDA when present. Not part of the run's identity: a
    # run started on a GPU resumes on a CPU and back (the numbers differ, the schedule does not).
    device: str = "cpu"
    # Mixed precision of the forward passes: "off" or "bf16" (autocast; weights, gradients and the
    # optimizer stay fp32, so no loss scaling is needed).
    autocast: str = "off"
    validate_every_epoch: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


class Trainer:
    def __init__(
        self,
        config: TrainConfig,
        data: TrainData,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.config = config
        self.data = data
        self.on_event = on_event or (lambda kind, info: None)
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world_size = dist.get_world_size() if self.distributed else 1
        self.out = config.out
        self.checkpoint_path = self.out / "checkpoint.safetensors"
        self.teacher_path = self.out / "teacher.safetensors"
        self.device = resolve_device(config.device)
        if config.autocast not in AUTOCAST_MODES:
            raise OFAEdgeError(f"autocast must be one of {', '.join(AUTOCAST_MODES)}, got '{config.autocast}'")
        config.schedule.check_space(config.space)
        torch.manual_seed(config.seed)  # the initial weights, too, follow from the seed
        self.net = build_supernet(config.space).to(self.device)
        if config.channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.position = Position()
        self.loader = BatchLoader(
            data.train,
            config.schedule.batch_size // self.world_size,
            config.space.resolutions,
            data.normalization,
            flip=data.flip,
            seed=config.seed,
            rank=self.rank,
            world_size=self.world_size,
            channels_last=config.channels_last,
            device=self.device,
        )
        if self.loader.batches_per_epoch() < 1:
            raise OFAEdgeError(
                f"{len(data.train)} training images make no batch of {config.schedule.batch_size}; "
                "use more data or a smaller batch"
            )
        num_classes = len(data.train.classes)
        if num_classes > config.space.num_classes:  # a label past the classifier's outputs fails mid-step
            raise OFAEdgeError(
                f"{data.train.name} has {num_classes} classes but space {config.space.name} has "
                f"{config.space.num_classes} outputs; build the space with .with_classes({num_classes})"
            )
        schedule = config.schedule
        self.epoch_eval = EvalData(
            calibration=data.train.subset(torch.arange(min(schedule.epoch_calibration_images, len(data.train)))),
            scored=data.val.subset(torch.arange(min(schedule.epoch_val_images, len(data.val)))),
            normalization=data.normalization,
            channels_last=config.channels_last,
            device=self.device,
        )
        # Read the init and teacher files now, so that a bad one fails before anything is written.
        self._set_up_init(schedule.init_from)
        self._set_up_teacher(schedule)
        self.checkpoint = self._read_checkpoint()
        if self.checkpoint is not None:  # where a resume will start, for progress bars and ETAs
            self.position = Position(**json.loads(self.checkpoint[1]["position"]))

    def _set_up_init(self, init_from: str | None) -> None:
        self.init_state: dict[str, torch.Tensor] | None = None
        self.init_fingerprint = ""
        self.init_schedule = ""
        self.init_new_classifier = False
        if init_from is not None:
            self.init_state, self.init_new_classifier = self._initial_weights(init_from)
            self.init_fingerprint = state_fingerprint(self.init_state)
            self.init_schedule = read_metadata(init_from).get("schedule", "unknown")

    def _set_up_teacher(self, schedule: Schedule) -> None:
        """The teacher the schedule names (None: the run's own full net, saved after its phase).
        Which weights teach, and how, go into ``teacher_fingerprint``: part of the run's identity
        and of the final weights' metadata."""
        self.teacher: Supernet | None = None
        self.teacher_fingerprint = ""
        self.teacher_resolution: int | None = None  # a teacher of one resolution sees its own
        # Teachers of their own resolution, which take precedence over ``teacher`` there.
        self.teachers_by_resolution: dict[int, Supernet] = {}
        if schedule.teacher == INIT_FROM_TEACHER:
            self.teachers_by_resolution = self._init_teachers()
            self.teacher = self.teachers_by_resolution[max(self.teachers_by_resolution)]
            self.teacher_fingerprint = f"init-recalibrated:{self.init_fingerprint}"
        elif schedule.teacher is not None:
            self.teacher = self._external_teacher(schedule.teacher)
            self.teacher_fingerprint = state_fingerprint(self.teacher.state_dict())
            if len(self.teacher.space.resolutions) == 1:
                self.teacher_resolution = self.teacher.space.resolutions[0]
            if schedule.teacher_other_resolutions == INIT_FROM_TEACHER:
                if self.teacher_resolution is None:
                    raise OFAEdgeError(
                        f"teacher {schedule.teacher} was trained at several resolutions; "
                        "teacher_other_resolutions: init_from is for a teacher of one resolution"
                    )
                self.teachers_by_resolution = self._init_teachers(skip=self.teacher_resolution)
                self.teacher_fingerprint += "+init-recalibrated"

    def _external_teacher(self, path: str) -> Supernet:
        """The schedule's teacher file, set to its largest subnet, in eval mode on this run's device."""
        teacher = load_supernet(path)
        ours = self.config.space
        for label, theirs, mine in (("classes", teacher.space.num_classes, ours.num_classes),
                                    ("input channels", teacher.space.in_channels, ours.in_channels)):  # fmt: skip
            if theirs != mine:
                raise OFAEdgeError(f"teacher {path} has {theirs} {label}, this run's network {mine}")
        return self._as_teacher(teacher, teacher.space.max_arch())

    def _as_teacher(self, net: Supernet, arch: AnyArch) -> Supernet:
        """``net`` set to ``arch``, on this run's device and memory format, in eval mode."""
        net.to(self.device)
        if self.config.channels_last:
            net.to(memory_format=torch.channels_last)
        net.set_active(arch)
        return net.eval()

    def _init_teachers(self, skip: int | None = None) -> dict[int, Supernet]:
        """The largest subnet of the init_from weights, frozen, with its BatchNorm statistics
        recalibrated at each resolution but ``skip`` (that of a one-resolution teacher file): the
        teachers there. (The statistics stored in a supernet are those of whichever subnets trained
        last; used as they are, they made 20-px soft labels that cost the 20-px subnets 10-15
        points of top-1.)"""
        assert self.init_state is not None, "the schedule checks that init_from is set"
        calibration = self.epoch_eval
        teachers = {}
        for r in self.config.space.resolutions:
            if r == skip:
                continue
            teacher = build_supernet(self.config.space)
            teacher.load_state_dict(self.init_state)
            teacher = self._as_teacher(teacher, self.config.space.max_arch(r))
            batches = calibration.loader(calibration.calibration).epoch(0, resolution=r)
            recalibrate_bn(teacher, batches, max_images=len(calibration.calibration))
            teachers[r] = teacher.eval()
        return teachers

    def _initial_weights(self, path: str) -> tuple[dict[str, torch.Tensor], bool]:
        """The init_from weights for this run's space, and whether the classifier was left new.

        A supernet trained for other classes (an official ImageNet one, say) gives every weight
        but the classifier's, whose outputs stand for the classes it was trained on; the
        classifier keeps this run's seeded random init."""
        source = load_supernet(path)
        differences = source.space.differences(self.config.space)
        if not differences:
            return source.state_dict(), False
        if differences != ["num_classes"]:
            raise space_mismatch(path, source.space, self.config.space, differences)
        state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        state.update({k: v for k, v in source.state_dict().items() if not k.startswith("classifier.")})
        return state, True

    # ------------------------------------------------------------ checkpoints
    def _identity(self) -> dict[str, str]:
        return {
            "space": json.dumps(self.config.space.config_dict()),
            "schedule": self.config.schedule.name,
            "schedule_fingerprint": self.config.schedule.fingerprint(),
            "seed": str(self.config.seed),
            "data": self.config.data_name,
            "init": self.init_fingerprint,
            "teacher": self.teacher_fingerprint,
        }

    def save_checkpoint(self, optimizer: torch.optim.Optimizer) -> None:
        if self.rank != 0:
            return
        tensors = {f"model/{k}": v.detach().cpu().contiguous().clone() for k, v in self.net.state_dict().items()}
        names = {id(p): n for n, p in self.net.named_parameters()}
        for group in optimizer.param_groups:
            for param in group["params"]:
                buffer = optimizer.state.get(param, {}).get("momentum_buffer")
                if buffer is not None:
                    tensors[f"optim/{names[id(param)]}"] = buffer.detach().cpu().contiguous().clone()
        tensors["rng/torch"] = torch.get_rng_state()
        metadata = {
            "format": TRAIN_FORMAT,
            "position": json.dumps(self.position.to_dict()),
            **self._identity(),
            "schedule_record": json.dumps(self.config.schedule.to_dict()),
            "saved_on": self.device_description(),
            "saved_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        }
        atomic_write_bytes(self.checkpoint_path, save_safetensors_bytes(tensors, metadata=metadata))

    def device_description(self) -> str:
        """The machine this run trains on: the GPU's name, or the host CPU's identity."""
        if self.device.type == "cuda":
            return f"{torch.cuda.get_device_name(self.device)} (CUDA)"
        from ..host import cpu_identity

        return cpu_identity()

    def resume_point(self) -> dict[str, Any] | None:
        """Where a resume starts and what it continues (None for a new run): the checkpoint file,
        its position and phase name, and the machine and time it was saved on."""
        if self.checkpoint is None:
            return None
        metadata = self.checkpoint[1]
        position = Position(**json.loads(metadata["position"]))
        phases = self.config.schedule.phases
        return {
            **position.to_dict(),
            "phase_name": phases[position.phase].name if position.phase < len(phases) else "done",
            "checkpoint": str(self.checkpoint_path),
            "saved_on": metadata.get("saved_on", "unknown"),
            "saved_at": metadata.get("saved_at", "unknown"),
        }

    def _read_checkpoint(self) -> tuple[dict[str, torch.Tensor], dict[str, str]] | None:
        """The run folder's checkpoint, checked against this run (None: a new run). Read when the
        trainer is built, so a refusal comes before anything is drawn or written."""
        if not self.checkpoint_path.exists():
            return None
        data = self.checkpoint_path.read_bytes()
        try:
            tensors = load_safetensors_bytes(data)
            metadata = safetensors_metadata(data)
        except (SafetensorError, ValueError, json.JSONDecodeError):
            raise OFAEdgeError(f"{self.checkpoint_path} is damaged; move it away to start over") from None
        if metadata.get("format") == FORMER_TRAIN_FORMAT:
            raise OFAEdgeError(self._former_run_message(metadata.get("schedule", "?")))
        if metadata.get("format") != TRAIN_FORMAT:
            raise OFAEdgeError(f"{self.checkpoint_path} is not an ofa-edge training checkpoint")
        mismatch = self._identity_mismatch(metadata)
        if mismatch:
            raise OFAEdgeError(f"{self.out} holds a run with a different {mismatch}; "
                               "resume with the same command or choose another --out")  # fmt: skip
        return tensors, metadata

    def _former_run_message(self, schedule: str) -> str:
        where = FORMER_PRESETS.get(schedule)
        now = f", now {where}" if where else ""
        return (f"{self.out} holds a run of an earlier ofa-edge (schedule {schedule}{now}) whose checkpoint "
                "cannot resume under today's schedules: start a new --out folder")  # fmt: skip

    def _identity_mismatch(self, metadata: dict[str, str]) -> str:
        """What differs between the checkpoint's run and this one, in words ('' if nothing)."""
        mine = self._identity()
        labels = {"space": "space", "schedule_fingerprint": "schedule", "seed": "seed", "data": "data",
                  "init": "init_from weights", "teacher": "teacher weights"}  # fmt: skip
        for key, label in labels.items():
            if metadata.get(key, "") == mine[key]:
                continue
            if key == "space":
                theirs, ours = json.loads(metadata.get("space", "{}")).get("name", "?"), self.config.space.name
            elif key == "schedule_fingerprint":
                theirs, ours = metadata.get("schedule"), self.config.schedule.name
                mine_record = json.loads(json.dumps(self.config.schedule.to_dict()))  # tuples as JSON lists
                fields = schedule_differences(json.loads(metadata.get("schedule_record", "{}")), mine_record)
                ours += f"; differs in {', '.join(fields)}" if fields else ""
            else:
                theirs, ours = metadata.get(key), mine[key]
            return f"{label} ({theirs or 'none'}, now {ours or 'none'})"
        return ""

    def try_resume(self) -> tuple[dict[str, torch.Tensor], bool]:
        """Continue from the run's checkpoint if there is one; returns momentum buffers to restore."""
        if self.checkpoint is None:
            return {}, False
        tensors, metadata = self.checkpoint
        self.checkpoint = None  # applied once; later checkpoints are this run's own
        self.net.load_state_dict({k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")})
        torch.set_rng_state(tensors["rng/torch"])
        self.position = Position(**json.loads(metadata["position"]))
        if self.position.phase > 0 and self.config.schedule.teacher is None:
            self._load_teacher()
        buffers = {k[len("optim/") :]: v for k, v in tensors.items() if k.startswith("optim/")}
        return buffers, True

    def _load_teacher(self) -> None:
        if self.teacher_path.exists():
            teacher = load_supernet(self.teacher_path, space=self.config.space)
            self.teacher = self._as_teacher(teacher, self.config.space.max_arch())

    # --------------------------------------------------------------- training
    def run(self) -> dict[str, Any]:
        self.out.mkdir(parents=True, exist_ok=True)
        point = self.resume_point()
        momentum, resumed = self.try_resume()
        if resumed:
            self.on_event("resumed", point)
        else:
            if self.init_state is not None:
                self.net.load_state_dict(self.init_state)
            if self.rank == 0:
                atomic_write_text(self.out / "config.json", json.dumps(self._config_record(), indent=2) + "\n")
        schedule = self.config.schedule
        while self.position.phase < len(schedule.phases):
            phase = schedule.phases[self.position.phase]
            self._run_phase(phase, momentum)
            momentum = {}
            self._sync_buffers()
            own_teacher = phase.full_net and schedule.teacher is None
            if own_teacher and self.rank == 0:
                save_supernet(self.net, self.teacher_path)
            if self.distributed:
                dist.barrier()
            if own_teacher:
                self._load_teacher()
            if self.rank == 0:
                save_supernet(self.net, self.out / f"phase-{phase.name}.safetensors", extra=self._weights_metadata())
            self.position = Position(self.position.phase + 1, 0, 0, self.position.step)
            self.save_checkpoint(make_optimizer(self.net, schedule))
        if self.rank == 0:
            save_supernet(self.net, self.out / "supernet.safetensors", extra=self._weights_metadata())
        return {"out": str(self.out), "steps": self.position.step, "resumed": resumed}

    def _sync_buffers(self) -> None:
        """Give every rank rank 0's BatchNorm statistics. DDP broadcasts them at the start of each
        forward, so after a rank's last step they differ by that step's local-batch update."""
        if self.distributed:
            for buffer in self.net.buffers():
                dist.broadcast(buffer, src=0)

    def _run_phase(self, phase: Phase, momentum: dict[str, torch.Tensor]) -> None:
        schedule = self.config.schedule
        if phase.sort_channels and self.position.epoch == 0 and self.position.batch == 0:
            self.net.sort_channels(phase.trained_expands)
        optimizer = make_optimizer(self.net, schedule)
        if momentum:
            for name, param in self.net.named_parameters():
                if name in momentum:
                    optimizer.state[param]["momentum_buffer"] = momentum[name].to(param.device, param.dtype).clone()
        step_module: nn.Module = SubnetsLoss(self.net, schedule.label_smoothing, schedule.kd_ratio)
        if self.distributed:
            step_module = nn.parallel.DistributedDataParallel(step_module, find_unused_parameters=True)
        steps_per_epoch = self.loader.batches_per_epoch()
        self.net.train()
        while self.position.epoch < phase.epochs:
            epoch = self.position.epoch
            self.on_event("epoch_start", {"phase": phase.name, "epoch": epoch, "epochs": phase.epochs,
                                          "steps": steps_per_epoch, "start": self.position.batch})  # fmt: skip
            losses: list[float] = []
            started = time.perf_counter()
            images_seen = 0
            epoch_key = self._epoch_key()
            for images, labels in self.loader.epoch(epoch_key, start_batch=self.position.batch):
                lr = learning_rate(phase, epoch * steps_per_epoch + self.position.batch, steps_per_epoch)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                loss = self._step(step_module, optimizer, images, labels, phase)
                losses.append(loss)
                images_seen += labels.numel() * self.world_size
                self.position.batch += 1
                self.position.step += 1
                self.on_event("step", {"loss": loss, "lr": lr, "batch": self.position.batch,
                                       "images_per_s": images_seen / (time.perf_counter() - started)})  # fmt: skip
                if self.position.step % self.config.checkpoint_every == 0:
                    self.save_checkpoint(optimizer)
            record = {
                "phase": phase.name,
                "epoch": epoch,
                "step": self.position.step,
                "loss": sum(losses) / max(1, len(losses)),
                "lr": lr if losses else None,
                "images_per_s": images_seen / max(1e-9, time.perf_counter() - started),
            }
            self.position.epoch += 1
            self.position.batch = 0
            if self.config.validate_every_epoch and self.rank == 0:
                record["val_top1"] = self.validate_corners()
            if self.rank == 0:
                with open(self.out / "log.jsonl", "a") as log:
                    log.write(json.dumps(record) + "\n")
            self.on_event("epoch_end", record)
            self.save_checkpoint(optimizer)

    def _epoch_key(self) -> int:
        """A distinct data-order key for every (phase, epoch) of the run."""
        return self.position.phase * 10_000 + self.position.epoch

    def _step(
        self,
        step_module: nn.Module,
        optimizer: torch.optim.Optimizer,
        images: torch.Tensor,
        labels: torch.Tensor,
        phase: Phase,
    ) -> float:
        step = self.position.step
        # Dropout follows from the step and rank; the archs from the step alone.
        torch.manual_seed(self.config.seed * 1_000_003 + step * 97 + self.rank)
        archs = self.archs_for_step(phase, step, resolution=images.shape[-1])
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.autocast == "bf16"):
            soft = self.soft_targets(phase, images)
            loss = step_module(images, labels, soft, archs)
        loss.backward()
        optimizer.step()
        return loss.item()

    def archs_for_step(self, phase: Phase, step: int, resolution: int) -> list[AnyArch]:
        """The subnets trained at ``step``: a function of the seed and the step only, so every
        DDP rank trains the same ones, and a resumed run the ones an uninterrupted run would."""
        return phase.step_archs(self.config.space, random.Random(f"{self.config.seed}-{step}"), resolution=resolution)

    def soft_targets(self, phase: Phase, images: torch.Tensor) -> torch.Tensor | None:
        """The teacher's (full net's) softmax on ``images``, which the subnets distil from after
        the full-net phase; None during it."""
        if phase.full_net:
            return None
        if self.teacher is None:
            raise OFAEdgeError("this phase distils from the full net, but no teacher was saved in the run folder")
        teacher = self.teachers_by_resolution.get(images.shape[-1], self.teacher)
        if teacher is self.teacher and self.teacher_resolution not in (None, images.shape[-1]):
            # A teacher trained at one resolution is weak at others: it sees the batch at its own.
            size = (self.teacher_resolution, self.teacher_resolution)
            images = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        with torch.no_grad():
            return F.softmax(teacher(images), dim=1)

    def validate_corners(self, resolution: int | None = None) -> dict[str, float]:
        r = resolution or max(self.config.space.resolutions)
        return {
            name: round(evaluate_arch(self.net, arch, self.epoch_eval), 2)
            for name, arch in corner_archs(self.config.space, r).items()
        }

    def _weights_metadata(self) -> dict[str, str]:
        """What evaluating these weights later needs: the input normalization, and provenance."""
        norm = self.data.normalization
        # A run started from other weights names both schedules: "fmnist+my-schedule".
        schedule = self.config.schedule.name
        if self.config.schedule.init_from is not None:
            schedule = f"{self.init_schedule}+{schedule}"
        return {
            "schedule": schedule,
            "data": self.config.data_name,
            **({"data_location": self.config.data_location} if self.config.data_location else {}),
            "normalization": json.dumps({"mean": list(norm.mean), "std": list(norm.std)}),
            "split": json.dumps({"seed": self.config.seed, "val_images": len(self.data.val)}),
            **({"teacher": self.teacher_fingerprint} if self.teacher_fingerprint else {}),
        }

    def _config_record(self) -> dict[str, Any]:
        init = None
        if self.config.schedule.init_from is not None:
            init = {"path": self.config.schedule.init_from, "schedule": self.init_schedule,
                    "fingerprint": self.init_fingerprint, "new_classifier": self.init_new_classifier}  # fmt: skip
        teacher = None
        if self.config.schedule.teacher is not None:
            teacher = {"path": self.config.schedule.teacher, "fingerprint": self.teacher_fingerprint,
                       "other_resolutions": self.config.schedule.teacher_other_resolutions}  # fmt: skip
        return {
            "space": self.config.space.config_dict(),
            "schedule": self.config.schedule.to_dict(),
            "seed": self.config.seed,
            "data": self.config.data_name,
            "init_from": init,
            "teacher_from": teacher,
            "train_images": len(self.data.train),
            "val_images": len(self.data.val),
            "world_size": self.world_size,
            **self.config.extra,
        }


def schedule_differences(theirs: dict[str, Any], mine: dict[str, Any]) -> list[str]:
    """The fields two schedule records differ in: top-level names, and ``phase 'NAME'.FIELD``
    when both have the same phases by name."""
    differ = [key for key in sorted(set(theirs) | set(mine)) if key != "phases" and theirs.get(key) != mine.get(key)]
    their_phases, my_phases = theirs.get("phases", []), mine.get("phases", [])
    if [p.get("name") for p in their_phases] != [p.get("name") for p in my_phases]:
        return [*differ, "phases"]
    for a, b in zip(their_phases, my_phases, strict=True):
        differ += [f"phase '{b['name']}'.{key}" for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]
    return differ


def final_report(
    net: Supernet, calibration: ImageDataset, test: ImageDataset, normalization: Normalization
) -> dict[str, dict[str, float]]:
    """Test top-1 of the 8 corner subnets at the largest and the smallest resolution."""
    data = EvalData(calibration=calibration, scored=test, normalization=normalization)
    report = {}
    space = net.space
    for r in sorted({max(space.resolutions), min(space.resolutions)}, reverse=True):
        report[str(r)] = {
            name: round(evaluate_arch(net, arch, data), 2) for name, arch in corner_archs(space, r).items()
        }
    return report


AUTOCAST_MODES = ("off", "bf16")


def resolve_device(name: str) -> torch.device:
    """The training device for ``name`` ("cpu", "cuda", "cuda:N" or "auto"); a CUDA device that is
    not there is one clear error. Under torchrun each rank takes the GPU of its LOCAL_RANK."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise OFAEdgeError(f"unknown device '{name}' (use cpu, cuda, cuda:N or auto)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise OFAEdgeError(f"device '{name}' asked for, but this torch sees no CUDA GPU (use --device cpu or auto)")
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise OFAEdgeError(f"unsupported device '{name}' (use cpu, cuda, cuda:N or auto)")
    return device


def init_distributed() -> bool:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return True
