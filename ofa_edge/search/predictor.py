"""The accuracy predictor: top-1 of a subnet from its arch encoding, fitted on measured subnets.

Data: the JSON-lines file of :mod:`ofa_edge.search.accuracy_data` (one supernet, one split). The
features are :meth:`SearchSpace.encode` (the reference OFA predictor's one-hot encoding), the
target is the measured top-1 in %. Records scored with another calibration subset (``repeat``)
are not training rows: paired with the same subnet's first score they give the noise floor, the
error two measurements of the same subnet already make.

Two models are fitted on the same encoding and compared on held-out subnets:

* ``mlp``: the reference predictor (3 hidden layers of 400, ReLU, a linear regressor without bias,
  plus a constant base accuracy = the mean target), trained with Adam on MSE;
* ``ridge``: linear least squares with an L2 penalty, closed form, the penalty chosen by exact
  leave-one-out error on the training part.

The better one on held-out subnets is kept and refitted on all the data.

File format
-----------
A predictor is ONE safetensors file (conventionally ``NAME.predictor.safetensors``; any name works):
the weights as tensors (``mlp``: ``layers.{i}.weight`` (out, in), ``layers.{i}.bias``,
``regressor.weight`` (1, hidden), float32; ``ridge``: ``coef`` (encoding_size,), ``bias`` (1,),
float64) and, in the safetensors metadata (string to string), ``format``
(``ofa-edge-accuracy-predictor/1``), ``kind``, ``space`` (the space name), ``space_config`` (JSON),
``encoding_size``, ``supernet`` (fingerprint), ``base_acc`` (repr of a float), ``config`` (JSON) and
``report`` (JSON). One file, written atomically, so weights and their description can never come
from two different runs; no pickle anywhere. Prediction = ``base_acc + model(encoding)``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArchError, OFAEdgeError
from ..fileio import atomic_write_bytes, read_user_file, safetensors_metadata
from ..latency.fidelity import UNRANKED_TAU
from ..space.arch import Arch
from ..space.space import SearchSpace, space_from_config_dict
from .accuracy_data import FORMAT as DATA_FORMAT
from .accuracy_data import AccuracyDataError, read_records

FORMAT = "ofa-edge-accuracy-predictor/1"
KINDS = ("mlp", "ridge")


class PredictorError(OFAEdgeError):
    """A predictor file that cannot be used (missing, damaged, or of another supernet or space)."""


# ------------------------------------------------------------------------------------ data
@dataclass(frozen=True)
class AccuracyData:
    """Training rows (calibration subset 0) and the repeat pairs of one data file."""

    space: SearchSpace
    supernet: str
    split: str
    source: str
    archs: tuple[Arch, ...]
    features: np.ndarray  # (n, encoding_size) float32
    top1: np.ndarray  # (n,) float64, %
    index: np.ndarray  # (n,) plan index of each row
    resolution: np.ndarray  # (n,)
    kind: tuple[str, ...]  # 'corner' or 'random' per row
    # One row per repeat pair: top-1 with calibration subset 0, then with the other subset.
    repeats: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    repeat_resolution: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    unpaired_repeats: int = 0  # repeats whose first score is not in the file (yet)

    def __len__(self) -> int:
        return len(self.top1)


def load_accuracy_data(
    path: str | os.PathLike[str], space: SearchSpace, supernet_fingerprint: str | None = None
) -> AccuracyData:
    """Read a predictor data file (JSON lines) for ``space``.

    Lines cut short by a killed run are skipped (the collector leaves them and resumes). Raises
    one :class:`AccuracyDataError` line for a missing or empty file, a damaged record, records of
    several supernets or splits, or of another supernet than ``supernet_fingerprint``.
    """
    path = Path(path)
    if not path.is_file():
        raise AccuracyDataError(f"accuracy data not found: {path}" if not path.exists() else f"{path} is not a file")
    try:
        records = read_records(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise AccuracyDataError(f"cannot read accuracy data {path}: {exc}") from None
    if not records:
        raise AccuracyDataError(
            f"{path} holds no accuracy records (JSON lines of format {DATA_FORMAT}, written by `predictor data`)"
        )
    fingerprints = sorted({str(r.get("supernet")) for r in records})
    if len(fingerprints) > 1:
        raise AccuracyDataError(f"{path} mixes records of several supernets ({', '.join(fingerprints)})")
    if supernet_fingerprint is not None and fingerprints[0] != supernet_fingerprint:
        raise AccuracyDataError(
            f"{path} holds subnets of supernet {fingerprints[0]}, not of the one given ({supernet_fingerprint}): "
            "pass --supernet, the checkpoint `predictor data` scored"
        )
    splits = sorted({str(r.get("split")) for r in records})
    if len(splits) > 1:
        raise AccuracyDataError(f"{path} mixes records scored on several splits ({', '.join(splits)})")

    rows: list[tuple[int, Arch, float, str]] = []
    repeat_records: list[tuple[int, float]] = []
    for number, record in enumerate(records, start=1):
        index, arch, top1, subset = _parse_record(record, number, path, space)
        if subset == 0:
            rows.append((index, arch, top1, str(record.get("kind", "random"))))
        else:
            repeat_records.append((index, top1))
    if not rows:
        raise AccuracyDataError(f"{path} holds only repeat measurements, no subnets to train on")

    first_score: dict[int, tuple[float, int]] = {}
    for index, arch, top1, _ in rows:
        first_score.setdefault(index, (top1, arch.r))
    pairs = [(first_score[i][0], t, first_score[i][1]) for i, t in repeat_records if i in first_score]
    return AccuracyData(
        space=space,
        supernet=fingerprints[0],
        split=splits[0],
        source=str(path),
        archs=tuple(r[1] for r in rows),
        features=np.stack([space.encode(r[1]) for r in rows]).astype(np.float32),
        top1=np.array([r[2] for r in rows], dtype=np.float64),
        index=np.array([r[0] for r in rows], dtype=np.int64),
        resolution=np.array([r[1].r for r in rows], dtype=np.int64),
        kind=tuple(r[3] for r in rows),
        repeats=np.array([p[:2] for p in pairs], dtype=np.float64).reshape(-1, 2),
        repeat_resolution=np.array([p[2] for p in pairs], dtype=np.int64),
        unpaired_repeats=len(repeat_records) - len(pairs),
    )


def _parse_record(record: dict[str, Any], number: int, path: Path, space: SearchSpace) -> tuple[int, Arch, float, int]:
    where = f"{path} record {number}"
    try:
        index, top1, subset = record["index"], record["top1"], record.get("calibration_subset", 0)
    except KeyError as exc:
        raise AccuracyDataError(f"{where} is damaged: no field {exc}") from None
    if not isinstance(index, int) or not isinstance(subset, int) or isinstance(index, bool):
        raise AccuracyDataError(f"{where} is damaged: index and calibration_subset must be integers")
    if isinstance(top1, bool) or not isinstance(top1, (int, float)) or not math.isfinite(top1):
        raise AccuracyDataError(f"{where} is damaged: top1 {top1!r} is not a finite number")
    try:
        arch = space.validate(record.get("arch"))
    except ArchError as exc:
        raise AccuracyDataError(f"{where} (index {index}): {exc}") from None
    return index, arch, float(top1), subset


# ------------------------------------------------------------------------------- metrics
def _tau(a: np.ndarray, b: np.ndarray) -> float | None:
    """Kendall tau-b, or None where it is undefined (fewer than 2 points, or a constant side)."""
    from scipy.stats import kendalltau

    if len(a) < 2:
        return None
    value = kendalltau(a, b).statistic
    return None if value is None or not math.isfinite(value) else float(value)


def _tau_within(a: np.ndarray, b: np.ndarray, resolution: np.ndarray) -> tuple[float | None, dict[str, float | None]]:
    """Mean Kendall tau within each resolution (groups of 3 or more), and the per-resolution taus.

    Across resolutions the demo's ranking is mostly resolution itself; within one resolution the
    differences are near the measurement noise, which is what separates one predictor from another.
    """
    by_r = {str(int(r)): _tau(a[resolution == r], b[resolution == r]) if (resolution == r).sum() >= 3 else None
            for r in np.unique(resolution)}  # fmt: skip
    values = [v for v in by_r.values() if v is not None]
    return (float(np.mean(values)) if values else None), by_r


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def noise_floor(data: AccuracyData) -> dict[str, Any]:
    """How much two measurements of the same subnet differ (calibration subset 0 vs 1).

    ``repeat_std``: the std of one measurement, std(difference) / sqrt(2) (the difference of two
    independent measurements has twice the variance); ``rmse`` and ``kendall_tau`` between the two
    scores, overall and (mean) within each resolution; ``count`` pairs. A predictor judged against
    one noisy measurement cannot be expected to do better than these.
    """
    first, second = data.repeats[:, 0], data.repeats[:, 1]
    count = len(first)
    diff = second - first
    within, by_r = _tau_within(first, second, data.repeat_resolution)
    return {
        "count": count,
        "repeat_std": _round(float(np.std(diff, ddof=1)) / math.sqrt(2)) if count >= 2 else None,
        "rmse": _round(float(np.sqrt(np.mean(diff**2)))) if count else None,
        "kendall_tau": _round(_tau(first, second)),
        "kendall_tau_within_resolution": _round(within),
        "kendall_tau_by_resolution": {k: _round(v) for k, v in by_r.items()},
        "unpaired": data.unpaired_repeats,
    }


def _scores(truth: np.ndarray, pred: np.ndarray, resolution: np.ndarray) -> dict[str, Any]:
    within, by_r = _tau_within(truth, pred, resolution)
    return {
        "rmse": _round(float(np.sqrt(np.mean((pred - truth) ** 2)))),
        "mae": _round(float(np.mean(np.abs(pred - truth)))),
        "kendall_tau": _round(_tau(truth, pred)),
        "kendall_tau_within_resolution": _round(within),
        "kendall_tau_by_resolution": {k: _round(v) for k, v in by_r.items()},
    }


# ------------------------------------------------------------------------------ the model
class AccuracyPredictor:
    """Predicts top-1 (%) of subnets of one supernet from their encoding; pure numpy at inference."""

    def __init__(
        self,
        kind: str,
        space: SearchSpace,
        supernet: str,
        base_acc: float,
        tensors: dict[str, np.ndarray],
        config: dict[str, Any] | None = None,
        report: dict[str, Any] | None = None,
        supernet_path: str | None = None,
    ) -> None:
        if kind not in KINDS:
            raise PredictorError(f"unknown predictor kind '{kind}' (known: {', '.join(KINDS)})")
        self.kind = kind
        self.space = space
        self.supernet = supernet
        self.base_acc = float(base_acc)
        self.tensors = dict(tensors)
        self.config = dict(config or {})
        self.report = dict(report or {})
        # Where `predictor train` read the supernet ('demo' or an absolute path): a hint that lets
        # later commands default to it; the fingerprint above is what is checked.
        self.supernet_path = supernet_path
        # The fingerprint of the supernet file this predictor was checked against when loaded
        # (None: loaded without one, its own record trusted); searches record it.
        self.checked_supernet: str | None = None
        # A model whose output is a fraction (the OFA authors' predictors) answers in percent.
        self.output_scale = float(self.config.get("output_scale", 1.0))
        layers = self._check_tensors()
        self._layers = [(_without_negligible(w), None if b is None else _without_negligible(b)) for w, b in layers]
        # Weights stored as denormals come from a fit that kept them (no flush to zero): its tiny
        # activations then multiply into denormals too. Flushing those costs a pass per layer.
        self._flush_activations = any(_has_denormals(w) for w, _ in layers)

    @property
    def space_name(self) -> str:
        return self.space.name

    @property
    def measures(self) -> str:
        """What a prediction is, in words (said beside every predicted top-1)."""
        return str(self.config.get("measures", "top-1 predicted by the accuracy predictor"))

    @property
    def encoding_size(self) -> int:
        return self.space.encoding_size

    def _check_tensors(self) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """The model as (weight (in, out), bias) pairs; refuses shapes that do not chain from the encoding."""
        t = self.tensors
        pairs: list[tuple[np.ndarray, np.ndarray | None]]
        if self.kind == "ridge":
            if set(t) != {"coef", "bias"} or t["coef"].ndim != 1 or t["bias"].shape != (1,):
                raise PredictorError(f"a ridge predictor needs tensors coef (n,) and bias (1,), got {_shapes(t)}")
            pairs = [(t["coef"].reshape(-1, 1), t["bias"])]
        else:
            hidden = sum(1 for k in t if k.startswith("layers.") and k.endswith(".weight"))
            expected = {f"layers.{i}.{p}" for i in range(hidden) for p in ("weight", "bias")} | {"regressor.weight"}
            if set(t) != expected:
                raise PredictorError(
                    f"an mlp predictor needs layers.*.weight/bias and regressor.weight, got {_shapes(t)}"
                )
            # (in, out) laid out in memory as the products read them: a third faster than a transposed view
            pairs = [(np.ascontiguousarray(t[f"layers.{i}.weight"].T), t[f"layers.{i}.bias"]) for i in range(hidden)]
            pairs.append((np.ascontiguousarray(t["regressor.weight"].T), None))
        width = self.encoding_size
        for weight, bias in pairs:
            if weight.ndim != 2 or weight.shape[0] != width or (bias is not None and bias.shape != weight.shape[1:]):
                raise PredictorError(
                    f"{self.kind} predictor weights {_shapes(t)} do not fit the encoding size {self.encoding_size} "
                    f"of space {self.space.name}"
                )
            width = weight.shape[1]
        if width != 1:
            raise PredictorError(f"{self.kind} predictor has {width} outputs, not 1")
        return pairs

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        """Top-1 (%) for encodings ``features`` of shape (n, encoding_size), all rows in one pass."""
        x = np.asarray(features)
        if x.ndim != 2 or x.shape[1] != self.encoding_size:
            raise PredictorError(
                f"features of shape {x.shape} do not fit space {self.space.name} (need (n, {self.encoding_size}))"
            )
        h = x.astype(self._layers[0][0].dtype, copy=False)
        for position, (weight, bias) in enumerate(self._layers):
            h = h @ weight  # a new array: the in-place steps below never touch the caller's
            if bias is not None:
                h += bias
            if self.kind == "mlp" and position < len(self._layers) - 1:
                np.maximum(h, 0, out=h)
                if self._flush_activations:
                    h[h < NEGLIGIBLE] = 0
        # A top-1 is a percentage. Fitted on near-perfect subnets (a small, easy folder), the models
        # extrapolate past 100 (a search picked a subnet "predicted 101.4%"); within range, as on
        # the demo, nothing changes.
        return np.clip(h[:, 0].astype(np.float64) * self.output_scale + self.base_acc, 0.0, 100.0)

    def ranking_warning(self) -> str | None:
        """A line when the kept model ranked its held-out subnets no better than UNRANKED_TAU (a
        search with it picks almost at random), else None; None too for a file with no report."""
        scores = self.report.get("models", {}).get(self.report.get("kept"))
        if not isinstance(scores, dict):
            return None
        tau = scores.get("kendall_tau_within_resolution")
        if tau is None:
            tau = scores.get("kendall_tau")
        if tau is not None and tau >= UNRANKED_TAU:
            return None
        shown = "undefined" if tau is None else f"{tau:.2f}"
        return (
            f"the accuracy predictor ranks its {self.report.get('heldout', '?')} held-out subnets poorly "
            f"(Kendall tau {shown}, under {UNRANKED_TAU}): a search with it picks almost at random; measure more "
            "subnets (`ofa-edge predictor data --samples N`, it resumes), then train it again"
        )

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        """Top-1 (%) of each arch (validated against the space)."""
        if not len(archs):
            return np.zeros(0)
        return self.predict_features(np.stack([self.space.encode(a) for a in archs]))

    # ------------------------------------------------------------------------- files
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the predictor to one safetensors file (see the module docstring), atomically."""
        from safetensors.numpy import save as save_bytes

        metadata = {
            "format": FORMAT,
            "kind": self.kind,
            "space": self.space.name,
            "space_config": json.dumps(self.space.config_dict()),
            "encoding_size": str(self.encoding_size),
            "supernet": self.supernet,
            "base_acc": repr(self.base_acc),
            "config": json.dumps(self.config),
            "report": json.dumps(self.report),
        }
        if self.supernet_path:
            metadata["supernet_path"] = self.supernet_path
        tensors = {k: np.ascontiguousarray(v) for k, v in self.tensors.items()}
        try:
            atomic_write_bytes(Path(path), save_bytes(tensors, metadata=metadata))
        except OSError as exc:
            raise PredictorError(f"cannot write predictor {path}: {exc.strerror or exc}") from None

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        supernet_fingerprint: str | None = None,
        space: SearchSpace | None = None,
    ) -> AccuracyPredictor:
        """Read a predictor file; refuses (one :class:`PredictorError` line) a missing or damaged
        file, one fitted for another supernet than ``supernet_fingerprint`` or another ``space``,
        or weights that do not fit the encoding."""
        from safetensors import SafetensorError
        from safetensors.numpy import load as load_bytes

        path = Path(path)
        raw = read_user_file(path, "predictor", PredictorError)
        try:
            tensors = load_bytes(raw)
            metadata = safetensors_metadata(raw)
        except (SafetensorError, ValueError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            raise PredictorError(f"{path} is not a predictor file (not safetensors, or truncated)") from None
        if metadata.get("format") != FORMAT:
            found = metadata.get("format", "no format record")
            raise PredictorError(f"{path} is not an accuracy predictor ({found}; expected {FORMAT})")
        try:
            stored_space = space_from_config_dict(json.loads(metadata["space_config"]))
            encoding_size = int(metadata["encoding_size"])
            stored = {
                "kind": metadata["kind"],
                "supernet": metadata["supernet"],
                "base_acc": float(metadata["base_acc"]),
                "config": json.loads(metadata["config"]),
                "report": json.loads(metadata["report"]),
                "supernet_path": metadata.get("supernet_path"),
            }
        except (KeyError, ValueError, json.JSONDecodeError, OFAEdgeError) as exc:
            raise PredictorError(f"{path} has a damaged metadata record ({exc})") from None
        if supernet_fingerprint is not None and stored["supernet"] != supernet_fingerprint:
            raise PredictorError(
                f"{path} predicts subnets of supernet {stored['supernet']}, not of this supernet "
                f"({supernet_fingerprint}); train one on this supernet's data"
            )
        if space is not None and (diff := stored_space.differences(space)):
            raise PredictorError(
                f"{path} was fitted for space {stored_space.name}, not {space.name} (they differ in: {', '.join(diff)})"
            )
        if encoding_size != stored_space.encoding_size:
            raise PredictorError(
                f"{path} records encoding size {encoding_size} but its space {stored_space.name} "
                f"encodes {stored_space.encoding_size} features"
            )
        return cls(space=stored_space, tensors=tensors, **stored)

    def __repr__(self) -> str:
        return f"AccuracyPredictor(kind={self.kind!r}, space={self.space.name!r}, supernet={self.supernet!r})"


def _shapes(tensors: dict[str, np.ndarray]) -> str:
    return "{" + ", ".join(f"{k}: {tuple(v.shape)}" for k, v in sorted(tensors.items())) + "}"


# ------------------------------------------------------------------------------- fitting
@dataclass(frozen=True)
class MLPConfig:
    """Training settings of the reference MLP (its architecture: ``layers`` x ``hidden`` ReLU)."""

    hidden: int = 400
    layers: int = 3
    epochs: int = 150
    batch_size: int = 64
    lr: float = 1e-3
    # ~450-2000 rows against ~370k weights: without a real L2 penalty the net fits the measurement
    # noise. On the demo's 2024 subnets, 5-fold CV on the training part put 3e-3 / 1e-2 / 3e-2 / 1e-1
    # at tau 0.788 / 0.793 / 0.797 / 0.771: a flat optimum, so 1e-2 stays.
    # On synthetic demo-like data (tests/test_predictor.py) 1e-2 raised held-out within-resolution
    # tau from 0.56 (1e-4) to 0.83.
    weight_decay: float = 1e-2
    # One thread: the same bits on any machine (reduction order); 2000 rows fit in about 15 s.
    threads: int = 1


# Ridge penalties tried (features are 0/1, so the scale is that of a count of active genes).
RIDGE_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-2, 4, 25))


# Weights and activations smaller than this add under 1e-12 of an activation of up to 1e3 to a
# sum, far below float32's resolution, so zeroing them changes no prediction; what remains
# multiplies to normal floats.
NEGLIGIBLE = 1e-15


def _has_denormals(values: np.ndarray) -> bool:
    return values.dtype.kind == "f" and bool(np.any((values != 0) & (np.abs(values) < np.finfo(values.dtype).tiny)))


def _without_negligible(values: np.ndarray) -> np.ndarray:
    """``values`` with negligible entries set to zero (the same array when it has none). Weight
    decay leaves most weights of a trained MLP near zero (over 90% of the OFA authors' ResNet50
    predictor's hidden weights are under 1e-30): their products fall in the denormal float range,
    whose slow CPU path made each prediction several times slower."""
    small = (values != 0) & (np.abs(values) < NEGLIGIBLE)
    return np.where(small, 0, values).astype(values.dtype) if small.any() else values


def _denormals_flushed() -> bool:
    """Whether this thread's CPU flushes denormal floats to zero (torch has no getter for it)."""
    tiny = np.array([1e-39], dtype=np.float32)  # a float32 denormal
    return bool(tiny[0] * np.float32(1.0) == 0.0)


@contextlib.contextmanager
def _mlp_fitting_cpu(threads: int) -> Iterator[None]:
    """``threads`` torch threads and denormals flushed to zero, both restored afterwards.

    Why flush: Adam with weight decay drives many MLP weights and their moment estimates into the
    denormal range late in training, and the CPU's slow path for denormals made a 150-epoch fit on
    1600 subnets 14x slower here (190 s against 13.7 s). Values that small change no prediction.
    """
    import torch

    threads_before = torch.get_num_threads()
    flushed_before = _denormals_flushed()
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(flushed_before)
        torch.set_num_threads(threads_before)


def train_mlp_weights(
    features: np.ndarray, top1: np.ndarray, seed: int = 0, config: MLPConfig | None = None,
) -> tuple[dict[str, np.ndarray], float]:  # fmt: skip
    """The reference MLP trained on (features, top1), any input width: its tensors (the
    predictor file's ``mlp`` layout) and base accuracy. Deterministic for a seed, torch on CPU."""
    import torch

    config = config or MLPConfig()
    base_acc = float(np.mean(top1))
    # The reference subtracts base_acc; dividing by the spread as well lets one learning rate fit
    # the demo (std ~0.5 points) and ImageNet (std ~5). The scale is folded into the regressor.
    scale = float(np.std(top1)) or 1.0
    x = torch.from_numpy(np.asarray(features, dtype=np.float32))
    y = torch.from_numpy(((top1 - base_acc) / scale).astype(np.float32))
    n = len(y)
    with _mlp_fitting_cpu(config.threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        modules: list[torch.nn.Module] = []
        width = x.shape[1]
        for _ in range(config.layers):
            modules += [torch.nn.Linear(width, config.hidden), torch.nn.ReLU()]
            width = config.hidden
        body = torch.nn.Sequential(*modules)
        regressor = torch.nn.Linear(width, 1, bias=False)  # as the reference: base_acc is the offset
        params = [*body.parameters(), *regressor.parameters()]
        optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
        steps_per_epoch = math.ceil(n / config.batch_size)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs * steps_per_epoch)
        order = torch.Generator().manual_seed(seed)
        for _ in range(config.epochs):
            for batch in torch.randperm(n, generator=order).split(config.batch_size):
                loss = torch.nn.functional.mse_loss(regressor(body(x[batch])).squeeze(1), y[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
    tensors: dict[str, np.ndarray] = {}
    linears = [m for m in body if isinstance(m, torch.nn.Linear)]
    for i, layer in enumerate(linears):
        tensors[f"layers.{i}.weight"] = layer.weight.detach().numpy().copy()
        tensors[f"layers.{i}.bias"] = layer.bias.detach().numpy().copy()
    tensors["regressor.weight"] = (regressor.weight.detach().numpy() * scale).astype(np.float32)
    return tensors, base_acc


def fit_mlp(
    space: SearchSpace, supernet: str, features: np.ndarray, top1: np.ndarray, seed: int = 0,
    config: MLPConfig | None = None,
) -> AccuracyPredictor:  # fmt: skip
    """The reference MLP fitted on (features, top1): deterministic for a seed, torch on CPU."""
    config = config or MLPConfig()
    tensors, base_acc = train_mlp_weights(features, top1, seed, config)
    return AccuracyPredictor("mlp", space, supernet, base_acc, tensors, config={"mlp": asdict(config), "seed": seed})


def fit_ridge(
    space: SearchSpace, supernet: str, features: np.ndarray, top1: np.ndarray,
    alphas: Sequence[float] = RIDGE_ALPHAS,
) -> AccuracyPredictor:  # fmt: skip
    """Ridge regression (unpenalised intercept), closed form; the penalty with the lowest exact
    leave-one-out error on (features, top1) is kept."""
    x = np.asarray(features, dtype=np.float64)
    base_acc = float(np.mean(top1))
    xc, yc = x - x.mean(axis=0), np.asarray(top1, dtype=np.float64) - base_acc
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    uty = u.T @ yc
    n = len(yc)
    best: tuple[float, float] | None = None
    for alpha in alphas:
        shrink = s**2 / (s**2 + alpha)
        fitted = u @ (shrink * uty)
        # Exact LOO residuals of a linear smoother: e_i / (1 - H_ii); 1/n is the intercept's share.
        leverage = 1.0 / n + (u**2) @ shrink
        loo = float(np.mean(((yc - fitted) / np.maximum(1.0 - leverage, 1e-9)) ** 2))
        if best is None or loo < best[1]:
            best = (float(alpha), loo)
    assert best is not None, "alphas must not be empty"
    alpha = best[0]
    coef = vt.T @ ((s / (s**2 + alpha)) * uty)
    bias = -float(x.mean(axis=0) @ coef)  # centred fit: the offset beyond base_acc
    tensors = {"coef": coef.astype(np.float64), "bias": np.array([bias], dtype=np.float64)}
    config = {"alpha": alpha, "alphas": [float(a) for a in alphas], "loo_rmse": round(math.sqrt(best[1]), 4)}
    return AccuracyPredictor("ridge", space, supernet, base_acc, tensors, config=config)


def split_holdout(data: AccuracyData, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, held out): ``holdout`` of the non-corner subnets, drawn by plan index
    with a seeded generator. Corners stay in training: they are the space's extremes, not the
    uniform subnets a search compares, and the predictor needs them to span the space."""
    if not 0.0 < holdout < 1.0:
        raise OFAEdgeError(f"--holdout must be between 0 and 1 (exclusive), got {holdout}")
    candidates = np.unique(data.index[[k != "corner" for k in data.kind]])
    count = round(holdout * len(candidates))
    if count < 5 or len(data) - count < 5:
        needed = next(n for n in itertools.count(len(candidates) + 1) if round(holdout * n) >= 5)
        raise AccuracyDataError(
            f"{data.source}: too few subnets to hold out {holdout:.0%} and still train "
            f"({len(candidates)} non-corner subnets, {len(data)} in all; need 5 or more on each side): "
            f"run `ofa-edge predictor data` again with --samples {needed} or more (it measures only the new ones)"
        )
    chosen = np.random.default_rng(seed).permutation(candidates)[:count]
    held = np.isin(data.index, chosen)
    return ~held, held


def _selection_key(scores: dict[str, Any]) -> tuple[float, float]:
    """Higher is better: mean within-resolution tau (overall tau where that is undefined), then -RMSE."""
    tau = scores["kendall_tau_within_resolution"]
    if tau is None:
        tau = scores["kendall_tau"]
    # Taus are compared at the 3 decimals the report shows; closer than that is a tie, decided by RMSE.
    return (round(tau, 3) if tau is not None else -math.inf, -scores["rmse"])


def train_predictor(
    data: AccuracyData, holdout: float = 0.2, seed: int = 0, mlp_config: MLPConfig | None = None,
    ridge_alphas: Sequence[float] = RIDGE_ALPHAS,
) -> tuple[AccuracyPredictor, dict[str, Any]]:  # fmt: skip
    """Fit the MLP and ridge on all but ``holdout`` of the subnets, score both on the held-out ones
    (RMSE, MAE, Kendall tau overall and within each resolution, beside the noise floor and a
    constant predictor), keep the better and refit it on all the data.

    The kept model is chosen by the mean Kendall tau within resolutions (ties: lower RMSE): both
    models get the resolution ordering right, and ranking subnets of one resolution is the part a
    search relies on and where they differ. Returns the predictor (its ``report`` is the one
    returned) and the report.
    """
    train, held = split_holdout(data, holdout, seed)
    x_train, y_train = data.features[train], data.top1[train]
    x_held, y_held, r_held = data.features[held], data.top1[held], data.resolution[held]
    candidates = {
        "mlp": fit_mlp(data.space, data.supernet, x_train, y_train, seed, mlp_config),
        "ridge": fit_ridge(data.space, data.supernet, x_train, y_train, ridge_alphas),
    }
    models = {}
    for name, model in candidates.items():
        models[name] = _scores(y_held, model.predict_features(x_held), r_held)
        models[name]["config"] = model.config
    constant = _scores(y_held, np.full(len(y_held), float(y_train.mean())), r_held)
    kept = max(models, key=lambda name: _selection_key(models[name]))
    if kept == "mlp":
        final = fit_mlp(data.space, data.supernet, data.features, data.top1, seed, mlp_config)
    else:
        final = fit_ridge(data.space, data.supernet, data.features, data.top1, ridge_alphas)
    report = {
        "space": data.space.name,
        "supernet": data.supernet,
        "data": data.source,
        "split": data.split,
        "records": len(data),
        "train": int(train.sum()),
        "heldout": int(held.sum()),
        "holdout": holdout,
        "seed": seed,
        "heldout_resolutions": {str(int(r)): int((r_held == r).sum()) for r in np.unique(r_held)},
        "models": models,
        "constant": {k: constant[k] for k in ("rmse", "mae")},
        "noise_floor": noise_floor(data),
        "kept": kept,
        "selected_by": "mean Kendall tau within resolution on held-out subnets (ties: lower RMSE)",
        "refit": f"the kept {kept} was refitted on all {len(data)} records after selection",
        "final_config": final.config,
    }
    final.report = report
    return final, report


# The registry's name of the OFA authors' predictor, which a tutorial-format .pth file is read as.
OFFICIAL_PREDICTOR = "ofa-mbv3-w1.2"
# The accuracy predictor of the demo supernet ships inside the package, beside its weights.
DEMO_PREDICTOR = Path(__file__).resolve().parent.parent / "weights" / "mbv3-fmnist-predictor.safetensors"


def demo_predictor_path() -> Path:
    """The shipped accuracy predictor of the demo supernet; one error line if this install lacks it."""
    if not DEMO_PREDICTOR.exists():
        raise PredictorError(
            f"the demo supernet's accuracy predictor is missing from this install ({DEMO_PREDICTOR}); "
            "fit one with `ofa-edge predictor data` and `ofa-edge predictor train`, then pass --predictor PATH"
        )
    return DEMO_PREDICTOR


def _named_predictor(name: str) -> AccuracyPredictor:
    """A predictor of the registry (``ofa_edge.hub.registry.PREDICTORS``) by name."""
    from ..hub.registry import PREDICTORS

    entry = PREDICTORS[name]
    if not entry.file.exists():
        raise PredictorError(f"the predictor '{name}' is missing from this install ({entry.file})")
    model = AccuracyPredictor.load(entry.file)
    model.supernet_path = entry.supernet
    return model


def _is_named(path: str | Path | None) -> bool:
    from ..hub.registry import PREDICTORS

    return path is not None and str(path) in PREDICTORS and not Path(path).exists()


def predictor_supernet(path: str | Path | None) -> str:
    """The supernet a predictor belongs to, for commands given --predictor and no --supernet: the
    registry's supernet for a named predictor, else the checkpoint `predictor train` read ('demo'
    for the shipped predictor). A file that records none (written before the record existed) or
    whose supernet moved is one line asking for it."""
    if path is None:
        return "demo"
    if _is_named(path):
        from ..hub.registry import PREDICTORS

        return PREDICTORS[str(path)].supernet
    if Path(path).suffix == ".pth":
        return _default_official_supernet()
    model = AccuracyPredictor.load(Path(path))
    recorded = model.supernet_path
    if recorded == "demo" or (recorded and Path(recorded).is_file()):
        return recorded
    from ..nn.checkpoint import supernet_fingerprint

    if model.supernet == supernet_fingerprint("demo")[0]:  # e.g. the shipped predictor, named by its path
        return "demo"
    where = f"records supernet file {recorded}, which is not there now" if recorded else "records no supernet file"
    raise PredictorError(
        f"{path} {where}: pass --supernet, the checkpoint it was trained on (fingerprint {model.supernet})"
    )


def _default_official_supernet() -> str:
    """The supernet the OFA authors' tutorial predictor was published for."""
    from ..hub.registry import PREDICTORS

    return PREDICTORS[OFFICIAL_PREDICTOR].supernet


def _unchecked(path: str | Path | None, supernet: str | None) -> AccuracyPredictor | None:
    """A predictor tied to a registry supernet by name (nothing to fingerprint: no weights are
    needed to search), or None when the predictor must be checked against the weights."""
    from ..hub.registry import PREDICTORS, REGISTRY, get_entry
    from ..space.space import get_space
    from .official_predictor import load_resnet_predictor, load_tutorial_predictor

    official = supernet if supernet in REGISTRY and supernet != "demo" else None
    if path is None and official:
        if get_entry(official).predictor is None:
            raise PredictorError(
                f"no accuracy predictor is known for {official} (the OFA authors published none): pass "
                "--predictor PATH, one made by `ofa-edge predictor data` and `predictor train` with --data DIR"
            )
        path = get_entry(official).predictor
    if _is_named(path) and str(path) != "demo":
        model = _named_predictor(str(path))
    elif path is not None and Path(path).suffix == ".pth":
        name = official or _default_official_supernet()
        measures = PREDICTORS[OFFICIAL_PREDICTOR].measures
        space = get_space(get_entry(name).space)
        read = load_resnet_predictor if space.family == "resnet" else load_tutorial_predictor
        model = read(Path(path), space, name, measures)
    else:
        return None
    if supernet is not None and model.supernet != supernet:
        raise PredictorError(f"the accuracy predictor '{path}' predicts subnets of {model.supernet}, not of {supernet}")
    model.checked_supernet = model.supernet
    return model


def load_predictor(path: str | Path | None = None, supernet: str | None = None) -> AccuracyPredictor:
    """The accuracy predictor at ``path`` (a file, or a registry name such as ``demo`` or
    ``ofa-mbv3-w1.2``); ``checked_supernet`` holds the supernet it was checked against.

    With no ``path``: the default predictor of ``supernet`` (a registry name; the demo's when
    none). A predictor of a named official supernet is tied to it by name, so no weights are read;
    with a ``supernet`` checkpoint, the predictor must belong to it (same fingerprint and space);
    without one, the predictor's own record of its supernet and space is trusted.
    """
    model = _unchecked(path, supernet)
    if model is not None:
        return model
    if path is None or (str(path) == "demo" and not Path(path).exists()):
        if supernet not in (None, "demo"):
            raise PredictorError("a supernet other than the demo needs its own predictor (--predictor PATH)")
        path, supernet = demo_predictor_path(), "demo"
    fingerprint = space = None
    if supernet is not None:
        from ..nn.checkpoint import supernet_fingerprint

        fingerprint, space = supernet_fingerprint(supernet)
    model = AccuracyPredictor.load(Path(path), fingerprint, space)
    model.checked_supernet = fingerprint
    return model
