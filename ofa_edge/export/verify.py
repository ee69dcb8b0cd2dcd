"""Checking exported files: the fp32 file against the PyTorch subnet it was converted from (the
largest logit difference, bounded; top-1 agreement), and each reduced-precision file (int8, fp16)
against the fp32 file (top-1 agreement, accuracy drop).

An fp32 file outside the tolerance computes something other than the subnet: the export is
refused. A reduced-precision file is expected to differ a little; its numbers go into the card
and the summary, and an agreement under :data:`AGREEMENT_FLOOR` is reported as failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import OFAEdgeError

# Top-1 agreement with the fp32 file under which a reduced-precision file is reported as failed:
# quantisation that changes more than one prediction in ten has broken something.
AGREEMENT_FLOOR = 0.90


class ExportVerificationError(OFAEdgeError):
    """The exported fp32 file does not compute what the PyTorch subnet computes."""


@dataclass(frozen=True)
class CheckSet:
    """The test images a file is checked on, their labels, and the PyTorch subnet's logits."""

    images: np.ndarray
    labels: np.ndarray
    reference: np.ndarray

    def head(self, count: int) -> CheckSet:
        return CheckSet(self.images[:count], self.labels[:count], self.reference[:count])


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent."""
    return float(100.0 * np.mean(np.argmax(logits, axis=1) == labels))


def agreement(logits: np.ndarray, reference: np.ndarray) -> float:
    """The share of images on which two sets of logits pick the same class."""
    return float(np.mean(np.argmax(logits, axis=1) == np.argmax(reference, axis=1)))


def verify_fp32(fmt: str, logits: np.ndarray, checks: CheckSet, tolerance: float) -> dict[str, Any]:
    """The fp32 file's verification record; raises when its logits differ from the PyTorch
    subnet's by more than ``tolerance`` anywhere."""
    diff = float(np.max(np.abs(logits - checks.reference)))
    if not diff <= tolerance:  # NaN fails too
        raise ExportVerificationError(
            f"the fp32 {fmt} file differs from the PyTorch subnet by up to {diff:.3g} on the logits "
            f"(tolerance {tolerance:g}): nothing was written"
        )
    return {
        "images": len(checks.images),
        "fp32_max_abs_diff": diff,
        "fp32_tolerance": tolerance,
        "fp32_top1_agreement": agreement(logits, checks.reference),
        "passed": True,
    }


def compare_with_fp32(
    precision: str, logits: np.ndarray, fp32: np.ndarray, labels: np.ndarray,
    accuracy: dict[str, Any], verification: dict[str, Any],
) -> None:  # fmt: skip
    """Record a reduced-precision file's accuracy and its agreement with the fp32 file's outputs."""
    agrees = agreement(logits, fp32)
    accuracy[f"{precision}_top1"] = top1(logits, labels)
    accuracy[f"{precision}_agreement_with_fp32"] = agrees
    accuracy[f"{precision}_drop_points"] = accuracy["fp32_top1"] - accuracy[f"{precision}_top1"]
    verification[f"{precision}_top1_agreement_with_fp32"] = agrees
    verification[f"{precision}_max_abs_diff_to_fp32"] = float(np.max(np.abs(logits - fp32)))
    verification[f"{precision}_passed"] = agrees >= AGREEMENT_FLOOR


def failed_precisions(verification: dict[str, Any]) -> list[str]:
    """The reduced precisions whose files agree with fp32 on fewer images than the floor."""
    return [p for p in ("fp16", "int8") if verification.get(f"{p}_passed") is False]
