"""Model cards: a JSON record and a short Markdown page beside each exported file, saying what the
file is (arch, size, input contract), how good it is (accuracy, parity with PyTorch), how fast it
ran and where (latency with the backend's full description), and how it was made."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

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


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} ms"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}%"


def _signed(value: int) -> str:
    return f" + {value}" if value >= 0 else f" - {-value}"


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
        f"- accuracy ({acc['data']} {acc['split']}, {acc['images']} images): PyTorch {_pct(acc.get('torch_top1'))}, "
        f"this file {_pct(acc.get('top1'))}"
        + (f", top-1 agreement with fp32 {acc['agreement_with_fp32']:.2%}" if "agreement_with_fp32" in acc else ""),
        f"- parity: {ver['summary']}",
    ]
    if lat:
        threads = backend.get("threads")
        lines.append(
            f"- latency: measured {_ms(lat.get('measured_ms'))} (median of the least disturbed pass; "
            f"p10-p90 {_ms(lat.get('p10_ms'))} - "
            f"{_ms(lat.get('p90_ms'))}) on {backend.get('backend')} {backend.get('version')}, "
            f"{backend.get('device')} ({backend.get('device_detail')}), "
            f"{threads if threads is not None else '-'} thread(s); predicted {_ms(lat.get('predicted_ms'))}"
            + (f" by table `{lat['table']}`" if lat.get("table") else "")
            + (f"; budget {_ms(lat['budget_ms'])}" if lat.get("budget_ms") is not None else "")
        )
        if lat.get("message"):
            lines.append(f"- **{lat['message']}**")
    lines += [
        f"- sha256 `{card['sha256']}` ({card['bytes']:,} bytes)",
        f"- made by: `{card['command']}` on {card['created']} (ofa-edge {card['ofa_edge_version']})",
        "",
    ]
    return "\n".join(lines)
