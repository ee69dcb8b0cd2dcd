"""The weights ofa-edge knows by name, each with where it comes from and what goes with it.

Like timm's pretrained configs: a name stands for a supernet file, its space, its licence, where
to fetch it, and the accuracy predictor and latency table a search uses by default. Only the demo
ships inside the package; official supernets are fetched on request (``ofa-edge weights fetch``).
Predictors and tables named here are small files that ship with the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import OFAEdgeError

PACKAGE = Path(__file__).resolve().parent.parent
OFFICIAL_BASE_URL = "https://raw.githubusercontent.com/han-cai/files/master/ofa/ofa_nets/"
OFFICIAL_LICENCE = "MIT, (c) 2021 Han Cai (OFA release)"
# The OFA authors publish the OFA-ResNet50 supernet on Google Drive (the reference's model zoo
# fetches it with gdown); this address serves the file itself, without Drive's confirmation page.
RESNET50_URL = "https://drive.usercontent.google.com/download?id=1xy6VIPEHXqbbqNu3xEZUxhp5FbTVs5cQ&export=download&confirm=t"


@dataclass(frozen=True)
class WeightsEntry:
    """One named supernet."""

    name: str
    space: str
    description: str
    licence: str
    # A bundled file (inside the package) or the URL a fetch downloads; exactly one is set.
    bundled: Path | None = None
    url: str | None = None
    size: int | None = None  # bytes, where known
    sha256: str | None = None  # where known; a fetch refuses a file that does not match
    predictor: str | None = None  # default accuracy predictor (a name of PREDICTORS, or a path)
    table: str | None = None  # default latency table name for searches without weights
    # The cached file's name where the URL's last segment is not it (a Google Drive link).
    file: str | None = None

    @property
    def filename(self) -> str:
        if self.file is not None:
            return self.file
        if self.bundled is not None:
            return self.bundled.name
        assert self.url is not None
        return self.url.rsplit("/", 1)[-1]


def _official(name: str, space: str, description: str, **defaults: str) -> WeightsEntry:
    return WeightsEntry(name, space, description, OFFICIAL_LICENCE, url=OFFICIAL_BASE_URL + name, **defaults)


REGISTRY: dict[str, WeightsEntry] = {
    entry.name: entry
    for entry in (
        WeightsEntry(
            "demo",
            "mbv3-fmnist",
            "OFA-MobileNetV3 w0.75 trained on Fashion-MNIST with progressive shrinking (28x28 grey, 10 classes)",
            "MIT (this project)",
            bundled=PACKAGE / "weights" / "mbv3-fmnist.safetensors",
            predictor="demo",
        ),
        _official(
            "ofa_mbv3_d234_e346_k357_w1.0",
            "mbv3-w1.0",
            "official OFA-MobileNetV3 w1.0 supernet, ImageNet (kernel 3/5/7, expand 3/4/6, depth 2/3/4)",
        ),
        _official(
            "ofa_mbv3_d234_e346_k357_w1.2",
            "mbv3-w1.2",
            "official OFA-MobileNetV3 w1.2 supernet, ImageNet (kernel 3/5/7, expand 3/4/6, depth 2/3/4)",
            predictor="ofa-mbv3-w1.2",
            table="note10",
        ),
        _official(
            "ofa_proxyless_d234_e346_k357_w1.3",
            "proxyless-w1.3",
            "official OFA-ProxylessNAS w1.3 supernet, ImageNet (kernel 3/5/7, expand 3/4/6, depth 2/3/4)",
        ),
        WeightsEntry(
            "ofa_resnet50",
            "resnet50",
            "official OFA-ResNet50 supernet, ImageNet (extra depth 0/1/2, expand 0.2/0.25/0.35, width 0.65/0.8/1.0)",
            OFFICIAL_LICENCE,
            url=RESNET50_URL,
            file="ofa_resnet50_d0-1-2_e0.2-0.25-0.35_w0.65-0.8-1.0",
            predictor="ofa-resnet50",
        ),
    )
}


@dataclass(frozen=True)
class PredictorEntry:
    """One named accuracy predictor, shipped with the package as an ofa-edge predictor file."""

    name: str
    space: str
    supernet: str  # the REGISTRY name of the supernet it predicts
    file: Path
    measures: str  # what its number is, said beside every prediction
    licence: str


PREDICTORS: dict[str, PredictorEntry] = {
    entry.name: entry
    for entry in (
        PredictorEntry(
            "demo",
            "mbv3-fmnist",
            "demo",
            PACKAGE / "weights" / "mbv3-fmnist-predictor.safetensors",
            "Fashion-MNIST top-1 predicted by the demo's predictor",
            "MIT (this project)",
        ),
        PredictorEntry(
            "ofa-mbv3-w1.2",
            "mbv3-w1.2",
            "ofa_mbv3_d234_e346_k357_w1.2",
            # acc_predictor.pth of the OFA authors, converted (scripts/ship_official_files.py).
            PACKAGE / "weights" / "official" / "ofa-mbv3-w1.2-predictor.safetensors",
            "ImageNet top-1 predicted by the OFA authors' predictor",
            OFFICIAL_LICENCE,
        ),
        PredictorEntry(
            "ofa-resnet50",
            "resnet50",
            "ofa_resnet50",
            # ofa_resnet50_acc_predictor.pth of the OFA authors, converted (scripts/ship_official_files.py).
            PACKAGE / "weights" / "official" / "ofa-resnet50-predictor.safetensors",
            "ImageNet top-1 predicted by the OFA authors' predictor",
            OFFICIAL_LICENCE,
        ),
    )
}


def is_registered(name: str) -> bool:
    return str(name) in REGISTRY


def get_entry(name: str) -> WeightsEntry:
    """The entry called ``name``; one line listing the known names otherwise."""
    try:
        return REGISTRY[str(name)]
    except KeyError:
        raise OFAEdgeError(f"no weights named '{name}' (known: {', '.join(REGISTRY)})") from None
