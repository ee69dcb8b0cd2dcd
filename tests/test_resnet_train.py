"""Progressive shrinking of the OFA-ResNet family: the phase plan (full net, depth, expand ratio,
width), channel sorting before the expand phases, training runs that write a supernet the loader
reads back as an OFAResNet, and resuming a stopped run.

Training runs use resnet50-fmnist with a quarter of its widths, so they take seconds; the real
space runs once, through the command line, in a slow test.
"""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ofa_edge import OFAEdgeError, get_space
from ofa_edge.cli import main
from ofa_edge.nn.checkpoint import load_supernet, read_metadata
from ofa_edge.nn.resnet import OFAResNet
from ofa_edge.space.resnet import ResNetSpace
from ofa_edge.space.space import corner_archs
from ofa_edge.train.data import Normalization
from ofa_edge.train.elastic import elastic_family
from ofa_edge.train.schedule import Schedule, get_schedule
from ofa_edge.train.schedule_file import schedule_from_dict
from ofa_edge.train.trainer import TrainConfig, TrainData, Trainer, final_report
from tests.test_train import synthetic_dataset

RESNET = "resnet50-fmnist"
PHASES = ["full", "depth-1", "depth-2", "expand-1", "expand-2", "width-1", "width-2"]


def tiny_space() -> ResNetSpace:
    """resnet50-fmnist with half its stem and a quarter of its stage widths: the same choices."""
    space = get_space(RESNET)
    assert isinstance(space, ResNetSpace)
    return replace(space, name="resnet-tiny", base_stem_width=8, base_stage_widths=(16, 32, 64, 128))


def tiny_quick() -> Schedule:
    """The quick preset of the ResNet family, 2 steps of 8 images per phase."""
    quick = get_schedule("quick", "resnet")
    return replace(quick, batch_size=8, images_per_epoch=16, epoch_val_images=16, epoch_calibration_images=16)


def make_trainer(out: Path, schedule: Schedule | None = None, **kwargs) -> Trainer:
    schedule = schedule or tiny_quick()
    data = TrainData.from_dataset(synthetic_dataset(), schedule, seed=0, flip=True)
    config = TrainConfig(tiny_space(), schedule, out, data_name="synthetic", seed=0, checkpoint_every=3,
                         validate_every_epoch=kwargs.pop("validate_every_epoch", False))  # fmt: skip
    return Trainer(config, data, **kwargs)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: on a shared 2-core machine two threads wait on each other for seconds a step."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------ the plan
def drawn_values(phase, space, steps: int = 60) -> tuple[set, set, set]:
    """Every depth, expand ratio and width index the phase's subnets take over ``steps`` steps."""
    archs = [a for step in range(steps) for a in phase.step_archs(space, random.Random(step), resolution=24)]
    assert all(space.validate(a) == a and a.r == 24 for a in archs)
    return {v for a in archs for v in a.d}, {v for a in archs for v in a.e}, {v for a in archs for v in a.w}


def test_the_quick_preset_shrinks_depth_then_expand_ratio_then_width():
    space = get_space(RESNET)
    schedule = get_schedule("quick", space.family)
    schedule.check_space(space)
    phases = {p.name: p for p in schedule.phases}
    assert list(phases) == PHASES
    every_d, every_e = {0, 1, 2}, {0.2, 0.25, 0.35}
    assert drawn_values(phases["full"], space) == ({2}, {0.35}, {2})
    assert drawn_values(phases["depth-1"], space) == ({1, 2}, {0.35}, {2})  # max expand, max width
    assert drawn_values(phases["depth-2"], space) == (every_d, {0.35}, {2})
    assert drawn_values(phases["expand-1"], space) == (every_d, {0.25, 0.35}, {2})  # max width
    assert drawn_values(phases["expand-2"], space) == (every_d, every_e, {2})
    assert drawn_values(phases["width-1"], space) == (every_d, every_e, {1, 2})
    assert drawn_values(phases["width-2"], space) == (every_d, every_e, {0, 1, 2})
    assert [p.subnets_per_step for p in phases.values()] == [1, 2, 2, 4, 4, 4, 4]
    assert phases["full"].full_net and not any(p.full_net for p in schedule.phases[1:])
    # Middle channels are sorted before each expand phase, and once more (within each expand
    # ratio's channels) before the first width phase, as the reference does.
    sorts = {p.name: p.trained_expands for p in schedule.phases if p.sort_channels}
    assert sorts == {"expand-1": (0.35,), "expand-2": (0.25, 0.35), "width-1": (0.2, 0.25, 0.35)}


def test_the_stem_conv_is_drawn_from_the_phases_largest_and_smallest_depth():
    space = get_space(RESNET)
    depth_2 = get_schedule("quick", "resnet").phases[2]
    stems = {a.d[0] for step in range(60) for a in depth_2.step_archs(space, random.Random(step), 28)}
    assert stems == {0, 2}


def test_every_preset_has_the_family_phases_and_mbconv_presets_are_unchanged():
    for name in ("reference", "fmnist", "quick"):
        assert [p.name for p in get_schedule(name, "resnet").phases] == PHASES
        mbconv = get_schedule(name)
        assert get_schedule(name, "mbv3") == mbconv == get_schedule(name, "proxyless")
        assert "width_choices" not in json.dumps(mbconv.to_dict())  # records of earlier runs stay the same
    assert "width_choices" in json.dumps(get_schedule("quick", "resnet").to_dict())


def test_the_corners_of_a_phase_span_its_depth_expand_and_width():
    space, family = get_space(RESNET), elastic_family("resnet")
    corners = family.corners(family.phase_space(space, None), 20)
    assert corners == corner_archs(space, 20)  # every choice: the space's own corners
    assert corners["d2-e0.35-w1.0"] == space.max_arch(20) and corners["d0-e0.2-w0.65"] == space.min_arch(20)
    width_1 = get_schedule("quick", "resnet").phases[5]
    narrower = family.corners(width_1.sampling_space(space), 20)
    assert set(narrower) == {f"d{d}-e{e}-w{w}" for d in (0, 2) for e in (0.2, 0.35) for w in (0.8, 1.0)}


def test_the_resnet_quick_preset_scales_its_rates_to_its_batch():
    mbconv, resnet = get_schedule("quick"), get_schedule("quick", "resnet")
    assert mbconv.phases[0].lr == get_schedule("fmnist").phases[0].lr == 0.1
    assert resnet.phases[0].lr == pytest.approx(0.1 * 16 / 128)


# ------------------------------------------------------------------ schedule files
RESNET_PHASES = [
    {"name": "full", "epochs": 1, "lr": 0.1, "full_net": True},
    {"name": "e", "epochs": 1, "lr": 0.02, "expand_choices": [0.25, 0.35], "width_choices": [1],
     "subnets_per_step": 2, "sort_channels": True, "trained_expands": [0.35]},
]  # fmt: skip


def test_a_resnet_schedule_file_names_expand_fractions_and_width_multipliers():
    schedule = schedule_from_dict({"name": "r", "phases": RESNET_PHASES})
    phase = schedule.phases[1]
    assert phase.expand_choices == (0.25, 0.35) and phase.width_choices == (1.0,)
    schedule.check_space(get_space(RESNET))
    mbconv = schedule_from_dict({"phases": [{"name": "a", "epochs": 1, "lr": 0.1, "full_net": True},
                                            {"name": "b", "epochs": 1, "lr": 0.1, "expand_choices": [4]}]})  # fmt: skip
    assert all(type(v) is int for v in mbconv.phases[1].expand_choices)  # integers stay integers


@pytest.mark.parametrize(
    "space, change, message",
    [
        (RESNET, {"kernel_choices": [3]}, "phase 'e': kernel_choices: space resnet50-fmnist has no elastic kernel"),
        (RESNET, {"width_choices": [0.5]}, "phase 'e': width_choices [0.5] is not a non-empty subset of [0.65, 0.8"),
        (RESNET, {"expand_choices": [0.3]}, "phase 'e': expand_choices [0.3] is not a non-empty subset"),
        (RESNET, {"trained_expands": [0.3]}, "phase 'e': trained_expands [0.3] are not expand choices"),
        ("mbv3-fmnist", {"expand_choices": [6], "trained_expands": [6]},
         "phase 'e': width_choices: space mbv3-fmnist has no elastic width multiplier"),
        ("mbv3-fmnist", {"expand_choices": [0.25], "width_choices": None},
         "phase 'e': expand_choices must be integers in space mbv3-fmnist"),
    ],
)  # fmt: skip
def test_a_choice_the_space_lacks_is_one_line_naming_phase_and_field(space, change, message):
    phases = [RESNET_PHASES[0], {k: v for k, v in {**RESNET_PHASES[1], **change}.items() if v is not None}]
    schedule = schedule_from_dict({"name": "r", "phases": phases})
    with pytest.raises(OFAEdgeError) as caught:
        schedule.check_space(get_space(space))
    assert message in str(caught.value) and "\n" not in str(caught.value)


# ------------------------------------------------------------------ training runs
class Stop(Exception):
    pass


def stop_after(steps: int):
    seen = [0]

    def on_event(kind, info):
        if kind == "step":
            seen[0] += 1
            if seen[0] > steps:
                raise Stop

    return on_event


def spy_on_sorting(trainer: Trainer) -> list[dict]:
    """Record each channel sort: where the run stood, the tiers, and the largest subnet's output and
    middle-channel importance around it."""
    calls, net, original = [], trainer.net, trainer.net.sort_channels
    images = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))

    def sort_channels(tiers):
        net.eval()
        net.set_active(net.space.max_arch())
        before, weight = net(images), net.blocks[0].conv3.conv.weight.clone()
        original(tiers)
        after, importance = net(images), net.blocks[0].conv3.conv.weight.abs().sum(dim=(0, 2, 3))
        net.train()
        phase = trainer.config.schedule.phases[trainer.position.phase].name
        calls.append({"phase": phase, "batch": trainer.position.batch, "tiers": tuple(tiers), "before": before,
                      "after": after, "moved": not torch.equal(weight, net.blocks[0].conv3.conv.weight),
                      "importance": importance})  # fmt: skip

    net.sort_channels = sort_channels
    return calls


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("resnet") / "run"
    trainer = make_trainer(out, validate_every_epoch=True)
    calls = spy_on_sorting(trainer)
    summary = trainer.run()
    assert summary["steps"] == 14 and not summary["resumed"]
    return out, calls


def test_a_run_writes_an_ofa_resnet_whose_corners_evaluate(finished_run):
    out, _ = finished_run
    net = load_supernet(out / "supernet.safetensors")
    assert isinstance(net, OFAResNet) and net.space == tiny_space()
    assert [json.loads(line)["phase"] for line in (out / "log.jsonl").read_text().splitlines()] == PHASES
    assert all((out / f"phase-{name}.safetensors").is_file() for name in PHASES)
    assert read_metadata(out / "supernet.safetensors")["schedule"] == "quick"
    val = json.loads((out / "log.jsonl").read_text().splitlines()[-1])["val_top1"]
    assert set(val) == set(corner_archs(net.space, 28))
    data = synthetic_dataset(n=48, seed=1)
    report = final_report(net, data, data, Normalization.of(data))
    assert set(report) == {"28", "20"} and all(len(r) == 8 for r in report.values())
    assert all(0 <= acc <= 100 for r in report.values() for acc in r.values())


def test_channels_are_sorted_before_each_expand_phase_keeping_the_largest_subnet(finished_run):
    _, calls = finished_run
    assert [(c["phase"], c["batch"], c["tiers"]) for c in calls] == [
        ("expand-1", 0, (0.35,)), ("expand-2", 0, (0.25, 0.35)), ("width-1", 0, (0.2, 0.25, 0.35))]  # fmt: skip
    for call in calls:
        torch.testing.assert_close(call["after"], call["before"], rtol=1e-4, atol=1e-5)
    first = calls[0]
    assert first["moved"]  # the trained full net's channels were not already in order
    # One tier before the first expand phase: conv2's outputs in falling importance.
    assert torch.all(first["importance"][:-1] >= first["importance"][1:])


def position_of(out: Path) -> tuple[int, int, int]:
    position = json.loads(read_metadata(out / "checkpoint.safetensors")["position"])
    return position["phase"], position["batch"], position["step"]


def test_a_stopped_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path):
    straight = tmp_path / "straight"
    make_trainer(straight).run()
    stopped = tmp_path / "stopped"
    # 2 steps per phase, checkpoints every 3 steps and at each phase's end.
    with pytest.raises(Stop):  # in expand-1: the resumed run sorts the channels before its first step
        make_trainer(stopped, on_event=stop_after(7)).run()
    assert position_of(stopped) == (3, 0, 6)
    with pytest.raises(Stop):  # in expand-2, after its sort: the resumed run does not sort again
        make_trainer(stopped, on_event=stop_after(3)).run()
    assert position_of(stopped) == (4, 1, 9)
    assert make_trainer(stopped).run()["resumed"]
    a = load_supernet(straight / "supernet.safetensors").state_dict()
    b = load_supernet(stopped / "supernet.safetensors").state_dict()
    assert a.keys() == b.keys()
    assert not [k for k in a if not torch.equal(a[k], b[k])]


# ------------------------------------------------------------------ the command
def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


SMALL_RESNET_RUN = """# two ResNet phases on a few images
batch_size: 4
images_per_epoch: 8
val_images: 16
test_images: 8
bn_calibration_images: 8
epoch_val_images: 8
epoch_calibration_images: 8
phases:
  - {name: full, epochs: 1, lr: 0.1, full_net: true}
  - {name: depth-expand, epochs: 1, lr: 0.02, subnets_per_step: 2, expand_choices: [0.25, 0.35],
     width_choices: [1.0], sort_channels: true, trained_expands: [0.35]}
"""


def test_the_train_command_trains_the_resnet_space(capsys, tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 80), ("t10k", 8)):
        labels = rng.integers(0, 10, n)
        images = (rng.random((n, 28, 28)) * 80 + labels[:, None, None] * 17).astype(np.uint8)
        (tmp_path / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
        (tmp_path / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    (tmp_path / "small.yaml").write_text(SMALL_RESNET_RUN)
    out = tmp_path / "run"
    code = main(["train", "--space", RESNET, "--schedule", str(tmp_path / "small.yaml"), "--data", "mnist",
                 "--data-dir", str(tmp_path), "--out", str(out), "--threads", "1", "--json"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["steps"] == 4 and set(summary["test_top1"]) == {"28", "20"}
    assert "d2-e0.35-w1.0" in summary["test_top1"]["28"]
    assert isinstance(load_supernet(out / "supernet.safetensors"), OFAResNet)
