"""The closed loop of export and deploy (``--refit``): a subnet measured over its budget teaches the
table and the search runs again. Real exports, real onnxruntime timings; the budget is set below
what the first subnet measures so that the loop has to turn."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from ofa_edge import get_space
from ofa_edge.host import cpu_identity
from ofa_edge.latency.store import resolve_table_path

SPACE = get_space("mbv3-fmnist")
TABLE = "onnxruntime-cpu-fp32-mbv3-fmnist"


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    app_module = importlib.import_module("ofa_edge.cli.app")
    code = app_module.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _table_calibrated_here(folder: Path) -> Path:
    """A copy of the shipped demo table in the user's table folder, its calibration marked as made on
    this machine (so the loop adds points to it instead of first re-calibrating from scratch)."""
    data = json.loads(resolve_table_path(TABLE).read_text())
    data["calibration"]["host"] = cpu_identity()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{TABLE}.json"
    path.write_text(json.dumps(data))
    return path


def test_refit_needs_a_table_and_a_budget(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.json").write_text(json.dumps(SPACE.max_arch(28).to_dict()))
    code, out, err = _cli(["export", "--format", "onnx", "--arch", "a.json", "--refit", "1"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and "--refit needs a latency table and a budget" in err


@pytest.mark.slow
def test_export_refit_teaches_the_table_and_exports_a_cheaper_subnet(tmp_path, capsys, monkeypatch):
    tables = tmp_path / "latency_tables"
    monkeypatch.setenv("OFA_EDGE_TABLES", str(tables))
    table_path = _table_calibrated_here(tables)
    points_before = len(json.loads(table_path.read_text())["calibration"]["points"])
    largest = SPACE.max_arch(28)
    (tmp_path / "a.json").write_text(json.dumps(largest.to_dict()))
    # the largest subnet predicts ~1.5 ms on this table: half of that is inside the feasible range
    # and certainly under what the largest subnet measures
    code, out, err = _cli(["export", "--format", "onnx", "--arch", str(tmp_path / "a.json"), "--table", TABLE,
                           "--budget", "0.75ms", "--refit", "1", "--out", str(tmp_path / "out"), "--test-images",
                           "200", "--runs", "5", "--rounds", "1", "--calibration-images", "500", "--json"],
                          capsys)  # fmt: skip
    assert code == 0, err
    payload = json.loads(out)
    [refit] = payload["refits"]
    assert refit["arch"] == largest.to_dict() and refit["measured_ms"] > 0.75
    assert Path(refit["table"]) == table_path
    taught = json.loads(table_path.read_text())["calibration"]
    assert len(taught["points"]) == points_before + 1 and taught["points"][-1]["arch"] == largest.to_dict()
    # the file exported last is the new search's choice, priced under the budget by the refitted table
    assert payload["arch"] != largest.to_dict()
    assert payload["latency"]["table"] == str(table_path) and payload["latency"]["predicted_ms"] <= 0.75


@pytest.mark.slow
def test_deploy_refit_records_each_round_and_ships_the_last_choice(tmp_path, monkeypatch):
    from ofa_edge.export.deploy import deploy

    tables = tmp_path / "latency_tables"
    monkeypatch.setenv("OFA_EDGE_TABLES", str(tables))
    table_path = _table_calibrated_here(tables)
    # A table that believes every subnet 40% cheaper than its own measured points say: its first
    # choice measures well over the budget; the refit fits the calibration to the points again.
    data = json.loads(table_path.read_text())
    for key in ("a", "b", "c", "d"):
        data["calibration"][key] = data["calibration"].get(key, 0.0) * 0.6
    table_path.write_text(json.dumps(data))
    [looped] = deploy([0.9], [TABLE], ["onnx"], int8=False, out_dir=tmp_path / "d", test_images=200,
                      refit_rounds=2)  # fmt: skip
    assert 1 <= len(looped.refits) <= 2
    first = looped.refits[0]
    assert first["round"] == 1 and first["measured_ms"] > 0.9 and Path(first["table"]) == table_path
    assert looped.exports[0].arch == looped.choice.arch.to_dict() != first["arch"]
    assert looped.choice.latency_ms <= 0.9


def test_loop_aims_under_the_budget_by_the_miss_with_a_stand_in_measurement(tmp_path, monkeypatch):
    """The loop's arithmetic, with a stand-in for the backend (not a measurement): every subnet
    "measures" 15% over what the starting table predicts. The first choice misses; the next
    search aims at budget x budget / measured; the last choice fits; the table learnt each point."""
    from ofa_edge.export.closed_loop import search_until_within_budget
    from ofa_edge.latency.table import load_table
    from ofa_edge.search.predictor import load_predictor
    from ofa_edge.search.specialize import Target, specialize

    tables = tmp_path / "latency_tables"
    monkeypatch.setenv("OFA_EDGE_TABLES", str(tables))
    table_path = _table_calibrated_here(tables)
    original = load_table(table_path)
    predictor = load_predictor(None, "demo")
    fingerprint = predictor.checked_supernet

    def stand_in(arch, _table_ref):
        return 1.15 * original.predict(SPACE, arch)

    budget = 0.9
    first = specialize(predictor, [Target(original, budget)], space=SPACE, supernet=fingerprint)[0]
    outcome = search_until_within_budget(
        first.arch, stand_in, table_ref=table_path, table=original, budget_ms=budget, predictor=predictor,
        space=SPACE, supernet=fingerprint, rounds=3,
    )  # fmt: skip
    # the refitted table predicts a little differently from the stand-in's, so a second round may run
    assert 1 <= len(outcome.refits) <= 2
    refit = outcome.refits[0]
    assert refit["measured_ms"] == pytest.approx(1.15 * first.latency_ms)
    assert refit["search_target_ms"] == pytest.approx(budget * budget / refit["measured_ms"])
    assert stand_in(outcome.arch, None) <= budget < stand_in(first.arch, None)
    assert len(load_table(table_path).calibration.points) == len(original.calibration.points) + len(outcome.refits)


def test_loop_does_nothing_when_the_first_choice_fits(tmp_path):
    from ofa_edge.export.closed_loop import search_until_within_budget
    from ofa_edge.latency.table import load_table

    table = load_table(TABLE)
    calls = []
    outcome = search_until_within_budget(
        SPACE.min_arch(20), lambda arch, ref: calls.append(arch) or 0.1, table_ref=TABLE, table=table,
        budget_ms=0.5, predictor=None, space=SPACE, supernet=None, rounds=2,
    )  # fmt: skip
    assert calls == [SPACE.min_arch(20)] and outcome.refits == [] and outcome.choice is None


def test_a_refit_recalibrates_only_when_the_calibration_is_from_another_device(tmp_path, monkeypatch):
    """A phone's table keeps its calibration when the miss was measured on that phone: the
    calibration's device is compared with the phone, not with this CPU. Measured elsewhere, it is
    calibrated again first, with the phone's -O options. The measurements and the calibration
    are stand-ins here (no phone): only the decision is tested."""
    import ofa_edge.export.closed_loop as closed_loop
    from ofa_edge.latency.table import load_table
    from ofa_edge.search.predictor import load_predictor

    tables = tmp_path / "latency_tables"
    monkeypatch.setenv("OFA_EDGE_TABLES", str(tables))
    path = _table_calibrated_here(tables)
    phone = "adb serial SERIAL1, model stand-in phone"
    data = json.loads(path.read_text())
    data["calibration"]["host"] = phone
    path.write_text(json.dumps(data))
    predictor = load_predictor(None, "demo")
    fingerprint = predictor.checked_supernet
    calls = []

    def calibrate_stand_in(table_ref, fresh=False, options=None, warn=None, **_):
        calls.append((fresh, options))
        return None, path

    monkeypatch.setattr(closed_loop, "calibrate_table", calibrate_stand_in)
    loop = {"table_ref": path, "budget_ms": 0.3, "predictor": predictor, "space": SPACE, "supernet": fingerprint,
            "rounds": 1, "backend_options": {"benchmark_model": "./bm"}}  # fmt: skip
    start = SPACE.max_arch(28)
    closed_loop.search_until_within_budget(start, lambda arch, ref: 5.0, table=load_table(path),
                                           measured_on=lambda: phone, **loop)  # fmt: skip
    assert calls == [] and load_table(path).calibration.host == phone
    other = "adb serial OTHER, model other phone"
    closed_loop.search_until_within_budget(start, lambda arch, ref: 5.0, table=load_table(path),
                                           measured_on=lambda: other, **loop)  # fmt: skip
    assert calls == [(True, {"benchmark_model": "./bm"})]
