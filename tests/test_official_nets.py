"""Official OFA specialised nets (``net.config`` + ``run.config``) read wherever an arch is read:
their space and arch, their MACs and params against the reference implementation's counters on
the net it builds from the same file, and one clear line for what ofa-edge does not read."""

import copy
import json
import shutil
from pathlib import Path

import pytest

from ofa_edge import get_space
from ofa_edge.cli import main
from ofa_edge.errors import ArchError, OFAEdgeError
from ofa_edge.export.config import ExportConfig
from ofa_edge.export.pipeline import export_subnet
from ofa_edge.export.specialized import resolve_export
from ofa_edge.space.arch import Arch, ArchSource, load_arch, read_arch
from tests.reference_oracle import require_reference_module

SPECIALIZED = Path(__file__).parent / "fixtures" / "official" / "specialized"
LG_G8 = SPECIALIZED / "LG-G8_lat-16ms_top1-74.7_finetune-25"
PIXEL2 = SPECIALIZED / "pixel2_lat-35ms_top1-73.4_finetune-25"
MBV3_NETS = [(LG_G8, 176), (PIXEL2, 160)]
PROXYLESS_NETS = [
    SPECIALIZED / "cpu_lat-11ms_top1-72.0_finetune-25",
    SPECIALIZED / "1080ti_gpu64-15ms_top1-73.8_finetune-25",
]
W10_TABLE = "onnxruntime-cpu-fp32-mbv3-w1.0"  # shipped; covers 160 and 224 px


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(message: str) -> str:
    assert "\n" not in message.strip()
    return message


def net_copy(tmp_path: Path, net: Path = LG_G8, image_size: int | None = None) -> Path:
    """A copy of an official net's folder, optionally at another image size."""
    folder = tmp_path / net.name
    shutil.copytree(net, folder)
    if image_size is not None:
        (folder / "run.config").write_text(json.dumps({"image_size": image_size}))
    return folder


def reference_counts(net_config: Path, resolution: int) -> tuple[float, int]:
    """(MACs, params) the reference's counters give for the net it builds from ``net_config``."""
    networks = require_reference_module("ofa.imagenet_classification.networks")
    utils = require_reference_module("ofa.utils")
    config = json.loads(net_config.read_text())
    builder = networks.ProxylessNASNets if config["name"] == "ProxylessNASNets" else networks.MobileNetV3
    net = builder.build_from_config(copy.deepcopy(config))  # the builder pops names
    return utils.count_net_flops(net, (1, 3, resolution, resolution)), utils.count_parameters(net)


# ------------------------------------------------------------------------------ reading
@pytest.mark.parametrize("folder, resolution", MBV3_NETS)
def test_mbv3_nets_read_as_archs_of_their_space(folder, resolution):
    source = read_arch(folder)
    assert source.space == "mbv3-w1.0" and source.note is None
    assert source.arch.r == resolution
    assert read_arch(folder / "net.config") == source
    assert load_arch(folder) == source.arch
    get_space("mbv3-w1.0").validate(source.arch)  # a plain arch of the space: skipped slots filled
    blocks = json.loads((folder / "net.config").read_text())["blocks"][1:]
    assert sum(source.arch.d) == len(blocks)


def test_stage_depths_kernels_and_expands_follow_the_blocks():
    arch = read_arch(LG_G8).arch
    assert arch.d == (2, 3, 3, 3, 4)
    assert arch.ks[4:7] == (7, 5, 3) and arch.e[4:7] == (4, 3, 3)  # stage 2: 24->40 k7 mid 96, then 40->40
    assert arch.ks[2:4] == (3, 3) and arch.e[2:4] == (3, 3)  # skipped slots of stage 1: the smallest choices


@pytest.mark.parametrize("folder, resolution", MBV3_NETS)
def test_macs_and_params_match_the_reference_counters(folder, resolution):
    source = read_arch(folder)
    space = get_space(source.space)
    macs, params = reference_counts(folder / "net.config", resolution)
    assert abs(macs - space.macs(source.arch)) <= 1e-6 * macs  # the reference sums in float32
    assert params == space.params(source.arch)


@pytest.mark.parametrize("space_name, width", [("mbv3-w1.0", 1.0), ("mbv3-w1.2", 1.2)])
def test_the_reference_subnet_configs_read_back_as_their_archs(tmp_path, space_name, width):
    elastic = require_reference_module("ofa.imagenet_classification.elastic_nn.networks.ofa_mbv3")
    reference = elastic.OFAMobileNetV3(ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4],
                                       width_mult=width)  # fmt: skip
    space = get_space(space_name)
    for seed in range(4):
        arch = space.sample(seed)
        reference.set_active_subnet(ks=list(arch.ks), e=list(arch.e), d=list(arch.d))
        folder = tmp_path / f"{space_name}-{seed}"
        folder.mkdir()
        (folder / "net.config").write_text(json.dumps(reference.get_active_net_config()))
        (folder / "run.config").write_text(json.dumps({"image_size": arch.r}))
        source = read_arch(folder)
        assert source.space == space_name and source.arch.d == arch.d and source.arch.r == arch.r
        for _, _, slot in space.active_slots(arch):  # the slots a depth skips carry no block to read
            assert (source.arch.ks[slot], source.arch.e[slot]) == (arch.ks[slot], arch.e[slot])


def test_a_resolution_outside_the_training_range_is_a_static_net_with_a_note(tmp_path):
    folder = net_copy(tmp_path, image_size=260)
    source = read_arch(folder)
    assert source.arch.r == 260
    assert "260" in one_line(source.note) and "mbv3-w1.0" in source.note and "128..224" in source.note
    space, arch = source.fit(get_space("mbv3-w1.0"))
    assert 260 in space.static_resolutions and space == get_space("mbv3-w1.0")  # the same space, one more size
    assert space.config_dict() == get_space("mbv3-w1.0").config_dict()
    macs, params = reference_counts(folder / "net.config", 260)
    assert abs(macs - space.macs(arch)) <= 1e-6 * macs and params == space.params(arch)
    with pytest.raises(ArchError, match="'r': 260 is not allowed"):
        get_space("mbv3-w1.0").validate(arch)  # only a static net is read there
    with pytest.raises(ArchError, match="a predictor cannot score it"):
        space.encode(arch)


def test_an_arch_json_keeps_the_training_range():
    source = ArchSource(Arch.from_dict({**get_space("mbv3-w1.0").max_arch().to_dict(), "r": 260}))
    with pytest.raises(ArchError, match="'r': 260 is not allowed"):
        source.fit(get_space("mbv3-w1.0"))
    space, arch = source.fit(get_space("mbv3-w1.0"), static=True)  # what an export asks for
    assert arch.r == 260 and space.resolution_note(260) is not None


# ------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("folder", PROXYLESS_NETS)
def test_proxylessnas_nets_read_as_archs_of_their_space(folder):
    source = read_arch(folder)
    assert source.space == "proxyless-w1.3" and source.note is None and source.arch.r == 144
    assert source.arch.d[-1] == 1 and len(source.arch.ks) == 21
    blocks = json.loads((folder / "net.config").read_text())["blocks"][1:]
    assert sum(source.arch.d) == len(blocks)
    macs, params = reference_counts(folder / "net.config", 144)
    space = get_space("proxyless-w1.3")
    assert abs(macs - space.macs(source.arch)) <= 1e-6 * macs and params == space.params(source.arch)


def test_a_net_of_another_family_is_one_line(tmp_path):
    folder = net_copy(tmp_path)
    config = json.loads((folder / "net.config").read_text())
    (folder / "net.config").write_text(json.dumps({**config, "name": "ResNets"}))
    with pytest.raises(ArchError) as caught:
        read_arch(folder)
    message = one_line(str(caught.value))
    assert "'ResNets'" in message and "OFA-ProxylessNAS" in message and "OFA-MobileNetV3" in message


def test_a_mismatched_block_is_one_line_naming_it(tmp_path):
    folder = net_copy(tmp_path)
    config = json.loads((folder / "net.config").read_text())
    config["blocks"][5]["mobile_inverted_conv"]["out_channels"] = 48  # stage 2, block 2: 40 in the space
    (folder / "net.config").write_text(json.dumps(config))
    with pytest.raises(ArchError) as caught:
        read_arch(folder)
    message = one_line(str(caught.value))
    assert "blocks[5]" in message and "out_channels 48" in message and "40 (stage 2)" in message


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda c: c["blocks"][4]["mobile_inverted_conv"].update(mid_channels=100), "blocks[4] (stage 2, block 2)"),
        (lambda c: c["blocks"][4]["mobile_inverted_conv"].update(kernel_size=9), "kernel_size 9"),
        (lambda c: c["blocks"][4]["mobile_inverted_conv"].update(use_se=False), "use_se False"),
        (lambda c: c["first_conv"].update(out_channels=20), "fits no OFA-MobileNetV3 space"),
        (lambda c: c["classifier"].update(out_features=10), "classifier: out_features 10"),
        (lambda c: c["blocks"].pop(2), "stage 1: 1 block(s)"),
    ],
)
def test_other_mismatches_are_one_line(tmp_path, edit, expected):
    folder = net_copy(tmp_path)
    config = json.loads((folder / "net.config").read_text())
    edit(config)
    (folder / "net.config").write_text(json.dumps(config))
    with pytest.raises(ArchError) as caught:
        read_arch(folder)
    assert expected in one_line(str(caught.value))


def test_a_net_config_without_its_run_config_asks_for_it(tmp_path):
    lonely = tmp_path / "net.config"
    shutil.copy(LG_G8 / "net.config", lonely)
    with pytest.raises(ArchError) as caught:
        read_arch(lonely)
    assert "run.config" in one_line(str(caught.value))
    with pytest.raises(ArchError, match="without a net.config"):
        read_arch(tmp_path / "..")


def test_another_space_than_the_nets_is_one_line():
    source = read_arch(LG_G8)
    assert source.space_name(None, default="mbv3-fmnist") == "mbv3-w1.0"
    with pytest.raises(ArchError, match=r"a net of space mbv3-w1.0, not of mbv3-w1.2 \(--space\)"):
        source.space_name("mbv3-w1.2", default="mbv3-fmnist")
    with pytest.raises(ArchError, match="not of mbv3-w1.2"):
        source.fit(get_space("mbv3-w1.2"))


# ------------------------------------------------------------------------------ CLI
def test_arch_info_reads_an_official_folder(capsys):
    code, out, err = run(capsys, "arch", "info", LG_G8, "--json")
    assert code == 0 and err == ""
    info = json.loads(out)
    assert info["space"] == "mbv3-w1.0" and info["resolution"] == 176 and info["depths"] == [2, 3, 3, 3, 4]
    assert info["macs"] == get_space("mbv3-w1.0").macs(read_arch(LG_G8).arch)
    code, out, _ = run(capsys, "arch", "info", PIXEL2 / "net.config")
    assert code == 0 and "mbv3-w1.0: resolution 160" in out.replace("\n", " ")


def test_arch_info_says_the_note_and_refuses_another_space(capsys, tmp_path):
    folder = net_copy(tmp_path, image_size=260)
    code, out, err = run(capsys, "arch", "info", folder, "--json")
    assert code == 0 and json.loads(out)["resolution"] == 260
    assert err.startswith("note: resolution 260 is outside") and err.count("\n") == 1
    code, _, err = run(capsys, "arch", "info", LG_G8, "--space", "mbv3-fmnist")
    assert code == 2 and "not of mbv3-fmnist (--space)" in one_line(err)
    code, _, err = run(capsys, "arch", "info", PROXYLESS_NETS[0], "--space", "mbv3-w1.0")
    assert code == 2 and "proxyless-w1.3" in one_line(err)


def test_latency_predict_prices_an_official_net(capsys):
    code, out, _ = run(capsys, "latency", "predict", "--table", W10_TABLE, "--arch", PIXEL2, "--json")
    assert code == 0
    result = json.loads(out)
    assert result["arch"] == read_arch(PIXEL2).arch.to_dict() and result["predicted_ms"] > 0


def test_latency_predict_outside_the_tables_resolutions_is_its_missing_entry_line(capsys, tmp_path):
    code, _, err = run(capsys, "latency", "predict", "--table", W10_TABLE, "--arch", net_copy(tmp_path, image_size=260))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 2 and lines[0].startswith("note: resolution 260")
    assert "has no entry for" in lines[1] and "resolution 260; table covers" in lines[1]


def test_latency_predict_with_a_table_of_another_space_is_one_line(capsys):
    code, _, err = run(capsys, "latency", "predict", "--table", "note10-mbv3-w1.2", "--arch", LG_G8)
    assert code == 2 and "a net of space mbv3-w1.0, not of mbv3-w1.2 (the space of table" in one_line(err)


# ---------------------------------------------------------------------------- export
def test_export_refuses_a_supernet_of_another_space():
    with pytest.raises(OFAEdgeError) as caught:
        resolve_export(ExportConfig(), LG_G8)  # the demo supernet is mbv3-fmnist
    assert "not of mbv3-fmnist (the space of supernet demo)" in one_line(str(caught.value))


def test_an_arch_outside_the_supernets_training_range_exports_as_a_static_net(tmp_path):
    space = get_space("mbv3-fmnist")  # the demo supernet's: trained at 20, 24 and 28 px
    arch = Arch.from_dict({**space.min_arch().to_dict(), "r": 32})
    config = ExportConfig(out_dir=tmp_path, test_images=50, calibration_images=200, measure_latency=False)
    result = export_subnet(arch, config)
    assert result.resolution == 32 and result.macs == space.with_resolution(32).macs(arch)
    assert [w for w in result.warnings if w.startswith("resolution 32 is outside")]
    assert result.verification["passed"]
