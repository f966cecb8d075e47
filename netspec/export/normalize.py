"""Normalization factors λ from calibration data (Rueckauer et al. 2017, robust normalization).

Which layers get a λ and from which values:

* every layer with neurons (dense, conv2d, depthwise_conv2d with relu; avgpool2d; global_avgpool2d;
  add): its non-zero output activations over all calibration samples and neurons;
* the output layer: its non-negative values before the softmax (the logits; the SNN output neuron
  integrates them), whatever its activation (softmax or linear; a relu output uses its non-zero values);
* method ``percentile``: λ = the p-th percentile of those values (numpy's linear interpolation);
  ``max``: their maximum (p = 100);
* method ``channel``: one λ per output channel (the last axis; a dense layer's units), the p-th
  percentile of that channel's values. A channel silent on every calibration sample gets the largest λ
  of its layer's other channels. Three layers keep one λ for all channels: the output (its channels are the
  classes, compared by spike count, so they must share one scale: the layer's p-th percentile), and
  average pooling (global or not), which take their input's λ per channel (an average is at most its
  inputs' maximum);
* a quantized layer (``levels`` set: netspec's QuantizedClip, QCFS, trained for conversion): λ = its ``clip``,
  the trained value, whatever the method (method ``clip``); its activations are not looked at;
* no λ of their own: max pooling, flatten and zero padding carry their input's; concatenate has one per
  branch; the input layer gets 1 (the analog input current is W·x+b with x as given).
* a hidden linear layer (a residual branch into an add) has no neurons; it gets the λ of the add it
  feeds, so that scaling its projection by λ_in/λ_layer means the same as scaling by λ_in/λ_add.

Exact and memory-bounded: the activations are streamed in batches through the numpy reference
(:func:`netspec.reference.forward` on the spec with its folded weights) and only the largest
``ceil((1 - p/100)·n_max) + 4`` values of each layer are kept, where ``n_max`` bounds the number of
values; the percentile only depends on those. (A low percentile on much data would need too many:
that is refused with a message, see ``MAX_KEPT``.)
"""
from __future__ import annotations

import dataclasses
import math
import sys
from typing import Callable

import numpy as np

from ..errors import NetspecError
from ..reference import forward
from ..spec import Normalization, Spec
from ..spec.layers import Role

#: Rough budget of float64 activation elements per batch.
_BATCH_ELEMENTS = 4_000_000
#: Most values kept for the percentiles of all layers together (twice that may be buffered: ~1.6 GB).
MAX_KEPT = 100_000_000


class TopValues:
    """The ``keep`` largest of a stream of values, and how many values were seen.

    Candidates are buffered and cut back to the ``keep`` largest (one ``np.partition``) whenever the
    buffer holds twice as many; values below the smallest kept one are dropped on arrival.
    """

    def __init__(self, keep: int):
        self.keep = max(1, keep)
        self.count = 0
        self._parts: list[np.ndarray] = []
        self._size = 0
        self._floor = -np.inf
        self._sorted: np.ndarray | None = None

    def add(self, v: np.ndarray) -> None:
        self.count += v.size
        if self._floor > -np.inf:
            v = v[v >= self._floor]
        if not v.size:
            return
        self._parts.append(v)
        self._size += v.size
        self._sorted = None
        if self._size > 2 * self.keep + 65536:
            self._compact()

    def _compact(self) -> None:
        merged = np.concatenate(self._parts) if len(self._parts) != 1 else self._parts[0]
        if merged.size > self.keep:
            cut = merged.size - self.keep
            merged = np.partition(merged, cut)[cut:]
            self._floor = merged[0]  # the partition puts the smallest kept value first
        self._parts, self._size = [merged], merged.size

    @property
    def values(self) -> np.ndarray:
        """The kept values, ascending."""
        if self._sorted is None:
            if self._parts:
                self._compact()
                self._sorted = np.sort(self._parts[0])
            else:
                self._sorted = np.zeros(0)
        return self._sorted

    def percentile(self, p: float) -> float:
        """The p-th percentile of all values seen, as ``np.percentile`` (linear) computes it."""
        n = self.count
        q = p / 100.0
        pos = q * (n - 1)
        lo = int(math.floor(pos))
        frac = pos - lo
        values = self.values
        first = n - values.size  # index (in the full sorted order) of values[0]
        i = lo - first
        if i < 0:
            raise RuntimeError(f"internal: percentile {p} needs rank {lo} of {n}, only the top {values.size} were kept")
        a = values[i]
        b = values[min(i + 1, values.size - 1)]
        diff = b - a
        return float(b - diff * (1 - frac) if frac >= 0.5 else a + diff * frac)


def lambda_layers(spec: Spec) -> list[str]:
    """Layers whose λ is computed from their activations: the populations of spiking neurons (hidden
    linear layers have none; an output layer may be linear), but not the quantized ones (see
    :func:`clip_lambdas`)."""
    return [n for n in spec.order if spec.is_population(n) and spec.layer(n).levels is None]


def clip_lambdas(spec: Spec) -> dict[str, Normalization]:
    """λ of the quantized layers (``levels`` set): their trained clip, one factor (method ``clip``). The
    spiking layer with threshold λ = clip, reset by subtraction and membranes starting at half the
    threshold reproduces the clip-floor-shift activation (Bu et al. 2022)."""
    return {layer.name: Normalization(float(layer.clip), "clip")
            for layer in spec.layers if spec.is_population(layer) and layer.levels is not None}


def compute_lambdas(
    spec: Spec,
    x: np.ndarray,
    *,
    method: str,
    percentile: float,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Normalization]:
    """The normalization of every layer with a λ of its own (see the module docstring for the rules).

    Parameters
    ----------
    spec : Spec
        A validated spec (its λs are ignored).
    x : np.ndarray
        Calibration inputs ``[N, *spec.input.shape]``.
    method : {"percentile", "max"}
    percentile : float
        p in (0, 100] for the percentile method.
    progress : callable, optional
        Called with (samples done, samples total) after each batch.

    Returns
    -------
    dict[str, Normalization]
        Layer name -> its λ and how it was obtained (method, percentile, samples; nothing for the input
        layer's 1), in the spec's layer order.

    Raises
    ------
    NetspecError
        A layer has no value to compute λ from (it is silent on every calibration sample).
    """
    p = 100.0 if method == "max" else float(percentile)
    names = lambda_layers(spec)
    n = x.shape[0]
    out = spec.order[-1]
    if method == "channel":
        return _channel_lambdas(spec, x, p, progress)
    keeps = {name: math.ceil((1.0 - p / 100.0) * n * int(np.prod(spec.shapes[name]))) + 4 for name in names}
    if sum(keeps.values()) > MAX_KEPT:
        raise NetspecError(
            f"--percentile {p:g} on {n} samples would hold about {2 * sum(keeps.values()) / 1e6:.0f} million activation values "
            f"in memory (the top {100 - p:g} % of every layer); use fewer --samples or a percentile closer to 100"
        )
    tails = {name: TopValues(keep) for name, keep in keeps.items()}
    per_sample = sum(int(np.prod(s)) for s in spec.shapes.values())
    batch = int(min(512, max(1, _BATCH_ELEMENTS // max(1, per_sample))))
    for start in range(0, n, batch):
        acts = forward(spec, x[start:start + batch], logits=True)
        for name in names:
            a = acts[name].ravel()
            relu_out = spec.layer(name).activation == "relu"
            tails[name].add(a[a >= 0] if name == out and not relu_out else a[a > 0])
        del acts
        if progress is not None:
            progress(min(n, start + batch), n)
    computed = {name: _lambda(spec, name, tails[name], p, n, out, method, percentile) for name in names}
    computed.update(clip_lambdas(spec))
    return _assign(spec, computed)


def _lambda(spec: Spec, name: str, tail: "TopValues", p: float, n: int, out: str, method: str, percentile: float):
    """The Normalization of ``name`` from the values ``tail`` kept of it."""
    if tail.count == 0:
        what = "non-negative logit" if name == out else "non-zero activation"
        raise NetspecError(
            f"layer '{name}' has no {what} on the {n} calibration sample(s), so its lambda cannot be computed; "
            "use more (or more typical) calibration data"
        )
    lam = tail.percentile(p)
    if not lam > 0:  # only logits can be zero here
        raise NetspecError(
            f"layer '{name}': the {p:g}th percentile of its non-negative logits on the calibration data is 0, "
            "so its lambda cannot be computed; use a higher percentile or other calibration data"
        )
    return Normalization(lam, method, float(percentile) if method != "max" else None, n)


def _assign(spec: Spec, computed: dict[str, Normalization]) -> dict[str, Normalization]:
    """Every layer with a λ of its own, from the computed ones (see the module docstring)."""
    norms = {}
    for layer in spec.layers:
        if not layer.own_lambda:
            continue  # it carries its input's
        if layer.role is Role.SOURCE:
            norms[layer.name] = Normalization(1.0)
        elif spec.is_hidden_linear(layer):
            norms[layer.name] = computed[spec.consumers(layer.name)[0].name]  # the exporter allows one add only
        else:
            norms[layer.name] = computed[layer.name]
    return norms


def _channel_lambdas(spec: Spec, x: np.ndarray, p: float, progress) -> dict[str, Normalization]:
    """Method ``channel``: one λ per output channel of every hidden layer with neurons (see the module
    docstring for the output and average pooling)."""
    from ..spec.layers import AvgPool2D, GlobalAvgPool2D

    n = x.shape[0]
    out = spec.order[-1]
    names = [name for name in lambda_layers(spec) if not isinstance(spec.layer(name), (AvgPool2D, GlobalAvgPool2D))]
    chans = {name: 1 if name == out else int(spec.shapes[name][-1]) for name in names}
    size = {name: int(np.prod(spec.shapes[name])) for name in names}
    keeps = {name: math.ceil((1.0 - p / 100.0) * n * size[name] / chans[name]) + 4 for name in names}
    if sum(keeps[k] * chans[k] for k in names) > MAX_KEPT:
        raise NetspecError(
            f"--percentile {p:g} on {n} samples would hold too many activation values in memory "
            f"(the top {100 - p:g} % of every channel); use fewer --samples or a percentile closer to 100")
    tails = {name: [TopValues(keeps[name]) for _ in range(chans[name])] for name in names}
    per_sample = sum(int(np.prod(s)) for s in spec.shapes.values())
    batch = int(min(512, max(1, _BATCH_ELEMENTS // max(1, per_sample))))
    for start in range(0, n, batch):
        acts = forward(spec, x[start:start + batch], logits=True)
        for name in names:
            a = acts[name].reshape(-1, chans[name])
            relu_out = spec.layer(name).activation == "relu"
            for c, tail in enumerate(tails[name]):
                v = a[:, c]
                tail.add(v[v >= 0] if name == out and not relu_out else v[v > 0])
        del acts
        if progress is not None:
            progress(min(n, start + batch), n)
    computed: dict[str, Normalization] = clip_lambdas(spec)
    for name in spec.order:
        layer = spec.layer(name)
        if name in computed:
            continue
        if name == out and name in names:
            computed[name] = _lambda(spec, name, tails[name][0], p, n, out, "percentile", p)
        elif name in names:
            lam = [tail.percentile(p) if tail.count else 0.0 for tail in tails[name]]
            if not any(lam):
                raise NetspecError(f"layer '{name}' has no non-zero activation on the {n} calibration sample(s), so its "
                                   "lambda cannot be computed; use more (or more typical) calibration data")
            top = max(lam)
            computed[name] = Normalization(tuple(v if v > 0 else top for v in lam), "channel", p, n)
        elif spec.is_population(layer):  # average pooling: its input's factor per channel
            lam_in = spec_lam_in(spec, layer, computed)
            computed[name] = Normalization(lam_in if name != out else float(max(lam_in)), "channel", p, n)
    return _assign(spec, computed)


def spec_lam_in(spec: Spec, layer, computed: dict[str, Normalization]) -> tuple[float, ...]:
    """The λ per channel of the input of a pooling layer, from the factors computed so far (through index-only
    layers; a concatenation joins its branches' channels)."""
    from ..spec.model import lam_per_neuron
    from ..spec.layers import Normalization as N

    def get(name):
        lay = spec.layer(name)
        if name in computed:
            return dataclasses.replace(lay, normalization=N(computed[name].lam))
        return lay

    src = layer.inputs[0]
    per = lam_per_neuron(get(src), get, spec.shapes)
    return tuple(float(v) for v in per.reshape(-1, spec.shapes[src][-1])[0])


def stderr_progress(label: str) -> Callable[[int, int], None]:
    """A progress callback printing ``label: done/total samples`` on stderr (in place on a terminal)."""
    tty = sys.stderr.isatty()
    state = {"last": -1}

    def report(done: int, total: int) -> None:
        tenth = done * 10 // max(1, total)
        if tty:
            end = "\n" if done >= total else ""
            print(f"\r{label}: {done}/{total} samples", end=end, file=sys.stderr, flush=True)
        elif tenth != state["last"] or done >= total:
            state["last"] = tenth
            print(f"{label}: {done}/{total} samples", file=sys.stderr, flush=True)

    return report
