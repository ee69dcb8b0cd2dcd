"""A supernet trained on the user's own image folder, through the whole chain: scored on that
folder by default (found where training read it), priced by the shipped tables although its
classifier has other classes, its accuracy data refused up front when the folder is too small for
the repeats, exported from the supernet its search scored, and deployed. Also: a folder of one
class is refused, and the demo scored on a small folder holds out a fifth of it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from ofa_edge import get_space
from ofa_edge.cli import main
from ofa_edge.errors import OFAEdgeError
from ofa_edge.latency import table as table_module
from ofa_edge.latency.table import TableError, load_table
from ofa_edge.nn.checkpoint import save_supernet
from ofa_edge.nn.supernet import OFAMobileNetV3
from ofa_edge.search.accuracy_data import AccuracyDataError, collect_accuracy_data
from ofa_edge.search.efficiency import LatencyModel
from ofa_edge.train import SupernetScorer

TABLE = "onnxruntime-cpu-fp32-mbv3-fmnist"


def _folder(root: Path, classes: int = 4, train: int = 30, test: int = 5) -> Path:
    pil = pytest.importorskip("PIL.Image")
    for split, per_class in (("train", train), ("test", test)):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                pil.new("L", (28, 28), c * 50 + i).save(folder / f"{i:02d}.png")
    return root


def _supernet(path: Path, data: str, classes: int = 4, val_images: int = 20) -> Path:
    net = OFAMobileNetV3(get_space("mbv3-fmnist").with_classes(classes))
    save_supernet(net, path, {"data": data, "split": json.dumps({"seed": 0, "val_images": val_images})})
    return path


def test_a_supernet_is_scored_on_the_folder_it_was_trained_on_unless_told(tmp_path, monkeypatch):
    data = _folder(tmp_path / "shoes")
    supernet = _supernet(tmp_path / "s.safetensors", str(data))
    scorer = SupernetScorer.open(str(supernet), calibration_images=16)
    assert scorer.data_name == str(data) and scorer.images == 20 and len(scorer.net.space.resolutions) == 3
    assert scorer.data.scored.classes == ("class0", "class1", "class2", "class3")
    # recorded as a relative path: found from where training ran, one line from elsewhere
    relative = _supernet(tmp_path / "r.safetensors", "shoes")
    monkeypatch.chdir(tmp_path)
    assert SupernetScorer.open(str(relative), calibration_images=16).data_name == "shoes"
    monkeypatch.chdir(tmp_path / "shoes")
    with pytest.raises(OFAEdgeError, match="trained on the image folder 'shoes', not found from here: pass --data"):
        SupernetScorer.open(str(relative))
    # recorded where training read it (absolute): found from anywhere, before a same-named folder here
    located = tmp_path / "l.safetensors"
    net = OFAMobileNetV3(get_space("mbv3-fmnist").with_classes(4))
    save_supernet(net, located, {"data": "shoes", "data_location": str(data),
                                 "split": json.dumps({"seed": 0, "val_images": 20})})  # fmt: skip
    (tmp_path / "shoes" / "shoes").mkdir()  # a decoy of the same name, here
    assert SupernetScorer.open(str(located), calibration_images=16).data_name == str(data)
    # told otherwise, the given data wins (here: one without enough classes is still an error)
    with pytest.raises(OFAEdgeError, match="has 10 classes but this supernet's classifier has 4"):
        SupernetScorer.open(str(supernet), data="fashion-mnist")


def test_the_demo_scored_on_a_small_folder_holds_out_a_fifth_of_it(tmp_path):
    """The demo's stored split holds out 10,000 images; on a folder of 120 training images the
    scorer holds out a fifth of the folder instead (not 'validation size 10000 must be between 1
    and 119')."""
    data = _folder(tmp_path / "few")
    scorer = SupernetScorer.open("demo", data=str(data), calibration_images=16)
    assert scorer.images == 24 and len(scorer.train_part) == 96
    assert any("trained on fashion-mnist, not" in w for w in scorer.warnings)


def test_a_table_prices_other_classes_with_its_own_classifier_and_says_so(monkeypatch):
    table = load_table(TABLE)
    ten, four = get_space("mbv3-fmnist"), get_space("mbv3-fmnist").with_classes(4)
    arch = ten.max_arch(28)
    assert table.predict(four, arch) == table.predict(ten, arch)
    assert table.pricing_space(ten) is ten and table.classifier_note(ten) is None
    note = table.classifier_note(four)
    assert "10-class classifier, the supernet has 4 classes: predictions may be over by up to" in note
    bound_ms, share = table.classifier_gap(four)
    assert 0 < bound_ms and 0 < share < 0.05
    model = LatencyModel(table, four)
    assert model.notes == [note]
    # a classifier that would move the smallest subnet's price past the tolerance: one line
    with pytest.raises(TableError, match="prices a 10-class classifier; this supernet has 1000 classes"):
        LatencyModel(table, ten.with_classes(1000))
    # fewer classes err on the safe side (the table's classifier is the larger), whatever the share
    monkeypatch.setattr(table_module, "CLASSIFIER_TOLERANCE", 0.001)
    assert table.pricing_space(four) is not four
    with pytest.raises(TableError, match="this supernet has 11 classes"):
        table.check_space(ten.with_classes(11))
    # any other difference stays an error
    with pytest.raises(TableError, match="differs in: in_channels"):
        table.check_space(get_space("mbv3-fmnist").__class__(**{**ten.__dict__, "in_channels": 3}))


def test_repeats_that_need_more_calibration_images_than_the_folder_holds_fail_before_measuring(tmp_path):
    data = _folder(tmp_path / "tiny", train=10)
    supernet = _supernet(tmp_path / "s.safetensors", str(data), val_images=8)
    scorer = SupernetScorer.open(str(supernet), calibration_images=2000)  # 32 training images, 32 calibrate
    out = tmp_path / "acc.jsonl"
    with pytest.raises(AccuracyDataError, match="holds 32: pass --calibration-images 16"):
        next(collect_accuracy_data(scorer, out, samples=2, repeats=1))
    assert not out.exists()
    scorer.use_calibration_subset(0, 16)
    records = list(collect_accuracy_data(scorer, out, samples=2, repeats=1))
    assert [r["calibration_subset"] for r in records][-1] == 1 and len(records) == 24 + 2 + 1


def test_a_folder_of_one_class_is_refused_before_any_file_is_written(tmp_path, capsys):
    data = _folder(tmp_path / "one", classes=1, train=4, test=1)
    assert main(["train", "--data", str(data), "--schedule", "quick", "--out", str(tmp_path / "run")]) == 2
    assert "has 1 class (class0): a classifier needs at least 2" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_train_on_a_folder_then_predictor_specialize_and_deploy_without_naming_the_data(
    capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # specialize writes specialized/ here, export reads it
    data = _folder(tmp_path / "data", train=40, test=6)
    run, acc, pred = tmp_path / "run", tmp_path / "acc.jsonl", tmp_path / "pred.safetensors"
    assert main(["train", "--schedule", "quick", "--data", str(data), "--out", str(run), "--threads", "1"]) == 0
    supernet = str(run / "supernet.safetensors")
    capsys.readouterr()
    assert main(["predictor", "data", "--supernet", supernet, "--samples", "25", "--repeats", "2",
                 "--calibration-images", "32", "--threads", "1", "-o", str(acc)]) == 0  # fmt: skip
    assert main(["predictor", "train", "--data", str(acc), "-o", str(pred)]) == 2  # the demo's fingerprint
    assert "pass --supernet, the checkpoint `predictor data` scored" in capsys.readouterr().err
    assert main(["predictor", "train", "--data", str(acc), "--supernet", supernet, "-o", str(pred)]) == 0
    capsys.readouterr()
    out = tmp_path / "deploy"
    # No --supernet: the predictor records the file `predictor train` read.
    code = main(["deploy", "--predictor", str(pred), "--format", "onnx", "--no-int8", "-o", str(out), "-t", TABLE,
                 "--json"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (deployment,) = json.loads(captured.out)["deployments"]
    assert any("10-class classifier, the supernet has 4 classes" in n for n in deployment["notes"])
    (card_file,) = (out / TABLE).glob("*.card.json")
    card = json.loads(card_file.read_text())
    assert card["accuracy"]["data"] == str(data) and card["accuracy"]["images"] == 24
    assert os.path.getsize(out / TABLE / "onnx-fp32.onnx") > 0

    # specialize given only the predictor, then a bare export: the record names the supernet the
    # predictor was trained on, and export uses it (not the demo)
    assert main(["specialize", "--predictor", str(pred), "--budget", "0.6ms", "-t", TABLE, "--no-plot"]) == 0
    assert main(["export", "--format", "onnx", "--json"]) == 0
    card = json.loads(Path("exported/subnet-fp32.onnx.card.json").read_text())
    assert card["accuracy"]["data"] == str(data) and card["supernet"] == supernet
    # The demo's weights are not this search's subnet: one line instead of a file of the wrong network.
    shutil.rmtree("exported")
    capsys.readouterr()
    assert main(["export", "--format", "onnx", "--supernet", "demo"]) == 2
    assert "was searched on supernet" in capsys.readouterr().err and not Path("exported").exists()
    # The supernet file moved since: one line naming it and the fingerprint to look for.
    moved = run / "moved.safetensors"
    os.replace(supernet, moved)
    assert main(["export", "--format", "onnx"]) == 2
    message = capsys.readouterr().err
    assert f"searched on supernet {supernet}, which is not there now: pass --supernet" in message
    assert not Path("exported").exists()
    assert main(["export", "--format", "onnx", "--supernet", str(moved), "--json"]) == 0
