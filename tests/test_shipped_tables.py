"""The latency tables shipped in latency_tables/ load, cover their space and carry their validation."""

from __future__ import annotations

import json
import random

import pytest

from ofa_edge.latency.store import shipped_tables_dir as tables_dir
from ofa_edge.latency.table import load_table

EXPECTED = [
    "onnxruntime-cpu-fp32-mbv3-fmnist",
    "onnxruntime-cpu-int8-mbv3-fmnist",
    "openvino-cpu-fp32-mbv3-fmnist",
    "openvino-cpu-int8-mbv3-fmnist",
    "tflite-cpu-fp32-mbv3-fmnist",
    "onnxruntime-cpu-fp32-mbv3-w1.0",
]


@pytest.mark.parametrize("name", EXPECTED)
def test_shipped_table(name):
    assert (tables_dir() / f"{name}.json").exists(), f"latency_tables/{name}.json is missing"
    table = load_table(name)  # by name, as users pass it
    space = table.space()
    assert table.complete and table.command and table.backend["version"] and table.backend["device_detail"]
    assert table.calibration is not None and len(table.calibration.points) >= 20
    assert table.validation and table.validation["complete"] and table.validation["samples"] >= 40
    rng = random.Random(0)
    for _ in range(50):
        arch = space.sample(rng)
        arch = type(arch)(arch.ks, arch.e, arch.d, rng.choice(table.resolutions))
        assert table.predict(space, arch) > 0


def test_tables_list_shows_every_shipped_name_whole(capsys):
    from ofa_edge.cli import main

    assert main(["tables", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["tables"]}
    assert set(EXPECTED) <= set(rows) and all("error" not in rows[n] for n in EXPECTED)
    assert main(["tables", "list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in EXPECTED)  # names are what --table takes: never cut short


@pytest.mark.parametrize("name", [n for n in EXPECTED if "-int8-" in n])
def test_shipped_int8_tables_price_the_graph_export_ships(name):
    # The int8 form and quantiser recorded in a shipped table must be those the backend (and
    # `export --int8`) builds, or every use of the table warns that it prices another graph.
    from ofa_edge.latency.profiling import backend_for_table

    _, warnings = backend_for_table(load_table(name))
    assert not any("prices another graph" in w for w in warnings), warnings
