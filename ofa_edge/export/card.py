"""Model cards: a JSON record and a short Markdown page beside each exported file, saying what the
file is (arch, size, input contract), how good it is (accuracy, parity with PyTorch), how fast it
ran and where (latency with the backend's full description), and how it was made."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._version import __version__
from ..profilers.base import BackendInfo, Measurement

CARD_SCHEMA = "ofa-edge/model-card"
CARD_SCHEMA_VERSION = 1


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def card_paths(model: Path) -> tuple[Path, Path]:
    """``subnet-int8.onnx`` -> ``subnet-int8.onnx.card.json``, ``subnet-int8.onnx.card.md`` (the
    format's suffix stays in the name: exports to several formats can share a folder)."""
    model = Path(model)
    return model.with_name(f"{model.name}.card.json"), model.with_name(f"{model.name}.card.md")


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} ms"


def fmt_pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}%"


def _signed(value: int) -> str:
    return f" + {value}" if value >= 0 else f" - {-value}"


# The export's latency summary keys a card repeats for the file the table prices.
_PRICED_LATENCY_KEYS = ("table", "predicted_ms", "prediction_error", "budget_ms", "over_budget", "budget_missed",
                        "message", "timing")  # fmt: skip


def build_card(
    about: dict[str, Any], precision: str, files: dict[str, str], size: int, io: dict[str, Any],
    accuracy: dict[str, Any], verification: dict[str, Any], quantizer: str | None,
) -> dict[str, Any]:  # fmt: skip
    """The card of one file. ``about``: what every file of the export shares (format, supernet,
    space, arch, resolution, MACs, params, normalization, finetune, command); ``files``: each of
    its files (an OpenVINO .xml and .bin) -> sha256, the main file last; ``accuracy`` and
    ``verification``: the export's records, of which the card keeps this precision's."""
    main = next(reversed(files))
    file_accuracy = {k: accuracy[k] for k in ("data", "split", "images", "torch_top1")}
    file_accuracy["top1"] = accuracy[f"{precision}_top1"]
    if precision != "fp32":
        file_accuracy["fp32_top1"] = accuracy["fp32_top1"]
        file_accuracy["agreement_with_fp32"] = accuracy[f"{precision}_agreement_with_fp32"]
    return {
        "schema": CARD_SCHEMA, "schema_version": CARD_SCHEMA_VERSION, "file": main, "files": files,
        "sha256": files[main], "bytes": size, "format": about["format"], "precision": precision,
        "quantizer": quantizer, **{k: about[k] for k in ("supernet", "space", "arch", "resolution", "macs", "params")},
        "input": {**io["input"], "layout": "NCHW"}, "output": io["output"],
        "normalization": about["normalization"], "accuracy": file_accuracy,
        "verification": {**verification, "summary": _verification_summary(precision, accuracy, verification)},
        "finetune": about["finetune"], "latency": None, "command": about["command"],
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "ofa_edge_version": __version__,
    }  # fmt: skip


def card_latency(measurement: Measurement, info: BackendInfo, priced: dict[str, Any] | None) -> dict[str, Any]:
    """A card's latency block: the file's measurement and backend; for the file the table prices
    (``priced``: the export's latency summary), the prediction and the budget too."""
    block = {
        "measured_ms": measurement.median_ms, "p10_ms": measurement.p10_ms, "p90_ms": measurement.p90_ms,
        "samples": measurement.samples, "statistic": measurement.statistic, "threads": info.threads,
        "backend": info.to_dict(),
    }  # fmt: skip
    if priced is not None:
        block.update({k: priced[k] for k in _PRICED_LATENCY_KEYS})
    return block


def _verification_summary(precision: str, accuracy: dict[str, Any], verification: dict[str, Any]) -> str:
    images = verification["images"]
    if precision == "fp32":
        return (f"max |logit difference| to PyTorch {verification['fp32_max_abs_diff']:.2e} (tolerance "
                f"{verification['fp32_tolerance']:g}), same top-1 on {verification['fp32_top1_agreement']:.2%} of "
                f"{images} test images")  # fmt: skip
    return (f"top-1 agrees with the fp32 file on {verification[f'{precision}_top1_agreement_with_fp32']:.2%} of "
            f"{images} test images; accuracy {accuracy['fp32_top1']:.2f}% -> {accuracy[f'{precision}_top1']:.2f}%")


def card_markdown(card: dict[str, Any]) -> str:
    arch = card["arch"]
    acc = card["accuracy"]
    lat = card.get("latency") or {}
    ver = card["verification"]
    backend = lat.get("backend") or {}
    lines = [
        f"# {card['file']}",
        "",
        f"{card['format']} {card['precision']} subnet of `{card['supernet']}` (space {card['space']}), "
        f"{card['resolution']} px input, {card['macs'] / 1e6:.1f}M MACs, {card['params'] / 1e6:.2f}M params.",
        "",
        f"- arch: `{json.dumps(arch)}`",
        f"- input `{card['input']['name']}` {card['input']['shape']} {card['input']['dtype']}, NCHW, "
        f"normalised with mean {card['normalization']['mean']} and std {card['normalization']['std']} "
        "(pixels in [0, 1])",
    ]
    if "quantization" in card["input"]:
        q = card["input"]["quantization"]
        lines.append(f"- int8 input: q = round(x / {q['scale']:.6g}){_signed(q['zero_point'])}")
    if "quantization" in card["output"]:
        q = card["output"]["quantization"]
        lines.append(f"- int8 output: logits = (q{_signed(-q['zero_point'])}) * {q['scale']:.6g}")
    lines += [
        f"- accuracy ({acc['data']} {acc['split']}, {acc['images']} images): PyTorch {fmt_pct(acc.get('torch_top1'))}, "
        f"this file {fmt_pct(acc.get('top1'))}"
        + (f", top-1 agreement with fp32 {acc['agreement_with_fp32']:.2%}" if "agreement_with_fp32" in acc else ""),
        f"- parity: {ver['summary']}",
    ]
    if lat:
        threads = backend.get("threads")
        lines.append(
            f"- latency: measured {fmt_ms(lat.get('measured_ms'))} (median of the least disturbed pass; "
            f"p10-p90 {fmt_ms(lat.get('p10_ms'))} - "
            f"{fmt_ms(lat.get('p90_ms'))}) on {backend.get('backend')} {backend.get('version')}, "
            f"{backend.get('device')} ({backend.get('device_detail')}), "
            f"{threads if threads is not None else '-'} thread(s); predicted {fmt_ms(lat.get('predicted_ms'))}"
            + (f" by table `{lat['table']}`" if lat.get("table") else "")
            + (f"; budget {fmt_ms(lat['budget_ms'])}" if lat.get("budget_ms") is not None else "")
        )
        if lat.get("message"):
            lines.append(f"- **{lat['message']}**")
    lines += [
        f"- sha256 `{card['sha256']}` ({card['bytes']:,} bytes)",
        f"- made by: `{card['command']}` on {card['created']} (ofa-edge {card['ofa_edge_version']})",
        "",
    ]
    return "\n".join(lines)
