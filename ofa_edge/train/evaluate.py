"""Accuracy of subnets: BatchNorm recalibration on a fixed set of training images, then top-1.

The recalibration images are a fixed subset of the training split, without augmentation, at the
subnet's resolution, so the same subnet always gets the same statistics (the accuracy spread
between subnets is small on easy data; a noisy protocol would drown it).
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import OFAEdgeError
from ..nn.bn_calibration import recalibrate_bn
from ..nn.checkpoint import load_supernet, read_metadata
from ..space.space import corner_archs
from .data import NAMED_DATA, BatchLoader, ImageDataset, Normalization, ReadProgress, load_dataset, split_train_val
from .elastic import AnyArch, AnySpace, Supernet

SCORING_ENGINES = ("torch", "onnxruntime")


@dataclass
class EvalData:
    """The images an evaluation uses: a calibration subset of train, and the split to score."""

    calibration: ImageDataset
    scored: ImageDataset
    normalization: Normalization
    batch_size: int = 256
    channels_last: bool = True
    device: torch.device | str = "cpu"  # where the batches go: the model's device

    def loader(self, dataset: ImageDataset) -> BatchLoader:
        return BatchLoader(
            dataset,
            self.batch_size,
            (max(dataset.images.shape[-2:]),),
            self.normalization,
            train=False,
            drop_last=False,
            channels_last=self.channels_last,
            device=self.device,
        )


@torch.no_grad()
def top1(model: nn.Module, loader: BatchLoader, resolution: int) -> float:
    model.eval()
    correct = total = 0
    for images, labels in loader.epoch(0, resolution=resolution):
        correct += (model(images).argmax(dim=1) == labels).sum().item()
        total += labels.numel()
    return 100.0 * correct / total


def evaluate_arch(net: Supernet, arch: AnyArch, data: EvalData, in_place: bool = False) -> float:
    """Top-1 (%) of ``arch`` after BN recalibration. Works on a copy unless ``in_place``."""
    model = net if in_place else copy.deepcopy(net)
    arch = model.space.validate(arch)
    model.set_active(arch)
    calibration = data.loader(data.calibration).epoch(0, resolution=arch.r)
    recalibrate_bn(model, calibration, max_images=len(data.calibration))
    return top1(model, data.loader(data.scored), arch.r)


# The input normalization of the official OFA supernets (ImageNet's channel means and deviations).
OFFICIAL_NORMALIZATION = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def stored_normalization(path: str | os.PathLike[str]) -> Normalization | None:
    """The input normalization a supernet was trained with: its record, ImageNet's for an official
    OFA checkpoint (which records nothing), None for an ofa-edge file that does not say."""
    metadata = read_metadata(path)
    if not metadata.get("format"):
        return OFFICIAL_NORMALIZATION
    stored = metadata.get("normalization")
    if not stored:
        return None
    values = json.loads(stored)
    return Normalization(tuple(values["mean"]), tuple(values["std"]))


def trained_data(supernet: str | os.PathLike[str]) -> tuple[str, Path | None]:
    """The data set ``supernet`` was trained on and where it was read (fashion-mnist from its
    default place when the file does not say): what to score it on unless told otherwise. A
    folder is found where training read it (an absolute path), else as it was named (the run and
    its data copied elsewhere together); neither is one line asking for ``--data``."""
    metadata = read_metadata(supernet)
    if not metadata.get("format"):  # an official OFA checkpoint: trained on ImageNet, which only the user has
        raise OFAEdgeError(
            f"{supernet} is an official OFA supernet, trained on ImageNet: pass --data DIR, an ImageNet-style "
            "folder (DIR/train/CLASS/*.jpg recalibrates BatchNorm and calibrates int8, DIR/val/CLASS/*.jpg "
            "verifies and scores the export)"
        )
    data = metadata.get("data") or "fashion-mnist"
    location = Path(metadata["data_location"]) if metadata.get("data_location") else None
    if data in NAMED_DATA:
        return data, location if location is not None and location.is_dir() else None
    if location is not None and location.is_dir():
        return str(location), None
    if Path(data).is_dir():
        return data, None
    raise OFAEdgeError(
        f"{supernet} was trained on the image folder '{location or data}', not found from here: pass --data PATH"
    )


def stored_split(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(seed, val_images) of the train/val split the training run held out; the defaults of
    training when the file does not say."""
    record = json.loads(read_metadata(path).get("split", "{}"))
    return record.get("seed", 0), record.get("val_images", 10_000)


def load_split(
    data: str, split: str, data_dir: Path | None, space: AnySpace, progress: ReadProgress | None = None
) -> ImageDataset:
    """A split of a data set at the space's largest resolution and its number of channels."""
    return load_dataset(data, split, data_dir, max(space.resolutions), space.in_channels, progress)


@dataclass
class SupernetScorer:
    """Scores archs of a saved supernet the way its training run did: the same data (unless
    ``data`` names another), the same train/val split (seed and size stored in the checkpoint),
    the same input normalization, BatchNorm recalibrated
    on a fixed subset of the training part, top-1 on ``val`` (held out of training) or ``test``.

    ``calibration_subset`` picks which block of ``calibration_images`` training images
    recalibrates BatchNorm (0: the first block, as ``eval`` and training use); another block
    measures how much the score depends on that choice. ``engine="onnxruntime"`` scores the
    extracted subnet through ONNX Runtime (about 5x faster than torch's CPU inference here; same
    network, fp32); BatchNorm recalibration always runs in torch.
    """

    net: Supernet
    data: EvalData
    train_part: ImageDataset  # the calibration subsets are blocks of it
    data_name: str
    split: str
    calibration_subset: int = 0
    engine: str = "torch"
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        supernet: str = "demo",
        data: str | None = None,
        data_dir: Path | None = None,
        split: str = "val",
        seed: int | None = None,
        val_images: int | None = None,
        calibration_images: int = 2000,
        calibration_subset: int = 0,
        engine: str = "torch",
        progress: ReadProgress | None = None,
    ) -> SupernetScorer:
        if split not in ("val", "test"):
            raise OFAEdgeError(f"unknown split '{split}' (known: val, test)")
        if engine not in SCORING_ENGINES:
            raise OFAEdgeError(f"unknown scoring engine '{engine}' (known: {', '.join(SCORING_ENGINES)})")
        if calibration_images < 1 or calibration_subset < 0:
            raise OFAEdgeError("calibration needs at least 1 image and a subset index of 0 or more")
        # Channels-last, as in training: the CPU convolutions run about 1.3x faster in it.
        net = load_supernet(supernet).to(memory_format=torch.channels_last)
        if data is None:
            data, stored_dir = trained_data(supernet)
            data_dir = data_dir if data_dir is not None else stored_dir
        dataset = load_split(data, "train", data_dir, net.space, progress)
        if len(dataset.classes) > net.space.num_classes:
            raise OFAEdgeError(
                f"{data} has {len(dataset.classes)} classes but this supernet's classifier has {net.space.num_classes}"
            )
        warnings = []
        trained_on = read_metadata(supernet).get("data")
        # Named data sets' mix-up is worth a warning; folder paths may be spelt many ways.
        if trained_on and trained_on != data and (trained_on in NAMED_DATA or data in NAMED_DATA):
            warnings.append(f"this supernet was trained on {trained_on}, not {data}: its accuracy here means little")
        stored_seed, stored_val_images = stored_split(supernet)
        if val_images is None:
            # Training held out at most a fifth of its data, so on that data this is the stored
            # size; on smaller other data (the demo scored on your folder) it is that data's fifth.
            val_images = min(stored_val_images, len(dataset) // 5)
        train_part, val_part = split_train_val(dataset, val_images, seed=stored_seed if seed is None else seed)
        normalization = stored_normalization(supernet) or Normalization.of(train_part)
        scored = val_part if split == "val" else load_split(data, "test", data_dir, net.space, progress)
        scorer = cls(net, EvalData(train_part, scored, normalization), train_part, data, split, 0, engine, warnings)
        scorer.use_calibration_subset(calibration_subset, calibration_images)
        return scorer

    def use_calibration_subset(self, subset: int, images: int | None = None) -> None:
        """Recalibrate BatchNorm from now on with block ``subset`` of ``images`` training images."""
        images = len(self.data.calibration) if images is None else images
        if subset == 0:  # the usual case: as many as there are, up to ``images`` (tiny data sets have fewer)
            images = min(images, len(self.train_part))
        start = subset * images
        if start + images > len(self.train_part):
            raise OFAEdgeError(
                f"calibration subset {subset} of {images} images lies beyond the {len(self.train_part)} training images"
            )
        self.data.calibration = self.train_part.subset(torch.arange(start, start + images))
        self.calibration_subset = subset

    @property
    def images(self) -> int:
        return len(self.data.scored)

    def score(self, arch: AnyArch) -> float:
        """Top-1 (%) of ``arch`` after BatchNorm recalibration (the supernet's statistics change)."""
        if self.engine == "torch":
            return evaluate_arch(self.net, arch, self.data, in_place=True)
        arch = self.net.space.validate(arch)
        self.net.set_active(arch)
        calibration = self.data.loader(self.data.calibration).epoch(0, resolution=arch.r)
        recalibrate_bn(self.net, calibration, max_images=len(self.data.calibration))
        return _onnxruntime_top1(self.net.get_subnet(arch), self.data, arch.r)

    def score_corners(self) -> dict[str, dict[str, float]]:
        """Top-1 of the 8 corner subnets at the largest and the smallest resolution (as the final
        report of a training run gives them), keyed by resolution then corner name."""
        space = self.net.space
        return {
            str(r): {name: round(self.score(arch), 2) for name, arch in corner_archs(space, r).items()}
            for r in sorted({max(space.resolutions), min(space.resolutions)}, reverse=True)
        }


def _onnxruntime_top1(model: nn.Module, data: EvalData, resolution: int, batch_size: int = 50) -> float:
    import onnxruntime

    from ..convert.onnx import onnx_bytes

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    example = torch.zeros(batch_size, data.scored.channels, resolution, resolution)
    session = onnxruntime.InferenceSession(
        onnx_bytes(model, example, dynamic_batch=True), options, providers=["CPUExecutionProvider"]
    )
    correct = total = 0
    loader = BatchLoader(data.scored, batch_size, (resolution,), data.normalization, train=False, drop_last=False)
    for images, labels in loader.epoch(0, resolution=resolution):
        logits = session.run(None, {"input": images.numpy()})[0]
        correct += int((np.argmax(logits, axis=1) == labels.numpy()).sum())
        total += labels.numel()
    return 100.0 * correct / total
