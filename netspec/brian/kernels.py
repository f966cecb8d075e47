"""Projections in kernel form: what a spike of a source neuron adds, computed from the layer's kernel.

A :class:`Piece` is one weighted layer read through one source node: its :class:`~.runner.geometry.Window` (the
layer's geometry, and what a spike reaches: see that module), its weights ``w`` and ``pos``, the flat position
(channels-last) in the layer's input tensor of every neuron of the node (-1: not read). Memory is that of the kernel
plus one index per source neuron; nothing is per connection. The runner (:mod:`.runner.operations`) scatters
pieces in the simulation and computes the analog input drive from them; the fan-out of every neuron comes from
the window's geometry. The output size and padding of a window follow Keras
(:func:`netspec.spec.layers.conv_geometry`).
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

from ..errors import NetspecError
from ..spec import Spec
from ..spec.layers import AvgPool2D, Conv2D, Dense, DepthwiseConv2D, GlobalAvgPool2D, Layer, conv_geometry
from .runner.geometry import Average, Depthwise, Filters, Window


@dataclass
class Piece:
    """One layer's kernel read through one source node."""

    window: Window
    w: np.ndarray  # float64: [KH, KW, C, F] flat; average pooling: [OH*OW] (ANN), [OH*OW*C] once normalized
    pos: np.ndarray | None = None  # int32 [source node size], set when composed

    def fanout_per_position(self) -> np.ndarray:
        """Outgoing connections of every input position (flat, channels-last)."""
        return self.window.fanout_per_position()

    def through(self, pos: np.ndarray, w: np.ndarray | None = None) -> "Piece":
        """The same piece read through a node with index map ``pos`` (and weights ``w``, default its own)."""
        return Piece(self.window, self.w if w is None else w, pos)

    def narrowed(self, pos: np.ndarray) -> "Piece":
        """:meth:`through` ``pos``, with a :class:`Filters` window cut down to the input channels ``pos`` reaches.

        A node that gives a layer only some of its input channels (a branch of a concatenation, read by a
        convolution) would otherwise carry the whole kernel: DenseNet121's transitions read 25 branches each, and
        25 copies of a kernel were 9 GB of its 0.3 GB. The cut piece has the node's channels only, in their order,
        and ``pos`` renumbered into them: every spike reaches the same targets with the same weights, in the same
        order (a pixel's channels keep their order, so ``pos`` still ascends where it did)."""
        win = self.window
        if not isinstance(win, Filters):  # a depthwise or average window's output channel is its input's
            return self.through(pos)
        h, wd, c = win.input
        valid = pos >= 0
        used = np.unique(pos[valid] % c)
        if used.size == c:
            return self.through(pos)
        renumber = np.full(c, -1, dtype=np.int64)
        renumber[used] = np.arange(used.size)
        cut = np.where(valid, (pos // c) * used.size + renumber[pos % c], -1).astype(pos.dtype)
        kh, kw = win.kernel
        w = np.ascontiguousarray(self.w.reshape(kh, kw, c, win.filters)[:, :, used, :]).ravel()
        return Piece(dataclasses.replace(win, input=(h, wd, int(used.size))), w, cut)


def _window(kind: type[Window], in_shape, k, s, padding: str, f: int) -> Window:
    h, w, c = in_shape
    oh, pt, _ = conv_geometry(h, k[0], s[0], padding)
    ow, pl, _ = conv_geometry(w, k[1], s[1], padding)
    return kind((h, w, c), (oh, ow), (int(k[0]), int(k[1])), (int(s[0]), int(s[1])), (pt, pl), int(f))


# -- weighted kinds in kernel form (a test checks every kind with unrolled connections has one) ---------
@functools.singledispatch
def kernel_projection(layer: Layer, in_shape, spec: Spec) -> Piece:
    raise NetspecError(f"layer '{layer.name}': the builder has no kernel form for layer type {layer.type!r}")


@kernel_projection.register
def _(layer: Dense, in_shape, spec):
    kernel = np.asarray(spec.array(layer, "kernel"), dtype=np.float64)
    return Piece(_window(Filters, (1, 1, in_shape[0]), (1, 1), (1, 1), "valid", kernel.shape[1]), kernel.ravel())


@kernel_projection.register
def _(layer: Conv2D, in_shape, spec):
    kernel = np.asarray(spec.array(layer, "kernel"), dtype=np.float64)
    return Piece(_window(Filters, in_shape, kernel.shape[:2], layer.stride, layer.pad, kernel.shape[3]), kernel.ravel())


@kernel_projection.register
def _(layer: DepthwiseConv2D, in_shape, spec):
    kernel = np.asarray(spec.array(layer, "kernel"), dtype=np.float64)
    return Piece(_window(Depthwise, in_shape, kernel.shape[:2], layer.stride, layer.pad, kernel.shape[3]), kernel.ravel())


@kernel_projection.register
def _(layer: AvgPool2D, in_shape, spec):
    window = _window(Average, in_shape, layer.pool_size, layer.stride, layer.pad, 1)
    return Piece(window, 1.0 / window.taps_per_window())


@kernel_projection.register
def _(layer: GlobalAvgPool2D, in_shape, spec):
    h, w, c = in_shape
    return Piece(_window(Average, in_shape, (h, w), (1, 1), "valid", 1), np.full(1, 1.0 / (h * w)))


def identity(n: int) -> Piece:
    """One-to-one with weight 1 (the branches of an add layer)."""
    return Piece(_window(Depthwise, (1, 1, n), (1, 1), (1, 1), "valid", 1), np.ones(n))


def handles(kind: type[Layer]) -> bool:
    return kernel_projection.dispatch(kind) is not kernel_projection.dispatch(object)
