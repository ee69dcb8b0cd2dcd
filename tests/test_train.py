import importlib.util
import itertools
import json
import math
import os
import random
import re
import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path

import pytest
import torch

from ofa_edge import OFAEdgeError, get_space
from ofa_edge.nn.bn_calibration import recalibrate_bn
from ofa_edge.nn.checkpoint import load_supernet, read_metadata, save_supernet
from ofa_edge.nn.supernet import OFAMobileNetV3
from ofa_edge.space.space import SearchSpace, corner_archs
from ofa_edge.train.data import ImageDataset
from ofa_edge.train.schedule import SCHEDULE_NAMES, Phase, Schedule, get_schedule, resolve_schedule
from ofa_edge.train.schedule_file import load_schedule_file, schedule_from_dict
from ofa_edge.train.trainer import (
    TrainConfig,
    TrainData,
    Trainer,
    distillation_loss,
    learning_rate,
    make_optimizer,
    soft_cross_entropy,
)

ROOT = Path(__file__).resolve().parents[1]
DEMO_RECIPES = sorted((ROOT / "recipes" / "demo").glob("*.yaml"))
EVERY_CHOICE = {"kernel_choices": (3, 5, 7), "expand_choices": (3, 4, 6), "depth_choices": (2, 3, 4)}


def synthetic_dataset(n: int = 96, seed: int = 0, classes: int = 10) -> ImageDataset:
    """Class-dependent blobs, so that a few steps of training already move the accuracy."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    base = torch.rand(classes, 1, 28, 28, generator=g)
    noise = torch.rand(n, 1, 28, 28, generator=g) * 0.5
    images = ((base[labels] * 0.7 + noise) * 255).clamp(0, 255).to(torch.uint8)
    return ImageDataset("synthetic", images, labels, tuple(str(i) for i in range(classes)))


def quick_extension(full_epochs: int = 1, sandwich: bool = False, subnets: int = 4, corners: int = 0,
                    **schedule_fields) -> Schedule:  # fmt: skip
    """A CI-sized schedule that trains an already trained supernet further, as the demo's later
    stages do: an optional full-net phase, then one epoch of every choice."""
    every = Phase("all", 1, 0.02, subnets_per_step=subnets, sandwich=sandwich, corners=corners, **EVERY_CHOICE)
    phases = ((Phase("full", full_epochs, 0.02, full_net=True),) if full_epochs else ()) + (every,)
    return replace(get_schedule("quick"), name="quick-more", phases=phases, **schedule_fields)


def make_trainer(
    out: Path, schedule: str | Schedule = "quick", space: str | SearchSpace = "mbv3-fmnist", classes: int = 10,
    **kwargs
) -> Trainer:  # fmt: skip
    """A trainer on synthetic data; ``init_from``, ``teacher`` and ``teacher_other_resolutions``
    set those fields of the schedule."""
    sources = {k: kwargs.pop(k) for k in ("init_from", "teacher", "teacher_other_resolutions") if k in kwargs}
    sched = replace(resolve_schedule(schedule), **sources)
    data = TrainData.from_dataset(synthetic_dataset(classes=classes), sched, seed=0, flip=True)
    space = get_space(space) if isinstance(space, str) else space
    config = TrainConfig(space, sched, out, data_name="synthetic", seed=0,
                         checkpoint_every=kwargs.pop("checkpoint_every", 3), validate_every_epoch=False)  # fmt: skip
    return Trainer(config, data, **kwargs)


def demo_recipe(stem: str) -> Schedule:
    return load_schedule_file(ROOT / "recipes" / "demo" / f"{stem}.yaml")


# ------------------------------------------------------------------ schedules
def test_exactly_three_presets():
    assert SCHEDULE_NAMES == ("reference", "fmnist", "quick")
    for name in SCHEDULE_NAMES:
        assert get_schedule(name).name == name


def test_fmnist_schedule_phases_enable_the_right_choices():
    space = get_space("mbv3-fmnist")
    phases = {p.name: p for p in get_schedule("fmnist").phases}
    assert list(phases) == ["full", "kernel", "depth-1", "depth-2", "expand-1", "expand-2"]

    def choices(name):
        s = phases[name].sampling_space(space)
        return s.kernel_choices, s.expand_choices, s.depth_choices

    assert choices("full") == ((7,), (6,), (4,))
    assert choices("kernel") == ((3, 5, 7), (6,), (4,))
    assert choices("depth-1") == ((3, 5, 7), (6,), (3, 4))
    assert choices("depth-2") == ((3, 5, 7), (6,), (2, 3, 4))
    assert choices("expand-1") == ((3, 5, 7), (4, 6), (2, 3, 4))
    assert choices("expand-2") == ((3, 5, 7), (3, 4, 6), (2, 3, 4))
    assert [p.subnets_per_step for p in phases.values()] == [1, 1, 2, 2, 4, 4]
    assert phases["expand-1"].sort_channels and phases["expand-1"].trained_expands == (6,)
    assert phases["expand-2"].sort_channels and phases["expand-2"].trained_expands == (4, 6)
    assert not any(p.sort_channels for p in list(phases.values())[:4])


def load_bench(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_no_ps_ablation_differs_from_its_preset_only_in_choices():
    without_progression = load_bench("ps_ablation").without_progression
    space = get_space("mbv3-fmnist")
    for preset in ("fmnist", "quick"):
        ps = get_schedule(preset)
        no_ps = without_progression(ps)
        assert ps.total_epochs == no_ps.total_epochs and no_ps.name == f"{preset}-no-ps"
        for a, b in zip(ps.phases, no_ps.phases, strict=True):
            assert (a.epochs, a.lr, a.subnets_per_step, a.full_net) == (b.epochs, b.lr, b.subnets_per_step, b.full_net)
            if not b.full_net:
                assert b.sampling_space(space) == space and not b.sort_channels
        assert no_ps.phases[1].sampling_space(space) != ps.phases[1].sampling_space(space)


def test_sandwich_phase_trains_the_largest_and_smallest_subnet_at_every_step():
    space = get_space("mbv3-fmnist")
    full, last = demo_recipe("03-sandwich").phases
    assert last.sandwich and last.subnets_per_step == 4
    for step in range(3):
        archs = last.step_archs(space, random.Random(step), resolution=20)
        assert archs[:2] == [space.max_arch(20), space.min_arch(20)]
        assert len(archs) == 4 and all(a.r == 20 for a in archs)
        assert all(a not in (space.max_arch(20), space.min_arch(20)) for a in archs[2:])
    assert full.step_archs(space, random.Random(0), resolution=24) == [space.max_arch(24)]
    # Without the rule every subnet of the step is drawn at random.
    plain = demo_recipe("02-extend").phases[1]
    drawn = plain.step_archs(space, random.Random(0), resolution=28)
    assert len(drawn) == 4 and space.max_arch(28) not in drawn and space.min_arch(28) not in drawn
    with pytest.raises(OFAEdgeError, match="sandwich needs subnets_per_step of at least 2"):
        replace(last, subnets_per_step=1)


def test_corners_phase_trains_other_corners_beside_the_sandwich():
    space = get_space("mbv3-fmnist")
    (phase,) = demo_recipe("06-corners").phases
    assert phase.sandwich and phase.corners == 2 and phase.subnets_per_step == 5
    ends = [space.max_arch(28), space.min_arch(28)]
    others = [a for a in corner_archs(space, 28).values() if a not in ends]
    assert len(others) == 6
    seen = set()
    for step in range(40):
        archs = phase.step_archs(space, random.Random(step), resolution=28)
        assert archs[:2] == ends and len(archs) == 5
        assert archs[2] != archs[3] and all(a in others for a in archs[2:4])
        assert archs[4] not in corner_archs(space, 28).values()  # drawn per layer
        seen.update(archs[2:4])
    assert seen == set(others)  # every other corner is trained, the kernel-3 ones included
    with pytest.raises(OFAEdgeError, match="do not fit"):
        replace(phase, corners=4)
    # 7 fit in 9 subnets per step, but the space has only 6 corners besides the two ends.
    schedule = replace(get_schedule("quick"), phases=(*get_schedule("quick").phases, replace(
        phase, name="more", corners=7, subnets_per_step=9)))  # fmt: skip
    with pytest.raises(OFAEdgeError, match="phase 'more': 7 corners asked for; its choices have 6 more"):
        schedule.check_space(space)


def test_the_fingerprint_covers_every_field():
    fmnist = get_schedule("fmnist")
    # Run folders store it: a change refuses to resume the runs of earlier versions.
    assert fmnist.fingerprint() == "7e4b0c002762ef57"
    changed = [replace(fmnist, init_from="demo"), replace(fmnist, teacher="t.safetensors"),
               replace(fmnist, batch_size=64), replace(fmnist, name="other"),
               replace(fmnist, phases=(*fmnist.phases[:-1], replace(fmnist.phases[-1], sandwich=True))),
               replace(fmnist, phases=(*fmnist.phases[:-1], replace(fmnist.phases[-1], corners=1)))]  # fmt: skip
    prints = {s.fingerprint() for s in changed}
    assert len(prints) == len(changed) and fmnist.fingerprint() not in prints
    assert replace(fmnist).fingerprint() == fmnist.fingerprint()
    assert set(fmnist.to_dict()) == {f.name for f in fields(Schedule)}


def test_reference_schedule_matches_the_paper():
    phases = get_schedule("reference").phases
    assert [p.epochs for p in phases] == [180, 120, 25, 120, 25, 120]
    assert get_schedule("reference").batch_size == 64


def test_unknown_and_former_schedules():
    with pytest.raises(OFAEdgeError, match="unknown schedule 'fast'.*reference, fmnist, quick.*yaml"):
        get_schedule("fast")
    with pytest.raises(OFAEdgeError, match="'fmnist-corners' is no longer a preset: it is recipes/demo/06-corners"):
        get_schedule("fmnist-corners")
    with pytest.raises(OFAEdgeError, match="no-ps' is no longer a preset: it is bench/ps_ablation.py"):
        resolve_schedule("quick-no-ps")
    from ofa_edge.train.schedule import FORMER_PRESETS

    for name, place in FORMER_PRESETS.items():  # every pointer leads to a file that is there
        assert (ROOT / place.split()[0]).is_file(), (name, place)


# --------------------------------------------------------------- schedule files
QUICK_YAML = """
# a CI-sized schedule
batch_size: 16
images_per_epoch: 64
val_images: 200
test_images: 200
bn_calibration_images: 64
epoch_val_images: 64
epoch_calibration_images: 32
phases:
  - {name: full, epochs: 1, lr: 0.1, full_net: true}
  - name: all
    epochs: 1
    lr: 2e-2          # YAML 1.1 reads this as text; it is taken as the number
    subnets_per_step: 3
    sandwich: true
    corners: 1
"""


def test_a_yaml_and_a_toml_file_give_the_same_schedule(tmp_path):
    (tmp_path / "mine.yaml").write_text(QUICK_YAML)
    toml = tmp_path / "mine.toml"
    toml.write_text('batch_size = 16\nimages_per_epoch = 64\nval_images = 200\ntest_images = 200\n'
                    'bn_calibration_images = 64\nepoch_val_images = 64\nepoch_calibration_images = 32\n'
                    '[[phases]]\nname = "full"\nepochs = 1\nlr = 0.1\nfull_net = true\n'
                    '[[phases]]\nname = "all"\nepochs = 1\nlr = 0.02\nsubnets_per_step = 3\n'
                    'sandwich = true\ncorners = 1\n')  # fmt: skip
    from_yaml = resolve_schedule(str(tmp_path / "mine.yaml"))
    assert from_yaml == load_schedule_file(toml)
    assert from_yaml.name == "mine" and from_yaml.phases[1].lr == 0.02 and from_yaml.phases[1].corners == 1
    assert from_yaml.phases[1].kernel_choices is None  # left out: every choice of the space


@pytest.mark.parametrize(
    "record, message",
    [
        ({"phases": [{"name": "a", "epochs": 1, "lr": 0.1, "full_net": True}], "batchsize": 8},
         "unknown field 'batchsize' (did you mean 'batch_size'? allowed: name, phases, batch_size,"),
        ({"phases": [{"name": "a", "epoch": 1, "lr": 0.1, "full_net": True}]},
         "phase 1 ('a'): unknown field 'epoch' (did you mean 'epochs'? allowed: name, epochs, lr,"),
        ({"phases": [{"name": "a", "epochs": 1, "lr": 0.1, "full_net": True}, {"name": "b", "epochs": "two", "lr": 1}]},
         "phase 2 ('b'): epochs must be an integer, got 'two'"),
        ({"phases": [{"name": "a", "epochs": 1, "lr": 0.1, "full_net": "yes"}]},
         "phase 1 ('a'): full_net must be true or false, got 'yes'"),
        ({"phases": [{"name": "a", "epochs": 1, "lr": 0.1, "full_net": True, "kernel_choices": 3}]},
         "phase 1 ('a'): kernel_choices must be a list of integers or null, got 3"),
        ({"phases": [{"name": "a", "epochs": 1, "lr": -0.1, "full_net": True}]},
         "phase 1 ('a'): lr must be greater than 0, got -0.1"),
        ({"phases": [{"name": "a", "epochs": 1, "lr": 0.1}, {"name": "b", "epochs": 1, "lr": 0.1, "sandwich": True}]},
         "phase 2 ('b'): sandwich needs subnets_per_step of at least 2, got 1"),
        ({"phases": [{"name": "a", "lr": 0.1}]}, "phase 1 ('a'): missing field 'epochs'"),
        ({"phases": []}, "phases must be a non-empty list"),
        ({"batch_size": 16}, "missing field 'phases'"),
        ({"phases": [{"name": "a", "epochs": 1, "lr": 0.1, "full_net": True}], "batch_size": 0},
         "batch_size must be at least 1, got 0"),
        ({"phases": [{"name": "a", "epochs": 1, "lr": 0.1, "subnets_per_step": 4}]},
         "has no full-net phase to train a teacher from"),
        ({"phases": [{"name": "a", "epochs": 1, "lr": 0.1, "full_net": True}], "teacher": "init_from"},
         "teacher: init_from needs init_from"),
        ({"phases": [{"name": "a", "epochs": 1, "lr": 0.1, "full_net": True}], "teacher_other_resolutions": "near"},
         "teacher_other_resolutions must be resize or init_from, got 'near'"),
    ],
)  # fmt: skip
def test_each_mistake_in_a_schedule_is_one_line_naming_the_field(record, message):
    with pytest.raises(OFAEdgeError) as caught:
        schedule_from_dict(record)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_file_that_is_no_schedule_is_one_line(tmp_path):
    cases = {"broken.yaml": "phases: [{name: a", "list.yaml": "- 1\n- 2\n", "broken.toml": "phases = [",
             "typo.yaml": "phases: [{name: a, epochs: 1, lr: 0.1, full_net: true}]\nbatch: 8\n"}  # fmt: skip
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
    expected = {"broken.yaml": "not valid YAML (line 1", "list.yaml": "holds fields such as name and phases, got list",
                "broken.toml": "not valid TOML", "typo.yaml": "unknown field 'batch'"}  # fmt: skip
    for name, fragment in expected.items():
        with pytest.raises(OFAEdgeError, match=f"^{re.escape(str(tmp_path / name))}: .*{re.escape(fragment)}"):
            load_schedule_file(tmp_path / name)
    with pytest.raises(OFAEdgeError, match="schedule file .*none.yaml not found"):
        resolve_schedule(str(tmp_path / "none.yaml"))


def test_a_schedule_asking_for_choices_the_space_lacks_names_the_phase(tmp_path):
    bad = schedule_from_dict({"name": "mine", "phases": [
        {"name": "full", "epochs": 1, "lr": 0.1, "full_net": True},
        {"name": "k", "epochs": 1, "lr": 0.1, "kernel_choices": [3, 9]}]})  # fmt: skip
    with pytest.raises(OFAEdgeError, match=r"schedule mine, phase 'k': kernel_choices \[3, 9\] is not"):
        make_trainer(tmp_path / "run", schedule=bad)
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------- recipes
def test_the_demo_recipes_chain_into_the_shipped_demo():
    stems = [p.stem for p in DEMO_RECIPES]
    assert stems == ["01-fmnist", "02-extend", "03-sandwich", "04-sandwich", "05-distil", "06-corners", "07-corners"]
    recipes = [load_schedule_file(p) for p in DEMO_RECIPES]
    # Each stage starts from the one before (the run folders scripts/train_demo.sh makes).
    assert recipes[0].init_from is None
    assert [r.init_from for r in recipes[1:]] == [f"{stem}/supernet.safetensors" for stem in stems[:-1]]
    # The shipped weights' metadata lists these files, as the last stage's weights would.
    assert read_metadata("demo")["schedule"] == "+".join(r.name for r in recipes)
    assert [r.name for r in recipes] == [f"recipes/demo/{p.name}" for p in DEMO_RECIPES]
    assert replace(recipes[0], name="fmnist") == get_schedule("fmnist")
    teachers = [(r.teacher, r.teacher_other_resolutions) for r in recipes]
    assert teachers == [(None, "resize")] * 4 + [
        ("alone/d4-e6-k7-s0/supernet.safetensors", "init_from"), ("init_from", "resize"),
        ("alone/d4-e6-k3-s0/supernet.safetensors", "init_from")]  # fmt: skip
    # The shipped file's teacher record is that of the last stage: a one-resolution file, with
    # the init weights' largest subnet recalibrated at the other resolutions.
    assert read_metadata("demo")["teacher"].endswith("+init-recalibrated")


def test_every_recipe_is_a_valid_schedule_for_its_space():
    """Each recipe fits the space its own command line names (the demo space when it names none)."""
    recipes = sorted((ROOT / "recipes").rglob("*.yaml"))
    assert len(recipes) >= 8
    for path in recipes:
        text = path.read_text()
        named = re.search(r"--space (\S+)", text)
        schedule = load_schedule_file(path)
        schedule.check_space(get_space(named[1] if named else "mbv3-fmnist"))
        assert text.startswith("#"), f"{path} says what it does in a comment"


# --------------------------------------------------------------- loss and lr
def test_kd_loss_pulls_toward_the_teacher():
    torch.manual_seed(0)
    teacher_logits = torch.randn(8, 10)
    soft = torch.softmax(teacher_logits, dim=1)
    labels = torch.randint(0, 10, (8,))
    one_hot = torch.nn.functional.one_hot(labels, 10).float()
    logits = torch.randn(8, 10)
    # against one-hot targets the soft CE is the ordinary CE
    torch.testing.assert_close(soft_cross_entropy(logits, one_hot), torch.nn.functional.cross_entropy(logits, labels))
    # matching the teacher minimises the KD term (Gibbs' inequality)
    assert soft_cross_entropy(teacher_logits, soft) < soft_cross_entropy(logits, soft)
    plain = distillation_loss(logits, labels, None, 0.1, 1.0)
    torch.testing.assert_close(plain, torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1))
    with_kd = distillation_loss(logits, labels, soft, 0.1, 0.5)
    torch.testing.assert_close(with_kd, plain + 0.5 * soft_cross_entropy(logits, soft))


def test_learning_rate_warms_up_then_follows_a_cosine():
    phase = get_schedule("fmnist").phases[0]  # lr 0.1, warm-up 0.5 epoch
    steps = 100
    assert learning_rate(phase, 0, steps) == pytest.approx(0.1 / 50)
    assert learning_rate(phase, 49, steps) == pytest.approx(0.1)
    assert learning_rate(phase, 50, steps) == pytest.approx(0.1)
    total = phase.epochs * steps
    middle = 50 + (total - 50) // 2
    assert learning_rate(phase, middle, steps) == pytest.approx(0.05, rel=0.01)
    assert learning_rate(phase, total - 1, steps) < 1e-4
    values = [learning_rate(phase, s, steps) for s in range(50, total)]
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert not any(math.isnan(v) for v in values)


def test_no_weight_decay_on_bn_and_bias():
    from ofa_edge import OFAMobileNetV3

    net = OFAMobileNetV3("mbv3-fmnist")
    optimizer = make_optimizer(net, get_schedule("fmnist"))
    decay, no_decay = optimizer.param_groups
    names = {id(p): n for n, p in net.named_parameters()}
    assert decay["weight_decay"] > 0 and no_decay["weight_decay"] == 0
    assert all(names[id(p)].endswith("bias") or ".bn." in names[id(p)] for p in no_decay["params"])
    assert any(names[id(p)].endswith("7to5_matrix") for p in decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(net.parameters()))


# ----------------------------------------------------------- training runs
class Stop(Exception):
    pass


def stop_at(step: int):
    def on_event(kind, info):
        if kind == "step" and trainer_steps[0] >= step:
            raise Stop
        if kind == "step":
            trainer_steps[0] += 1

    trainer_steps = [0]
    return on_event


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    return load_supernet(out / "supernet.safetensors").state_dict()


@pytest.mark.slow
def test_resumed_run_ends_with_the_same_weights(tmp_path):
    make_trainer(tmp_path / "straight").run()
    interrupted = tmp_path / "interrupted"
    with pytest.raises(Stop):
        make_trainer(interrupted, on_event=stop_at(10)).run()  # dies between checkpoints (every 3 steps)
    position = json.loads(read_metadata(interrupted / "checkpoint.safetensors")["position"])
    assert position["step"] == 9 and position["phase"] == 2  # full and kernel phases (4 steps each) done
    with pytest.raises(Stop):
        make_trainer(interrupted, on_event=stop_at(7)).run()  # and again, in the width phases
    summary = make_trainer(interrupted).run()
    assert summary["resumed"]
    a, b = final_weights(tmp_path / "straight"), final_weights(interrupted)
    assert a.keys() == b.keys()
    mismatched = [k for k in a if not torch.equal(a[k], b[k])]
    assert not mismatched, f"differs after resume: {mismatched[:3]}"
    # training moved the weights away from initialisation
    fresh = make_trainer(tmp_path / "fresh").net.state_dict()
    assert not torch.equal(fresh["first_conv.conv.weight"], a["first_conv.conv.weight"])


def test_resume_with_another_schedule_or_space_is_refused(tmp_path):
    with pytest.raises(Stop):
        make_trainer(tmp_path, on_event=stop_at(4)).run()
    quick = get_schedule("quick")
    sandwich_last = replace(quick, phases=(*quick.phases[:-1], replace(quick.phases[-1], sandwich=True)))
    expected = r"different schedule \(quick, now quick; differs in phase 'expand-2'.sandwich\)"
    with pytest.raises(OFAEdgeError, match=expected):
        make_trainer(tmp_path, schedule=sandwich_last).run()
    with pytest.raises(OFAEdgeError, match=r"different schedule \(quick, now quick; differs in batch_size\)"):
        make_trainer(tmp_path, schedule=replace(quick, batch_size=8)).run()
    torch.save({}, tmp_path / "unrelated.pth")  # other files in the folder do not matter
    before = (tmp_path / "checkpoint.safetensors").read_bytes()
    with pytest.raises(OFAEdgeError, match="different seed"):
        sched = get_schedule("quick")
        data = TrainData.from_dataset(synthetic_dataset(), sched, seed=0, flip=True)
        Trainer(TrainConfig(get_space("mbv3-fmnist"), sched, tmp_path, "synthetic", seed=5), data).run()
    assert (tmp_path / "checkpoint.safetensors").read_bytes() == before  # nothing lost


def test_a_run_folder_of_an_earlier_version_is_refused_with_where_its_schedule_went(tmp_path):
    from safetensors.torch import load_file, save_file

    with pytest.raises(Stop):
        make_trainer(tmp_path, on_event=stop_at(4)).run()
    checkpoint = tmp_path / "checkpoint.safetensors"
    metadata = read_metadata(checkpoint)
    assert metadata["format"] == "ofa-edge-train/2"
    # What an earlier version wrote: format 1, its own schedule name and fingerprint.
    old = {**metadata, "format": "ofa-edge-train/1", "schedule": "fmnist-corners", "schedule_fingerprint": "0" * 16}
    del old["schedule_record"]
    save_file(load_file(checkpoint), checkpoint, metadata=old)
    before = checkpoint.read_bytes()
    with pytest.raises(OFAEdgeError) as caught:
        make_trainer(tmp_path)
    message = str(caught.value)
    assert "earlier ofa-edge (schedule fmnist-corners, now recipes/demo/06-corners.yaml)" in message
    assert "start a new --out folder" in message and "\n" not in message
    assert checkpoint.read_bytes() == before  # refused, not overwritten
    old["schedule"] = "fmnist"  # a schedule still a preset: refused all the same (its fingerprint differs)
    save_file(load_file(checkpoint), checkpoint, metadata=old)
    with pytest.raises(OFAEdgeError, match=r"earlier ofa-edge \(schedule fmnist\) .*new --out folder"):
        make_trainer(tmp_path)


class StopBeforeFirstStep(Exception):
    pass


def stop_before_first_step(kind, info):
    if kind == "epoch_start":
        raise StopBeforeFirstStep


@pytest.mark.slow
def test_init_from_starts_there_names_both_schedules_and_resume_checks_it(tmp_path):
    make_trainer(tmp_path / "base").run()
    base = tmp_path / "base" / "supernet.safetensors"
    base_weights = load_supernet(base).state_dict()

    extended = tmp_path / "extended"
    more = quick_extension(init_from=str(base))
    trainer = make_trainer(extended, schedule=more, on_event=stop_before_first_step)
    with pytest.raises(StopBeforeFirstStep):
        trainer.run()
    assert all(torch.equal(v, base_weights[k]) for k, v in trainer.net.state_dict().items())

    make_trainer(extended, schedule=more).run()
    final = read_metadata(extended / "supernet.safetensors")
    assert final["schedule"] == "quick+quick-more"
    assert not torch.equal(load_supernet(extended / "supernet.safetensors").state_dict()["first_conv.conv.weight"],
                           base_weights["first_conv.conv.weight"])  # fmt: skip

    # The run folder remembers which weights it started from: their path (in the schedule) and
    # what the file held.
    other = tmp_path / "base" / "phase-full.safetensors"
    interrupted = tmp_path / "interrupted"
    with pytest.raises(Stop):
        make_trainer(interrupted, schedule=more, on_event=stop_at(3)).run()
    with pytest.raises(OFAEdgeError, match="different schedule .*differs in init_from"):
        make_trainer(interrupted, schedule=more, init_from=str(other)).run()
    with pytest.raises(OFAEdgeError, match="different schedule .*differs in init_from"):
        make_trainer(interrupted, schedule=quick_extension()).run()
    base.write_bytes(other.read_bytes())  # the same path, other weights
    with pytest.raises(OFAEdgeError, match="different init_from weights"):
        make_trainer(interrupted, schedule=more).run()


def test_init_from_a_missing_or_mismatched_file_fails_before_writing(tmp_path):
    with pytest.raises(OFAEdgeError, match="not found"):
        make_trainer(tmp_path / "run", init_from=str(tmp_path / "none.safetensors"))
    with pytest.raises(OFAEdgeError, match="was trained for space mbv3-fmnist"):
        make_trainer(tmp_path / "run", space="mbv3-w1.0", init_from="demo")
    assert not (tmp_path / "run").exists()


def test_data_with_more_classes_than_the_classifier_is_refused_before_writing(tmp_path):
    with pytest.raises(OFAEdgeError, match="has 12 classes but space mbv3-fmnist has 10 outputs"):
        make_trainer(tmp_path / "run", classes=12)
    assert not (tmp_path / "run").exists()
    trainer = make_trainer(tmp_path / "run", space=get_space("mbv3-fmnist").with_classes(12), classes=12)
    assert trainer.net.classifier.linear.weight.shape[0] == 12


def test_init_from_a_supernet_of_other_classes_keeps_all_but_the_classifier(tmp_path):
    base = tmp_path / "ten-classes.safetensors"
    torch.manual_seed(123)
    save_supernet(OFAMobileNetV3(get_space("mbv3-fmnist")), base)
    base_weights = load_supernet(base).state_dict()
    twelve = get_space("mbv3-fmnist").with_classes(12)
    trainer = make_trainer(tmp_path / "run", space=twelve, classes=12, init_from=str(base))
    assert trainer.init_new_classifier
    fresh = trainer.net.state_dict()  # the seeded random init: the classifier stays as it is
    for name, value in trainer.init_state.items():
        expected = fresh[name] if name.startswith("classifier.") else base_weights[name]
        assert torch.equal(value, expected), name
    assert trainer.init_state["classifier.linear.weight"].shape[0] == 12
    # other differences than the classes are still refused
    with pytest.raises(OFAEdgeError, match="differ in: in_channels"):
        make_trainer(tmp_path / "run", space=replace(twelve, in_channels=3), classes=12, init_from=str(base))


def test_init_from_an_official_torch_file_of_other_classes(tmp_path):
    """The README's case: an official OFA checkpoint (torch.save, the reference's key names)
    fine-tuned on a folder of other classes. Its (absent) metadata is read without taking the zip's
    first 8 bytes for a safetensors header length."""
    from tests.test_checkpoint import official_name

    torch.manual_seed(7)
    official = OFAMobileNetV3(get_space("mbv3-fmnist"))
    path = tmp_path / "ofa_mbv3_like.pth"
    torch.save({"state_dict": {official_name(k): v for k, v in official.state_dict().items()}}, path)
    assert read_metadata(path) == {}
    four = get_space("mbv3-fmnist").with_classes(4)
    trainer = make_trainer(tmp_path / "run", space=four, classes=4, init_from=str(path))
    assert trainer.init_new_classifier and trainer.init_schedule == "unknown"
    expected = official.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in trainer.init_state.items() if not k.startswith("classifier."))


def test_all_ranks_sample_the_same_archs(tmp_path, monkeypatch):
    """The archs a step trains come from the trainer's own sampling, which depends on the seed and
    the step only: two trainers (as two ranks build them) agree, steps differ, and _step uses it."""
    phase = get_schedule("quick").phases[4]
    one, two = make_trainer(tmp_path / "a"), make_trainer(tmp_path / "b")
    first = [one.archs_for_step(phase, s, 24) for s in range(5)]
    assert first == [two.archs_for_step(phase, s, 24) for s in range(5)]
    assert len({tuple(archs) for archs in first}) == 5
    assert all(a.r == 24 for archs in first for a in archs)
    # The training step trains exactly those archs.
    seen = []

    def spy(images, labels, soft, archs):
        seen.append(archs)
        return images.new_zeros((), requires_grad=True)

    one.teacher = OFAMobileNetV3(one.config.space).eval()
    images, labels = next(iter(one.loader.epoch(0, resolution=24)))
    one.position.step = 3
    one._step(spy, make_optimizer(one.net, one.config.schedule), images, labels, phase)
    assert seen == [first[3]]


def test_subnets_distil_from_the_teacher(tmp_path):
    """After the full-net phase every subnet's loss includes the KD term against the teacher's
    softmax: the step hands the teacher's soft labels to the loss, and the loss uses them."""
    from ofa_edge.train.trainer import SubnetsLoss

    trainer = make_trainer(tmp_path / "run")
    trainer.teacher = OFAMobileNetV3(trainer.config.space).eval()
    full, shrink = get_schedule("quick").phases[0], get_schedule("quick").phases[4]
    images, labels = next(iter(trainer.loader.epoch(0, resolution=20)))
    assert trainer.soft_targets(full, images) is None
    soft = trainer.soft_targets(shrink, images)
    with torch.no_grad():
        torch.testing.assert_close(soft, torch.softmax(trainer.teacher(images), dim=1))
    trainer.net.eval()  # no dropout: the same forward twice
    archs = trainer.archs_for_step(shrink, 0, 20)
    loss = SubnetsLoss(trainer.net, 0.1, 1.0)
    with torch.no_grad():
        with_kd, without = loss(images, labels, soft, archs), loss(images, labels, None, archs)
        expected = 0.0
        for arch in archs:
            trainer.net.set_active(arch)
            expected += distillation_loss(trainer.net(images), labels, soft, 0.1, 1.0)
    torch.testing.assert_close(with_kd, expected)
    assert with_kd > without  # the KD term (a cross-entropy, positive) is there
    # ... and the training step hands those soft labels to the loss.
    handed = []

    def spy(images, labels, soft_targets, archs):
        handed.append(soft_targets)
        return images.new_zeros((), requires_grad=True)

    trainer._step(spy, make_optimizer(trainer.net, trainer.config.schedule), images, labels, shrink)
    assert handed[0] is not None
    torch.testing.assert_close(handed[0], soft)


def one_arch_network(path: Path, seed: int, classes: int = 10) -> Path:
    """A net of one arch at one resolution, saved as bench/alone.py saves one trained alone."""
    space = get_space("mbv3-fmnist").with_classes(classes)
    space = space.restrict(kernel_choices=[7], expand_choices=[6], depth_choices=[4], resolutions=[28])
    torch.manual_seed(seed)
    save_supernet(OFAMobileNetV3(space), path)
    return path


def quick_distil(**schedule_fields) -> Schedule:
    """One sandwich epoch of every choice, no full-net phase: it needs a teacher."""
    return quick_extension(full_epochs=0, sandwich=True, **schedule_fields)


def test_a_schedule_without_a_full_net_phase_needs_a_teacher_and_says_so_before_writing(tmp_path):
    with pytest.raises(OFAEdgeError, match="no full-net phase to train a teacher from; set its teacher"):
        quick_distil()
    twelve = one_arch_network(tmp_path / "t12.safetensors", 0, classes=12)
    with pytest.raises(OFAEdgeError, match="has 12 classes, this run's network 10"):
        make_trainer(tmp_path / "run", schedule=quick_distil(teacher=str(twelve)))
    assert not (tmp_path / "run").exists()


def test_an_external_teacher_sees_its_own_resolution_and_is_part_of_the_run(tmp_path):
    teacher_file = one_arch_network(tmp_path / "alone.safetensors", seed=1)
    distil = quick_distil(teacher=str(teacher_file))
    trainer = make_trainer(tmp_path / "run", schedule=distil)
    assert trainer.teacher_resolution == 28
    phase = trainer.config.schedule.phases[0]
    images, _ = next(iter(trainer.loader.epoch(0, resolution=20)))
    reference = load_supernet(teacher_file).eval()
    with torch.no_grad():
        expected = torch.softmax(reference(torch.nn.functional.interpolate(images, size=(28, 28), mode="bilinear")), 1)
    torch.testing.assert_close(trainer.soft_targets(phase, images), expected)

    trainer.run()
    out = tmp_path / "run"
    assert not (out / "teacher.safetensors").exists()  # the teacher stays the file given
    assert json.loads((out / "config.json").read_text())["teacher_from"]["path"] == str(teacher_file)
    assert read_metadata(out / "supernet.safetensors")["teacher"] == trainer.teacher_fingerprint

    # A stopped run resumes only with the same teacher: the same path, holding the same weights.
    with pytest.raises(Stop):
        make_trainer(tmp_path / "stopped", schedule=distil, checkpoint_every=1, on_event=stop_at(2)).run()
    assert (tmp_path / "stopped" / "checkpoint.safetensors").exists()
    other = one_arch_network(tmp_path / "other.safetensors", seed=2)
    with pytest.raises(OFAEdgeError, match="different schedule .*differs in teacher"):
        make_trainer(tmp_path / "stopped", schedule=distil, teacher=str(other))
    teacher_file.write_bytes(other.read_bytes())
    with pytest.raises(OFAEdgeError, match="different teacher weights"):
        make_trainer(tmp_path / "stopped", schedule=distil)


def random_init_file(path: Path) -> Path:
    torch.manual_seed(3)
    save_supernet(OFAMobileNetV3(get_space("mbv3-fmnist")), path)
    return path


def test_init_teaches_where_a_one_resolution_teacher_was_not_trained(tmp_path):
    teacher_file = one_arch_network(tmp_path / "alone.safetensors", seed=1)
    init_file = random_init_file(tmp_path / "init.safetensors")
    with pytest.raises(OFAEdgeError, match="teacher_other_resolutions: init_from needs init_from"):
        quick_distil(teacher=str(teacher_file), teacher_other_resolutions="init_from")
    with pytest.raises(OFAEdgeError, match="teacher_other_resolutions: init_from needs a teacher file"):
        replace(get_schedule("quick"), init_from=str(init_file), teacher_other_resolutions="init_from")
    with pytest.raises(OFAEdgeError, match="several resolutions"):
        make_trainer(tmp_path / "run", schedule=quick_distil(init_from=str(init_file), teacher=str(init_file),
                                                             teacher_other_resolutions="init_from"))  # fmt: skip
    assert not (tmp_path / "run").exists()

    both = quick_distil(init_from=str(init_file), teacher=str(teacher_file), teacher_other_resolutions="init_from")
    trainer = make_trainer(tmp_path / "run", schedule=both)
    phase = trainer.config.schedule.phases[0]
    assert sorted(trainer.teachers_by_resolution) == [20, 24]
    # At 20 px: the init weights' largest subnet, its BatchNorm recalibrated at 20 px on the
    # run's calibration images (the statistics stored in a supernet belong to no one subnet).
    init_net = load_supernet(init_file).to(memory_format=torch.channels_last)  # as the run's nets
    init_net.set_active(init_net.space.max_arch(20))
    calibration = trainer.epoch_eval
    recalibrate_bn(init_net, calibration.loader(calibration.calibration).epoch(0, resolution=20))
    init_net.eval()
    alone = load_supernet(teacher_file).eval()
    for resolution, reference in ((20, init_net), (28, alone)):
        images, _ = next(iter(trainer.loader.epoch(0, resolution=resolution)))
        with torch.no_grad():
            expected = torch.softmax(reference(images), dim=1)
        torch.testing.assert_close(trainer.soft_targets(phase, images), expected)

    # The mode is part of the run: a stopped run resumes only with the same one.
    with pytest.raises(Stop):
        make_trainer(tmp_path / "stopped", schedule=both, checkpoint_every=1, on_event=stop_at(2)).run()
    with pytest.raises(OFAEdgeError, match="differs in teacher_other_resolutions"):
        make_trainer(tmp_path / "stopped", schedule=replace(both, teacher_other_resolutions="resize"))


def test_teacher_init_from_is_the_init_weights_largest_subnet_recalibrated_at_each_resolution(tmp_path):
    init_file = random_init_file(tmp_path / "init.safetensors")
    with pytest.raises(OFAEdgeError, match="teacher: init_from needs init_from"):
        quick_extension(full_epochs=0, sandwich=True, subnets=5, corners=2, teacher="init_from")
    with pytest.raises(OFAEdgeError, match="drop teacher_other_resolutions"):
        quick_distil(init_from=str(init_file), teacher="init_from", teacher_other_resolutions="init_from")

    corners = quick_extension(full_epochs=0, sandwich=True, subnets=5, corners=2, init_from=str(init_file),
                              teacher="init_from")  # fmt: skip
    trainer = make_trainer(tmp_path / "run", schedule=corners)
    assert sorted(trainer.teachers_by_resolution) == [20, 24, 28]
    (phase,) = trainer.config.schedule.phases
    calibration = trainer.epoch_eval
    for resolution in (20, 28):
        reference = load_supernet(init_file).to(memory_format=torch.channels_last)
        reference.set_active(reference.space.max_arch(resolution))
        recalibrate_bn(reference, calibration.loader(calibration.calibration).epoch(0, resolution=resolution))
        reference.eval()
        images, _ = next(iter(trainer.loader.epoch(0, resolution=resolution)))
        with torch.no_grad():
            expected = torch.softmax(reference(images), dim=1)
        torch.testing.assert_close(trainer.soft_targets(phase, images), expected)
    # The teachers stay frozen while the run trains the same weights.
    before = {k: v.clone() for k, v in trainer.teachers_by_resolution[28].state_dict().items()}
    trainer.run()
    after = trainer.teachers_by_resolution[28].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(trainer.net.state_dict()["classifier.linear.weight"], before["classifier.linear.weight"])
    assert read_metadata(tmp_path / "run" / "supernet.safetensors")["teacher"].startswith("init-recalibrated:")


@pytest.mark.slow
def test_two_rank_ddp_stays_in_sync(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
         str(ROOT / "tests" / "ddp_worker.py"), str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["world_size"] == ranks[1]["world_size"] == 2
    assert ranks[0]["steps"] == ranks[1]["steps"] > 0
    assert ranks[0]["checksums"] == ranks[1]["checksums"], "ranks diverged"
    assert ranks[0]["shard_labels"] != ranks[1]["shard_labels"], "each rank reads its own shard"
    assert (tmp_path / "run" / "supernet.safetensors").exists()


# ------------------------------------------------------------ devices, autocast, resume notice
def test_a_cuda_device_without_a_gpu_or_an_unknown_one_is_one_clear_error(tmp_path):
    from ofa_edge.train.trainer import resolve_device

    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(OFAEdgeError, match="sees no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(OFAEdgeError, match="unknown device 'tpu9'"):
        resolve_device("tpu9")
    sched = get_schedule("quick")
    data = TrainData.from_dataset(synthetic_dataset(), sched, seed=0, flip=True)
    config = TrainConfig(get_space("mbv3-fmnist"), sched, tmp_path, data_name="synthetic", autocast="fp8")
    with pytest.raises(OFAEdgeError, match="autocast must be one of off, bf16"):
        Trainer(config, data)


def test_bf16_autocast_trains_fp32_weights_and_a_finite_loss(tmp_path):
    trainer = make_trainer(tmp_path)
    trainer.config.autocast = "bf16"
    phase = trainer.config.schedule.phases[0]
    optimizer = make_optimizer(trainer.net, trainer.config.schedule)
    for group in optimizer.param_groups:
        group["lr"] = 0.1
    from ofa_edge.train.trainer import SubnetsLoss

    images, labels = next(trainer.loader.epoch(0))
    before = trainer.net.first_conv.conv.weight.detach().clone()
    loss = trainer._step(SubnetsLoss(trainer.net, 0.1, 1.0), optimizer, images, labels, phase)
    assert math.isfinite(loss)
    weight = trainer.net.first_conv.conv.weight
    assert weight.dtype == torch.float32 and not torch.equal(weight.detach(), before)


def test_a_resume_says_which_checkpoint_from_where_and_when(tmp_path):
    events = []
    with pytest.raises(Stop):
        make_trainer(tmp_path, on_event=stop_at(4)).run()
    trainer = make_trainer(tmp_path, on_event=lambda kind, info: events.append((kind, info)))
    point = trainer.resume_point()
    saved = json.loads(read_metadata(tmp_path / "checkpoint.safetensors")["position"])
    assert point["checkpoint"] == str(tmp_path / "checkpoint.safetensors") and point["step"] == saved["step"] > 0
    assert point["phase_name"] == trainer.config.schedule.phases[point["phase"]].name
    from ofa_edge.host import cpu_identity

    assert point["saved_on"] == cpu_identity() and point["saved_at"] != "unknown"
    with pytest.raises(Stop):
        trainer.on_event = lambda kind, info: (events.append((kind, info)), (_ for _ in ()).throw(Stop()))
        trainer.run()
    assert events[0] == ("resumed", point)
