"""From a supernet to the static subnet that ships: BatchNorm recalibration, extraction, optional
fine-tuning with distillation from the largest subnet, and batched PyTorch inference."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..nn.bn_calibration import recalibrate_bn
from ..nn.resnet import OFAResNet
from ..nn.supernet import OFAMobileNetV3
from ..train.data import BatchLoader, ImageDataset, Normalization
from ..train.evaluate import EvalData
from .arch_input import ExportArch

# The supernets of every family share what extraction uses: set_active, get_subnet, space.max_arch.
Supernet = OFAMobileNetV3 | OFAResNet


def extract_subnet(net: Supernet, arch: ExportArch, data: EvalData) -> nn.Module:
    """``arch`` as a static eval-mode module, its BatchNorm recalibrated on ``data.calibration``
    (the supernet's shared statistics fit no particular subnet)."""
    arch = net.set_active(arch)
    batches = data.loader(data.calibration).epoch(0, resolution=arch.r)
    recalibrate_bn(net, batches, max_images=len(data.calibration))
    return net.get_subnet(arch).eval().to(memory_format=torch.contiguous_format)


@dataclass
class FinetuneReport:
    epochs: int
    images_per_epoch: int
    steps: int
    lr: float
    kd_ratio: float
    teacher: dict[str, Any]
    final_loss: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def finetune_distill(
    net: Supernet,
    arch: ExportArch,
    data: EvalData,
    train_part: ImageDataset,
    epochs: int,
    lr: float = 0.01,
    batch_size: int = 128,
    images: int | None = None,
    kd_ratio: float = 1.0,
    label_smoothing: float = 0.1,
    flip: bool = True,
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[nn.Module, FinetuneReport]:
    """Extract ``arch`` and fine-tune it alone for ``epochs`` on the training part, distilling from
    the supernet's largest subnet at the same resolution (its soft labels, plus label-smoothed
    cross-entropy), SGD with Nesterov momentum and a cosine learning rate; then recalibrate its
    BatchNorm as extraction does. ``images`` limits the training images per epoch.

    ``progress(step, steps, loss)`` is called after each step.
    """
    from ..train.trainer import distillation_loss

    started = time.perf_counter()
    teacher_arch = net.space.max_arch(arch.r)
    teacher = extract_subnet(net, teacher_arch, data)
    student = extract_subnet(net, arch, data).to(memory_format=torch.channels_last)
    part = train_part if images is None else train_part.subset(torch.arange(min(images, len(train_part))))
    loader = BatchLoader(part, batch_size, (arch.r,), data.normalization, train=True, flip=flip, seed=seed,
                         drop_last=len(part) >= batch_size, channels_last=True)  # fmt: skip
    steps_per_epoch = max(loader.batches_per_epoch(), 1)
    total = steps_per_epoch * epochs
    decay, no_decay = [], []
    for name, param in student.named_parameters():
        (no_decay if name.endswith("bias") or ".bn." in name else decay).append(param)
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": 3e-5}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        momentum=0.9,
        nesterov=True,
    )
    step, loss_value = 0, math.nan
    student.train()
    for epoch in range(epochs):
        for images_batch, labels in loader.epoch(epoch):
            for group in optimizer.param_groups:
                group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * step / total))
            with torch.no_grad():
                soft = F.softmax(teacher(images_batch), dim=1)
            loss = distillation_loss(student(images_batch), labels, soft, label_smoothing, kd_ratio)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            loss_value = float(loss.detach())
            if progress is not None:
                progress(step, total, loss_value)
    student.eval()
    batches = data.loader(data.calibration).epoch(0, resolution=arch.r)
    recalibrate_bn(student, batches, max_images=len(data.calibration))
    report = FinetuneReport(
        epochs, len(part), step, lr, kd_ratio, teacher_arch.to_dict(), loss_value, time.perf_counter() - started
    )
    return student.to(memory_format=torch.contiguous_format).eval(), report


def eval_arrays(dataset: ImageDataset, normalization: Normalization, resolution: int,
                batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Images of ``dataset`` normalised as at evaluation, at ``resolution``: (N, C, r, r) float32
    and labels (N,)."""
    loader = BatchLoader(dataset, batch_size, (resolution,), normalization, train=False, drop_last=False)
    images, labels = [], []
    for x, y in loader.epoch(0, resolution=resolution):
        images.append(x.contiguous().numpy())
        labels.append(y.numpy())
    return np.concatenate(images).astype(np.float32), np.concatenate(labels)


@torch.no_grad()
def torch_logits(module: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    module.eval()
    out = [module(torch.from_numpy(images[i : i + batch_size])).numpy() for i in range(0, len(images), batch_size)]
    return np.concatenate(out).astype(np.float32)
