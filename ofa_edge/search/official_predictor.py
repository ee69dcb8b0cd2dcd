"""The OFA authors' accuracy predictors, read from their published files as ofa-edge predictors.

``acc_predictor.pth`` (the reference tutorial's format) is a state dict of an ``nn.Sequential``:
Linear(128, 400), ReLU, Linear(400, 400), ReLU, Linear(400, 400), ReLU, Linear(400, 1). Its 128
inputs are, for the 20 block slots of OFA-MobileNetV3, a one-hot kernel (3, 5, 7) per slot (60),
then a one-hot expand ratio (3, 4, 6) per slot (60), zero for slots a stage's depth skips, then a
one-hot resolution in 16-px bins from 112 (8). Its output is ImageNet top-1 as a fraction.

Our encoding (:meth:`SearchSpace.encode`) holds the same one-hots with kernel and expand side by
side per slot, and one column per resolution of the space. Both are linear in the same indicator
variables, so the first layer's columns are rearranged (each of our resolutions takes its bin's
column) and the last layer is scaled to percent: the converted predictor computes the same
function, in the same float32 arithmetic, without torch at prediction time.

``ofa_resnet50_acc_predictor.pth`` predicts OFA-ResNet50 subnets from the 82 features of
:meth:`ofa_edge.space.resnet.ResNetSpace.encode` (:func:`load_resnet_predictor`).

The files are read with ``torch.load(weights_only=True)``: tensors only, no code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..space.space import SearchSpace
from .predictor import AccuracyPredictor, PredictorError

TUTORIAL_FORMAT = "ofa-tutorial"
_TUTORIAL_LAYERS = ("0", "2", "4", "6")
_RES_BIN_START, _RES_BIN_WIDTH, _RES_BINS = 112, 16, 8


def read_torch_state(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a ``torch.save`` state dict, as float32 arrays; one line for anything else."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise PredictorError(f"accuracy predictor not found: {path}") from None
    except pickle.UnpicklingError as exc:
        raise PredictorError(f"refusing to load {path}: it needs arbitrary unpickling ({str(exc)[:120]})") from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise PredictorError(f"{path} is not a readable torch file ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PredictorError(f"{path} holds no state dict of tensors")
    return {str(k): v.detach().numpy().astype(np.float32) for k, v in state.items()}


def _tutorial_columns(space: SearchSpace) -> np.ndarray:
    """For each of our encoding's columns, the tutorial encoding's column of the same feature."""
    n_k, n_e, slots = len(space.kernel_choices), len(space.expand_choices), space.num_slots
    columns = []
    for slot in range(slots):
        columns += [slot * n_k + k for k in range(n_k)]
        columns += [slots * n_k + slot * n_e + e for e in range(n_e)]
    for resolution in space.resolutions:
        columns.append(slots * (n_k + n_e) + (resolution - _RES_BIN_START) // _RES_BIN_WIDTH)
    return np.array(columns)


def _check_tutorial_space(space: SearchSpace, path: Path) -> None:
    if (space.kernel_choices, space.expand_choices, space.num_slots) != ((3, 5, 7), (3, 4, 6), 20):
        raise PredictorError(f"{path} predicts OFA-MobileNetV3 subnets (20 slots, kernel 3/5/7, expand 3/4/6), "
                             f"not those of space {space.name}")  # fmt: skip
    outside = [r for r in space.resolutions
               if not 0 <= (r - _RES_BIN_START) // _RES_BIN_WIDTH < _RES_BINS]  # fmt: skip
    if outside:
        raise PredictorError(f"{path} encodes resolutions 112-239, space {space.name} has {outside[0]}")


def load_tutorial_predictor(path: str | Path, space: SearchSpace, supernet: str, measures: str) -> AccuracyPredictor:
    """The tutorial-format predictor at ``path`` for ``space``'s subnets (top-1 in %)."""
    path = Path(path)
    _check_tutorial_space(space, path)
    state = read_torch_state(path)
    expected = {f"{i}.{p}" for i in _TUTORIAL_LAYERS for p in ("weight", "bias")}
    width = 20 * 6 + _RES_BINS
    if set(state) != expected or state["0.weight"].shape[1:] != (width,) or state["6.weight"].shape[0] != 1:
        shapes = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in sorted(state.items()))
        raise PredictorError(f"{path} is not an OFA tutorial accuracy predictor (Linear {width}->...->1); has {shapes}")
    layers = [(state["0.weight"][:, _tutorial_columns(space)], state["0.bias"])]
    layers += [(state[f"{i}.weight"], state[f"{i}.bias"]) for i in ("2", "4")]
    return _fraction_predictor(layers, state["6.weight"], float(state["6.bias"][0]), space, supernet,
                               {"source": TUTORIAL_FORMAT, "file": path.name, "measures": measures})  # fmt: skip


def _fraction_predictor(layers: list[tuple[np.ndarray, np.ndarray]], regressor: np.ndarray, base: float, space: Any,
                        supernet: str, config: dict[str, str]) -> AccuracyPredictor:  # fmt: skip
    """An MLP predictor of ours from the hidden (weight, bias) layers and the last layer of a model
    whose output, plus ``base``, is top-1 as a fraction. Our predictors answer in percent: the scale
    is kept apart from the float32 weights (applied in float64 after the last layer), so that the
    fraction itself is what the reference computes."""
    tensors = {"regressor.weight": regressor}
    for index, (weight, bias) in enumerate(layers):
        tensors[f"layers.{index}.weight"], tensors[f"layers.{index}.bias"] = weight, bias
    return AccuracyPredictor("mlp", space, supernet, 100.0 * base, tensors, config={**config, "output_scale": 100.0},
                             supernet_path=supernet)  # fmt: skip


RESNET_FORMAT = "ofa-resnet50"
_RESNET_HIDDEN = ("0.0", "1.0", "2.0")


def load_resnet_predictor(path: str | Path, space: Any, supernet: str, measures: str) -> AccuracyPredictor:
    """The OFA authors' OFA-ResNet50 predictor (``ofa_resnet50_acc_predictor.pth``) for ``space``'s
    subnets (top-1 in %).

    Its file holds ``base_acc`` and ``layers``: three Linear(·, 400) + ReLU, then Linear(400, 1)
    without bias; its output is ``layers(x) + base_acc``, a fraction. Its 82 inputs are exactly
    :meth:`ResNetSpace.encode`'s, so the weights are taken as they are.
    """
    path = Path(path)
    state = read_torch_state(path)
    expected = {f"layers.{i}.{p}" for i in _RESNET_HIDDEN for p in ("weight", "bias")} | {"layers.3.weight", "base_acc"}
    width = space.encoding_size
    if set(state) != expected or state["layers.0.0.weight"].shape[1:] != (width,) or state["base_acc"].shape != (1,):
        shapes = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in sorted(state.items()))
        raise PredictorError(f"{path} is not an OFA-ResNet50 accuracy predictor (Linear {width}->...->1); has {shapes}")
    layers = [(state[f"layers.{i}.weight"], state[f"layers.{i}.bias"]) for i in _RESNET_HIDDEN]
    return _fraction_predictor(layers, state["layers.3.weight"], float(state["base_acc"][0]), space, supernet,
                               {"source": RESNET_FORMAT, "file": path.name, "measures": measures})  # fmt: skip
