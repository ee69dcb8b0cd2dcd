"""The OFA authors' release as an input: their accuracy predictor and Note10 tables give the
reference tutorial's numbers, ship with the package, and drive `specialize` on the official w1.2
supernet with no weights and no network."""

from __future__ import annotations

import importlib.util
import json
import random
import socket
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from ofa_edge.cli import main
from ofa_edge.hub.registry import PREDICTORS
from ofa_edge.latency.official import import_official_tables
from ofa_edge.latency.table import TableError, load_table
from ofa_edge.search.official_predictor import load_tutorial_predictor
from ofa_edge.search.predictor import PredictorError, load_predictor
from ofa_edge.space.space import get_space

from .reference_oracle import MISSING, _install_import_stand_ins

OFFICIAL = Path(__file__).parent / "fixtures" / "official"
SUPERNET = "ofa_mbv3_d234_e346_k357_w1.2"
NOTE10 = [OFFICIAL / f"note10_{r}_lookup_table.yaml" for r in (160, 176, 192, 208, 224)]


def tutorial(name: str) -> ModuleType:
    """``ofa/tutorial/NAME.py`` of the reference package, loaded alone (its package ``__init__``
    imports download helpers that these tests do not need)."""
    spec = importlib.util.find_spec("ofa")
    if spec is None:
        pytest.fail(MISSING, pytrace=False)
    before = set(sys.modules)
    _install_import_stand_ins()
    try:
        path = Path(next(iter(spec.submodule_search_locations))) / "tutorial" / f"{name}.py"
        module_spec = importlib.util.spec_from_file_location(f"ofa_tutorial_{name}", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    finally:
        for added in set(sys.modules) - before:
            if added.split(".")[0] in ("PIL", "torchvision") and getattr(sys.modules[added], "__file__", None) is None:
                del sys.modules[added]
    return module


def _random_specs(n: int, seed: int, resolutions: tuple[int, ...]) -> tuple[list, list[dict]]:
    space, rng = get_space("mbv3-w1.2"), random.Random(seed)
    archs = [space.validate({**space.sample(rng).to_dict(), "r": rng.choice(resolutions)}) for _ in range(n)]
    return archs, [{"ks": list(a.ks), "e": list(a.e), "d": list(a.d), "r": [a.r]} for a in archs]


# ------------------------------------------------------------------------------ predictor
@pytest.fixture(scope="module")
def reference_predictor():
    module = tutorial("accuracy_predictor")
    predictor = module.AccuracyPredictor(pretrained=False, device="cpu")
    state = torch.load(OFFICIAL / "acc_predictor.pth", map_location="cpu", weights_only=True)
    predictor.model.load_state_dict(state)
    return predictor


@pytest.mark.parametrize("source", ["ofa-mbv3-w1.2", str(OFFICIAL / "acc_predictor.pth")])
def test_the_official_predictor_equals_the_reference_on_200_archs(source, reference_predictor):
    archs, specs = _random_specs(200, seed=3, resolutions=get_space("mbv3-w1.2").resolutions)
    theirs = reference_predictor.predict_accuracy(specs).numpy()[:, 0].astype(np.float64)
    ours = load_predictor(source).predict(archs) / 100
    assert np.abs(ours - theirs).max() < 1e-6
    assert 0.70 < theirs.min() and theirs.max() < 0.90  # ImageNet top-1 fractions, not something degenerate


def test_the_shipped_predictor_is_the_published_file_converted():
    entry = PREDICTORS["ofa-mbv3-w1.2"]
    fresh = load_tutorial_predictor(OFFICIAL / "acc_predictor.pth", get_space("mbv3-w1.2"), SUPERNET, entry.measures)
    shipped = load_predictor("ofa-mbv3-w1.2")
    assert shipped.supernet == SUPERNET and "OFA authors" in shipped.measures
    assert shipped.base_acc == fresh.base_acc and set(shipped.tensors) == set(fresh.tensors)
    for name, tensor in fresh.tensors.items():
        assert np.array_equal(shipped.tensors[name], tensor), name


def test_a_predictor_of_another_supernet_is_one_line():
    with pytest.raises(PredictorError, match="predicts subnets of ofa_mbv3_d234_e346_k357_w1.2, not of demo"):
        load_predictor("ofa-mbv3-w1.2", "demo")


def test_a_file_that_is_not_a_tutorial_predictor_is_refused(tmp_path):
    bad = tmp_path / "p.pth"
    torch.save({"0.weight": torch.zeros(3, 3)}, bad)
    with pytest.raises(PredictorError, match="is not an OFA tutorial accuracy predictor"):
        load_predictor(bad)


# ------------------------------------------------------------------------------ note10 table
def test_note10_prices_exactly_as_the_reference_latency_table():
    module = tutorial("latency_table")
    import yaml

    estimators = {}
    for path in NOTE10:
        estimator = module.LatencyEstimator.__new__(module.LatencyEstimator)  # its __init__ downloads
        estimator.lut = yaml.safe_load(path.read_text())
        estimators[int(path.name.split("_")[1])] = estimator
    table, space = load_table("note10", "mbv3-w1.2"), get_space("mbv3-w1.2")
    archs, specs = _random_specs(200, seed=5, resolutions=tuple(estimators))
    ours = np.array([table.predict(space, a) for a in archs])
    theirs = np.array([estimators[s["r"][0]].predict_network_latency_given_spec(s) for s in specs])
    assert np.abs(ours / theirs - 1).max() < 1e-12
    assert 12 < theirs.min() and theirs.max() < 80


def test_the_shipped_note10_table_is_the_published_files_with_their_provenance():
    shipped = load_table("note10-mbv3-w1.2")
    fresh = import_official_tables(NOTE10, "mbv3-w1.2", "note10")
    assert shipped.entries == fresh.entries and shipped.resolutions == [160, 176, 192, 208, 224]
    extra = shipped.backend["extra"]
    assert "han-cai/files" in extra["source"] and "MIT" in extra["licence"] and len(extra["sha256"]) == 5


def test_import_finds_the_space_and_refuses_files_of_another(tmp_path):
    assert import_official_tables(NOTE10[:1]).space_name == "mbv3-w1.2"
    with pytest.raises(TableError, match="lack .* unit\\(s\\) of space mbv3-w1.0"):
        import_official_tables(NOTE10[:1], "mbv3-w1.0")


# ------------------------------------------------------------------------------ the headline
@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No weights anywhere, no network: any connection attempt fails the test."""
    monkeypatch.setenv("OFA_EDGE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    return tmp_path


def test_specialize_the_official_supernet_offline(offline, capsys):
    code = main(["specialize", "--supernet", SUPERNET, "--table", "note10", "--budget", "25ms", "--budget", "15ms",
                 "--json"])  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["supernet"] == SUPERNET and out["predictor"] == "ofa-mbv3-w1.2"
    assert out["accuracy_measures"] == "ImageNet top-1 predicted by the OFA authors' predictor"
    note10, space = load_table("note10", "mbv3-w1.2"), get_space("mbv3-w1.2")
    for result, budget in zip(out["results"], (25, 15)):
        assert result["arch"]["r"] in (160, 176, 192, 208, 224)
        assert note10.predict(space, space.validate(result["arch"])) <= budget
        assert 75 < result["accuracy"] < 85
        assert any("covers resolutions 160, 176, 192, 208, 224" in note for note in result["notes"])
    assert out["results"][0]["accuracy"] > out["results"][1]["accuracy"]
    assert not (offline / "home").exists()  # nothing fetched, nothing cached


def test_an_infeasible_note10_budget_names_the_range(offline, capsys):
    code = main(["specialize", "--supernet", SUPERNET, "--table", "note10", "--budget", "5ms"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert "below the fastest subnet of table note10-mbv3-w1.2" in lines[0] and "feasible: 9.89-" in lines[0]


# ------------------------------------------------------------------------------ export and deploy
def _official_weights(home: Path, name: str, space: str) -> None:
    """Randomised weights of ``space`` in the official file format, where a fetch puts ``name``."""
    from ofa_edge import OFAMobileNetV3

    from .test_checkpoint import official_name

    torch.manual_seed(0)
    net = OFAMobileNetV3(get_space(space))
    (home / "weights").mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {official_name(k): v for k, v in net.state_dict().items()}}, home / "weights" / name)


def _image_folder(root: Path) -> Path:
    """ImageNet-style folders of generated images (3 classes; the numbers they give are not accuracy)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 12), ("val", 4)):
        for label in range(3):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    return root


@pytest.fixture
def official_home(tmp_path, monkeypatch):
    monkeypatch.setenv("OFA_EDGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OFA_EDGE_TABLES", str(tmp_path / "tables"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.json").write_text(json.dumps({"ks": [3] * 20, "e": [4] * 20, "d": [2] * 5, "r": 160}))
    _image_folder(tmp_path / "images")
    return tmp_path


def test_exporting_an_official_subnet_needs_data_then_verifies(official_home, capsys):
    name = "ofa_mbv3_d234_e346_k357_w1.0"
    _official_weights(official_home / "home", name, "mbv3-w1.0")
    command = ["export", "--supernet", name, "--arch", "a.json", "--format", "onnx", "--int8", "--out", "e"]
    code = main(command)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "trained on ImageNet: pass --data DIR" in lines[0]
    assert not (official_home / "e").exists()
    assert main([*command, "--data", "images", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["verification"]["passed"] and result["verification"]["fp32_max_abs_diff"] < 1e-3
    assert {Path(f["path"]).name for f in result["files"]} == {"subnet-fp32.onnx", "subnet-int8.onnx"}


@pytest.mark.slow
def test_deploy_of_the_official_w12_supernet_searches_note10_and_exports(official_home, capsys):
    _official_weights(official_home / "home", SUPERNET, "mbv3-w1.2")
    assert main(["deploy", "--supernet", SUPERNET, "--data", "images", "--budget", "25ms", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (target,) = out["deployments"]
    assert target["table"] == "note10-mbv3-w1.2" and target["choice"]["latency_ms"] <= 25
    assert any("exported and verified, not timed" in note for note in target["notes"])
    assert target["exports"][0]["verification"]["passed"]


def test_a_device_name_finds_its_one_table():
    assert load_table("note10").space_name == "mbv3-w1.2"  # the one table named note10-...
    from ofa_edge.latency.store import TableNotFound

    with pytest.raises(TableNotFound, match="no latency table 'onnxruntime'"):  # several start so: none is picked
        load_table("onnxruntime")
