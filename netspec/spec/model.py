"""The typed spec: what :func:`netspec.spec.load_spec` returns and every later stage reads.

All objects are frozen. Derived facts (the order to compute layers in, every layer's output shape, each
layer's consumers, the merged neuron parameters) are computed once by the loader and stored here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .layers import Layer, MaxPool2D, Role, Shape
from .units import Quantity, parse_quantity, steps_in

#: Neuron parameter defaults (the paper's IF neuron, dimensionless, reset by subtraction).
NEURON_DEFAULTS: Mapping[str, Any] = {
    "model": "if",
    "threshold": 1.0,
    "rest": 0.0,
    "reset": "subtract",
    "refractory": "0 ms",
    "synapse": "delta",
    "delay": "0 ms",
    "initial": 0.0,
    "clamp": 0,
}


@dataclass(frozen=True)
class NeuronParams:
    """Neuron parameters of one layer, defaults and overrides merged.

    ``reset`` is ``"subtract"``, ``"zero"`` (to rest) or a :class:`Quantity` (to that value).
    ``tau_m`` is set for ``lif``; ``tau_syn`` for ``exponential`` synapses.
    """

    model: str
    threshold: Quantity
    rest: Quantity
    reset: str | Quantity
    refractory: Quantity
    synapse: str
    delay: Quantity
    tau_m: Quantity | None = None
    tau_syn: Quantity | None = None
    initial: Quantity | None = None  # membrane at the start of every sample, normalized (0 rest, 1 threshold)
    clamp: int = 0  # time steps at the start of every sample in which the layer integrates but does not spike

    @property
    def initial_u(self) -> float:
        """The normalized membrane at the start of every sample (0: rest, 1: threshold)."""
        return 0.0 if self.initial is None else float(self.initial.value)

    @property
    def scale(self) -> float:
        """threshold - rest: the membrane jump of a unit (normalized) weight, in the membrane's unit."""
        return self.threshold.value - self.rest.value

    @property
    def reset_value(self) -> float | None:
        """Absolute value the membrane is set to after a spike; None for reset by subtraction."""
        if self.reset == "subtract":
            return None
        if self.reset == "zero":
            return self.rest.value
        return self.reset.value

    @classmethod
    def from_yaml(cls, raw: Mapping[str, Any]) -> "NeuronParams":
        merged = {**NEURON_DEFAULTS, **raw}
        values: dict[str, Any] = {}
        for key, value in merged.items():
            if key in ("model", "synapse"):
                values[key] = value
            elif key == "reset" and value in ("subtract", "zero"):
                values[key] = value
            elif key == "clamp":
                values[key] = int(value)
            else:
                values[key] = parse_quantity(value)
        return cls(**values)


def hidden_linear(layer: Layer, output: str) -> bool:
    """The hidden-linear rule, for :meth:`Spec.is_hidden_linear` and the validator (which has no Spec yet):
    a population kind written ``activation: linear`` that is not the output ``output``."""
    return layer.role is Role.POPULATION and layer.is_linear and layer.name != output


@dataclass(frozen=True)
class InputSpec:
    shape: Shape
    range: tuple[float, float]
    encoding: str
    max_rate: Quantity | None = None
    seed: int | None = None


@dataclass(frozen=True)
class Simulation:
    dt: Quantity
    duration: Quantity
    readout: str | None = None  # as written; None means the default, spike_count (or membrane, softmax)
    timing: str | None = None  # as written; None means the default, zero-latency

    @property
    def zero_latency(self) -> bool:
        """Whether a spike reaches the next layer within its own time step (the default)."""
        return self.timing in (None, "zero-latency")

    @property
    def read_by(self) -> str:
        """The read-out: ``spike_count`` (the default), ``membrane`` or ``softmax``."""
        return self.readout or "spike_count"

    @property
    def steps(self) -> int:
        """Time steps per sample."""
        return steps_in(self.duration, self.dt)


@dataclass(frozen=True)
class WeightsFile:
    file: str
    sha256: str


@dataclass(frozen=True)
class Spec:
    """A validated network spec.

    Attributes
    ----------
    path : Path | None
        The spec file (None for a spec built in memory).
    layers : tuple[Layer, ...]
        As listed in the file, ``inputs`` resolved.
    order : tuple[str, ...]
        Layer names in an order where every layer comes after its inputs.
    shapes : Mapping[str, Shape]
        Output shape of every layer (per sample, channels-last).
    arrays : Mapping[str, np.ndarray]
        Every tensor a layer references, keyed ``"<layer>.<field>"`` (e.g. ``"conv1.kernel"``), float32 or
        float64, shapes checked.
    neurons : Mapping[str, NeuronParams]
        Merged neuron parameters of every layer with neurons.
    """

    path: Path | None
    name: str
    description: str | None
    source: Mapping[str, Any] | None
    weights: WeightsFile | None
    input: InputSpec
    simulation: Simulation
    neuron_defaults: Mapping[str, Any]
    layers: tuple[Layer, ...]
    order: tuple[str, ...]
    shapes: Mapping[str, Shape]
    arrays: Mapping[str, np.ndarray] = field(repr=False)
    neurons: Mapping[str, NeuronParams] = field(repr=False)
    version: int = 1

    # -- look-ups --------------------------------------------------------------------------------
    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    @property
    def input_layer(self) -> Layer:
        return next(layer for layer in self.layers if layer.role is Role.SOURCE)

    @property
    def output_layer(self) -> Layer:
        return self.layer(self.order[-1])

    def is_output(self, layer: Layer | str) -> bool:
        return (layer if isinstance(layer, str) else layer.name) == self.order[-1]

    def is_hidden_linear(self, layer: Layer | str) -> bool:
        """A layer of neurons written ``activation: linear`` that is not the output: it has no neurons of its
        own; its weighted sum goes into the add layers it feeds (a residual branch)."""
        layer = self.layer(layer) if isinstance(layer, str) else layer
        return hidden_linear(layer, self.order[-1])

    def is_population(self, layer: Layer | str) -> bool:
        """Whether the layer is a population of spiking neurons in the SNN."""
        layer = self.layer(layer) if isinstance(layer, str) else layer
        return layer.role is Role.POPULATION and not hidden_linear(layer, self.order[-1])

    def consumers(self, name: str) -> list[Layer]:
        return [layer for layer in self.layers if name in layer.inputs]

    def in_shapes(self, layer: Layer) -> list[Shape]:
        return [self.shapes[i] for i in layer.inputs]

    def array(self, layer: Layer | str, field_name: str) -> np.ndarray | None:
        """The tensor ``field_name`` (kernel, bias) of a layer, or None where the layer has none."""
        name = layer if isinstance(layer, str) else layer.name
        return self.arrays.get(f"{name}.{field_name}")

    def lam(self, layer: Layer | str) -> float | np.ndarray:
        """Normalization factor of a layer's output: a float, or float64 [C] with one per output channel
        (it broadcasts over a channels-last activation). Layers without their own (maxpool, flatten,
        zeropad) carry their input's; the input layer's default is 1. Concatenate has one factor per
        branch: ask for the branches, or :meth:`lam_per_neuron`."""
        layer = self.layer(layer) if isinstance(layer, str) else layer
        if layer.normalization is not None:
            lam = layer.normalization.lam
            return np.asarray(lam, dtype=np.float64) if isinstance(lam, tuple) else lam
        if layer.role is Role.SOURCE:
            return 1.0
        if layer.role is Role.RELAY and len(layer.inputs) > 1:
            raise ValueError(f"layer '{layer.name}' ({layer.type}) has one factor per branch")
        return self.lam(layer.inputs[0])

    def lam_per_neuron(self, layer: Layer | str) -> np.ndarray:
        """The factor of every element of a layer's output, flat channels-last: float64 [size]."""
        return lam_per_neuron(self.layer(layer) if isinstance(layer, str) else layer, self.layer, self.shapes)

    def neuron_count(self) -> int:
        """Spiking neurons of the SNN (hidden linear layers have none)."""
        return sum(int(np.prod(self.shapes[l.name])) for l in self.layers if self.is_population(l))

    def estimate(self, connectivity: str = "kernel"):
        """The network's size (:class:`netspec.spec.resources.Estimate`) built with ``connectivity``."""
        from .resources import estimate

        delayed = {name for name, p in self.neurons.items() if p.delay.value > 0}
        return estimate(self.layers, self.shapes, self.output_layer.name, self.simulation.steps, connectivity, delayed)

    # -- writing back ----------------------------------------------------------------------------
    def to_yaml(self) -> dict:
        """The spec as plain YAML data, equal to what was read (no defaults added)."""
        out: dict[str, Any] = {"netspec": self.version, "name": self.name}
        if self.description is not None:
            out["description"] = self.description
        if self.source is not None:
            out["source"] = self.source
        if self.weights is not None:
            out["weights"] = {"file": self.weights.file, "sha256": self.weights.sha256}
        inp: dict[str, Any] = {"shape": list(self.input.shape), "range": list(self.input.range), "encoding": self.input.encoding}
        if self.input.max_rate is not None:
            inp["max_rate"] = self.input.max_rate.text
        if self.input.seed is not None:
            inp["seed"] = self.input.seed
        out["input"] = inp
        sim: dict[str, Any] = {"dt": self.simulation.dt.text, "duration": self.simulation.duration.text}
        if self.simulation.readout is not None:
            sim["readout"] = self.simulation.readout
        if self.simulation.timing is not None:
            sim["timing"] = self.simulation.timing
        out["simulation"] = sim
        if self.neuron_defaults:
            out["neuron"] = dict(self.neuron_defaults)
        out["layers"] = [layer.to_yaml() for layer in self.layers]
        return out


def own_lam(layer: Layer) -> float | np.ndarray:
    """A layer's own factor (float, or float64 [C] per channel); 1 for an input without one."""
    if layer.normalization is None:
        return 1.0
    lam = layer.normalization.lam
    return np.asarray(lam, dtype=np.float64) if isinstance(lam, tuple) else lam


def lam_per_neuron(layer: Layer, get_layer, shapes: Mapping[str, Shape], pad: float | None = None) -> np.ndarray:
    """The factor of every element of ``layer``'s output, flat channels-last (float64 [size]); ``get_layer``
    maps a name to its layer. Index-only layers carry their inputs' factors element by element (a concatenation
    joins its branches', zero padding keeps its input's where it copies it); the zeros of zero padding get
    ``pad``, or where it is None the factor of their channel's first element; a max-pooling gate carries the
    factor of its window's members (rule_channel_lambdas checks that they share one)."""
    shape = tuple(shapes[layer.name])
    size = int(np.prod(shape))
    if layer.normalization is None and layer.role in (Role.RELAY, Role.GATE):
        parts = [lam_per_neuron(get_layer(i), get_layer, shapes, pad).reshape(shapes[i]) for i in layer.inputs]
        sources = layer.sources([shapes[i] for i in layer.inputs])
        if sources is not None:  # an index-only kind: each element has the factor of the element it copies
            out = np.full(size, np.nan)
            for part, src in zip(parts, sources):
                hit = src >= 0
                out[hit] = part.ravel()[src[hit]]
            grid = out.reshape(-1, shape[-1])
            gaps = np.isnan(grid)
            if gaps.any():  # elements that copy nothing (zero padding's zeros)
                first = grid[np.argmax(~gaps, axis=0), np.arange(shape[-1])]
                fill = first if pad is None else np.full(shape[-1], pad)
                grid = np.where(gaps, fill[None, :], grid)
            return grid.ravel()
        if isinstance(layer, MaxPool2D):
            return np.fmax.reduce(window_members(parts[0], layer), axis=0).ravel()
        chans = parts[0].reshape(-1, parts[0].shape[-1])[0]
        return np.tile(chans, size // shape[-1])
    lam = own_lam(layer)
    if np.ndim(lam) == 0:
        return np.full(size, float(lam))
    return np.tile(lam, size // lam.size)


def window_members(grid: np.ndarray, layer) -> np.ndarray:
    """``grid [H, W, C]`` seen through the pooling windows of ``layer``: ``[KH*KW, OH, OW, C]``, one slice per
    window tap, NaN where a tap falls outside the input (Keras's padding)."""
    from .layers import conv_geometry

    (h, w, c), (kh, kw), (sh, sw) = grid.shape, layer.pool_size, layer.stride
    oh, top, _ = conv_geometry(h, kh, sh, layer.pad)
    ow, left, _ = conv_geometry(w, kw, sw, layer.pad)
    padded = np.full((h + 2 * kh, w + 2 * kw, c), np.nan)
    padded[kh:kh + h, kw:kw + w] = grid
    taps = []
    for di in range(kh):
        for dj in range(kw):
            rows = kh + np.arange(oh) * sh - top + di
            cols = kw + np.arange(ow) * sw - left + dj
            taps.append(padded[rows][:, cols])
    return np.stack(taps)
