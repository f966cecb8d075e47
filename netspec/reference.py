"""The ANN a spec describes, computed in numpy (no TensorFlow): the ground truth the SNN is compared to.

:func:`forward` gives every layer's activation, :func:`preactivation` the linear part of one layer
(W*x+b; the builder uses it for the analog input current), :func:`normalized` the firing rates the SNN
should approach and :func:`predict` the class of each sample.

Semantics follow Keras (channels-last): convolutions are cross-correlations; 'same' padding puts the
extra row/column at the bottom/right (:func:`netspec.spec.layers.conv_geometry`); max pooling ignores
padded positions; average pooling divides by the number of real (non-padded) positions in each window;
a depthwise convolution's output channel ``c*multiplier + m`` is input channel ``c`` convolved with
kernel ``[:, :, c, m]``. A hidden layer with activation ``linear`` is computed linearly (it may only feed
``add`` layers; the sum then gets the add's relu). Everything is computed in float64.
"""
from __future__ import annotations

import functools

import numpy as np

from .errors import NetspecError
from .spec import Spec
from .spec.layers import (Add, AvgPool2D, Conv2D, Dense, DepthwiseConv2D, GlobalAvgPool2D, Input, Layer, MaxPool2D, Role,
                          conv_geometry)

#: Largest temporary (windows of a convolution) built at once, in float64 elements.
_CHUNK_ELEMENTS = 8_000_000


def forward(spec: Spec, x: np.ndarray, *, logits: bool = False) -> dict[str, np.ndarray]:
    """Every layer's output for a batch.

    Parameters
    ----------
    spec : Spec
    x : np.ndarray
        ``[N, *spec.input.shape]``.
    logits : bool
        Give the output layer's values before its softmax (no effect for other activations).

    Returns
    -------
    dict[str, np.ndarray]
        Layer name -> float64 ``[N, *spec.shapes[name]]``, for every layer, the input included, in
        ``spec.order``.
    """
    x = np.asarray(x, dtype=np.float64)
    want = tuple(spec.input.shape)
    if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want:
        raise NetspecError(f"reference: inputs have shape {list(x.shape)}, the spec '{spec.name}' expects [N, {', '.join(map(str, want))}]")
    out_name = spec.order[-1]
    acts: dict[str, np.ndarray] = {}
    for name in spec.order:
        layer = spec.layer(name)
        if layer.role is Role.SOURCE:
            acts[name] = x
            continue
        z = preactivation(spec, layer, [acts[i] for i in layer.inputs])
        before_softmax = logits and name == out_name and layer.activation == "softmax"
        acts[name] = z if before_softmax else _activate(z, layer)
    return acts


def preactivation(spec: Spec, layer: Layer | str, inputs: list[np.ndarray]) -> np.ndarray:
    """The layer's operation before its activation (W*x+b for dense and convolutions, the mean for
    average pooling, the sum for add; max pooling, flatten, zero padding and concatenate as such).

    Parameters
    ----------
    spec : Spec
    layer : Layer | str
    inputs : list of np.ndarray
        One ``[N, *shape]`` array per entry of ``layer.inputs``.

    Returns
    -------
    np.ndarray
        float64 ``[N, *spec.shapes[layer.name]]``.
    """
    layer = spec.layer(layer) if isinstance(layer, str) else layer
    xs = [np.asarray(a, dtype=np.float64) for a in inputs]
    if len(xs) != len(layer.inputs):
        raise ValueError(f"layer '{layer.name}' reads {len(layer.inputs)} input(s), got {len(xs)} arrays")
    return _preact(layer, spec, xs)


# -- one rule per layer kind (a test checks every registered kind has one) ----------------------------
@functools.singledispatch
def _preact(layer: Layer, spec: Spec, xs: list[np.ndarray]) -> np.ndarray:
    sources = layer.sources(spec.in_shapes(layer)) if layer.role is Role.RELAY else None
    if sources is None:
        raise ValueError(f"layer '{layer.name}': no reference for type {layer.type!r}")
    # an index-only kind: every output element copies the input element its class's ``sources`` names
    n = xs[0].shape[0]
    out = np.zeros((n, int(np.prod(spec.shapes[layer.name]))))
    for x, src in zip(xs, sources):
        hit = np.flatnonzero(src >= 0)
        out[:, hit] = x.reshape(n, -1)[:, src[hit]]
    return out.reshape(n, *spec.shapes[layer.name])


@_preact.register
def _(layer: Dense, spec, xs):
    kernel = spec.array(layer, "kernel")
    z = np.empty((xs[0].shape[0], kernel.shape[1]))
    step = max(1, _CHUNK_ELEMENTS // max(1, kernel.shape[0]))  # float64 columns of the kernel at a time (VGG16's fc1: 0.8 GB)
    for j in range(0, kernel.shape[1], step):
        z[:, j:j + step] = xs[0] @ kernel[:, j:j + step].astype(np.float64)
    return _bias(z, spec.array(layer, "bias"))


@_preact.register
def _(layer: Conv2D, spec, xs):
    return _bias(_conv(xs[0], spec.array(layer, "kernel"), layer.stride, layer.pad), spec.array(layer, "bias"))


@_preact.register
def _(layer: DepthwiseConv2D, spec, xs):
    return _bias(_depthwise(xs[0], spec.array(layer, "kernel"), layer.stride, layer.pad), spec.array(layer, "bias"))


@_preact.register
def _(layer: MaxPool2D, spec, xs):
    return _maxpool(xs[0], layer.pool_size, layer.stride, layer.pad)


@_preact.register
def _(layer: AvgPool2D, spec, xs):
    return _avgpool(xs[0], layer.pool_size, layer.stride, layer.pad)


@_preact.register
def _(layer: GlobalAvgPool2D, spec, xs):
    return xs[0].mean(axis=(1, 2))


@_preact.register
def _(layer: Add, spec, xs):
    total = xs[0].copy()
    for a in xs[1:]:
        total += a
    return total


@_preact.register
def _(layer: Input, spec, xs):
    raise ValueError(f"layer '{layer.name}' is the input: it has no operation")


def handles(kind: type[Layer]) -> bool:
    """Whether the reference has a rule for the layer kind ``kind``."""
    if kind.role is Role.RELAY:
        return kind.sources is not Layer.sources
    return _preact.dispatch(kind) is not _preact.dispatch(object)


def normalized(spec: Spec, acts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The rates (spikes per time step) the SNN should approach: each activation divided by its λ.

    Convention: a layer's rate is ``activation / spec.lam(layer)``; index-only layers (max pooling,
    flatten, zero padding) carry their input's λ, a concatenation is its branches' rates joined, the
    input is ``x / λ_input``. For the output layer the SNN neuron integrates the logit, so its rate is
    ``max(0, logits) / λ`` whatever the activation (the logits are recomputed from the output's inputs,
    so ``acts`` may come from ``forward`` with or without ``logits``). Hidden ``linear`` layers have no
    neurons and no rate: they are left out.

    Parameters
    ----------
    spec : Spec
    acts : dict
        As :func:`forward` returns.
    """
    out_name = spec.order[-1]
    rates: dict[str, np.ndarray] = {}
    for name in spec.order:
        layer = spec.layer(name)
        if name == out_name and layer.role is not Role.SOURCE:
            z = preactivation(spec, layer, [acts[i] for i in layer.inputs])
            rates[name] = np.maximum(z, 0.0) / spec.lam(layer)
        elif spec.is_hidden_linear(layer):
            continue
        elif layer.role is Role.RELAY and len(layer.inputs) > 1:
            rates[name] = preactivation(spec, layer, [rates[i] for i in layer.inputs])
        else:  # per element: per-channel factors, and max pooling over branches with different factors
            rates[name] = acts[name] / spec.lam_per_neuron(layer).reshape(spec.shapes[name])
    return rates


def predict(spec: Spec, x: np.ndarray, *, batch: int = 256) -> np.ndarray:
    """Class index (argmax of the output) of every sample, ``int64 [N]``; computed ``batch`` samples at a
    time so the activations of a large dataset never sit in memory at once."""
    x = np.asarray(x)
    out_name = spec.order[-1]
    parts = [np.zeros(0, dtype=np.int64)]
    for start in range(0, x.shape[0], batch):
        out = forward(spec, x[start:start + batch], logits=True)[out_name]
        parts.append(np.argmax(out.reshape(out.shape[0], -1), axis=1).astype(np.int64))
    return np.concatenate(parts)


# -- activations ------------------------------------------------------------------------------------
def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


#: activation name (None: not written) -> function; relu works in place, z is always a fresh array here
_ACTIVATIONS = {
    None: lambda z: z,
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0.0, out=z),
    "softmax": _softmax,
}


def _activate(z: np.ndarray, layer: Layer) -> np.ndarray:
    """The layer's activation of ``z``: relu clipped at ``layer.clip`` and, with ``layer.levels``, quantized
    (clip-floor-shift: ``clip * min(max(floor(z*levels/clip + 1/2)/levels, 0), 1)``)."""
    act = layer.activation
    if act not in _ACTIVATIONS:
        raise ValueError(f"layer '{layer.name}': unknown activation {act!r}")
    if act == "relu" and layer.levels is not None:
        return layer.clip * np.clip(np.floor(z * (layer.levels / layer.clip) + 0.5) / layer.levels, 0.0, 1.0)
    z = _ACTIVATIONS[act](z)
    if act == "relu" and layer.clip is not None:
        np.minimum(z, layer.clip, out=z)
    return z


def _bias(z: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    if bias is not None:
        z += bias.astype(np.float64)
    return z


# -- sliding windows --------------------------------------------------------------------------------
def _pad_amounts(shape: tuple[int, ...], k: tuple[int, int], s: tuple[int, int], padding: str) -> tuple[tuple[int, int], tuple[int, int]]:
    h, w = shape[1], shape[2]
    _, t, b = conv_geometry(h, k[0], s[0], padding)
    _, l, r = conv_geometry(w, k[1], s[1], padding)
    return (t, b), (l, r)


def _windows(x: np.ndarray, k: tuple[int, int], s: tuple[int, int]) -> np.ndarray:
    """View ``[N, OH, OW, C, kh, kw]`` of the (already padded) ``x`` ``[N, H, W, C]``."""
    view = np.lib.stride_tricks.sliding_window_view(x, tuple(k), axis=(1, 2))
    return view[:, :: s[0], :: s[1]]


def _padded_windows(x: np.ndarray, k, s, padding: str, fill: float = 0.0) -> np.ndarray:
    (t, b), (l, r) = _pad_amounts(x.shape, k, s, padding)
    if t or b or l or r:
        x = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), constant_values=fill)
    return _windows(x, k, s)


def _chunks(n: int, per_sample: int):
    step = max(1, _CHUNK_ELEMENTS // max(1, per_sample))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def _conv(x: np.ndarray, kernel: np.ndarray, s, padding: str) -> np.ndarray:
    """Cross-correlation ``[N, H, W, C]`` * ``[kh, kw, C, F]`` -> ``[N, OH, OW, F]`` (im2col + matmul)."""
    kh, kw, c, f = kernel.shape
    win = _padded_windows(x, (kh, kw), s, padding)
    n, oh, ow = win.shape[:3]
    # [C, kh, kw, F] matches the window layout [..., C, kh, kw]
    k2 = np.ascontiguousarray(kernel.astype(np.float64).transpose(2, 0, 1, 3)).reshape(c * kh * kw, f)
    out = np.empty((n, oh, ow, f))
    for sl in _chunks(n, oh * ow * c * kh * kw):
        cols = win[sl].reshape(-1, c * kh * kw)  # copies the windows of this chunk (im2col)
        out[sl] = (cols @ k2).reshape(-1, oh, ow, f)
    return out


def _depthwise(x: np.ndarray, kernel: np.ndarray, s, padding: str) -> np.ndarray:
    """Depthwise ``[N, H, W, C]`` * ``[kh, kw, C, M]`` -> ``[N, OH, OW, C*M]``, channel c*M+m."""
    kh, kw, c, m = kernel.shape
    win = _padded_windows(x, (kh, kw), s, padding)
    n, oh, ow = win.shape[:3]
    k = kernel.astype(np.float64)
    out = np.empty((n, oh, ow, c, m))
    for sl in _chunks(n, oh * ow * c * kh * kw):
        out[sl] = np.einsum("nijcab,abcm->nijcm", win[sl], k, optimize=True)
    return out.reshape(n, oh, ow, c * m)


def _maxpool(x: np.ndarray, k, s, padding: str) -> np.ndarray:
    win = _padded_windows(x, k, s, padding, fill=-np.inf)
    return win.max(axis=(4, 5))


def _avgpool(x: np.ndarray, k, s, padding: str) -> np.ndarray:
    total = _padded_windows(x, k, s, padding).sum(axis=(4, 5))
    ones = np.ones((1, x.shape[1], x.shape[2], 1))
    count = _padded_windows(ones, k, s, padding).sum(axis=(4, 5))
    return total / count
