"""MobileFaceNet (Chen et al. 2018, as in Face_Pytorch), in Flax linen.

  input (B, 112, 112, 3) RGB in [0, 1] -> (x - 0.5) / 0.5
  conv3x3/2 (64) - BN - PReLU                                        (B, 56, 56, 64)
  depthwise 3x3 (64) - BN - PReLU
  bottlenecks (t, c, n, s) = (2,64,5,2) (4,128,1,2) (2,128,6,1) (4,128,1,2) (2,128,2,1): n units of
      conv1x1 (t*C_in) - BN - PReLU - depthwise 3x3/s - BN - PReLU - conv1x1 (c) - BN,
      the first of each group with stride s; a unit with stride 1 and C_in == c adds its input   (B, 7, 7, 128)
  conv1x1 (512) - BN - PReLU
  global depthwise conv over the whole remaining map (7x7 at 112x112) - BN                     (B, 1, 1, 512)
  linear conv1x1 (embedding_dim) - BN -> (B, embedding_dim)
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from simadv_jax.recognizers.iresnet import PReLU, batch_norm, conv

BOTTLENECKS = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))


class Bottleneck(nn.Module):
    """Inverted residual: (B, H, W, C_in) -> (B, H/stride, W/stride, features)."""

    features: int
    stride: int
    expansion: int

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        hidden = x.shape[-1] * self.expansion
        y = conv(hidden, 1, name="expand")(x)
        y = PReLU(name="expand_prelu")(batch_norm(train, "expand_bn")(y))
        y = conv(hidden, 3, self.stride, groups=hidden, name="depthwise")(y)
        y = PReLU(name="depthwise_prelu")(batch_norm(train, "depthwise_bn")(y))
        y = batch_norm(train, "project_bn")(conv(self.features, 1, name="project")(y))
        if self.stride == 1 and x.shape[-1] == self.features:
            return x + y
        return y


class MobileFaceNet(nn.Module):
    """MobileFaceNet: (B, H, W, 3) RGB in [0, 1] -> (B, embedding_dim) float32 (not normalized).

    Attributes:
      bottlenecks: (expansion t, channels c, repeats n, first stride s) per group.
      stem_width: channels of the stem and the first depthwise convolution.
      conv_width: channels of the 1x1 convolution before the global depthwise one.
      embedding_dim: output size (128 in the paper; 512 also common).
    """

    bottlenecks: Sequence[Sequence[int]] = BOTTLENECKS
    stem_width: int = 64
    conv_width: int = 512
    embedding_dim: int = 128

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
        x = (images - 0.5) / 0.5
        x = PReLU(name="stem_prelu")(batch_norm(train, "stem_bn")(conv(self.stem_width, 3, 2, name="stem_conv")(x)))
        x = conv(self.stem_width, 3, groups=self.stem_width, name="stem_depthwise")(x)
        x = PReLU(name="stem_depthwise_prelu")(batch_norm(train, "stem_depthwise_bn")(x))
        for group, spec in enumerate(self.bottlenecks):
            if len(spec) != 4:
                raise ValueError(f"MobileFaceNet bottlenecks[{group}]: expected (t, c, n, s), got {tuple(spec)}")
            expansion, features, repeats, stride = spec
            for unit in range(repeats):
                x = Bottleneck(
                    features, stride if unit == 0 else 1, expansion, name=f"group{group + 1}_unit{unit + 1}"
                )(x, train)
        x = PReLU(name="conv_prelu")(batch_norm(train, "conv_bn")(conv(self.conv_width, 1, name="conv")(x)))
        height, width = x.shape[1:3]
        x = nn.Conv(
            self.conv_width,
            (height, width),
            padding="VALID",
            feature_group_count=self.conv_width,
            use_bias=False,
            name="global_depthwise",
        )(x)  # (B, 1, 1, conv_width)
        x = batch_norm(train, "global_bn")(x)
        x = batch_norm(train, "linear_bn")(conv(self.embedding_dim, 1, name="linear")(x))
        return x.reshape(x.shape[0], self.embedding_dim)
