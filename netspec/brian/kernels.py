"""Projections in kernel form: what a spike of a source neuron adds, computed from the layer's kernel.

A :class:`Piece` describes one weighted layer read through one source node: ``pos`` maps every neuron of
the node to its flat position (channels-last) in the layer's input tensor (-1: not read), ``geom`` holds the
layer's geometry as integers and ``w`` its weights. A spike of the neuron at ``(iy, ix, c)`` reaches every
output pixel ``(oy, ox)`` whose window holds it (``iy + pad_top - ky = oy * stride_y``, same along x) and

* ``full`` (dense, conv2d): every filter ``f`` with ``w[ky, kx, c, f]``;
* ``depth`` (depthwise conv2d, the identity of an add branch): the channels ``c*M + m`` with ``w[ky, kx, c, m]``;
* ``pool`` (average pooling): the channel ``c`` with ``w[(oy*OW + ox)*C + c]`` (1/taps of that window;
  normalized, times the channel's lambda_in/lambda_out).

A dense layer is a 1x1 ``full`` piece over a [1, 1, n] input. Memory is that of the kernel plus one index per
source neuron; nothing is per connection. The runner (``runner.py``) scatters pieces in the simulation and
computes the analog input drive from them; the fan-out of every neuron is computed here from the geometry.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..errors import NetspecError
from ..spec import Spec
from ..spec.layers import AvgPool2D, Conv2D, Dense, DepthwiseConv2D, GlobalAvgPool2D, Layer, conv_geometry

FULL, DEPTH, POOL = "full", "depth", "pool"
#: the integer fields of a piece's geometry, in order (as the runner receives them)
GEOMETRY = ("H", "W", "C", "OH", "OW", "KH", "KW", "SY", "SX", "PT", "PL", "F")


@dataclass
class Piece:
    """One layer's kernel read through one source node. ``geom`` maps the names of :data:`GEOMETRY` to ints."""

    mode: str
    geom: dict
    w: np.ndarray
    pos: np.ndarray | None = None  # int32 [source node size], set when composed

    def fanout_per_position(self) -> np.ndarray:
        """Outgoing connections of every input position (flat, channels-last), from the geometry."""
        g = self.geom
        cy = _axis_count(g["H"], g["KH"], g["SY"], g["PT"], g["OH"])
        cx = _axis_count(g["W"], g["KW"], g["SX"], g["PL"], g["OW"])
        chan = g["F"] if self.mode in (FULL, DEPTH) else 1
        per_pixel = (cy[:, None] * cx[None, :]).ravel() * chan
        return np.repeat(per_pixel, g["C"]).astype(np.int64)


def _axis_count(size: int, k: int, s: int, before: int, out: int) -> np.ndarray:
    t = np.arange(size)[:, None] + before - np.arange(k)[None, :]
    ok = (t >= 0) & (t % s == 0) & (t // s < out)
    return ok.sum(axis=1)


def _geom(in_shape, k, s, padding, f) -> dict:
    h, w, c = in_shape
    oh, pt, _ = conv_geometry(h, k[0], s[0], padding)
    ow, pl, _ = conv_geometry(w, k[1], s[1], padding)
    return dict(H=h, W=w, C=c, OH=oh, OW=ow, KH=k[0], KW=k[1], SY=s[0], SX=s[1], PT=pt, PL=pl, F=f)


# -- weighted kinds in kernel form (a test checks every kind with unrolled connections has one) ---------
@functools.singledispatch
def kernel_projection(layer: Layer, in_shape, spec: Spec) -> Piece:
    raise NetspecError(f"layer '{layer.name}': the builder has no kernel form for layer type {layer.type!r}")


@kernel_projection.register
def _(layer: Dense, in_shape, spec):
    kernel = np.asarray(spec.array(layer, "kernel"), dtype=np.float64)
    return Piece(FULL, _geom((1, 1, in_shape[0]), (1, 1), (1, 1), "valid", kernel.shape[1]), kernel.ravel())


@kernel_projection.register
def _(layer: Conv2D, in_shape, spec):
    kernel = np.asarray(spec.array(layer, "kernel"), dtype=np.float64)
    return Piece(FULL, _geom(in_shape, kernel.shape[:2], layer.stride, layer.pad, kernel.shape[3]), kernel.ravel())


@kernel_projection.register
def _(layer: DepthwiseConv2D, in_shape, spec):
    kernel = np.asarray(spec.array(layer, "kernel"), dtype=np.float64)
    return Piece(DEPTH, _geom(in_shape, kernel.shape[:2], layer.stride, layer.pad, kernel.shape[3]), kernel.ravel())


@kernel_projection.register
def _(layer: AvgPool2D, in_shape, spec):
    g = _geom(in_shape, layer.pool_size, layer.stride, layer.pad, 1)
    return Piece(POOL, g, 1.0 / _taps(g))


@kernel_projection.register
def _(layer: GlobalAvgPool2D, in_shape, spec):
    h, w, c = in_shape
    g = _geom(in_shape, (h, w), (1, 1), "valid", 1)
    return Piece(POOL, g, np.full(1, 1.0 / (h * w)))


def _taps(g: dict) -> np.ndarray:
    """Real (non-padded) positions of every output window, flat over (oy, ox), as float64."""
    ty = np.arange(g["OH"])[:, None] * g["SY"] - g["PT"] + np.arange(g["KH"])[None, :]
    tx = np.arange(g["OW"])[:, None] * g["SX"] - g["PL"] + np.arange(g["KW"])[None, :]
    ny = ((ty >= 0) & (ty < g["H"])).sum(axis=1)
    nx = ((tx >= 0) & (tx < g["W"])).sum(axis=1)
    return (ny[:, None] * nx[None, :]).ravel().astype(np.float64)


def identity(n: int) -> Piece:
    """One-to-one with weight 1 (the branches of an add layer)."""
    return Piece(DEPTH, _geom((1, 1, n), (1, 1), (1, 1), "valid", 1), np.ones(n))


def handles(kind: type[Layer]) -> bool:
    return kernel_projection.dispatch(kind) is not kernel_projection.dispatch(object)
