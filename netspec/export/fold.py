"""Batch-normalization folding: a BN layer after a dense or convolution layer, merged into its weights.

At inference a BN layer computes ``y = γ (z − μ) / √(σ² + ε) + β`` per channel, ``z = W x + b`` the
layer before it. With ``s = γ / √(σ² + ε)`` this is the layer with

    W' = W · s   (per output channel),    b' = β + (b − μ) · s.

Output channels are the last axis of the kernel for dense ([inputs, units]) and conv2d
([kh, kw, in, filters]); for depthwise_conv2d ([kh, kw, C, M]) output channel ``c*M + m`` is kernel
``[:, :, c, m]``. Computed in float64, stored float32.
"""
from __future__ import annotations

import numpy as np

from ..spec.layers import LAYER_TYPES, DepthwiseConv2D


def bn_scale_shift(gamma: np.ndarray | None, beta: np.ndarray | None, mean: np.ndarray, var: np.ndarray,
                   epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (scale s, shift t) with BN(z) = s·z + t; an absent γ is 1 and an absent β is 0."""
    mean = np.asarray(mean, dtype=np.float64)
    var = np.asarray(var, dtype=np.float64)
    g = np.ones_like(mean) if gamma is None else np.asarray(gamma, dtype=np.float64)
    b = np.zeros_like(mean) if beta is None else np.asarray(beta, dtype=np.float64)
    s = g / np.sqrt(var + float(epsilon))
    return s, b - mean * s


def fold_bn(kind: str, kernel: np.ndarray, bias: np.ndarray | None, scale: np.ndarray,
            shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fold BN's per-channel ``scale``/``shift`` into a layer's kernel and bias.

    Parameters
    ----------
    kind : str
        ``dense``, ``conv2d`` or ``depthwise_conv2d``.
    kernel : np.ndarray
        The layer's kernel in Keras layout.
    bias : np.ndarray | None
        The layer's bias; None means zero.
    scale, shift : np.ndarray
        From :func:`bn_scale_shift`, one value per output channel.

    Returns
    -------
    (kernel, bias) : tuple of np.ndarray
        float32, the kernel in the same layout; the bias always present.
    """
    k = np.asarray(kernel, dtype=np.float64)
    n_out = scale.shape[0]
    if LAYER_TYPES[kind] is DepthwiseConv2D:
        c, m = k.shape[2], k.shape[3]
        if c * m != n_out:
            raise ValueError(f"BN has {n_out} channels, the depthwise layer {c}*{m}")
        k2 = k * scale.reshape(c, m)
    else:
        if k.shape[-1] != n_out:
            raise ValueError(f"BN has {n_out} channels, the layer {k.shape[-1]}")
        k2 = k * scale
    b = np.zeros(n_out) if bias is None else np.asarray(bias, dtype=np.float64)
    return k2.astype(np.float32), (shift + b * scale).astype(np.float32)
