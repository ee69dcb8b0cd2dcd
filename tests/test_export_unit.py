"""Export's verifier and staging, unit by unit, on synthetic logits and temp files (no model is
converted): the fp32 gate's tolerance and NaN handling, top-1 agreement, the reduced-precision
record against the fp32 file's logits, and staging's all-or-nothing rename and temp cleanup.

Fast (well under a second in all): ``bench/mutation.sh`` runs them once per mutant.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from ofa_edge.convert.common import temp_name
from ofa_edge.errors import OFAEdgeError
from ofa_edge.export import staging as staging_module
from ofa_edge.export.formats import FORMATS
from ofa_edge.export.staging import Staging, remove_stale_temps
from ofa_edge.export.verify import (
    AGREEMENT_FLOOR,
    CheckSet,
    ExportVerificationError,
    agreement,
    compare_with_fp32,
    failed_precisions,
    top1,
    verify_fp32,
)

DEAD_PID = 999_999_999  # above any pid_max: os.kill answers "no such process"


def _one_hot(classes: list[int], n: int = 4, scale: float = 2.0) -> np.ndarray:
    logits = np.zeros((len(classes), n))
    logits[np.arange(len(classes)), classes] = scale
    return logits


def _checks(reference: np.ndarray, labels: list[int] | None = None) -> CheckSet:
    images = np.arange(len(reference) * 3, dtype=np.float32).reshape(len(reference), 3)
    lab = np.array(labels if labels is not None else np.argmax(reference, axis=1))
    return CheckSet(images, lab, reference)


# ------------------------------------------------------------------ verify.py
def test_agreement_floor_is_nine_in_ten():
    assert AGREEMENT_FLOOR == 0.90


def test_top1_is_percent_of_argmax_matching_labels():
    logits = _one_hot([0, 1, 2, 3])
    assert top1(logits, np.array([0, 1, 0, 0])) == 50.0
    assert top1(logits, np.array([0, 1, 2, 3])) == 100.0
    assert top1(logits, np.array([1, 0, 0, 0])) == 0.0
    assert isinstance(top1(logits, np.array([0, 1, 0, 0])), float)


def test_agreement_counts_argmax_matches_per_row():
    a = _one_hot([0, 1, 2, 3])
    b = _one_hot([0, 1, 3, 3])
    assert agreement(a, b) == 0.75
    assert agreement(a, a) == 1.0
    assert agreement(a, _one_hot([1, 2, 3, 0])) == 0.0
    # argmax along the class axis (axis 1), not over the images
    wide = np.array([[0.0, 5.0, 1.0], [9.0, 0.0, 1.0]])
    assert agreement(wide, np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])) == 1.0
    assert isinstance(agreement(a, b), float)


def test_checkset_head_takes_the_first_rows_of_all_three():
    ref = _one_hot([0, 1, 2, 3, 0])
    checks = _checks(ref, [3, 2, 1, 0, 3])
    head = checks.head(2)
    np.testing.assert_array_equal(head.images, checks.images[:2])
    np.testing.assert_array_equal(head.labels, np.array([3, 2]))
    np.testing.assert_array_equal(head.reference, ref[:2])
    assert len(head.images) == len(head.labels) == len(head.reference) == 2


def test_verify_fp32_passes_at_the_tolerance_and_records_the_numbers():
    ref = _one_hot([0, 1, 2, 3, 0])
    logits = ref.copy()
    logits[1, 0] += 0.5  # the largest difference, exactly at the tolerance
    logits[2, 1] -= 0.25
    record = verify_fp32("onnx", logits, _checks(ref), tolerance=0.5)
    assert record == {
        "images": 5,
        "fp32_max_abs_diff": 0.5,
        "fp32_tolerance": 0.5,
        "fp32_top1_agreement": 1.0,
        "passed": True,
    }
    assert isinstance(record["fp32_max_abs_diff"], float)


def test_verify_fp32_agreement_is_against_the_pytorch_logits_not_the_labels():
    ref = _one_hot([0, 1, 2, 3])
    logits = ref.copy()
    logits[3, 0] = 3.0  # argmax moves from 3 to 0 on the last image
    record = verify_fp32("onnx", logits, _checks(ref, labels=[1, 1, 1, 1]), tolerance=3.0)
    assert record["fp32_top1_agreement"] == 0.75
    assert record["fp32_max_abs_diff"] == 3.0
    assert record["images"] == 4


def test_verify_fp32_refuses_just_above_the_tolerance():
    ref = _one_hot([0, 1, 2, 3])
    logits = ref.copy()
    logits[2, 3] -= 0.5 + 1e-9  # a negative difference counts by its size
    with pytest.raises(ExportVerificationError) as caught:
        verify_fp32("openvino", logits, _checks(ref), tolerance=0.5)
    assert str(caught.value) == (
        "the fp32 openvino file differs from the PyTorch subnet by up to 0.5 on the logits "
        "(tolerance 0.5): nothing was written"
    )
    assert isinstance(caught.value, OFAEdgeError)


def test_verify_fp32_refuses_nan_logits():
    ref = _one_hot([0, 1, 2, 3])
    logits = ref.copy()
    logits[0, 0] = np.nan
    with pytest.raises(ExportVerificationError, match=r"by up to nan on the logits \(tolerance 1000\)"):
        verify_fp32("tflite", logits, _checks(ref), tolerance=1000.0)


def test_verify_fp32_uses_the_largest_difference_anywhere():
    ref = np.zeros((3, 4))
    logits = ref.copy()
    logits[0, 0], logits[2, 3] = 0.1, -2.0
    with pytest.raises(ExportVerificationError, match="by up to 2 on"):
        verify_fp32("onnx", logits, _checks(ref), tolerance=1.0)
    assert verify_fp32("onnx", logits, _checks(ref), tolerance=2.0)["fp32_max_abs_diff"] == 2.0


def _compare(logits, fp32, labels, fp32_top1):
    accuracy = {"fp32_top1": fp32_top1}
    verification: dict = {}
    compare_with_fp32("int8", logits, fp32, np.array(labels), accuracy, verification)
    return accuracy, verification


def test_compare_with_fp32_measures_against_the_fp32_file_not_the_labels():
    fp32 = _one_hot([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    logits = fp32.copy()
    logits[9] = [0.0, 0.0, 0.0, 2.75]  # one image of ten changes its answer: 9/10 agree
    labels = [0, 1, 2, 3, 0, 1, 2, 3, 0, 3]  # ... and it is now right: the int8 file scores 100%
    accuracy, verification = _compare(logits, fp32, labels, fp32_top1=90.0)
    assert accuracy == {
        "fp32_top1": 90.0,
        "int8_top1": 100.0,
        "int8_agreement_with_fp32": 0.9,
        "int8_drop_points": -10.0,
    }
    assert verification == {
        "int8_top1_agreement_with_fp32": 0.9,
        "int8_max_abs_diff_to_fp32": 2.75,
        "int8_passed": True,  # exactly at the floor passes
    }


def test_compare_with_fp32_below_the_floor_fails_and_records_the_drop():
    fp32 = _one_hot([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    logits = fp32.copy()
    logits[8] = [0.0, 0.0, -1.5, 1.0]  # two images change: 8/10 agree
    logits[9] = [0.0, 0.0, 0.0, 1.0]
    labels = [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    accuracy, verification = _compare(logits, fp32, labels, fp32_top1=100.0)
    assert accuracy["int8_top1"] == 80.0
    assert accuracy["int8_drop_points"] == 20.0
    assert accuracy["int8_agreement_with_fp32"] == 0.8
    assert verification["int8_passed"] is False
    assert verification["int8_max_abs_diff_to_fp32"] == 2.0
    assert verification["int8_top1_agreement_with_fp32"] == 0.8


def test_compare_with_fp32_names_keys_by_precision():
    fp32 = _one_hot([0, 1])
    accuracy, verification = {"fp32_top1": 50.0}, {}
    compare_with_fp32("fp16", fp32, fp32, np.array([0, 0]), accuracy, verification)
    assert sorted(accuracy) == ["fp16_agreement_with_fp32", "fp16_drop_points", "fp16_top1", "fp32_top1"]
    assert verification == {
        "fp16_top1_agreement_with_fp32": 1.0,
        "fp16_max_abs_diff_to_fp32": 0.0,
        "fp16_passed": True,
    }
    assert accuracy["fp16_drop_points"] == 0.0


def test_failed_precisions_lists_only_explicit_failures_in_order():
    assert failed_precisions({"int8_passed": False, "fp16_passed": False}) == ["fp16", "int8"]
    assert failed_precisions({"int8_passed": False, "fp16_passed": True}) == ["int8"]
    assert failed_precisions({"fp16_passed": False}) == ["fp16"]
    assert failed_precisions({"int8_passed": True, "fp16_passed": True}) == []
    assert failed_precisions({}) == []
    assert failed_precisions({"int8_passed": None, "fp16_passed": 0, "fp32_passed": False}) == []


# ------------------------------------------------------------------ staging.py
def test_temp_names_are_hidden_hold_the_pid_and_keep_the_suffix(tmp_path):
    with Staging(tmp_path) as staging:
        tmp = staging.temp(tmp_path / "card.json")
        assert tmp.parent == tmp_path
        assert re.fullmatch(rf"\.card\.partial-{os.getpid()}-[0-9a-f]{{8}}\.json", tmp.name)
        assert staging.pairs == [(tmp, tmp_path / "card.json")]
        tmp.write_text("x")


def test_staging_commits_every_file_on_success(tmp_path):
    out = tmp_path / "a" / "b"
    with Staging(out) as staging:
        assert out.is_dir()
        model = staging.model(FORMATS["openvino"], out / "net.xml")
        card = staging.temp(out / "net.json")
        model.write_text("xml")
        model.with_suffix(".bin").write_text("bin")
        card.write_text("card")
        assert not (out / "net.xml").exists()
    assert sorted(p.name for p in out.iterdir()) == ["net.bin", "net.json", "net.xml"]
    assert (out / "net.xml").read_text() == "xml"
    assert (out / "net.bin").read_text() == "bin"
    assert (out / "net.json").read_text() == "card"
    assert staging.pairs == []


def test_staging_model_pairs_companions_before_the_model(tmp_path):
    staging = Staging(tmp_path)
    tmp = staging.model(FORMATS["openvino"], tmp_path / "net.xml")
    assert staging.pairs == [(tmp.with_suffix(".bin"), tmp_path / "net.bin"), (tmp, tmp_path / "net.xml")]
    assert tmp.suffix == ".xml" and tmp.name.startswith(".net.partial-")
    single = Staging(tmp_path)
    onnx = single.model(FORMATS["onnx"], tmp_path / "net.onnx")
    assert single.pairs == [(onnx, tmp_path / "net.onnx")]


def test_staging_removes_every_temp_when_the_block_raises_and_keeps_earlier_files(tmp_path):
    (tmp_path / "net.onnx").write_text("earlier")
    with pytest.raises(RuntimeError, match="boom"), Staging(tmp_path) as staging:
        model = staging.model(FORMATS["onnx"], tmp_path / "net.onnx")
        card = staging.temp(tmp_path / "net.json")
        staging.temp(tmp_path / "never-written.txt")  # a temp that was never created
        model.write_text("new")
        card.write_text("card")
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.onnx"]
    assert (tmp_path / "net.onnx").read_text() == "earlier"
    assert staging.pairs == []


def test_staging_commit_replaces_an_earlier_file_and_a_second_commit_is_a_no_op(tmp_path):
    (tmp_path / "net.onnx").write_text("earlier")
    staging = Staging(tmp_path)
    staging.temp(tmp_path / "net.onnx").write_text("new")
    staging.commit()
    assert staging.pairs == []
    staging.commit()
    staging.abort()
    assert (tmp_path / "net.onnx").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["net.onnx"]


def test_staging_abort_empties_its_list(tmp_path):
    staging = Staging(tmp_path)
    tmp = staging.temp(tmp_path / "net.onnx")
    tmp.write_text("x")
    staging.abort()
    assert staging.pairs == [] and not tmp.exists()
    staging.commit()  # nothing left to rename
    assert list(tmp_path.iterdir()) == []


def test_entering_staging_removes_dead_processes_temps(tmp_path):
    stale = tmp_path / f".net.partial-{DEAD_PID}-0123abcd.onnx"
    stale.write_text("x")
    with Staging(tmp_path):
        assert not stale.exists()


@pytest.mark.parametrize("tag", ["partial", "pre", "qdq", "fp32"])
def test_remove_stale_temps_removes_dead_processes_temps_of_every_tag(tmp_path, tag):
    dead = tmp_path / f".subnet-fp32.{tag}-{DEAD_PID}-0123abcd.onnx"
    mine = tmp_path / f".subnet-fp32.{tag}-{os.getpid()}-0123abcd.onnx"
    dead.write_text("x")
    mine.write_text("x")
    assert remove_stale_temps(tmp_path) == [dead]
    assert not dead.exists() and mine.exists()


def test_remove_stale_temps_keeps_what_is_not_a_temp(tmp_path):
    names = [
        f"net.partial-{DEAD_PID}-0123abcd.onnx",  # not hidden
        f".net.other-{DEAD_PID}-0123abcd.onnx",  # unknown tag
        f".net.partial-{DEAD_PID}-0123abcX.onnx",  # not 8 hex digits
        f".net.partial-x{DEAD_PID}-0123abcd.onnx",  # no pid
        f"..partial-{DEAD_PID}-0123abcd.onnx",  # nothing before the tag
        "net.onnx",
    ]
    for name in names:
        (tmp_path / name).write_text("x")
    assert remove_stale_temps(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)


def test_remove_stale_temps_of_a_missing_folder_or_a_file_is_empty(tmp_path):
    assert remove_stale_temps(tmp_path / "missing") == []
    (tmp_path / "file").write_text("x")
    assert remove_stale_temps(tmp_path / "file") == []


def test_a_temp_name_from_this_process_is_recognised_as_a_temp(tmp_path, monkeypatch):
    name = temp_name(tmp_path / "net.onnx", "qdq")
    name.write_text("x")
    assert remove_stale_temps(tmp_path) == []  # alive: this process
    monkeypatch.setattr(staging_module.os, "getpid", lambda: DEAD_PID - 1)
    monkeypatch.setattr(staging_module.os, "kill", _raise(ProcessLookupError))
    assert remove_stale_temps(tmp_path) == [name]


def _raise(kind):
    def kill(pid, signal):
        assert signal == 0
        raise kind(pid)

    return kill


def test_alive_asks_the_os_and_counts_unsignallable_processes_as_alive(monkeypatch):
    assert staging_module._alive(os.getpid()) is True
    assert staging_module._alive(DEAD_PID) is False
    monkeypatch.setattr(staging_module.os, "kill", _raise(PermissionError))
    assert staging_module._alive(DEAD_PID) is True
    monkeypatch.setattr(staging_module.os, "kill", _raise(ProcessLookupError))
    assert staging_module._alive(DEAD_PID) is False
    assert staging_module._alive(os.getpid()) is True  # own pid: alive without asking
    monkeypatch.setattr(staging_module.os, "kill", lambda pid, signal: None)
    assert staging_module._alive(DEAD_PID) is True
