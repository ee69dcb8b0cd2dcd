"""Accuracy predictor: data loading, noise floor, the two models, files and the CLI command.

The data files are synthetic, in the exact format `predictor data` writes: top-1 is a known linear
function of the encoding (kernel, expand, depth and a large resolution effect, as in the demo)
plus small noise, so a predictor that learns nothing fails these tests.
"""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch

import ofa_edge.search.predictor as predictor_module
from ofa_edge.cli import main
from ofa_edge.errors import OFAEdgeError
from ofa_edge.search.accuracy_data import FORMAT as DATA_FORMAT
from ofa_edge.search.accuracy_data import AccuracyDataError
from ofa_edge.search.predictor import (
    AccuracyPredictor,
    MLPConfig,
    PredictorError,
    fit_mlp,
    fit_ridge,
    load_accuracy_data,
    noise_floor,
    train_predictor,
)
from ofa_edge.space.space import get_space

SPACE = get_space("mbv3-fmnist")
FINGERPRINT = "0123456789abcdef"
RES_EFFECT = {20: -1.0, 24: 0.0, 28: 0.3}


def true_top1(arch, weights: np.ndarray) -> float:
    return 91.0 + RES_EFFECT[arch.r] + float(SPACE.encode(arch) @ weights)


def record(index, kind, arch, top1, subset=0, supernet=FINGERPRINT, split="val"):
    return {
        "format": DATA_FORMAT,
        "index": index,
        "kind": kind,
        "arch": arch.to_dict(),
        "r": arch.r,
        "top1": round(top1, 4),
        "split": split,
        "images": 10000,
        "calibration_subset": subset,
        "calibration_images": 2000,
        "supernet": supernet,
        "seed": 0,
        "macs": SPACE.macs(arch),
        "seconds": 0.1,
    }


def synthetic_records(samples: int, repeats: int = 10, noise: float = 0.03, seed: int = 0, supernet=FINGERPRINT):
    """Corners (min/max at each resolution), uniform random archs, then repeats of the first ones."""
    rng = np.random.default_rng(seed)
    # Per-gene effects of ~0.05 points: within one resolution subnets differ by a few tenths.
    weights = rng.normal(0.0, 0.05, SPACE.encoding_size).astype(np.float32)
    weights[-len(SPACE.resolutions) :] = 0.0  # the resolution effect is RES_EFFECT
    archs = [
        (kind, f(r)) for r in SPACE.resolutions for kind, f in (("corner", SPACE.min_arch), ("corner", SPACE.max_arch))
    ]
    sampler = random.Random(seed)
    archs += [("random", SPACE.sample(sampler)) for _ in range(samples)]
    records = [
        record(i, kind, arch, true_top1(arch, weights) + rng.normal(0, noise), supernet=supernet)
        for i, (kind, arch) in enumerate(archs)
    ]
    first_random = 2 * len(SPACE.resolutions)
    for i in range(first_random, first_random + repeats):
        arch = archs[i][1]
        records.append(record(i, "repeat", arch, true_top1(arch, weights) + rng.normal(0, noise), 1, supernet))
    return records


def write_jsonl(path, records, tail: str = ""):
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return path


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "acc.jsonl"
    # A line cut short by a killed collector at the end, as `predictor data` can leave it.
    return write_jsonl(path, synthetic_records(200, repeats=12), tail='{"format": "ofa-edge-accura')


@pytest.fixture(scope="module")
def data(data_file):
    return load_accuracy_data(data_file, SPACE, FINGERPRINT)


@pytest.fixture(scope="module")
def trained(data):
    return train_predictor(data, holdout=0.25, seed=0)


# --------------------------------------------------------------------------------- data
def test_load_data_keeps_repeats_apart(data):
    assert len(data) == 6 + 200
    assert data.features.shape == (206, SPACE.encoding_size) and data.features.dtype == np.float32
    assert np.array_equal(data.features[0], SPACE.encode(SPACE.min_arch(20)))
    assert data.repeats.shape == (12, 2) and data.unpaired_repeats == 0
    assert data.kind.count("corner") == 6 and data.supernet == FINGERPRINT and data.split == "val"


@pytest.mark.parametrize(
    ("records", "tail", "fragment"),
    [
        ([], "", "holds no accuracy records"),
        ([], "not json\n", "holds no accuracy records"),
        (synthetic_records(5, 0) + synthetic_records(5, 0, supernet="ffffffffffffffff"), "", "several supernets"),
        (synthetic_records(5, 0, supernet="ffffffffffffffff"), "", "ffffffffffffffff, not of the one given"),
    ],
)
def test_load_data_refusals_are_one_line(tmp_path, records, tail, fragment):
    path = write_jsonl(tmp_path / "d.jsonl", records, tail)
    with pytest.raises(AccuracyDataError, match=fragment) as info:
        load_accuracy_data(path, SPACE, FINGERPRINT)
    assert "\n" not in str(info.value)


def test_load_data_damaged_record_and_missing_file(tmp_path):
    records = synthetic_records(5, 0)
    records[3]["arch"]["ks"][0] = 9
    with pytest.raises(AccuracyDataError, match=r"record 4 \(index 3\).*'ks' index 0"):
        load_accuracy_data(write_jsonl(tmp_path / "d.jsonl", records), SPACE)
    records = synthetic_records(5, 0)
    del records[2]["top1"]
    with pytest.raises(AccuracyDataError, match="record 3 is damaged: no field 'top1'"):
        load_accuracy_data(write_jsonl(tmp_path / "d.jsonl", records), SPACE)
    with pytest.raises(AccuracyDataError, match="not found"):
        load_accuracy_data(tmp_path / "missing.jsonl", SPACE)


def test_noise_floor_of_constructed_pairs(tmp_path):
    # Repeats differ by exactly +-0.3: RMSE 0.3, per-measurement std = std(diff) / sqrt(2).
    records = synthetic_records(20, 0, noise=0.0)
    diffs = []
    for n, base in enumerate(records[6:26]):
        d = 0.3 if n % 2 else -0.3
        diffs.append(d)
        records.append({**base, "kind": "repeat", "calibration_subset": 1, "top1": base["top1"] + d})
    data = load_accuracy_data(write_jsonl(tmp_path / "d.jsonl", records), SPACE)
    floor = noise_floor(data)
    assert floor["count"] == 20 and floor["unpaired"] == 0
    assert floor["rmse"] == pytest.approx(0.3, abs=1e-4)
    assert floor["repeat_std"] == pytest.approx(np.std(diffs, ddof=1) / math.sqrt(2), abs=1e-4)
    assert floor["repeat_std"] == pytest.approx(0.3 * math.sqrt(20 / 19) / math.sqrt(2), abs=1e-4)
    assert floor["kendall_tau"] > 0.5  # the arch effects dominate the +-0.3 noise overall


# ------------------------------------------------------------------------------ models
def test_ridge_recovers_a_linear_target(trained):
    _, report = trained
    ridge = report["models"]["ridge"]
    assert ridge["kendall_tau"] > 0.9
    assert ridge["kendall_tau_within_resolution"] > 0.8
    assert ridge["rmse"] < 0.1 and ridge["rmse"] < report["constant"]["rmse"] / 5
    assert report["kept"] == "ridge"  # the truth is linear: ridge ranks better
    assert report["train"] + report["heldout"] == 206 and report["heldout"] == 50


def test_mlp_beats_a_constant_predictor(trained):
    _, report = trained
    mlp = report["models"]["mlp"]
    assert mlp["rmse"] < 0.6 * report["constant"]["rmse"]
    assert mlp["kendall_tau"] > 0.8 and mlp["kendall_tau_within_resolution"] > 0.5
    assert set(mlp["kendall_tau_by_resolution"]) == {"20", "24", "28"}


def test_report_has_noise_floor_and_refit(trained, data):
    predictor, report = trained
    assert predictor.report is report
    assert report["noise_floor"]["count"] == 12
    assert "refitted on all 206" in report["refit"]
    # Refitted on all rows: the training rows are now fitted too.
    assert np.sqrt(np.mean((predictor.predict_features(data.features) - data.top1) ** 2)) < 0.1


def test_predict_features_matches_predict_and_checks_shape(trained, data):
    predictor, _ = trained
    archs = list(data.archs[:40])
    assert np.array_equal(
        predictor.predict(archs), predictor.predict_features(np.stack([SPACE.encode(a) for a in archs]))
    )
    with pytest.raises(PredictorError, match=r"need \(n, 123\)"):
        predictor.predict_features(np.zeros((3, 5), np.float32))


def test_predictions_stay_percentages(trained, data):
    predictor, _ = trained
    raw = predictor.predict_features(data.features[:20])
    assert 0 < raw.min() and raw.max() < 100  # the fixture's subnets: inside, so unchanged
    shifted = type(predictor)(predictor.kind, SPACE, FINGERPRINT, predictor.base_acc + 99.0, predictor.tensors,
                              config=predictor.config)  # fmt: skip
    assert np.all(shifted.predict_features(data.features[:20]) == 100.0)


def test_holdout_must_leave_both_sides(data, tmp_path):
    with pytest.raises(OFAEdgeError, match="--holdout must be between 0 and 1"):
        train_predictor(data, holdout=1.0)
    small = load_accuracy_data(write_jsonl(tmp_path / "d.jsonl", synthetic_records(12, 0)), SPACE)
    with pytest.raises(AccuracyDataError, match="too few subnets") as error:
        train_predictor(small, holdout=0.2)
    # It says how many random subnets make the split work: 20% of 23 rounds to 5.
    assert "--samples 23 or more" in str(error.value)


def test_mlp_is_deterministic_for_a_seed(data):
    config = MLPConfig(hidden=32, epochs=3)
    a = fit_mlp(SPACE, FINGERPRINT, data.features, data.top1, seed=1, config=config)
    b = fit_mlp(SPACE, FINGERPRINT, data.features, data.top1, seed=1, config=config)
    assert np.array_equal(a.predict_features(data.features), b.predict_features(data.features))
    assert len(a.tensors) == 2 * 3 + 1 and a.tensors["regressor.weight"].shape == (1, 32)


@pytest.mark.parametrize("flushed_before", [False, True])
def test_mlp_fit_flushes_denormals_and_restores_the_cpu_state(data, flushed_before):
    """Fitting flushes denormals (a 14x slow path otherwise) but leaves the caller's state as it was."""
    threads = torch.get_num_threads()
    torch.set_flush_denormal(flushed_before)
    try:
        with predictor_module._mlp_fitting_cpu(1):
            assert predictor_module._denormals_flushed()
            assert torch.get_num_threads() == 1
        assert predictor_module._denormals_flushed() is flushed_before
        fit_mlp(SPACE, FINGERPRINT, data.features, data.top1, config=MLPConfig(hidden=16, epochs=1))
        assert predictor_module._denormals_flushed() is flushed_before
        assert torch.get_num_threads() == threads
    finally:
        torch.set_flush_denormal(False)


# ------------------------------------------------------------------------------- files
@pytest.mark.parametrize("kind", ["mlp", "ridge"])
def test_save_load_round_trip(tmp_path, trained, data, kind):
    if kind == "ridge":
        predictor = fit_ridge(SPACE, FINGERPRINT, data.features, data.top1)
    else:
        predictor = fit_mlp(SPACE, FINGERPRINT, data.features, data.top1, config=MLPConfig(hidden=48, epochs=2))
    predictor.report = {"note": "kept"}
    path = tmp_path / "p.predictor.safetensors"
    predictor.save(path)
    loaded = AccuracyPredictor.load(path, supernet_fingerprint=FINGERPRINT, space=SPACE)
    assert (loaded.kind, loaded.space_name, loaded.supernet, loaded.report) == (
        kind,
        SPACE.name,
        FINGERPRINT,
        {"note": "kept"},
    )
    assert loaded.config == predictor.config and loaded.base_acc == predictor.base_acc
    assert np.array_equal(loaded.predict_features(data.features), predictor.predict_features(data.features))


def test_load_refuses_other_supernet_space_and_damage(tmp_path, data):
    path = tmp_path / "p.safetensors"
    fit_ridge(SPACE, FINGERPRINT, data.features, data.top1).save(path)
    for kwargs, fragment in (
        (
            {"supernet_fingerprint": "ffffffffffffffff"},
            f"supernet {FINGERPRINT}, not of this supernet \\(ffffffffffffffff\\)",
        ),
        ({"space": get_space("mbv3-w1.0")}, "fitted for space mbv3-fmnist, not mbv3-w1.0"),
    ):
        with pytest.raises(PredictorError, match=fragment) as info:
            AccuracyPredictor.load(path, **kwargs)
        assert "\n" not in str(info.value)
    from safetensors.numpy import save

    other = tmp_path / "supernet.safetensors"
    other.write_bytes(save({"w": np.zeros(2)}, metadata={"format": "ofa-edge-supernet/1"}))
    with pytest.raises(PredictorError, match="not an accuracy predictor \\(ofa-edge-supernet/1"):
        AccuracyPredictor.load(other)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(PredictorError, match="not a predictor file"):
        AccuracyPredictor.load(path)
    with pytest.raises(PredictorError, match="predictor not found"):
        AccuracyPredictor.load(tmp_path / "none.safetensors")


def test_load_refuses_encoding_size_mismatch(tmp_path, data):
    predictor = fit_ridge(SPACE, FINGERPRINT, data.features, data.top1)
    with pytest.raises(PredictorError, match="do not fit the encoding size 123"):
        AccuracyPredictor("ridge", SPACE, FINGERPRINT, 0.0, {"coef": np.zeros(100), "bias": np.zeros(1)})
    # A file whose weights were cut to another width (e.g. made for another space's encoding).
    from safetensors.numpy import save

    raw = tmp_path / "p.safetensors"
    predictor.save(raw)
    header_len = int.from_bytes(raw.read_bytes()[:8], "little")
    metadata = json.loads(raw.read_bytes()[8 : 8 + header_len])["__metadata__"]
    raw.write_bytes(save({"coef": np.zeros(100), "bias": np.zeros(1)}, metadata=metadata))
    with pytest.raises(PredictorError, match="do not fit the encoding size 123"):
        AccuracyPredictor.load(raw)


# --------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def demo_fingerprint():
    from ofa_edge.nn.checkpoint import load_supernet, state_fingerprint

    return state_fingerprint(load_supernet("demo").state_dict())


def test_cli_predictor_train(tmp_path, capsys, demo_fingerprint):
    data = write_jsonl(tmp_path / "acc.jsonl", synthetic_records(60, repeats=8, supernet=demo_fingerprint))
    out = tmp_path / "demo.predictor.safetensors"
    code = main(["predictor", "train", "--data", str(data), "--out", str(out), "--holdout", "0.25", "--json"])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    payload = json.loads(stdout)  # exactly one JSON object
    assert stdout.count("\n") == 1
    assert payload["out"] == str(out) and payload["kept"] in ("mlp", "ridge")
    assert payload["supernet"] == demo_fingerprint and payload["heldout"] == 15
    loaded = AccuracyPredictor.load(out, supernet_fingerprint=demo_fingerprint, space=SPACE)
    assert loaded.kind == payload["kept"]

    # Without --json: the comparison table on stdout, the log on stderr.
    code = main(["predictor", "train", "--data", str(data), "--out", str(out), "--holdout", "0.25"])
    stdout, stderr = capsys.readouterr()
    assert code == 0 and "(kept)" in stdout and "(kept)" not in stderr and f"wrote {out}" in stderr


def test_cli_predictor_train_refuses_other_supernet(tmp_path, capsys, demo_fingerprint):
    data = write_jsonl(tmp_path / "acc.jsonl", synthetic_records(30, supernet="ffffffffffffffff"))
    out = tmp_path / "p.safetensors"
    code = main(["predictor", "train", "--data", str(data), "--out", str(out)])
    stdout, stderr = capsys.readouterr()
    assert code == 2 and stdout == ""
    assert stderr.startswith("error: ") and stderr.count("\n") == 1
    assert "ffffffffffffffff" in stderr and demo_fingerprint in stderr
    assert not out.exists()


def test_a_predictor_names_the_supernet_file_it_was_trained_on(tmp_path, data, demo_fingerprint):
    """The predictor file records where `predictor train` read the supernet, so `specialize
    --predictor P` and `deploy --predictor P` with no --supernet use that supernet, not the demo;
    a moved or unrecorded one is one line asking for --supernet."""
    from ofa_edge.search.predictor import PredictorError, predictor_supernet

    weights = tmp_path / "run" / "supernet.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"weights")  # only its presence is read here; export checks the fingerprint
    predictor = fit_ridge(SPACE, FINGERPRINT, data.features, data.top1)
    path = tmp_path / "p.safetensors"
    predictor.supernet_path = str(weights)
    predictor.save(path)
    assert AccuracyPredictor.load(path).supernet_path == str(weights)
    assert predictor_supernet(path) == str(weights) and predictor_supernet(None) == "demo"
    weights.unlink()
    with pytest.raises(PredictorError, match=f"records supernet file {weights}, which is not there now: pass "
                       f"--supernet, the checkpoint it was trained on \\(fingerprint {FINGERPRINT}\\)"):  # fmt: skip
        predictor_supernet(path)
    predictor.supernet_path = None
    predictor.save(path)
    with pytest.raises(PredictorError, match="records no supernet file: pass --supernet"):
        predictor_supernet(path)
    # A file of the demo's supernet with no record (the shipped one, say) needs no --supernet.
    predictor.supernet = demo_fingerprint
    predictor.save(path)
    assert predictor_supernet(path) == "demo"


def test_a_predictor_that_cannot_rank_is_warned(trained):
    """A predictor fitted on a handful of subnets (5 held out, tau -0.40 in a walk on a 3-class
    folder) would drive a search that "predicts 100%": its report carries a warning."""
    predictor, report = trained
    assert report["models"][report["kept"]]["kendall_tau_within_resolution"] > 0.3
    assert predictor.ranking_warning() is None
    weak = AccuracyPredictor(predictor.kind, SPACE, FINGERPRINT, predictor.base_acc, predictor.tensors,
                             report={**report, "models": {report["kept"]: {"kendall_tau_within_resolution": None,
                                                                           "kendall_tau": -0.4}}})  # fmt: skip
    expected = f"ranks its {report['heldout']} held-out subnets poorly (Kendall tau -0.40, under 0.3)"
    assert expected in weak.ranking_warning()
    assert AccuracyPredictor(predictor.kind, SPACE, FINGERPRINT, predictor.base_acc,
                             predictor.tensors).ranking_warning() is None  # fmt: skip
