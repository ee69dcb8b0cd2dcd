"""Make the official OFA files that ship in the package from the published originals.

    python scripts/ship_official_files.py [FOLDER]     (default: tests/fixtures/official)

FOLDER holds the OFA authors' files, unchanged (provenance and licence: its README.md):
``acc_predictor.pth``, ``ofa_resnet50_acc_predictor.pth`` and
``note10_{160,176,192,208,224}_lookup_table.yaml``. Writes

* ``ofa_edge/weights/official/ofa-mbv3-w1.2-predictor.safetensors``: the accuracy predictor of
  ``ofa_mbv3_d234_e346_k357_w1.2``, converted to our predictor format (same function: see
  ``ofa_edge/search/official_predictor.py``), so that a search reads it without torch;
* ``ofa_edge/weights/official/ofa-resnet50-predictor.safetensors``: the accuracy predictor of
  ``ofa_resnet50``, converted the same way;
* ``ofa_edge/latency/tables/note10-mbv3-w1.2.json``: the Samsung Note10 tables as one table.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from ofa_edge.hub.registry import OFFICIAL_LICENCE, PREDICTORS
from ofa_edge.latency.official import import_official_tables
from ofa_edge.search.official_predictor import load_resnet_predictor, load_tutorial_predictor
from ofa_edge.space.space import get_space

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "https://raw.githubusercontent.com/han-cai/files/master/ofa/"
TABLE = ROOT / "ofa_edge" / "latency" / "tables" / "note10-mbv3-w1.2.json"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ship_predictor(folder: Path) -> Path:
    entry = PREDICTORS["ofa-mbv3-w1.2"]
    source = folder / "acc_predictor.pth"
    model = load_tutorial_predictor(source, get_space(entry.space), entry.supernet, entry.measures)
    model.config.update(url=SOURCE + "acc_predictor.pth", sha256=sha256(source), licence=OFFICIAL_LICENCE)
    entry.file.parent.mkdir(parents=True, exist_ok=True)
    model.save(entry.file)
    return entry.file


def ship_resnet_predictor(folder: Path) -> Path:
    entry = PREDICTORS["ofa-resnet50"]
    source = folder / "ofa_resnet50_acc_predictor.pth"
    model = load_resnet_predictor(source, get_space(entry.space), entry.supernet, entry.measures)
    model.config.update(url=SOURCE + source.name, sha256=sha256(source), licence=OFFICIAL_LICENCE)
    model.save(entry.file)
    return entry.file


def ship_table(folder: Path) -> Path:
    files = sorted(folder.glob("note10_*_lookup_table.yaml"))
    provenance = {
        "source": SOURCE + "note10/{R}_lookup_table.yaml",
        "device_name": "Samsung Galaxy Note10",
        "licence": OFFICIAL_LICENCE,
        "sha256": {p.name: sha256(p) for p in files},
    }
    table = import_official_tables(files, "mbv3-w1.2", "note10", provenance)
    table.command = "python scripts/ship_official_files.py"
    table.save(TABLE)
    return TABLE


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests" / "fixtures" / "official"
    for path in (ship_predictor(folder), ship_resnet_predictor(folder), ship_table(folder)):
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
