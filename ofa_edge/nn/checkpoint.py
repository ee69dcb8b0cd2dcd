"""Loading and saving supernet weights, safely.

Two formats are read:

* **ofa-edge checkpoints**: safetensors files whose metadata holds the search space they were
  trained for, so a checkpoint describes itself. Written by :func:`save_supernet` (atomically).
* **Official OFA checkpoints** (``ofa_mbv3_d234_e346_k357_w1.0`` / ``_w1.2``,
  ``ofa_proxyless_d234_e346_k357_w1.3``): a ``torch.save``
  dict with a ``"state_dict"``. They are read with ``torch.load(weights_only=True)``, which only
  rebuilds tensors and plain containers; a file that needs arbitrary unpickling is refused.

Official key names map onto ours by two rules: the old block attribute ``mobile_inverted_conv``
became ``conv``, and the reference wraps dynamic ops around static ones (``bn.bn.weight``,
``conv.conv.weight``, ``linear.linear.weight``) where ours subclass them (``bn.weight``...), so a
repeated path segment collapses to one. A family may rename more (:func:`family_keys`).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from ..errors import CheckpointError, OFAEdgeError
from ..fileio import atomic_write_bytes, read_safetensors_metadata, read_user_file, safetensors_metadata
from ..hub.cache import find_weights
from ..hub.registry import get_entry, is_registered
from ..space.space import SPACE_NAMES, SearchSpace, get_space, space_from_config_dict
from .supernet import OFAMobileNetV3


def build_supernet(space: SearchSpace) -> OFAMobileNetV3:
    """The supernet class of ``space``'s family, built for ``space`` (weights initialised)."""
    if space.family == "resnet":
        from .resnet import OFAResNet

        return OFAResNet(space)  # type: ignore[arg-type,return-value]
    return OFAMobileNetV3(space)

FORMAT = "ofa-edge-supernet/1"
# The demo supernet (mbv3-fmnist trained on Fashion-MNIST) ships inside the package.
DEMO_NAME = "demo"
DEMO_SUPERNET = Path(__file__).resolve().parent.parent / "weights" / "mbv3-fmnist.safetensors"


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A registered name (``demo``, an official supernet) is its local file, bundled or fetched
    (never downloaded here); anything else is a path."""
    if is_registered(str(path)):
        return find_weights(str(path))
    return Path(path)


def check_checkpoint(path: str | os.PathLike[str]) -> None:
    """One line when ``path`` cannot be a checkpoint (missing, empty, a safetensors file whose
    header does not parse), without loading it: commands check their inputs before any work."""
    resolved = resolve_checkpoint(path)
    if not resolved.is_file():
        raise CheckpointError(f"supernet checkpoint not found: {resolved}")
    if resolved.stat().st_size == 0:
        raise CheckpointError(f"supernet checkpoint {resolved} is empty")
    if resolved.suffix == ".safetensors":
        try:
            read_safetensors_metadata(resolved)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"supernet checkpoint {resolved} is not a readable safetensors file: {exc}") from None


_COLLAPSIBLE = {"bn", "conv", "linear"}
# Old checkpoints may lack the BN batch counter; it does not affect inference or training maths.
_OPTIONAL_SUFFIX = "num_batches_tracked"


def official_key_to_ours(key: str) -> str:
    """Map a reference-implementation state-dict key to this package's name for the same tensor."""
    if key.startswith("module."):  # saved from a DataParallel/DDP wrapper
        key = key[len("module.") :]
    parts = ["conv" if p == "mobile_inverted_conv" else p for p in key.split(".")]
    collapsed: list[str] = []
    for part in parts:
        if collapsed and part == collapsed[-1] and part in _COLLAPSIBLE:
            continue
        collapsed.append(part)
    return ".".join(collapsed)


def save_supernet(net: OFAMobileNetV3, path: str | os.PathLike[str], extra: Mapping[str, str] | None = None) -> None:
    """Write the supernet's weights and space to a safetensors file, atomically."""
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}
    metadata = {"format": FORMAT, "space": json.dumps(net.space.config_dict())}
    metadata.update(extra or {})
    atomic_write_bytes(Path(path), save_safetensors_bytes(tensors, metadata=metadata))


def load_supernet(path: str | os.PathLike[str], space: SearchSpace | str | None = None) -> OFAMobileNetV3:
    """Build a supernet from an ofa-edge or an official OFA checkpoint file (``"demo"``: the
    shipped Fashion-MNIST demo supernet).

    ``space`` is checked against the space an ofa-edge checkpoint records; for an official file
    it says which space to build (when omitted, the preset whose shapes fit is chosen).
    """
    if space is None and is_registered(str(path)):
        space = get_entry(str(path)).space
    path = resolve_checkpoint(path)
    wanted = get_space(space) if isinstance(space, str) else space
    state, stored_space = read_checkpoint(path)
    if stored_space is not None:
        if wanted is not None and (diff := stored_space.differences(wanted)):
            raise space_mismatch(path, stored_space, wanted, diff)
        net = build_supernet(stored_space)
    else:
        space = wanted if wanted is not None else _infer_space(path, state)
        state = official_state(space, state)
        net = build_supernet(space)
    load_state_checked(net, state, path)
    return net


# Official names that differ per family, after the generic rules: OFA-ProxylessNAS calls its one
# head conv (before pooling) the feature mix layer; ours is the final expand layer, as in
# OFA-MobileNetV3, where the feature mix is the conv after pooling.
_FAMILY_RENAMES = {"proxyless": (("feature_mix_layer.", "final_expand_layer."),)}


def official_state(space: SearchSpace, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official state dict under our names for ``space``'s family."""
    if space.family == "resnet":
        from .resnet import resnet_official_key_to_ours

        return {resnet_official_key_to_ours(k): v for k, v in state.items()}
    return family_keys(space, {official_key_to_ours(k): v for k, v in state.items()})


def family_keys(space: SearchSpace, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official state dict (generic rules applied) with ``space``'s family's own names mapped."""
    renames = _FAMILY_RENAMES.get(space.family, ())
    renamed = {}
    for key, tensor in state.items():
        for old, new in renames:
            if key.startswith(old):
                key = new + key[len(old) :]
        renamed[key] = tensor
    return renamed


def space_mismatch(path: str | os.PathLike[str], stored: SearchSpace, wanted: SearchSpace,
                   differences: list[str]) -> CheckpointError:  # fmt: skip
    """The error for weights of ``stored`` asked for as ``wanted``."""
    return CheckpointError(
        f"{path} was trained for space {stored.name}, not {wanted.name} (they differ in: {', '.join(differences)})"
    )


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], SearchSpace | None]:
    """Tensors of a checkpoint file, and the space it records (None for official files)."""
    data = read_user_file(path, "checkpoint", CheckpointError)
    if data[:4] == b"PK\x03\x04" or data[:2] == b"\x80\x02":  # torch.save zip or legacy pickle
        return _read_torch_file(path), None
    try:
        tensors = load_safetensors_bytes(data)
        metadata = safetensors_metadata(data)
    except (SafetensorError, ValueError, json.JSONDecodeError):
        raise CheckpointError(
            f"{path} is neither a safetensors file nor a torch.save checkpoint (or it is truncated)"
        ) from None
    if metadata.get("format") != FORMAT:
        # A bare safetensors state dict (e.g. converted from an official file): names as official.
        return tensors, None
    try:
        stored = space_from_config_dict(json.loads(metadata["space"]))
    except (KeyError, json.JSONDecodeError, OFAEdgeError):
        raise CheckpointError(f"{path} has a damaged search-space record in its metadata") from None
    return tensors, stored


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata of an ofa-edge checkpoint (empty for other files)."""
    try:
        return read_safetensors_metadata(resolve_checkpoint(path))
    except (OSError, ValueError, CheckpointError):  # json.JSONDecodeError is a ValueError
        return {}


def _read_torch_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsupported object"
        raise CheckpointError(
            f"refusing to load {path}: it needs arbitrary unpickling, which can run code "
            f"({first_line[:160]}); re-save only its state_dict, or convert it to safetensors"
        ) from None
    except (RuntimeError, EOFError) as exc:
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({str(exc).splitlines()[0][:160]})") from None
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors (expected a dict with 'state_dict')")
    return state


def _infer_space(path: Path, state: Mapping[str, torch.Tensor]) -> SearchSpace:
    for name in SPACE_NAMES:
        candidate = get_space(name)
        try:
            named = official_state(candidate, state)
        except CheckpointError:  # keys of another family
            continue
        if not _first_mismatch(build_supernet(candidate).state_dict(), named):
            return candidate
    raise CheckpointError(f"{path} fits none of the preset spaces ({', '.join(SPACE_NAMES)}); pass --space")


def _first_mismatch(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> str | None:
    for key, tensor in expected.items():
        if key not in state:
            if key.endswith(_OPTIONAL_SUFFIX):
                continue
            return f"tensor '{key}' is missing from the checkpoint"
        if tuple(state[key].shape) != tuple(tensor.shape):
            return (
                f"tensor '{key}' has shape {list(state[key].shape)} in the checkpoint "
                f"but {list(tensor.shape)} in the network"
            )
    for key in state:
        if key not in expected:
            return f"checkpoint has tensor '{key}' that the network lacks"
    return None


def load_state_checked(net: OFAMobileNetV3, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Load ``state`` into ``net``, or raise one line naming the first mismatched tensor."""
    expected = net.state_dict()
    problem = _first_mismatch(expected, state)
    if problem:
        raise CheckpointError(f"{path} does not fit space {net.space.name}: {problem}")
    full = dict(expected)
    full.update(state)
    net.load_state_dict(full)


def state_fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """A short hash of a network's tensors (BatchNorm statistics included, so take it before any
    recalibration): what a resumed run, a predictor or a data file records to tell which supernet
    it belongs to."""
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def supernet_fingerprint(path: str | os.PathLike[str]) -> tuple[str, SearchSpace]:
    """(fingerprint of its tensors, space) of a supernet checkpoint ('demo': the shipped one):
    what predictors and data files are tied to."""
    net = load_supernet(path)
    return state_fingerprint(net.state_dict()), net.space
