"""Connectivity of every layer kind as flat index maps, computed with vectorized numpy.

Every function returns synapses as parallel arrays ``(pre, post, w)``: ``pre`` indexes the layer's input
and ``post`` its output, both flattened channels-last (row-major over ``[H, W, C]``, as Keras flattens),
``w`` the weight as the ANN has it (normalization is applied later, by the plan). No Python loop runs per
synapse or per neuron: a convolution is built from the valid (output position, kernel tap) pairs of each
axis, combined by broadcasting with the channel axes.

Index-only layers (flatten, zero padding, concatenation) say where each output element comes from
themselves (``Layer.sources`` on their classes); the plan composes those maps.
"""
from __future__ import annotations

import numpy as np

from ..spec.layers import conv_geometry

#: Index dtype of the maps (Brian2 stores synaptic indices as int32).
INDEX = np.int32


def _axis_taps(size: int, k: int, stride: int, padding: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Valid (output position, tap, input position) triples along one axis, and the output length."""
    out, before, _ = conv_geometry(size, k, stride, padding)
    o = np.repeat(np.arange(out), k)
    tap = np.tile(np.arange(k), out)
    src = o * stride - before + tap
    keep = (src >= 0) & (src < size)
    return o[keep], tap[keep], src[keep], out


def _positions(in_shape, kernel_size, strides, padding):
    """Valid (output pixel, kernel tap, input pixel) triples of a 2-D window, flattened over rows/cols.

    Returns ``out_pix [P]`` (oy*OW+ox), ``tap [P]`` (ky*KW+kx), ``in_pix [P]`` (iy*W+ix) and ``(OH, OW)``.
    """
    h, w = in_shape[0], in_shape[1]
    oy, ky, iy, oh = _axis_taps(h, kernel_size[0], strides[0], padding)
    ox, kx, ix, ow = _axis_taps(w, kernel_size[1], strides[1], padding)
    out_pix = (oy[:, None] * ow + ox[None, :]).ravel()
    tap = (ky[:, None] * kernel_size[1] + kx[None, :]).ravel()
    in_pix = (iy[:, None] * w + ix[None, :]).ravel()
    return out_pix, tap, in_pix, (oh, ow)


def _by_pre(pre: np.ndarray, post: np.ndarray, w: np.ndarray | None):
    """Synapses sorted by presynaptic index (stable), so each neuron's outgoing synapses are contiguous."""
    order = np.argsort(pre, kind="stable")
    return pre[order].astype(INDEX), post[order].astype(INDEX), None if w is None else w[order]


def dense(n_in: int, kernel: np.ndarray):
    """All-to-all: ``kernel [n_in, units]``; synapse (i, j) carries ``kernel[i, j]``."""
    units = kernel.shape[1]
    pre = np.repeat(np.arange(n_in, dtype=INDEX), units)
    post = np.tile(np.arange(units, dtype=INDEX), n_in)
    return pre, post, np.asarray(kernel, dtype=np.float64).ravel()


def conv2d(in_shape, kernel: np.ndarray, strides, padding: str):
    """Keras Conv2D (cross-correlation): ``kernel [kh, kw, cin, filters]``, 'same' padding with the odd
    row/column at the bottom/right; padded taps have no synapse."""
    kh, kw, cin, filters = kernel.shape
    out_pix, tap, in_pix, _ = _positions(in_shape, (kh, kw), strides, padding)
    c = np.arange(cin)
    f = np.arange(filters)
    pre = (in_pix[:, None, None] * cin + c[None, :, None]) + 0 * f[None, None, :]
    post = (out_pix[:, None, None] * filters + f[None, None, :]) + 0 * c[None, :, None]
    w = np.asarray(kernel, dtype=np.float64).reshape(kh * kw, cin, filters)[tap]
    return _by_pre(pre.ravel(), post.ravel(), w.ravel())


def depthwise_conv2d(in_shape, kernel: np.ndarray, strides, padding: str):
    """Keras DepthwiseConv2D: ``kernel [kh, kw, cin, m]``; output channel ``c*m + k`` reads input channel
    ``c`` only."""
    kh, kw, cin, mult = kernel.shape
    out_pix, tap, in_pix, _ = _positions(in_shape, (kh, kw), strides, padding)
    c = np.arange(cin)
    m = np.arange(mult)
    pre = (in_pix[:, None, None] * cin + c[None, :, None]) + 0 * m[None, None, :]
    post = out_pix[:, None, None] * (cin * mult) + c[None, :, None] * mult + m[None, None, :]
    w = np.asarray(kernel, dtype=np.float64).reshape(kh * kw, cin, mult)[tap]
    return _by_pre(pre.ravel(), post.ravel(), w.ravel())


def pool_windows(in_shape, pool_size, strides, padding: str):
    """Membership of pooling windows: ``(pre, post)`` with one entry per (input, window) pair, padded
    positions excluded; the same channel in and out."""
    c = in_shape[2]
    out_pix, _, in_pix, _ = _positions(in_shape, pool_size, strides, padding)
    ch = np.arange(c)
    pre = in_pix[:, None] * c + ch[None, :]
    post = out_pix[:, None] * c + ch[None, :]
    pre, post, _ = _by_pre(pre.ravel(), post.ravel(), None)
    return pre, post


def avgpool2d(in_shape, pool_size, strides, padding: str):
    """Keras AveragePooling2D: each window's mean over its real (non-padded) positions, so a synapse
    weighs ``1/k`` with ``k`` the number of real positions in its window."""
    pre, post = pool_windows(in_shape, pool_size, strides, padding)
    taps = np.bincount(post)
    return pre, post, 1.0 / taps[post]


def global_avgpool2d(in_shape):
    """Mean over rows and columns: ``[H, W, C] -> [C]``, weight ``1/(H*W)``."""
    h, w, c = in_shape
    pre = np.arange(h * w * c, dtype=INDEX)
    post = (pre % c).astype(INDEX)
    return pre, post, np.full(pre.size, 1.0 / (h * w))


def identity(n: int):
    """One-to-one synapses with weight 1 (the branches of an add layer)."""
    idx = np.arange(n, dtype=INDEX)
    return idx, idx.copy(), np.ones(n)
