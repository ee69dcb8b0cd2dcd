"""The OFA-ProxylessNAS family's spaces.

ProxylessNAS is the mobile family without squeeze-excite and with ReLU6 everywhere: a 3x3 stem, a
fixed first block (depthwise 3x3 and a 1x1 projection, no expansion), six elastic stages of
MBConv blocks (kernel 3/5/7, expand 3/4/6 on the block's input channels, depth 2/3/4; the last
stage always one block), and a head of one 1x1 conv with BatchNorm before the global pooling and
the classifier. BatchNorm uses eps 1e-3, as the reference does for this family.

Presets
-------
``proxyless-w1.3``
    The official OFA ImageNet space (``ofa_proxyless_d234_e346_k357_w1.3``): widths 1.3x the
    ProxylessNAS base widths (stem 40, stages 32/56/104/128/248/416, head 1664), 3x224 input,
    1000 classes, resolutions 128-224 in steps of 4 (the official specialised ProxylessNAS nets
    run at 144).

``proxyless-fmnist``
    A small-data space for 28x28 grey images and 10 classes with the same elastic dimensions:
    width 0.75, stem stride 1 (as ``mbv3-fmnist``, so the last stages still see 2x2 maps), and
    resolutions 20, 24, 28.
"""

from __future__ import annotations

from collections.abc import Sequence

from .space import SearchSpace, StageSpec, make_divisible

# stem, first block, six stages, head
_BASE_WIDTHS = (32, 16, 24, 40, 80, 96, 192, 320, 1280)
_STRIDES = (2, 2, 2, 1, 2, 1)
_LAST_STAGE_DEPTHS = (1,)


def proxyless_space(
    name: str,
    width_mult: float,
    resolutions: Sequence[int],
    in_channels: int = 3,
    num_classes: int = 1000,
    stem_stride: int = 2,
    description: str = "",
) -> SearchSpace:
    """An OFA-ProxylessNAS space with the base widths scaled by ``width_mult``."""
    widths = [make_divisible(w * width_mult, 8) for w in _BASE_WIDTHS]
    stages = tuple(
        StageSpec(width=w, stride=s, act="relu6", se=False, depths=_LAST_STAGE_DEPTHS if i == 5 else ())
        for i, (w, s) in enumerate(zip(widths[2:8], _STRIDES))
    )
    return SearchSpace(
        name=name,
        in_channels=in_channels,
        num_classes=num_classes,
        resolutions=tuple(resolutions),
        stem_width=widths[0],
        stem_stride=stem_stride,
        first_block_width=widths[1],
        stages=stages,
        final_expand_width=widths[8],
        feature_mix_width=0,
        first_block_act="relu6",
        family="proxyless",
        stem_act="relu6",
        head_act="relu6",
        bn_eps=1e-3,
        description=description,
    )


def proxyless_presets() -> dict[str, SearchSpace]:
    return {
        "proxyless-w1.3": proxyless_space(
            "proxyless-w1.3",
            1.3,
            range(128, 225, 4),
            description="official OFA-ProxylessNAS w1.3 ImageNet space (ofa_proxyless_d234_e346_k357_w1.3)",
        ),
        "proxyless-fmnist": proxyless_space(
            "proxyless-fmnist",
            0.75,
            (20, 24, 28),
            in_channels=1,
            num_classes=10,
            stem_stride=1,
            description="ProxylessNAS demo space for 28x28 grey images, 10 classes (Fashion-MNIST, MNIST)",
        ),
    }
