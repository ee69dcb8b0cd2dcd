"""The shipped demo supernet scores what BENCHMARKS.md says, on a slice of the test set.

A floor, not an exact value: BENCHMARKS.md gives 93.06% (largest subnet) and 92.36% (smallest
subnet) at 28 px on the whole Fashion-MNIST test split. On its first 1000 images a binomial
standard deviation is about 0.85 points, so the floors sit 3 of them below.
"""

from __future__ import annotations

import pytest
import torch

import ofa_edge as oe


@pytest.fixture(scope="module")
def scorer() -> oe.SupernetScorer:
    scorer = oe.SupernetScorer.open("demo", split="test", engine="onnxruntime")
    scorer.data.scored = scorer.data.scored.subset(torch.arange(1000))
    return scorer


@pytest.mark.parametrize("which, documented", [("max", 93.06), ("min", 92.36)])
def test_demo_corner_subnets_score_their_documented_accuracy(scorer, which, documented):
    space = scorer.net.space
    arch = space.max_arch(28) if which == "max" else space.min_arch(28)
    assert scorer.score(arch) >= documented - 2.5
