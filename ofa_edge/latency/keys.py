"""The shape part of a latency unit's key, shared by every family's units (official table style)."""

from __future__ import annotations


def shape_key_parts(kind: str, in_size: int, in_channels: int, out_size: int, out_channels: int) -> list[str]:
    """``[kind, input:HxWxC, output:HxWxC]``; a ``Logits`` unit's output is its class count."""
    out = f"{out_channels}" if kind == "Logits" else f"{out_size}x{out_size}x{out_channels}"
    return [kind, f"input:{in_size}x{in_size}x{in_channels}", f"output:{out}"]
