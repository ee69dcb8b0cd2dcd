"""Image data for training and evaluating supernets: Fashion-MNIST and MNIST from IDX files,
ImageNet-style class folders, a fixed-seed validation split, and batches at a resolution
sampled per batch.

Everything is held in memory as uint8 tensors (Fashion-MNIST's 60k training images take 47 MB),
so a batch costs an index, an augmentation and a resize: no worker processes to manage.
Nothing is downloaded: data comes from Debian's ``dataset-fashion-mnist`` package, from IDX files
the user points to, or from the user's folders.
"""

from __future__ import annotations

import gzip
import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import OFAEdgeError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FASHION_MNIST_CLASSES = (
    "t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
)  # fmt: skip
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
NAMED_DATA = ("fashion-mnist", "mnist")  # read from IDX files; any other --data is a folder
# (images read, images in all, folder): reported when a folder of at least REPORTED_FOLDER_SIZE
# images is read, at each fifth of it (Fashion-MNIST's 60k 28x28 PNGs: 12 s from disk here, 4.4 s
# from the page cache; photos resized down take far longer).
ReadProgress = Callable[[int, int, str], None]
REPORTED_FOLDER_SIZE = 5000


def reading_line(done: int, total: int, folder: str) -> str:
    """A :data:`ReadProgress` report as the line the commands print."""
    return f"reading {folder}: {done}/{total} images"


class DataError(OFAEdgeError):
    """Data that is missing or unreadable, with a line saying how to get it."""


@dataclass(frozen=True)
class ImageDataset:
    """Images as uint8 (N, C, H, W) and labels as int64 (N,)."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    # What the files were before loading made them (size, colour), when that differs; for notes.
    source: str = ""

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DataError(f"{self.name}: images must be uint8 (N, C, H, W), got {self.images.dtype} "
                            f"{tuple(self.images.shape)}")  # fmt: skip
        if self.labels.shape != (self.images.shape[0],):
            raise DataError(f"{self.name}: {self.images.shape[0]} images but {self.labels.shape[0]} labels")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    def subset(self, indices: torch.Tensor, name: str | None = None) -> ImageDataset:
        return ImageDataset(name or self.name, self.images[indices], self.labels[indices], self.classes, self.source)


# ---------------------------------------------------------------------- IDX files
_IDX_DTYPES = {0x08: np.uint8}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): the format of the MNIST and Fashion-MNIST files."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError):
            raise DataError(f"{path} is not a valid gzip file (truncated download?)") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(f"{path} holds {len(raw)} bytes, its header promises {expected} (truncated file?)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find_idx(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz", directory / stem.replace("-idx", ".idx")):
        if candidate.exists():
            return candidate
    return None


def load_idx_dataset(name: str, directory: Path, split: str, classes: Sequence[str]) -> ImageDataset:
    images_stem, labels_stem = IDX_FILES[split]
    images_path, labels_path = _find_idx(directory, images_stem), _find_idx(directory, labels_stem)
    if images_path is None or labels_path is None:
        raise DataError(_missing_message(name, directory))
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise DataError(f"{directory}: images {images.shape} and labels {labels.shape} do not pair up")
    return ImageDataset(
        name=f"{name}/{split}",
        images=torch.from_numpy(images.copy()).unsqueeze(1),
        labels=torch.from_numpy(labels.astype(np.int64)),
        classes=tuple(classes),
    )


def _missing_message(name: str, directory: Path) -> str:
    files = "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-..."
    if name == "fashion-mnist" and directory == FASHION_MNIST_DIR:
        return (f"Fashion-MNIST not found in {directory}: install it with `apt-get install dataset-fashion-mnist`, "
                f"or pass --data-dir DIR holding {files}")  # fmt: skip
    return f"{name} IDX files not found in {directory}: pass --data-dir DIR holding {files}"


# ------------------------------------------------------------------ class folders
def class_folders(root: Path) -> list[str]:
    """The class names of ``root/CLASS/`` folders, sorted (a class's label is its index here).
    Hidden folders (``.ipynb_checkpoints``, ``.git``) are no classes."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def load_image_folder(
    root: Path, size: int, channels: int, classes: Sequence[str] | None = None, progress: ReadProgress | None = None
) -> ImageDataset:
    """ImageNet-style folders (``root/CLASS/*.png``), resized to ``size`` x ``size``, in memory,
    in a fixed shuffled order (the same on every load). ``classes``: the label order to follow
    (the training split's, for a test split that may lack a class); by default the folders'.
    ``progress``: see :data:`ReadProgress`."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError("reading image folders needs Pillow: pip install pillow") from None
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    present = class_folders(root)
    if not present:
        raise DataError(f"{root} has no class subfolders (expected {root}/CLASS_NAME/image.png)")
    if classes is not None and (unknown := [c for c in present if c not in classes]):
        raise DataError(f"{root} has class folders the training split has not: {', '.join(unknown)}")
    classes = list(present if classes is None else classes)
    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise DataError(f"image folders load as 1 or 3 channels, not {channels}")
    files = [
        (label, file)
        for label, cls in enumerate(classes)
        if cls in present  # a class with no test images: its label stays the training split's
        for file in sorted((root / cls).iterdir())
        if file.suffix.lower() in IMAGE_SUFFIXES
    ]
    report = progress if progress is not None and len(files) >= REPORTED_FOLDER_SIZE else None
    step = max(len(files) // 5, 1)
    images, labels, originals = [], [], Counter()
    for index, (label, file) in enumerate(files):
        if report is not None and index % step == 0:
            report(index, len(files), str(root))
        try:
            with Image.open(file) as img:
                originals[(img.size, "RGB" if img.mode in ("RGB", "RGBA", "P", "CMYK") else img.mode)] += 1
                img = img.convert(mode).resize((size, size), Image.BILINEAR)
                array = np.asarray(img, dtype=np.uint8)
        except OSError as exc:
            raise DataError(f"cannot decode image {file}: {exc}") from None
        images.append(array.reshape(size, size, channels).transpose(2, 0, 1))
        labels.append(label)
    if report is not None:
        report(len(files), len(files), str(root))
    if not images:
        raise DataError(f"{root} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    # Read class by class, the images would stay sorted by class. Everything downstream takes the
    # first N images of a split as a sample of it (BatchNorm recalibration, --test-images, int8
    # calibration, images per epoch), as the IDX files' mixed order allows; from a sorted folder
    # those were one class, and the demo supernet scored 75.7% instead of 93.1% on its own test
    # images read from folders (BENCHMARKS.md). A fixed seed keeps the order, and so the stored
    # train/val split, the same on every load.
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    ((width, height), original_mode), _ = originals.most_common(1)[0]
    source = ""
    if (width, height) != (size, size) or (original_mode == "RGB") != (mode == "RGB"):
        source = (
            f"{len(images)} images, most {width}x{height} {original_mode}, read as {size}x{size} "
            f"{'grey' if mode == 'L' else 'RGB'} (the space's largest resolution and channels)"
        )
    return ImageDataset(
        name=f"folder:{root}",
        images=torch.from_numpy(np.stack(images))[order],
        labels=torch.tensor(labels, dtype=torch.int64)[order],
        classes=tuple(classes),
        source=source,
    )


# ------------------------------------------------------------------------ loading
def load_dataset(
    name: str,
    split: str = "train",
    data_dir: Path | None = None,
    size: int = 28,
    channels: int = 1,
    progress: ReadProgress | None = None,
) -> ImageDataset:
    """``fashion-mnist`` or ``mnist`` (IDX files; ``data_dir`` overrides the default location), or
    a folder ``DIR`` holding ``DIR/train/CLASS/*.png`` and ``DIR/test/CLASS/*.png`` (``val/`` is
    accepted for ``test``), loaded at ``size`` x ``size`` with ``channels`` channels. ``progress``:
    reports a large folder's reading (:data:`ReadProgress`)."""
    if split not in IDX_FILES:
        raise DataError(f"unknown split '{split}' (known: train, test)")
    if name not in NAMED_DATA and ("/" in name or Path(name).is_dir()):
        root = Path(name)
        candidates = [root / split] + ([root / "val"] if split == "test" else [])
        folder = next((c for c in candidates if c.is_dir()), None)
        if folder is None:
            raise DataError(f"{root} has no {split}/ folder (expected {root}/{split}/CLASS_NAME/image.png)")
        # Labels are indices into the training split's classes, whichever split is read.
        train_classes = class_folders(root / "train") if split != "train" and (root / "train").is_dir() else None
        return load_image_folder(folder, size, channels, train_classes, progress)
    if name == "fashion-mnist":
        return load_idx_dataset(name, data_dir or FASHION_MNIST_DIR, split, FASHION_MNIST_CLASSES)
    if name == "mnist":
        if data_dir is None:
            raise DataError(
                "MNIST needs --data-dir DIR with its IDX files (`bash scripts/get_mnist.sh` puts them in data/mnist)"
            )
        return load_idx_dataset(name, data_dir, split, tuple(str(d) for d in range(10)))
    raise DataError(f"unknown dataset '{name}' (known: fashion-mnist, mnist; or a folder of class folders)")


def split_train_val(dataset: ImageDataset, val_size: int, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
    """Hold out ``val_size`` images (a fixed seeded permutation) for validation, predictors and search."""
    if not 0 < val_size < len(dataset):
        raise DataError(f"validation size {val_size} must be between 1 and {len(dataset) - 1}")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return (
        dataset.subset(order[val_size:].sort().values, f"{dataset.name}-train"),
        dataset.subset(order[:val_size].sort().values, f"{dataset.name}-val"),
    )


# ------------------------------------------------------------------------ batches
@dataclass(frozen=True)
class Normalization:
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, dataset: ImageDataset) -> Normalization:
        x = dataset.images.float() / 255
        return cls(tuple(x.mean(dim=(0, 2, 3)).tolist()), tuple(x.std(dim=(0, 2, 3)).tolist()))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(1, -1, 1, 1)
        return (x - mean) / std


def augment(images: torch.Tensor, generator: torch.Generator, pad: int = 2, flip: bool = True) -> torch.Tensor:
    """Random crop after zero padding, and horizontal flips, per image (pure torch)."""
    n, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h)).view(n, 1, h, 1)
    cols = (dx.view(n, 1) + torch.arange(w).view(1, w)).view(n, 1, 1, w)
    if flip:
        flipped = torch.rand(n, generator=generator) < 0.5
        cols = torch.where(flipped.view(n, 1, 1, 1), cols.flip(-1), cols)
    batch_index = torch.arange(n).view(n, 1, 1, 1)
    channel_index = torch.arange(images.shape[1]).view(1, -1, 1, 1)
    return padded[batch_index, channel_index, rows, cols]


def resize(images: torch.Tensor, resolution: int) -> torch.Tensor:
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    return F.interpolate(images, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)


class BatchLoader:
    """Shuffled batches with augmentation and a resolution drawn per batch.

    The order, augmentation and resolution of batch ``b`` of epoch ``e`` depend only on
    ``(seed, e, b)``, so every DDP rank draws the same resolution for a step and a resumed run
    sees exactly the batches an uninterrupted run would (``start_batch`` skips ahead).
    """

    def __init__(
        self,
        dataset: ImageDataset,
        batch_size: int,
        resolutions: Sequence[int],
        normalization: Normalization,
        train: bool = True,
        flip: bool = True,
        seed: int = 0,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
        device: torch.device | str = "cpu",
    ) -> None:
        if batch_size < 1:
            raise DataError("batch size must be at least 1")
        self.dataset = dataset
        self.batch_size = batch_size
        self.resolutions = tuple(resolutions)
        self.normalization = normalization
        self.train = train
        self.flip = flip
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.channels_last = channels_last
        # Batches are drawn and augmented on the CPU (the same numbers on every device), then moved.
        self.device = torch.device(device)

    def batches_per_epoch(self) -> int:
        per_rank = len(self.dataset) // self.world_size
        return per_rank // self.batch_size if self.drop_last else -(-per_rank // self.batch_size)

    def epoch(
        self, epoch: int, start_batch: int = 0, resolution: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of one epoch from ``start_batch`` on; ``resolution`` fixes the image size."""
        n = len(self.dataset)
        if self.train:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
        else:
            order = torch.arange(n)
        per_rank = n // self.world_size if self.world_size > 1 else n
        order = order[self.rank * per_rank : (self.rank + 1) * per_rank]
        for b in range(start_batch, self.batches_per_epoch()):
            index = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield self.make_batch(index, epoch, b, resolution)

    def make_batch(
        self, index: torch.Tensor, epoch: int, batch: int, resolution: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # Same seed on every rank for the resolution; the augmentation differs by rank.
        step_seed = (self.seed * 1_000_003 + epoch) * 1_000_003 + batch
        if resolution is None:
            resolution = random.Random(step_seed).choice(self.resolutions) if self.train else max(self.resolutions)
        images = self.dataset.images[index].float() / 255
        if self.train:
            generator = torch.Generator().manual_seed(step_seed * 31 + self.rank)
            images = augment(images, generator, flip=self.flip)
        images = self.normalization.apply(resize(images, resolution))
        labels = self.dataset.labels[index]
        if self.device.type != "cpu":
            images, labels = images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, labels
