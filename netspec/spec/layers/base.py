"""What every layer kind shares: name, inputs, activation, normalization, neuron overrides, tensors.

A layer kind is a frozen dataclass registered under its spec ``type``. It knows its own shape rule
(:meth:`Layer.output_shape`), the shapes of the tensors it needs (:meth:`Layer.tensor_shapes`) and how many
connections it has once unrolled (:meth:`Layer.connections`), all from its input shapes.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

Shape = tuple[int, ...]

#: type name -> layer class; filled by :func:`register`.
LAYER_TYPES: dict[str, type["Layer"]] = {}


def register(cls):
    LAYER_TYPES[cls.type] = cls
    return cls


class Role(enum.Enum):
    """What a layer kind is in the spiking network."""

    #: the network input (analog current or poisson spikes)
    SOURCE = "source"
    #: a population of integrate-and-fire neurons (unless it is a hidden linear layer, see
    #: :meth:`netspec.spec.Spec.is_hidden_linear`, which is summed into the add layers it feeds)
    POPULATION = "population"
    #: index bookkeeping only (flatten, zero padding, concatenation): no neurons, no weights
    RELAY = "relay"
    #: passes on a subset of its input's spikes (spiking max pooling): no neurons, no weights
    GATE = "gate"


class Analog(enum.Enum):
    """What a layer kind does when it reads the analog (constant-current) input."""

    #: its input current can be computed from the input values (a weighted sum, an average or a sum)
    DRIVEN = "driven"
    #: it only re-indexes the input (joined with other branches, for a concatenation), so its readers decide
    PASSES = "passes"
    #: it needs spikes (poisson encoding)
    REFUSES = "refuses"


class ShapeError(ValueError):
    """A layer cannot take the shapes it is given. ``code`` is a diagnostic code, ``field`` the property.
    The message says what the layer needs; the loader adds what its inputs give."""

    def __init__(self, code: str, message: str, field: str | int | None = None):
        super().__init__(message)
        self.code = code
        self.field = field


@dataclass(frozen=True)
class TensorRef:
    """A tensor named by its key in the weights file, or written inline (then ``inline`` holds it)."""

    key: str | None = None
    inline: Any = field(default=None, compare=False)  # nested lists as written
    def to_yaml(self):
        return self.key if self.key is not None else self.inline

    @classmethod
    def from_yaml(cls, raw) -> "TensorRef":
        return cls(key=raw) if isinstance(raw, str) else cls(inline=raw)

    def describe(self) -> str:
        return f"tensor '{self.key}'" if self.key is not None else "the inline tensor"


@dataclass(frozen=True)
class Normalization:
    """The layer's factor lambda (a float, or a tuple with one per output channel), how it was obtained, and
    the bias correction of bias calibration (activation units, a float or one per output channel: the builder
    uses ``(bias + bias_correction) / lambda``; the ANN reference ignores it)."""

    lam: float | tuple[float, ...]
    method: str | None = None
    percentile: float | None = None
    samples: int | None = None
    bias_correction: float | tuple[float, ...] | None = None

    @classmethod
    def from_yaml(cls, raw: dict) -> "Normalization":
        lam = raw["lambda"]
        lam = tuple(float(v) for v in lam) if isinstance(lam, (list, tuple)) else float(lam)
        corr = raw.get("bias_correction")
        if corr is not None:
            corr = tuple(float(v) for v in corr) if isinstance(corr, (list, tuple)) else float(corr)
        return cls(lam, raw.get("method"), raw.get("percentile"), raw.get("samples"), corr)

    @property
    def per_channel(self) -> bool:
        return isinstance(self.lam, tuple)

    def to_yaml(self) -> dict:
        out: dict = {"lambda": list(self.lam) if self.per_channel else self.lam}
        for key in ("method", "percentile", "samples"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.bias_correction is not None:
            c = self.bias_correction
            out["bias_correction"] = list(c) if isinstance(c, tuple) else c
        return out


#: The order of a kind's own fields in a spec entry (sizes, geometry, then tensors); others follow.
YAML_ORDER = ("units", "filters", "kernel_size", "strides", "padding", "depth_multiplier", "pool_size", "axis", "kernel",
              "bias")


def pair(raw, default=None) -> tuple[int, int] | None:
    if raw is None:
        return default
    if isinstance(raw, int):
        return (raw, raw)
    return (int(raw[0]), int(raw[1]))


@dataclass(frozen=True)
class Layer:
    """Fields every layer has. ``inputs`` is resolved (the default, the previous layer, filled in) by the
    loader; ``inputs_written`` remembers whether the spec wrote them, so that dumping does not add them."""

    type: ClassVar[str] = ""
    #: what the kind is in the SNN (see :class:`Role`)
    role: ClassVar[Role] = Role.RELAY
    #: whether the ANN computes a weighted sum or an average here, counted as multiply-accumulates
    #: (``connections`` of them per sample)
    macs: ClassVar[bool] = False
    #: what the kind does on the analog input (see :class:`Analog`)
    analog: ClassVar[Analog] = Analog.REFUSES
    #: whether a Keras activation after the layer can be set on it (``activation:``)
    takes_activation: ClassVar[bool] = False
    #: whether the kind's neurons receive the sum of all its inputs (add); hidden linear layers may feed
    #: only such kinds
    sums_inputs: ClassVar[bool] = False
    #: derived from ``role`` for every kind: a population of neurons (a hidden linear layer still has none:
    #: ask :meth:`netspec.spec.Spec.is_population`)
    has_neurons: ClassVar[bool] = False
    #: derived from ``role``: the kind has a normalization factor of its own (the others carry their input's)
    own_lambda: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.has_neurons = cls.role is Role.POPULATION
        cls.own_lambda = cls.role in (Role.SOURCE, Role.POPULATION)
    #: tensor fields (kernel, bias) this kind may carry
    tensor_fields: ClassVar[tuple[str, ...]] = ()
    #: how many inputs: (min, max); max None for unbounded
    arity: ClassVar[tuple[int, int | None]] = (1, 1)
    #: layout of each tensor field, for messages: {"kernel": "[inputs, units]"}
    tensor_layouts: ClassVar[dict[str, str]] = {}

    name: str
    inputs: tuple[str, ...] = ()
    inputs_written: bool = field(default=False, compare=False)
    activation: str | None = None
    #: relu's upper bound (ReLU(max_value)); with ``levels``, the top of the quantized activation
    clip: float | None = None
    #: steps of the quantized clip-floor-shift activation between 0 and ``clip`` (QCFS)
    levels: int | None = None
    normalization: Normalization | None = None
    neuron: dict | None = None  # per-layer overrides, as written

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, raw: dict, default_inputs: tuple[str, ...] = ()) -> "Layer":
        """The layer of a spec entry (plain YAML data, checked against the schema: a key the kind does not have
        is an error here, never dropped)."""
        kwargs: dict[str, Any] = {}
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - names - {"type", "inputs_written"})
        if unknown:
            raise ValueError(f"layer '{raw.get('name')}': a {cls.type} layer has no field {', '.join(map(repr, unknown))}")
        for key, value in raw.items():
            if key == "type":
                continue
            if key == "normalization":
                value = Normalization.from_yaml(value)
            elif key == "inputs":
                value = tuple(value)
            elif key in cls.tensor_fields:
                value = TensorRef.from_yaml(value)
            elif key in names:
                value = cls.convert(key, value)
            if key in names:
                kwargs[key] = value
        written = "inputs" in raw
        if not written:
            kwargs["inputs"] = default_inputs
        return cls(inputs_written=written, **kwargs)

    @classmethod
    def convert(cls, key: str, value: Any) -> Any:
        """Hook for kinds whose fields need converting from YAML (pairs, nested lists)."""
        return value

    def to_yaml(self) -> dict:
        """Plain data as a spec writes it (the one writer of a layer entry: the loader's round trip, the exporter
        and the NIR reader all use it): name, type, inputs where written, the kind's own fields in
        :data:`YAML_ORDER`, then activation, clip, levels, normalization and neuron."""
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.inputs_written:
            out["inputs"] = list(self.inputs)
        common = ("activation", "clip", "levels", "normalization", "neuron")
        own = [f.name for f in fields(self) if f.name not in ("name", "inputs", "inputs_written", *common)]
        own.sort(key=lambda k: YAML_ORDER.index(k) if k in YAML_ORDER else len(YAML_ORDER))
        for key in (*own, *common):
            value = getattr(self, key)
            if value is None:
                continue
            if isinstance(value, (Normalization, TensorRef)):
                value = value.to_yaml()
            elif isinstance(value, tuple):
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            out[key] = value
        return out

    # -- shapes ---------------------------------------------------------------------------------
    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        raise NotImplementedError

    def tensor_shapes(self, in_shapes: list[Shape]) -> dict[str, Shape]:
        """Shapes the layer's tensors must have, given its input shapes."""
        return {}

    def connections(self, in_shapes: list[Shape]) -> int:
        """Synapses once unrolled (= multiply-accumulates per sample in the ANN)."""
        return 0

    def sources(self, in_shapes: list[Shape]) -> list[np.ndarray] | None:
        """What an index-only kind (``Role.RELAY``) does, the one place it is said: per input, an int64 array
        over the layer's output (flat, channels-last) holding the flat index of the input element each output
        element copies, or -1 where it copies none of that input's (padding, another input's part). Every
        output element copies at most one input element. The reference and the builder route every relay
        through this alone; None (the default): the kind is no index map."""
        return None

    def tensors(self) -> dict[str, TensorRef]:
        return {k: getattr(self, k) for k in self.tensor_fields if getattr(self, k) is not None}

    # -- roles ----------------------------------------------------------------------------------
    @property
    def is_linear(self) -> bool:
        """Whether the spec writes ``activation: linear`` (a hidden one has no neurons of its own)."""
        return self.activation == "linear"


def one_spatial(in_shapes: list[Shape], kind: str) -> Shape:
    shape = in_shapes[0]
    if len(shape) != 3:
        raise ShapeError("NS301", f"{kind} needs an [H, W, C] input")
    return shape


def conv_geometry(size: int, k: int, s: int, padding: str) -> tuple[int, int, int]:
    """Output length and padding (before, after) along one axis, as Keras computes them."""
    if padding == "valid":
        if k > size:
            raise ShapeError("NS302", f"window {k} is larger than the input {size}")
        return (size - k) // s + 1, 0, 0
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


def taps_per_axis(size: int, k: int, s: int, padding: str) -> int:
    """Sum over output positions of the window taps that fall inside the input (padding excluded)."""
    out, before, _ = conv_geometry(size, k, s, padding)
    starts = np.arange(out) * s - before
    lo = np.clip(starts, 0, size)
    hi = np.clip(starts + k, 0, size)
    return int((hi - lo).sum())
