"""Write Fashion-MNIST's IDX files as PNG class folders: OUT/{train,test}/classN/NNNNN.png.

    python scripts/fashion_mnist_folders.py [OUT]        (default: fm-folders; about 13 s)

The folder form of the same images, to check that a supernet scores a user's image folder as it
scores the IDX files (BENCHMARKS.md, "Your own image folders").
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np
from PIL import Image

IDX = Path("/usr/share/datasets/fashion-mnist")


def read_idx(path: Path, header: int) -> np.ndarray:
    return np.frombuffer(gzip.open(path).read(), np.uint8, offset=header)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "fm-folders")
    for split, stem in (("train", "train"), ("test", "t10k")):
        images = read_idx(IDX / f"{stem}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
        labels = read_idx(IDX / f"{stem}-labels-idx1-ubyte.gz", 8)
        for index, (image, label) in enumerate(zip(images, labels)):
            folder = out / split / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{index:05d}.png")
        print(f"wrote {len(labels)} {split} images under {out / split}")


if __name__ == "__main__":
    main()
