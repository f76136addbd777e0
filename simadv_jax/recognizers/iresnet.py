"""IR-ResNet face backbones (insightface "IR" units) with SE / CBAM attention, in Flax linen.

Structure (NHWC throughout; the default sizes give IR-50 at 112x112):

  input (B, 112, 112, 3) RGB in [0, 1] -> (x - 0.5) / 0.5
  stem     conv3x3(64) - BN - PReLU                                   (B, 112, 112, 64)
  stages   widths 64/128/256/512, units [3, 4, 14, 3] (50) or [3, 13, 30, 3] (100);
           the first unit of every stage has stride 2 and a conv1x1(stride 2) + BN shortcut,
           the others an identity shortcut                            (B, 7, 7, 512)
  unit     BN - conv3x3 - BN - PReLU - conv3x3(stride) - BN - attention, + shortcut
  output   BN - Dropout(0.4) - flatten - Dense(512) - BN              (B, 512)

Attention variants (the `attention` field):
  "ir"       none.
  "ir_se"    squeeze-excitation: avg-pool -> 1x1 C->C/16 -> ReLU -> 1x1 C/16->C -> sigmoid, gates channels.
  "ir_cbam"  CBAM: channel gate sigmoid(MLP(avg-pool) + MLP(max-pool)) with one shared MLP
             (C->C/16->C, ReLU), then spatial gate sigmoid(conv kxk([channel mean, channel max])),
             k = `spatial_kernel` (3 as in Face_Pytorch, 7 as in the CBAM paper).
  "ir_cbam_se" this project's combination: the SE gate, then the CBAM gates.
All attention convolutions are bias-free, as in Face_Pytorch and the CBAM paper.

The paper's names: Ruiz et al. use Face_Pytorch models. There `CBAM_50` builds mode "ir" (no attention at all)
and `CBAM_50_SE` builds mode "ir_se", so the paper's "ArcFace CBAM-ResNet50" is `ir50` here and
"CBAM-SE-ResNet50" is `ir_se50`; an IR-50 with true CBAM attention is `ir_cbam50`.

Differences from the PyTorch models, none of which changes the parameter count: the dense layer flattens in
(H, W, C) order instead of (C, H, W); convolution padding is explicit (1 pixel each side) as in PyTorch.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ATTENTIONS = ("ir", "ir_se", "ir_cbam", "ir_cbam_se")
UNITS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}

# PyTorch BatchNorm defaults (momentum 0.1 of the new batch = flax momentum 0.9), eps 1e-5.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def batch_norm(train: bool, name: str | None = None) -> nn.BatchNorm:
    """BatchNorm over the last axis; batch statistics when `train`, running averages otherwise."""
    return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def conv(features: int, kernel: int, stride: int = 1, groups: int = 1, name: str | None = None) -> nn.Conv:
    """Bias-free kxk convolution with PyTorch-style symmetric padding k // 2."""
    pad = kernel // 2
    return nn.Conv(
        features,
        (kernel, kernel),
        strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        feature_group_count=groups,
        use_bias=False,
        name=name,
    )


class PReLU(nn.Module):
    """Per-channel PReLU: max(x, 0) + a_c * min(x, 0); a_c starts at 0.25 (PyTorch's default)."""

    init_slope: float = 0.25

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        slope = self.param("slope", nn.initializers.constant(self.init_slope), (x.shape[-1],))
        return jnp.where(x >= 0, x, slope * x)


class SqueezeExcitation(nn.Module):
    """(B, H, W, C) -> (B, H, W, C): x * sigmoid(W2 relu(W1 mean_hw(x))), W1: C -> C // reduction."""

    reduction: int = 16

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        pooled = jnp.mean(x, axis=(1, 2), keepdims=True)  # (B, 1, 1, C)
        hidden = nn.relu(nn.Dense(max(channels // self.reduction, 1), use_bias=False, name="fc1")(pooled))
        return x * nn.sigmoid(nn.Dense(channels, use_bias=False, name="fc2")(hidden))


class ChannelAttention(nn.Module):
    """CBAM channel gate: x * sigmoid(mlp(mean_hw x) + mlp(max_hw x)), one shared bias-free MLP C -> C/r -> C."""

    reduction: int = 16

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        fc1 = nn.Dense(max(channels // self.reduction, 1), use_bias=False, name="fc1")
        fc2 = nn.Dense(channels, use_bias=False, name="fc2")
        mlp = lambda v: fc2(nn.relu(fc1(v)))  # noqa: E731 (shared weights for both poolings)
        avg = jnp.mean(x, axis=(1, 2), keepdims=True)  # (B, 1, 1, C)
        big = jnp.max(x, axis=(1, 2), keepdims=True)  # (B, 1, 1, C)
        return x * nn.sigmoid(mlp(avg) + mlp(big))


class SpatialAttention(nn.Module):
    """CBAM spatial gate: x * sigmoid(conv_kxk([mean_c x, max_c x])), a bias-free 2 -> 1 convolution."""

    kernel: int = 3

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        stats = jnp.concatenate(
            [jnp.mean(x, axis=-1, keepdims=True), jnp.max(x, axis=-1, keepdims=True)], axis=-1
        )  # (B, H, W, 2): channel 0 = mean, channel 1 = max
        return x * nn.sigmoid(conv(1, self.kernel, name="conv")(stats))


class IRUnit(nn.Module):
    """One IR residual unit: (B, H, W, C_in) -> (B, H/stride, W/stride, features)."""

    features: int
    stride: int
    attention: str = "ir"
    reduction: int = 16
    spatial_kernel: int = 3

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if self.stride != 1 or x.shape[-1] != self.features:
            shortcut = conv(self.features, 1, self.stride, name="shortcut_conv")(x)
            shortcut = batch_norm(train, "shortcut_bn")(shortcut)
        else:
            shortcut = x
        y = batch_norm(train, "bn1")(x)
        y = conv(self.features, 3, name="conv1")(y)
        y = batch_norm(train, "bn2")(y)
        y = PReLU(name="prelu")(y)
        y = conv(self.features, 3, self.stride, name="conv2")(y)
        y = batch_norm(train, "bn3")(y)
        if self.attention in ("ir_se", "ir_cbam_se"):
            y = SqueezeExcitation(self.reduction, name="se")(y)
        if self.attention in ("ir_cbam", "ir_cbam_se"):
            y = ChannelAttention(self.reduction, name="channel_attention")(y)
            y = SpatialAttention(self.spatial_kernel, name="spatial_attention")(y)
        return y + shortcut


class IResNet(nn.Module):
    """IR-ResNet backbone: (B, H, W, 3) RGB in [0, 1] -> (B, embedding_dim) float32 (not normalized).

    Attributes:
      attention: one of ATTENTIONS.
      stage_units: units per stage; UNITS[50] or UNITS[100] for the published depths.
      stage_widths: channels per stage.
      stem_width: channels of the stem convolution.
      embedding_dim: output size.
      dropout_rate: dropout before the dense layer (active only with train=True; needs a "dropout" rng).
      reduction: channel reduction of the SE / CBAM MLPs.
      spatial_kernel: 3 or 7, the CBAM spatial-attention kernel.
    """

    attention: str = "ir"
    stage_units: Sequence[int] = UNITS[50]
    stage_widths: Sequence[int] = (64, 128, 256, 512)
    stem_width: int = 64
    embedding_dim: int = 512
    dropout_rate: float = 0.4
    reduction: int = 16
    spatial_kernel: int = 3

    def _validate(self) -> None:
        if self.attention not in ATTENTIONS:
            raise ValueError(f"IResNet attention: expected one of {ATTENTIONS}, got {self.attention!r}")
        if self.spatial_kernel not in (3, 7):
            raise ValueError(f"IResNet spatial_kernel: expected 3 or 7, got {self.spatial_kernel}")
        if len(self.stage_units) != len(self.stage_widths):
            raise ValueError(
                f"IResNet: stage_units {tuple(self.stage_units)} and stage_widths {tuple(self.stage_widths)}"
                " must have the same length"
            )

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
        self._validate()
        x = (images - 0.5) / 0.5
        x = conv(self.stem_width, 3, name="stem_conv")(x)
        x = batch_norm(train, "stem_bn")(x)
        x = PReLU(name="stem_prelu")(x)
        for stage, (units, width) in enumerate(zip(self.stage_units, self.stage_widths)):
            for unit in range(units):
                x = IRUnit(
                    width,
                    stride=2 if unit == 0 else 1,
                    attention=self.attention,
                    reduction=self.reduction,
                    spatial_kernel=self.spatial_kernel,
                    name=f"stage{stage + 1}_unit{unit + 1}",
                )(x, train)
        x = batch_norm(train, "output_bn")(x)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = x.reshape(x.shape[0], -1)  # (B, H * W * C)
        x = nn.Dense(self.embedding_dim, name="fc")(x)
        return batch_norm(train, "features_bn")(x)
