"""Accuracy of subnets: BatchNorm recalibration on a fixed set of training images, then top-1.

The recalibration images are a fixed subset of the training split, without augmentation, at the
subnet's resolution, so the same subnet always gets the same statistics (the accuracy spread
between subnets is small on easy data; a noisy protocol would drown it).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from .arch import Arch
from .bn_calibration import recalibrate_bn
from .data import BatchLoader, ImageDataset, Normalization
from .space import SearchSpace
from .supernet import OFAMobileNetV3


@dataclass
class EvalData:
    """The images an evaluation uses: a calibration subset of train, and the split to score."""

    calibration: ImageDataset
    scored: ImageDataset
    normalization: Normalization
    batch_size: int = 256
    channels_last: bool = True

    def loader(self, dataset: ImageDataset) -> BatchLoader:
        return BatchLoader(
            dataset,
            self.batch_size,
            (max(dataset.images.shape[-2:]),),
            self.normalization,
            train=False,
            drop_last=False,
            channels_last=self.channels_last,
        )


@torch.no_grad()
def top1(model: nn.Module, loader: BatchLoader, resolution: int) -> float:
    model.eval()
    correct = total = 0
    for images, labels in loader.epoch(0, resolution=resolution):
        correct += (model(images).argmax(dim=1) == labels).sum().item()
        total += labels.numel()
    return 100.0 * correct / total


def evaluate_arch(net: OFAMobileNetV3, arch: Arch, data: EvalData, in_place: bool = False) -> float:
    """Top-1 (%) of ``arch`` after BN recalibration. Works on a copy unless ``in_place``."""
    model = net if in_place else copy.deepcopy(net)
    arch = model.space.validate(arch)
    model.set_active(arch)
    calibration = data.loader(data.calibration).epoch(0, resolution=arch.r)
    recalibrate_bn(model, calibration, max_images=len(data.calibration))
    return top1(model, data.loader(data.scored), arch.r)


def corner_archs(space: SearchSpace, resolution: int) -> dict[str, Arch]:
    """The 8 corners of the space (min/max depth x expand x kernel) at one resolution."""
    corners = {}
    for d in (min(space.depth_choices), max(space.depth_choices)):
        for e in (min(space.expand_choices), max(space.expand_choices)):
            for k in (min(space.kernel_choices), max(space.kernel_choices)):
                corners[f"d{d}-e{e}-k{k}"] = Arch(
                    ks=(k,) * space.num_slots, e=(e,) * space.num_slots, d=(d,) * space.num_stages, r=resolution
                )
    return corners
