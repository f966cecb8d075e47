"""The geometry of a projection in kernel form, and the window arithmetic on it, in one place.

A window describes one weighted layer read through one source node (a *piece* of a projection): the layer's input
tensor ``[H, W, C]`` (channels-last), its output pixels ``[OH, OW]``, the kernel ``[KH, KW]``, the stride and the
padding before the first row and column. A spike of the source neuron at input position ``(iy, ix, c)`` reaches the
output pixel ``(oy, ox)`` of every window that holds it (``iy + PT - ky == oy * SY``, the same along x). What it
adds there is the window's kind, one class each:

* :class:`Filters` (dense, conv2d): every filter ``f < F`` with weight ``w[ky, kx, c, f]``, target channel ``f``;
* :class:`Depthwise` (depthwise conv2d, and the identity of an add layer's branch): the channels ``c*F + m``
  (``m < F``, the depth multiplier) with ``w[ky, kx, c, m]``;
* :class:`Average` (average pooling): the channel ``c`` with ``w[(oy*OW + ox)*C + c]`` (1/taps of the window times
  the channel's lambda_in/lambda_out).

A dense layer is a 1x1 :class:`Filters` window over a ``[1, 1, n]`` input. netspec's planner makes these (their
output size and padding come from Keras's rule, :func:`netspec.spec.layers.conv_geometry`); the runner simulates
them (numpy here, C++ in ``netspec_kernels.h``, which takes the same numbers as template arguments and the kind as
``cpp_mode``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np


#: Samples whose analog input drive :meth:`Window.drive` computes at once (200 MNIST samples through a 3x3x1x32
#: convolution, best of 3 at load 8: all at once 0.33 s, blocks of 8 0.18 s, of 16 0.25 s; identical drives).
DRIVE_BLOCK = 8

@dataclass(frozen=True)
class Window:
    """One piece's geometry (see the module docstring). ``filters``: F, the output channels of :class:`Filters`,
    the depth multiplier of :class:`Depthwise`, 1 for :class:`Average`."""

    #: the kind's name in the generated code's comments, and its constant in netspec_kernels.h
    what: ClassVar[str] = ""
    cpp_mode: ClassVar[str] = ""

    input: tuple[int, int, int]  # H, W, C
    output: tuple[int, int]  # OH, OW
    kernel: tuple[int, int]  # KH, KW
    stride: tuple[int, int]  # SY, SX
    padding: tuple[int, int]  # PT, PL: rows above and columns left of the input
    filters: int = 1

    # -- sizes --------------------------------------------------------------------------------------
    @property
    def channels_out(self) -> int:
        """Channels of the target layer."""
        raise NotImplementedError

    @property
    def weights(self) -> int:
        """Length of the piece's weight array: the kernel ``[KH, KW, C, F]`` (``[OH, OW, C]`` for averages)."""
        return self.kernel[0] * self.kernel[1] * self.input[2] * self.filters

    def template_arguments(self) -> tuple[int, ...]:
        """``H, W, C, OH, OW, KH, KW, SY, SX, PT, PL, F``: the C++ kernels' template arguments."""
        return (*self.input, *self.output, *self.kernel, *self.stride, *self.padding, self.filters)

    def describe(self) -> str:
        """The window in words, for the generated code's comments."""
        (h, w, c), (oh, ow), (kh, kw), (sy, sx) = self.input, self.output, self.kernel, self.stride
        return f"[{h}x{w}x{c}] -> [{oh}x{ow}], {kh}x{kw} window, stride {sy}x{sx}, {self.what}"

    # -- window arithmetic --------------------------------------------------------------------------
    def _axis_reach(self, axis: int) -> np.ndarray:
        """bool [size, taps]: whether input row (column) ``i`` reaches an output through tap ``k`` along ``axis``."""
        size, k, s, before, out = (self.input[axis], self.kernel[axis], self.stride[axis], self.padding[axis],
                                   self.output[axis])
        t = np.arange(size)[:, None] + before - np.arange(k)[None, :]
        return (t >= 0) & (t % s == 0) & (t // s < out)

    def _per_window(self) -> int:
        """Targets per window a spike is in (F for filters and depthwise, 1 for averages)."""
        return self.filters

    def fanout_per_position(self) -> np.ndarray:
        """Outgoing connections of every input position (flat, channels-last), int64 [H*W*C]."""
        cy = self._axis_reach(0).sum(axis=1)
        cx = self._axis_reach(1).sum(axis=1)
        return np.repeat((cy[:, None] * cx[None, :]).ravel() * self._per_window(), self.input[2]).astype(np.int64)

    def taps_per_window(self) -> np.ndarray:
        """Real (not padded) input positions of every output window, flat over ``(oy, ox)``, float64."""
        def along(axis):
            o = np.arange(self.output[axis])[:, None] * self.stride[axis] - self.padding[axis]
            t = o + np.arange(self.kernel[axis])[None, :]
            return ((t >= 0) & (t < self.input[axis])).sum(axis=1)
        return (along(0)[:, None] * along(1)[None, :]).ravel().astype(np.float64)

    def targets(self, spikes: np.ndarray, pos: np.ndarray, w: np.ndarray):
        """For the spiking sources ``spikes`` (ascending), read through ``pos`` (source neuron -> flat input
        position, -1: none): ``(rank, target, weight)`` of every connection, ordered by spike (rank: the spike's
        index in ``spikes``), then tap, then target: the order in which the synapses would add."""
        h, wd, c = self.input
        oh, ow = self.output
        kh, kw = self.kernel
        sy, sx = self.stride
        pt, pl = self.padding
        p = pos[spikes]
        rank = np.flatnonzero(p >= 0)
        p = p[rank].astype(np.int64)
        ch, ix, iy = p % c, (p // c) % wd, p // (c * wd)
        ty = iy[:, None] + pt - np.arange(kh)[None, :]
        tx = ix[:, None] + pl - np.arange(kw)[None, :]
        oky = (ty >= 0) & (ty % sy == 0) & (ty // sy < oh)
        okx = (tx >= 0) & (tx % sx == 0) & (tx // sx < ow)
        n_i, ky_i, kx_i = np.nonzero(oky[:, :, None] & okx[:, None, :])
        o = (ty[n_i, ky_i] // sy) * ow + tx[n_i, kx_i] // sx
        target, weight = self._connections(o, ky_i * kw + kx_i, ch[n_i], w)
        return np.repeat(rank[n_i], target.shape[1]), target.ravel(), weight.ravel()

    def _connections(self, o, tap, c, w):
        """For each (output pixel, tap, input channel) a spike reaches: its targets and weights, [n, per window]."""
        raise NotImplementedError

    def drive(self, x: np.ndarray, pos: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``W.x`` of the target neurons for every sample of ``x [N, M]`` (M: the source's size), float64
        ``[N, OH*OW*channels_out]``. Summed tap by tap (window row, column, channel) with elementwise numpy, so a
        sample's drive does not depend on the other samples (no BLAS blocking); :data:`DRIVE_BLOCK` samples at a
        time, so that the temporaries stay in cache and their memory is reused (the same operations per sample)."""
        if len(x) > DRIVE_BLOCK:
            return np.concatenate([self.drive(x[s:s + DRIVE_BLOCK], pos, w) for s in range(0, len(x), DRIVE_BLOCK)])
        h, wd, c = self.input
        oh, ow = self.output
        kh, kw = self.kernel
        sy, sx = self.stride
        pt, pl = self.padding
        n = len(x)
        w = np.asarray(w, dtype=np.float64)
        keep = pos >= 0
        flat = np.zeros((n, h * wd * c))
        flat[:, pos[keep]] = x[:, keep]
        hp, wp = max(h + pt, (oh - 1) * sy + kh), max(wd + pl, (ow - 1) * sx + kw)
        padded = np.zeros((n, hp, wp, c))
        padded[:, pt:pt + h, pl:pl + wd] = flat.reshape(n, h, wd, c)
        acc = np.zeros((n, *self._drive_shape()))
        for ky in range(kh):
            for kx in range(kw):
                patch = padded[:, ky:ky + (oh - 1) * sy + 1:sy, kx:kx + (ow - 1) * sx + 1:sx, :]
                acc = self._tap(acc, patch, w, ky, kx)
        return self._finish(acc, w).reshape(n, -1)

    def _drive_shape(self) -> tuple[int, ...]:
        """The drive of one sample before it is flattened: ``[OH, OW, ...]``."""
        raise NotImplementedError

    def _tap(self, acc, patch: np.ndarray, w: np.ndarray, ky: int, kx: int) -> np.ndarray:
        """``acc`` plus tap ``(ky, kx)``'s contribution of the input ``patch [N, OH, OW, C]``."""
        raise NotImplementedError

    def _finish(self, acc: np.ndarray, w: np.ndarray) -> np.ndarray:
        return acc


@dataclass(frozen=True)
class Filters(Window):
    """Every filter of every window the spike is in (dense, conv2d)."""

    what: ClassVar[str] = "filters"
    cpp_mode: ClassVar[str] = "netspec::FULL"

    @property
    def channels_out(self) -> int:
        return self.filters

    def describe(self) -> str:
        return f"{super().describe()} {self.filters}"

    def _connections(self, o, tap, c, w):
        f = self.filters
        rows = w.reshape(-1, f)[tap * self.input[2] + c]
        return (o * f)[:, None] + np.arange(f)[None, :], rows

    def _drive_shape(self):
        return (*self.output, self.filters)

    def _tap(self, acc, patch, w, ky, kx):
        kernel = w.reshape(*self.kernel, self.input[2], self.filters)
        for ci in range(self.input[2]):
            acc += patch[..., ci, None] * kernel[ky, kx, ci]
        return acc


@dataclass(frozen=True)
class Depthwise(Window):
    """The channel's own ``filters`` (depth multiplier) outputs of every window the spike is in."""

    what: ClassVar[str] = "depthwise, multiplier"
    cpp_mode: ClassVar[str] = "netspec::DEPTH"

    @property
    def channels_out(self) -> int:
        return self.input[2] * self.filters

    def describe(self) -> str:
        return f"{super().describe()} {self.filters}"

    def _connections(self, o, tap, c, w):
        f, channels = self.filters, self.input[2]
        rows = w.reshape(-1, f)[tap * channels + c]
        return (o * (channels * f) + c * f)[:, None] + np.arange(f)[None, :], rows

    def _drive_shape(self):
        return (*self.output, self.input[2], self.filters)

    def _tap(self, acc, patch, w, ky, kx):
        kernel = w.reshape(*self.kernel, self.input[2], self.filters)
        acc += patch[..., None] * kernel[ky, kx]
        return acc


@dataclass(frozen=True)
class Average(Window):
    """The spike's own channel of every window it is in, weighted per window and channel."""

    what: ClassVar[str] = "average"
    cpp_mode: ClassVar[str] = "netspec::POOL"

    @property
    def channels_out(self) -> int:
        return self.input[2]

    @property
    def weights(self) -> int:
        return self.output[0] * self.output[1] * self.input[2]

    def _per_window(self) -> int:
        return 1

    def _connections(self, o, tap, c, w):
        t = o * self.input[2] + c
        return t[:, None], w[t][:, None]

    def _drive_shape(self):
        return (*self.output, self.input[2])

    def _tap(self, acc, patch, w, ky, kx):
        acc += patch
        return acc

    def _finish(self, acc, w):
        acc *= w.reshape(1, *self.output, self.input[2])
        return acc


#: The kinds of window, by the name the generated code uses.
KINDS = {cls.__name__: cls for cls in (Filters, Depthwise, Average)}
