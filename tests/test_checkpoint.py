import collections

import pytest
import torch

from ofa_edge import CheckpointError, OFAMobileNetV3
from ofa_edge.nn.checkpoint import load_supernet, official_key_to_ours, save_supernet
from tests.conftest import perturb


def official_name(key: str) -> str:
    """Our key as the reference implementation names it (old 'mobile_inverted_conv' spelling).

    The reference wraps each dynamic op around a static module: DynamicConv2d.conv,
    DynamicBatchNorm2d.bn, DynamicSeparableConv2d.conv; blocks 1.. are dynamic, block 0 static.
    """
    parts = key.split(".")
    if parts[0] == "blocks" and parts[1] != "0":
        if parts[4] in ("conv", "bn") and not parts[-1].endswith("_matrix"):
            parts.insert(5, parts[4])
        parts[2] = "mobile_inverted_conv"
    return ".".join(parts)


@pytest.mark.parametrize(
    "official, ours",
    [
        (
            "blocks.1.mobile_inverted_conv.inverted_bottleneck.conv.conv.weight",
            "blocks.1.conv.inverted_bottleneck.conv.weight",
        ),
        ("blocks.1.conv.inverted_bottleneck.bn.bn.running_var", "blocks.1.conv.inverted_bottleneck.bn.running_var"),
        ("blocks.6.conv.depth_conv.conv.7to5_matrix", "blocks.6.conv.depth_conv.conv.7to5_matrix"),
        ("blocks.6.conv.depth_conv.conv.conv.weight", "blocks.6.conv.depth_conv.conv.weight"),
        ("blocks.6.mobile_inverted_conv.depth_conv.se.fc.reduce.bias", "blocks.6.conv.depth_conv.se.fc.reduce.bias"),
        ("blocks.0.conv.depth_conv.conv.weight", "blocks.0.conv.depth_conv.conv.weight"),
        ("blocks.0.mobile_inverted_conv.point_linear.bn.weight", "blocks.0.conv.point_linear.bn.weight"),
        ("classifier.linear.linear.weight", "classifier.linear.weight"),
        ("module.first_conv.bn.num_batches_tracked", "first_conv.bn.num_batches_tracked"),
    ],
)
def test_official_key_names_map_to_ours(official, ours):
    assert official_key_to_ours(official) == ours


def test_every_official_name_maps_back():
    net = OFAMobileNetV3("mbv3-fmnist")
    for key in net.state_dict():
        assert official_key_to_ours(official_name(key)) == key


def _same_outputs(a: OFAMobileNetV3, b: OFAMobileNetV3, seed: int = 0) -> None:
    arch = a.space.sample(seed)
    a.set_active(arch)
    b.set_active(arch)
    x = torch.randn(2, a.space.in_channels, arch.r, arch.r)
    with torch.no_grad():
        torch.testing.assert_close(a.eval()(x), b.eval()(x), rtol=0, atol=0)


def test_own_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    net = perturb(OFAMobileNetV3("mbv3-fmnist"))
    path = tmp_path / "supernet.safetensors"
    save_supernet(net, path)
    loaded = load_supernet(path)
    assert loaded.space == net.space
    _same_outputs(net, loaded)
    assert [p.name for p in tmp_path.iterdir()] == ["supernet.safetensors"]  # no temp file left


def test_own_checkpoint_for_another_space_is_refused(tmp_path):
    path = tmp_path / "supernet.safetensors"
    save_supernet(OFAMobileNetV3("mbv3-fmnist"), path)
    with pytest.raises(CheckpointError, match="trained for space mbv3-fmnist, not mbv3-w1.0.*differ in: name"):
        load_supernet(path, space="mbv3-w1.0")


def test_official_format_with_old_key_names_loads(tmp_path):
    torch.manual_seed(0)
    net = perturb(OFAMobileNetV3("mbv3-w1.0"))
    state = collections.OrderedDict((official_name(k), v) for k, v in net.state_dict().items())
    assert any("mobile_inverted_conv" in k and ".bn.bn." in k for k in state)
    path = tmp_path / "ofa_mbv3_d234_e346_k357_w1.0"
    torch.save({"state_dict": state, "epoch": 180, "best_acc": 76.1}, path)
    loaded = load_supernet(path)  # space inferred from the shapes
    assert loaded.space.name == "mbv3-w1.0"
    _same_outputs(net, loaded, seed=3)


def test_official_w12_file_with_w10_space_names_first_mismatch(tmp_path):
    net = OFAMobileNetV3("mbv3-w1.2")
    path = tmp_path / "ofa_w12.pth"
    torch.save({"state_dict": {official_name(k): v for k, v in net.state_dict().items()}}, path)
    with pytest.raises(CheckpointError) as info:
        load_supernet(path, space="mbv3-w1.0")
    message = str(info.value)
    assert "first_conv.conv.weight" in message and "[24, 3, 3, 3]" in message and "[16, 3, 3, 3]" in message
    assert "\n" not in message


class Payload:
    def __reduce__(self):
        return (print, ("this would have run",))


def test_file_needing_arbitrary_unpickling_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"first_conv.conv.weight": torch.zeros(1)}, "hook": Payload()}, path)
    with pytest.raises(CheckpointError, match="refusing to load .*arbitrary unpickling"):
        load_supernet(path, space="mbv3-w1.0")
    assert "this would have run" not in capsys.readouterr().out


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_supernet(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(CheckpointError, match="neither a safetensors file nor a torch.save"):
        load_supernet(bad)
    truncated = tmp_path / "trunc.safetensors"
    save_supernet(OFAMobileNetV3("mbv3-fmnist"), truncated)
    truncated.write_bytes(truncated.read_bytes()[:1000])
    with pytest.raises(CheckpointError):
        load_supernet(truncated)


def test_checkpoint_missing_a_tensor_names_it(tmp_path):
    net = OFAMobileNetV3("mbv3-fmnist")
    state = {official_name(k): v for k, v in net.state_dict().items() if "blocks.3." not in k or "bias" not in k}
    path = tmp_path / "partial.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(CheckpointError, match=r"tensor 'blocks\.3\..*bias' is missing"):
        load_supernet(path, space="mbv3-fmnist")
