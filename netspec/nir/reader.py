"""Reading a NIR graph into a spec and its weights (``netspec export GRAPH.nir -o SPEC.yaml``).

The graph is already a spiking network, so every lambda is 1 and the weights written are the graph's,
scaled into netspec's normalized membrane (``convention`` states the time-step and unit conventions).
The graph must be feed-forward, with one ``Input`` and one ``Output`` fed by a neuron node. Nodes map by
their NIR class (:func:`node_roles`):

* ``Input`` -> the input layer (``[C, H, W]`` -> ``[H, W, C]``);
* ``IF``, ``LIF``, ``CubaLIF`` -> a layer of neurons (``if``; ``lif``; ``lif`` with exponential synapses),
  one per neuron node. With one incoming edge it is the layer of the weighted node on that edge:
  ``Affine``/``Linear`` -> dense, ``Conv2d`` -> conv2d (``groups`` = channels, or netspec's own
  ``depth_multiplier`` metadata: depthwise_conv2d; integer padding: a zeropad2d layer before it), ``AvgPool2d`` (or a ``SumPool2d`` whose neurons take 1/n of it)
  -> avgpool2d, other pools (whose neurons scale their input) -> a depthwise_conv2d with a constant kernel, ``Scale`` or no weighted node ->
  a 1x1 depthwise_conv2d (images) or a diagonal dense layer (vectors). With several incoming edges
  (NIR sums them) it is an ``add`` layer, each weighted edge a hidden ``linear`` layer;
* ``Flatten`` -> flatten (nothing for a vector), between spiking layers only.

Refused by name: non-spiking integrators (``LI``, ``CubaLI``, ``I``; a read-out by membrane), ``Delay``,
``Threshold``, ``Conv1d``, nested graphs (recurrent layers), weighted nodes that do not end in neurons,
parameters that differ across a layer where the spec has one value (time constants, the reset, per-channel
factors of a convolution), and a bias into a ``CubaLIF`` unless the graph is netspec's own or
``approximate`` is set. Node names become layer names: characters other than letters, digits and ``_``
become ``_``, a name that does not start with a letter gets ``n_`` in front.

One module of some 950 lines: reading a graph is one pass over its nodes in which every node's meaning
depends on its neighbours (an Affine before a neuron node, a pool folded into the layer after it, padding
that becomes a zeropad2d layer), so the node handlers share the walker's state; the per-library
conventions live apart, in ``convention.py``.
"""
from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import NetspecError
from ..spec import SpecError, load_spec, parse_quantity, spec_yaml
from ..spec.layers import (Add, AvgPool2D, Concatenate, Conv2D, Crop2D, Dense, DepthwiseConv2D, Flatten, GlobalAvgPool2D, Input,
                           Layer, MaxPool2D, Normalization, TensorRef, ZeroPad2D)
from ..spec.units import TIME
from .convention import (BIAS_KEY, CONVENTIONS, DELAY_KEY, DEPTHWISE_KEY, GRAPH_KEY, INITIAL_KEY, REFRACTORY_KEY, RESET_KEY, RTOL, Convention,
                         chw_order, fingerprint, from_nir_shape, require_nir, seconds_text)

#: Largest vector a Scale (or a bare neuron-to-neuron edge) may have: it becomes an n x n diagonal dense layer.
MAX_DIAGONAL = 4096

#: The spec's neuron defaults block: NIR's IF neuron in netspec's normalized unit (reset to v_reset = rest).
NEURON_DEFAULTS = {"model": "if", "reset": "zero"}

#: Roles of NIR node classes (by class name; the classes come from the installed nir package).
INPUT, OUTPUT, NEURON, WEIGHTED, RELAY = "input", "output", "neuron", "weighted", "relay"
ROLES = {
    "Input": INPUT, "Output": OUTPUT, "IF": NEURON, "LIF": NEURON, "CubaLIF": NEURON,
    "Affine": WEIGHTED, "Linear": WEIGHTED, "Conv2d": WEIGHTED, "AvgPool2d": WEIGHTED, "SumPool2d": WEIGHTED,
    "Scale": WEIGHTED, "Flatten": RELAY,
}
#: Why the other node classes are refused.
REFUSED = {
    "LI": "a non-spiking leaky integrator (a read-out by membrane potential); netspec reads out spike counts",
    "CubaLI": "a non-spiking current-based integrator (a read-out by membrane potential); netspec reads out spike counts",
    "I": "a non-spiking integrator (a read-out by membrane potential); netspec reads out spike counts",
    "Delay": "delays between nodes are not read yet",
    "Threshold": "a threshold without a membrane has no netspec neuron model",
    "Conv1d": "netspec has no 1-D convolution",
    "NIRGraph": "a nested graph (recurrent layers are exported this way); netspec reads flat feed-forward graphs",
}


@dataclass(frozen=True)
class Reads:
    """What a spec layer kind is read from: the NIR node classes (by name) that become it, how, or why none do."""

    nodes: tuple[str, ...]
    how: str


#: Every spec layer kind, and the NIR nodes that read into it (a test fails naming "NIR reader" for a
#: registered kind without an entry; the reader refuses to make a kind whose entry has no nodes).
READS: dict[type[Layer], Reads] = {
    Input: Reads(("Input",), "the graph's one Input ([C, H, W] -> [H, W, C])"),
    Dense: Reads(("Affine", "Linear", "Scale"), "Affine/Linear into a neuron node; a Scale of a vector, or a bare edge "
                                                "between neuron nodes of vectors, as a diagonal dense layer"),
    Conv2D: Reads(("Conv2d",), "Conv2d with groups 1 into a neuron node"),
    DepthwiseConv2D: Reads(("Conv2d", "SumPool2d", "AvgPool2d", "Scale"),
                           "Conv2d with groups = channels (or netspec's depth_multiplier metadata); pools whose neurons "
                           "scale their input and Scale of an image, as constant kernels"),
    AvgPool2D: Reads(("AvgPool2d", "SumPool2d"), "AvgPool2d, or a SumPool2d whose neurons take 1/n of it"),
    Add: Reads(("IF", "LIF", "CubaLIF"), "a neuron node with several incoming edges (NIR sums them)"),
    Flatten: Reads(("Flatten",), "Flatten of an image between spiking layers"),
    ZeroPad2D: Reads(("Conv2d",), "the integer padding of a Conv2d"),
    GlobalAvgPool2D: Reads((), "none: an AvgPool2d over the whole image reads as avgpool2d and its Flatten as flatten, "
                               "the same network"),
    MaxPool2D: Reads((), "none: NIR 1.0.8 has no max-pooling node"),
    Concatenate: Reads((), "none: NIR 1.0.8 has no concatenation node"),
    Crop2D: Reads((), "none: NIR 1.0.8 has no cropping node"),
}


def handles(kind: type[Layer]) -> bool:
    """Whether the NIR reader declares what becomes the layer kind ``kind`` (or why nothing does)."""
    return kind in READS


@dataclass
class ImportOptions:
    """Choices for reading a NIR graph. None means: the graph's netspec metadata, else the default.

    Attributes
    ----------
    dt : str | None
        The simulation step and the step of the graph's convention (default '1 ms'; snnTorch exports with
        0.1 ms).
    duration : str | None
        Presentation time per sample (default '100 ms').
    encoding : str | None
        analog (default) or poisson (max_rate 1/dt, seed 0).
    approximate : bool
        Accept a bias into a CubaLIF node, which netspec adds to the membrane instead of the synaptic current.
    convention : str | None
        How the graph's neuron nodes are stepped: ``nir`` (NIR's equations), ``snntorch``, ``norse``,
        ``sinabs``, ``spyx`` (:data:`~netspec.nir.convention.CONVENTIONS`); None: recognised from the graph
        (:func:`~netspec.nir.convention.fingerprint`), else ``nir``.
    reset : str | None
        ``zero`` or ``subtract`` for every neuron node, instead of what the convention reads (NIR: v_reset;
        snnTorch, Sinabs, Spyx: subtraction; Norse: v_reset).
    """

    dt: str | None = None
    duration: str | None = None
    encoding: str | None = None
    approximate: bool = False
    convention: str | None = None
    reset: str | None = None


class _Bad(ValueError):
    """A problem with the node being read; the reader adds the node's name and type."""


@dataclass
class _Tensor:
    """Spikes a node emits: the spec layer they are, their NIR shape, and for a flattened image the spec
    index of every NIR position."""

    layer: str
    shape: tuple[int, ...]
    perm: np.ndarray | None = None
    analog: bool = False  # the analog input (through relays only): its weights are drive, not spikes


class _Folded:
    """A weighted node with a pool folded into its weights (the attributes the reader reads)."""

    def __init__(self, **fields):
        self.__dict__.update(fields)
        self.metadata = fields.get("metadata", {})


@dataclass
class _Pooled:
    """A SumPool2d/AvgPool2d between spikes and a Conv2d (or a Flatten and an Affine), folded into that node's
    weights: ``src`` the spikes pooled ([C, H, W]), window ``size`` and ``stride``, ``factor`` 1 or 1/n, and
    ``shape`` the pooled [C, H', W']."""

    src: _Tensor
    size: tuple[int, int]
    stride: tuple[int, int]
    factor: float
    shape: tuple[int, int, int]
    name: str = ""

    def conv(self, weight: np.ndarray) -> np.ndarray:
        """A kernel [O, I, K1, K2] over the pooled map as a kernel over ``src`` (size s*(K-1) + q, taken with
        the pool's stride times the convolution's)."""
        (qh, qw), (sh, sw) = self.size, self.stride
        o, i, k1, k2 = weight.shape
        out = np.zeros((o, i, sh * (k1 - 1) + qh, sw * (k2 - 1) + qw))
        for a in range(qh):
            for b in range(qw):
                out[:, :, a:a + sh * k1:sh, b:b + sw * k2:sw] += self.factor * weight
        return out

    def dense(self, weight: np.ndarray) -> np.ndarray:
        """A weight [O, C*H'*W'] over the flattened pooled map as a weight over the flattened ``src``."""
        (qh, qw), (sh, sw) = self.size, self.stride
        c, hp, wp = self.shape
        w4 = weight.reshape(weight.shape[0], c, hp, wp)
        out = np.zeros((weight.shape[0], *self.src.shape))
        for a in range(qh):
            for b in range(qw):
                out[:, :, a:a + sh * hp:sh, b:b + sw * wp:sw] += self.factor * w4
        return out.reshape(weight.shape[0], -1)


@dataclass
class _Scale:
    """A neuron node's factors from the graph's units to netspec's per-step normalized weights, per neuron:
    ``spike`` for weights from spikes, ``drive`` for biases and weights from the analog input."""

    spike: np.ndarray
    drive: np.ndarray

    def weights(self, src: _Tensor) -> np.ndarray:
        return self.drive if src.analog else self.spike

    def times(self, factor) -> "_Scale":
        return _Scale(self.spike * factor, self.drive * factor)


@dataclass
class Imported:
    """A translated graph: the spec document (weights as keys), its tensors and notes for the user."""

    doc: dict[str, Any]
    tensors: dict[str, np.ndarray]
    notes: list[str] = field(default_factory=list)
    kappas: dict[str, tuple[str, float]] = field(default_factory=dict)  # layer of neurons -> its kappa (text, largest)
    convention: Convention | None = None


def read_graph(path: str | Path):
    """``nir.read`` with NIR's type check; any failure is a one-line :class:`NetspecError`."""
    nir = require_nir()
    path = Path(path)
    if not path.is_file():
        raise NetspecError(f"{path}: no such file", 2)
    try:
        graph = nir.read(path, type_check=False)
        if not isinstance(graph, nir.NIRGraph):
            raise ValueError(f"the file holds a {type(graph).__name__}, not a graph")
        # nir 1.0.8 types a grouped Conv2d's input as weight.shape[1] channels: give it all of them
        for node in graph.nodes.values():
            if isinstance(node, nir.Conv2d) and int(np.asarray(node.groups)) > 1 and node.input_type["input"] is not None:
                node.input_type = {"input": np.array([node.weight.shape[1] * int(np.asarray(node.groups)),
                                                      *node.input_type["input"][1:]])}
        # Norse 1.1.0's to_nir keeps the batch dimension (of the sample it traced) in the Input and Output types
        for node in graph.nodes.values():
            for attr, key in ((("input_type", "input"),) if isinstance(node, nir.Input) else
                              (("output_type", "output"),) if isinstance(node, nir.Output) else ()):
                shape = np.asarray(getattr(node, attr)[key]).ravel()
                if shape.size >= 2 and shape[0] == 1 and _batched(graph, node, shape):
                    setattr(node, attr, {key: shape[1:]})
                    if isinstance(node, nir.Input):
                        node.output_type = {"output": shape[1:]}
                    else:
                        node.input_type = {"input": shape[1:]}
        graph.infer_types()
        graph.check_types()
        return graph
    except Exception as exc:  # h5py, NIR's asserts and type inference raise many kinds
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise NetspecError(f"{path}: not a readable NIR graph ({type(exc).__name__}: {detail[:300]})") from exc


def _batched(graph, io_node, shape) -> bool:
    """Whether the Input/Output node ``io_node`` carries a leading batch dimension of 1 that the node next to
    it does not (an Affine's weight or a neuron node's parameters have ``shape[1:]``)."""
    name = next(k for k, v in graph.nodes.items() if v is io_node)
    rest = tuple(int(d) for d in shape[1:])
    for a, b in graph.edges:
        other = graph.nodes[b] if a == name else graph.nodes[a] if b == name else None
        if other is None:
            continue
        weight = getattr(other, "weight", None)
        if type(other).__name__ in ("Affine", "Linear") and np.ndim(weight) == 2:
            return len(rest) == 1 and int(np.shape(weight)[1]) == rest[0]
        value = getattr(other, "v_threshold", None)
        if value is not None and np.ndim(value) >= 1:
            return tuple(np.shape(value)) == rest
    return False


def identifiers(names) -> dict[str, str]:
    """Layer names for NIR node names: valid, unique, stable (in the graph's node order)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for raw in names:
        base = re.sub(r"[^A-Za-z0-9_]", "_", str(raw))
        if not base or not base[0].isalpha():
            base = "n_" + base
        base = base[:64]
        name, k = base, 2
        while name in taken:
            suffix = f"_{k}"
            name, k = base[:64 - len(suffix)] + suffix, k + 1
        taken.add(name)
        out[raw] = name
    return out


def _arr(node, field_name: str, shape: tuple[int, ...], infinite: bool = False) -> np.ndarray:
    """A node's parameter broadcast to its neurons; ``infinite``: +inf is accepted (a time constant and r of a
    neuron without leak, as snnTorch writes Leaky(beta=1)), the convention decides what it means."""
    value = np.asarray(getattr(node, field_name), dtype=np.float64)
    try:
        value = np.broadcast_to(value, shape)
    except ValueError:
        raise _Bad(f"{field_name} has shape {list(value.shape)}, the node's neurons are {list(shape)}") from None
    if not np.all(np.isfinite(value) | (infinite & (value == np.inf))):
        raise _Bad(f"{field_name} has values that are not finite")
    return value


def _uniform(x: np.ndarray, what: str) -> float:
    first = float(x.flat[0]) if x.size else 0.0
    if np.any(np.abs(x - first) > RTOL * max(abs(first), 1e-30)):
        raise _Bad(f"{what} differs across the layer ({float(x.min()):g} to {float(x.max()):g}); a spec layer has one value")
    return first


def _meta(node) -> dict:
    meta = getattr(node, "metadata", None)
    return meta if isinstance(meta, dict) else {}


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _tuples(value):
    """Lists (at any depth) as tuples, as the layer classes hold them."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def _kind(type_name: str) -> type[Layer]:
    """The layer class the reader makes for ``type_name``; it must be declared in :data:`READS`."""
    kind = next((k for k in READS if k.type == type_name), None)
    if kind is None or not READS[kind].nodes:
        raise NetspecError(f"internal error: the NIR reader made a '{type_name}' layer, which READS says no NIR node "
                           "reads into; please report this")
    return kind


class _Reader:
    def __init__(self, graph, path: Path, options: ImportOptions):
        self.graph = graph
        self.path = path
        self.options = options
        self.layers: list[Layer] = []
        self.tensors: dict[str, np.ndarray] = {}
        self.notes: list[str] = []
        self.spikes: dict[str, _Tensor] = {}
        #: per layer of neurons: how kappa was computed, for the reachability warning
        self.kappas: dict[str, tuple[str, float]] = {}
        gmeta = _meta(graph).get(GRAPH_KEY)
        self.own = gmeta if isinstance(gmeta, dict) else {}
        self.convention = self._convention(options)
        default_dt = _text(self.own["dt_text"]) if "dt_text" in self.own else self.convention.dt
        self.dt_text = options.dt or default_dt
        self.dt = self._time(self.dt_text, "--dt" if options.dt else f"{path.name}: dt")
        if options.reset not in (None, "zero", "subtract"):
            raise NetspecError(f"--reset: expected zero or subtract, got {options.reset!r}", 2)
        try:
            self.encoding = options.encoding or (_text(self.own["encoding"]) if "encoding" in self.own else "analog")
        except (TypeError, ValueError) as exc:
            raise NetspecError(f"{path.name}: the graph's netspec metadata is unreadable ({exc})") from exc
        if self.encoding not in ("analog", "poisson"):
            raise NetspecError(f"--input-encoding: expected analog or poisson, got {self.encoding!r}", 2)
        self.names = identifiers(graph.nodes)
        self.taken = set(self.names.values())
        self.gaps: dict[str, list[str]] = {}  # what differs from the library, -> the layers it concerns
        self.pooled: dict[str, _Pooled] = {}  # pools (and their Flatten) folded into the weighted node after them

    def _convention(self, options: ImportOptions) -> Convention:
        name = options.convention
        if name is None:
            name, why = fingerprint(self.graph)
            if why and name != "nir":
                self.notes.append(f"read as a {CONVENTIONS[name].library} graph: {why}; --convention nir reads it by "
                                  "NIR's equations")
        elif name not in CONVENTIONS:
            raise NetspecError(f"--convention: expected one of {', '.join(CONVENTIONS)}, got {name!r}", 2)
        elif name != "nir" and self.own:
            self.notes.append(f"the graph is netspec's own (metadata 'netspec'), read as {name} as asked")
        return CONVENTIONS[name]

    def _time(self, text: str, what: str) -> float:
        try:
            q = parse_quantity(text)
        except ValueError as exc:
            raise NetspecError(f"{what}: {exc}", 2) from exc
        if q.dim != TIME or not q.value > 0:
            raise NetspecError(f"{what}: expected a positive time such as '1 ms', got {text!r}", 2)
        return q.value

    def fresh(self, base: str) -> str:
        name, k = base[:64], 2
        while name in self.taken:
            suffix = f"_{k}"
            name, k = base[:64 - len(suffix)] + suffix, k + 1
        self.taken.add(name)
        return name

    def fail(self, node: str, message: str) -> NetspecError:
        kind = type(self.graph.nodes[node]).__name__
        return NetspecError(f"{self.path.name}: node '{node}' ({kind}): {message}")

    def emit(self, entry: dict, tensors: dict[str, np.ndarray] | None = None) -> None:
        """Make the spec layer ``entry`` (its fields, ``type`` naming the kind) with the layer class itself, so
        that every field reaches the spec or fails loudly; its tensors become keys of the weights file."""
        entry = dict(entry)
        kind = _kind(entry.pop("type"))
        name = entry["name"]
        for key, value in (tensors or {}).items():
            self.tensors[f"{name}/{key}"] = np.asarray(value, dtype=np.float64)
            entry[key] = TensorRef(key=f"{name}/{key}")
        if not kind.takes_activation:
            entry.pop("activation", None)
        if "normalization" in entry:
            entry["normalization"] = Normalization(float(entry["normalization"]))
        if "neuron" in entry:  # only what differs from the defaults block
            entry["neuron"] = {k: v for k, v in entry["neuron"].items() if NEURON_DEFAULTS.get(k) != v} or None
        inputs = tuple(entry.pop("inputs", ()))
        prev = self.layers[-1].name if self.layers else None
        entry = {key: _tuples(value) for key, value in entry.items()}
        try:
            layer = kind(inputs=inputs, inputs_written=bool(inputs) and inputs != (prev,), **entry)
        except TypeError as exc:  # a field the kind does not have: never drop it
            raise NetspecError(f"internal error: the NIR reader made layer '{name}' ({kind.type}) with a field it does "
                               f"not have ({exc}); please report this") from exc
        self.layers.append(layer)

    # -- the walk ----------------------------------------------------------------------------------------
    def run(self) -> Imported:
        nodes, edges = self.graph.nodes, [tuple(e) for e in self.graph.edges]
        for name, node in nodes.items():
            kind = type(node).__name__
            if kind in REFUSED:
                raise self.fail(name, REFUSED[kind])
            if kind not in ROLES:
                raise self.fail(name, "netspec has no mapping for this node type")
        self.pred: dict[str, list[str]] = {n: [] for n in nodes}
        self.succ: dict[str, list[str]] = {n: [] for n in nodes}
        for a, b in edges:
            self.pred[b].append(a)
            self.succ[a].append(b)
        order = self._topological(nodes, edges)
        self.role = {n: ROLES[type(nodes[n]).__name__] for n in nodes}
        inputs = [n for n in nodes if self.role[n] == INPUT]
        outputs = [n for n in nodes if self.role[n] == OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise NetspecError(f"{self.path.name}: the graph has {len(inputs)} Input and {len(outputs)} Output nodes; "
                               "netspec reads graphs with one of each")
        self._check_reaches(outputs[0])
        for name in order:
            role = self.role[name]
            try:
                if role == INPUT:
                    self._input(name)
                elif role == RELAY:
                    self._relay(name)
                elif role == WEIGHTED:
                    self._check_weighted(name)
                elif role == NEURON:
                    self._neuron(name)
            except (ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
                if isinstance(exc, _Bad):
                    raise self.fail(name, str(exc)) from None
                # a file can hold anything where NIR expects numbers (nir.read does not check them)
                raise self.fail(name, f"holds values netspec cannot read ({type(exc).__name__}: {str(exc)[:200]})") from exc
        out = outputs[0]
        if len(self.pred[out]) != 1 or self.role[self.pred[out][0]] != NEURON:
            feeder = ", ".join(f"'{p}' ({type(nodes[p]).__name__})" for p in self.pred[out]) or "nothing"
            raise self.fail(out, f"fed by {feeder}; netspec's output must be the spikes of one neuron node")
        return Imported(self._document(), self.tensors, self.notes, self.kappas, self.convention)

    def _topological(self, nodes, edges) -> list[str]:
        indegree = {n: len(self.pred[n]) for n in nodes}
        ready = deque(n for n in nodes if indegree[n] == 0)
        order = []
        while ready:
            n = ready.popleft()
            order.append(n)
            for m in self.succ[n]:
                indegree[m] -= 1
                if indegree[m] == 0:
                    ready.append(m)
        if len(order) != len(nodes):
            loop = next(n for n in nodes if indegree[n] > 0)
            raise self.fail(loop, "is part of a cycle (a recurrent connection); netspec reads feed-forward graphs")
        return order

    def _check_reaches(self, out: str) -> None:
        seen, todo = {out}, [out]
        while todo:
            for p in self.pred[todo.pop()]:
                if p not in seen:
                    seen.add(p)
                    todo.append(p)
        for name in self.graph.nodes:
            if name not in seen:
                raise self.fail(name, "does not lead to the Output node; netspec's network has one output layer")

    def _spiking(self, consumer: str, name: str) -> _Tensor:
        if name not in self.spikes:
            raise self.fail(consumer, f"reads '{name}' ({type(self.graph.nodes[name]).__name__}), which is not spikes; "
                                      "netspec needs weighted nodes between spiking layers, one per edge")
        return self.spikes[name]

    def _input(self, name: str) -> None:
        shape = tuple(int(d) for d in np.asarray(self.graph.nodes[name].output_type["output"]).ravel())
        if len(shape) not in (1, 3):
            raise self.fail(name, f"shape {list(shape)}: netspec reads vectors [N] and images [C, H, W]")
        layer = self.names[name]
        self.input_shape = list(from_nir_shape(shape))
        self.emit({"name": layer, "type": "input", "normalization": 1.0})
        self.spikes[name] = _Tensor(layer, shape, analog=self.encoding == "analog")

    def _relay(self, name: str) -> None:
        node = self.graph.nodes[name]
        if len(self.pred[name]) != 1:
            raise self.fail(name, f"has {len(self.pred[name])} inputs; netspec reshapes one")
        pooled = self.pooled.get(self.pred[name][0])
        if pooled is not None:  # the pool is folded into the Affine after this Flatten: flatten what it pooled
            src = pooled.src
            layer = self.names[name]
            self.emit({"name": layer, "type": "flatten", "inputs": [src.layer]})
            self.pooled[name] = pooled
            self.spikes[name] = _Tensor(layer, (int(np.prod(src.shape)),), chw_order(*from_nir_shape(src.shape)), src.analog)
            return
        src = self._spiking(name, self.pred[name][0])
        out = tuple(int(d) for d in np.asarray(node.output_type["output"]).ravel())
        if len(src.shape) == 1:
            if out != src.shape:
                raise self.fail(name, f"turns {list(src.shape)} into {list(out)}; netspec flattens completely")
            self.spikes[name] = src
            return
        if len(out) != 1:
            raise self.fail(name, f"flattens {list(src.shape)} into {list(out)}; netspec flattens completely")
        layer = self.names[name]
        self.emit({"name": layer, "type": "flatten", "inputs": [src.layer]})
        perm = chw_order(*from_nir_shape(src.shape)) if len(src.shape) == 3 else None
        self.spikes[name] = _Tensor(layer, out, perm, src.analog)

    def _check_weighted(self, name: str) -> None:
        succ = self.succ[name]
        if self._folds(name):
            return
        if len(succ) != 1 or self.role[succ[0]] != NEURON:
            targets = ", ".join(f"'{s}' ({type(self.graph.nodes[s]).__name__})" for s in succ)
            raise self.fail(name, f"feeds {targets}; netspec needs every weighted node to feed one neuron node "
                                  "(a weighted sum read out without spiking is not a netspec output)")
        if len(self.pred[name]) != 1:
            raise self.fail(name, f"has {len(self.pred[name])} inputs; netspec's weighted layers read one")
        if self.pred[name][0] not in self.pooled:
            self._spiking(name, self.pred[name][0])

    def _folds(self, name: str) -> bool:
        """A pool whose one reader is a Conv2d, or a Flatten read by one Affine/Linear (sinabs' from_model puts
        sum pooling between spiking layers and convolutions): registered to be folded into that node."""
        node = self.graph.nodes[name]
        kind = type(node).__name__
        succ = self.succ[name]
        if kind not in ("SumPool2d", "AvgPool2d") or len(succ) != 1 or len(self.pred[name]) != 1:
            return False
        nxt = self.graph.nodes[succ[0]]
        if len(self.pred[succ[0]]) != 1:
            return False
        nkind = type(nxt).__name__
        if nkind == "Flatten":
            after = self.succ[succ[0]]
            if len(after) != 1 or type(self.graph.nodes[after[0]]).__name__ not in ("Affine", "Linear"):
                return False
        elif nkind != "Conv2d":
            return False
        src = self._spiking(name, self.pred[name][0])
        if len(src.shape) != 3:
            raise self.fail(name, f"reads {list(src.shape)}; netspec pools images [C, H, W]")
        if np.any(np.asarray(node.padding)):
            raise self.fail(name, "padded pooling: PyTorch counts the padded zeros in the mean, Keras (and netspec) do not")
        size = tuple(int(v) for v in np.broadcast_to(np.asarray(node.kernel_size).ravel(), (2,)))
        stride = tuple(int(v) for v in np.broadcast_to(np.asarray(node.stride).ravel(), (2,)))
        c, h, w = src.shape
        shape = (c, (h - size[0]) // stride[0] + 1, (w - size[1]) // stride[1] + 1)
        factor = 1.0 / (size[0] * size[1]) if kind == "AvgPool2d" else 1.0
        self.pooled[name] = _Pooled(src, size, stride, factor, shape, name)
        return True

    # -- neurons ---------------------------------------------------------------------------------------
    def _neuron(self, name: str) -> None:
        node = self.graph.nodes[name]
        shape = tuple(int(d) for d in np.asarray(node.output_type["output"]).ravel())
        feeds = self.pred[name]
        if not feeds:
            raise self.fail(name, "has no input")
        biased = any(self._bias(f) is not None and np.any(self._bias(f)) for f in feeds)
        try:
            params, kappa = self._params(name, node, shape, biased)
        except _Bad as exc:
            raise self.fail(name, str(exc)) from None
        if len(feeds) == 1:
            feed = feeds[0]
            layer = self.names[feed] if self.role[feed] == WEIGHTED else self.names[name]
            entry, tensors = self._weighted(feed, name, layer, kappa, hidden=False)
            self.emit({**entry, "neuron": params}, tensors)
            self.spikes[name] = _Tensor(layer, shape)
            self.kappas[layer] = self._describe(kappa)
            return
        inputs, orders = [], []
        for feed in feeds:
            if self.role[feed] != WEIGHTED and np.all(kappa.weights(self._spiking(name, feed)) == 1.0):
                src = self._spiking(name, feed)
                inputs.append(src.layer)
                orders.append(None if src.perm is None else src.perm.tobytes())
                continue
            if self.role[feed] == WEIGHTED:
                layer = self.names[feed]
            else:
                layer = self.fresh(f"{self.names[name]}_from_{self._spiking(name, feed).layer}")
            self.emit(*self._weighted(feed, name, layer, kappa, hidden=True))
            inputs.append(layer)
            orders.append(None)
        if len(set(orders)) > 1:
            raise self.fail(name, "adds a flattened image to a tensor ordered otherwise (NIR flattens channels-first, "
                                  "netspec channels-last)")
        layer = self.names[name]
        self.emit({"name": layer, "type": "add", "inputs": inputs, "activation": "relu",
                   "normalization": 1.0, "neuron": params})
        perm = next((self.spikes[f].perm for f in feeds if f in self.spikes), None) if orders[0] is not None else None
        self.spikes[name] = _Tensor(layer, shape, perm)
        self.kappas[layer] = self._describe(kappa)

    def _bias(self, feed: str):
        node = self.graph.nodes[feed]
        return getattr(node, "bias", None) if type(node).__name__ in ("Affine", "Conv2d") else None

    def _params(self, name: str, node, shape, biased: bool) -> tuple[dict, _Scale]:
        """The spec's neuron parameters for a neuron node, and its factors (graph units -> netspec's per-step
        normalized weights) per neuron, as the convention steps the node."""
        kind = type(node).__name__
        meta = _meta(node)
        arrays = {f: _arr(node, f, shape, infinite=f in ("r", "tau"))
                  for f in ("r", "v_threshold", "v_reset", "tau", "tau_mem", "tau_syn", "v_leak", "w_in")
                  if hasattr(node, f) and getattr(node, f) is not None}
        float32 = all(np.asarray(getattr(node, f)).dtype == np.float32 for f in arrays)
        conv = self.convention
        try:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                step = conv.stepping(kind, arrays, self.dt, self.options.reset)
        except ValueError as exc:
            raise _Bad(f"{exc} (--convention {conv.name})") from None
        if not (np.all(np.isfinite(step.gain)) and np.all(np.isfinite(step.decay))):
            raise _Bad(f"r or tau is infinite, which NIR's equations do not define (snnTorch writes Leaky(beta=1) so: "
                       f"--convention snntorch) (--convention {conv.name})")
        for gap in conv.gaps(kind, step):
            self.gaps.setdefault(gap, []).append(name)
        params: dict[str, Any] = {}
        kappa = step.gain / step.span
        c = 1.0  # drive per step of netspec's exact integration, against the library's step (1 for IF)
        if not conv.stepped:  # NIR's equations: tau is the graph's
            if kind != "IF":
                tau = arrays["tau"] if kind == "LIF" else arrays["tau_mem"]
                params["model"] = "lif"
                params["tau_m"] = seconds_text(self._value(_uniform(tau, "tau" if kind == "LIF" else "tau_mem"), float32))
            if kind == "CubaLIF":
                tau_syn = self._value(_uniform(arrays["tau_syn"], "tau_syn"), float32)
                if not tau_syn > self.dt or not float(arrays["tau_mem"].flat[0]) > self.dt:
                    raise _Bad(f"tau_syn {tau_syn:g} s and tau_mem {float(arrays['tau_mem'].flat[0]):g} s must be longer than "
                               f"dt {self.dt_text!r} (netspec integrates exponential synapses with forward Euler); choose --dt")
                params["synapse"] = "exponential"
                params["tau_syn"] = seconds_text(tau_syn)
                if biased and _text(meta.get(BIAS_KEY, "")) != "membrane":
                    if not self.options.approximate:
                        raise _Bad("its input has a bias, which NIR passes through the synaptic current and netspec "
                                   "adds to the membrane (the same in the steady state, not during the first tau_syn); "
                                   "--approximate accepts that")
                    self.notes.append(f"node '{name}': the bias enters the membrane directly, not through the synaptic current")
        else:  # a library's discrete step: netspec's decay exp(-dt/tau_m) is the library's A
            decay = _uniform(step.decay.astype(np.float32).astype(np.float64) if float32 else step.decay,
                             "the decay per step")
            if decay < 1:
                params["model"] = "lif"
                params["tau_m"] = seconds_text(-self.dt / float(np.log(decay)))
                c = -float(np.log(decay)) / (1.0 - decay)
        if float32:
            kappa = kappa.astype(np.float32).astype(np.float64)
        kappa = np.where(np.abs(kappa - 1.0) <= RTOL, 1.0, kappa)
        drive = kappa * c if c != 1.0 else kappa
        params["reset"] = self._reset(step, meta, float32)
        for key, spec_key in ((REFRACTORY_KEY, "refractory"), (DELAY_KEY, "delay")):
            if key in meta:
                value = float(np.asarray(meta[key], dtype=np.float64))
                if not (np.isfinite(value) and value >= 0):
                    raise _Bad(f"metadata {key} {value!r} is not a duration")
                params[spec_key] = seconds_text(value)
        if INITIAL_KEY in meta:
            value = float(np.asarray(meta[INITIAL_KEY], dtype=np.float64))
            if not (0 <= value < 1):
                raise _Bad(f"metadata {INITIAL_KEY} {value!r} is not a fraction of the threshold in [0, 1)")
            params["initial"] = value
        return params, _Scale(kappa, drive)

    def _reset(self, step, meta: dict, float32: bool):
        """The spec's reset of a neuron node: 'subtract', 'zero' or the value of u."""
        if isinstance(step.reset, str):
            return step.reset
        u_reset = self._value(_uniform(step.reset, "the reset (v_reset - v_leak)/(v_threshold - v_leak)"), float32)
        mode = _text(meta.get(RESET_KEY, "")) if self.options.reset is None else ""
        if mode == "subtract":
            if abs(u_reset) > RTOL:
                raise _Bad(f"metadata reset_mode 'subtract' with v_reset {u_reset:g} (of threshold) above rest")
            return "subtract"
        if abs(u_reset) <= RTOL:
            return "zero"
        if u_reset >= 1:
            raise _Bad(f"v_reset at {u_reset:g} of the threshold: at or above it, the neuron would fire at every step")
        return u_reset

    def _describe(self, scale: _Scale) -> tuple[str, float]:
        """kappa of a layer for messages, and its largest value."""
        lo, hi = float(np.min(scale.spike)), float(np.max(scale.spike))
        text = f"kappa {lo:.3g}" + (f" to {hi:.3g}" if hi != lo else "")
        return text + f" (--convention {self.convention.name}, dt {self.dt_text})", hi

    @staticmethod
    def _value(x: float, float32: bool) -> float:
        """A parameter read from float32 arrays, as the shortest decimal that float32 rounds the same way
        (0.0199999996 -> 0.02: the value that was written)."""
        return float(np.format_float_scientific(np.float32(x), unique=True)) if float32 else x

    # -- weighted nodes ------------------------------------------------------------------------------------
    def _weighted(self, feed: str, neuron: str, layer: str, kappa: _Scale, hidden: bool) -> tuple[dict, dict]:
        """The spec layer of the projection ``feed`` -> ``neuron`` (entry, tensors), kappa folded into its
        weights (``kappa.drive`` into biases and weights from the analog input); a zeropad2d layer it needs
        is emitted at once."""
        node = self.graph.nodes[feed]
        kind = type(node).__name__ if self.role[feed] == WEIGHTED else "none"
        pooled = self.pooled.get(self.pred[feed][0]) if kind in ("Conv2d", "Affine", "Linear") else None
        if pooled is not None and kind == "Conv2d":
            if isinstance(node.padding, (str, bytes)) or np.any(np.asarray(node.padding)):
                raise self.fail(feed, "a padded convolution after a pool: netspec folds the pool into the convolution "
                                      "only without padding")
            stride = np.broadcast_to(np.asarray(node.stride).ravel(), (2,)) * np.asarray(pooled.stride)
            node = _Folded(weight=pooled.conv(np.asarray(node.weight, dtype=np.float64)), bias=node.bias, stride=tuple(stride),
                           padding=(0, 0), dilation=node.dilation, groups=node.groups, metadata=_meta(node))
            src = pooled.src
            self.notes.append(f"pool '{self.pred[feed][0]}' folded into the convolution '{feed}' after it")
        elif pooled is not None:
            node = _Folded(weight=pooled.dense(np.asarray(node.weight, dtype=np.float64)), bias=getattr(node, "bias", None))
            src = self._spiking(neuron, self.pred[feed][0])
            self.notes.append(f"pool '{pooled.name}' folded into '{feed}' after it (through the Flatten '{self.pred[feed][0]}')")
        else:
            src = self._spiking(neuron, self.pred[feed][0] if kind != "none" else feed)
        base: dict[str, Any] = {"name": layer, "inputs": [src.layer], "activation": "linear" if hidden else "relu",
                                "normalization": 1.0}
        where = feed if kind != "none" else neuron
        try:
            if kind in ("Affine", "Linear"):
                return self._dense(node.weight, getattr(node, "bias", None), src, kappa, base)
            if kind == "Conv2d":
                return self._conv(node, src, kappa, base)
            if kind in ("AvgPool2d", "SumPool2d"):
                return self._pool(node, src, kappa, base, average=kind == "AvgPool2d")
            scale = np.ones(src.shape) if kind == "none" else _arr(node, "scale", src.shape)
            return self._scale(kappa.times(scale), src, base)
        except _Bad as exc:
            raise self.fail(where, str(exc)) from None

    @staticmethod
    def _channels(kappa: np.ndarray) -> np.ndarray:
        """kappa of a [C, H, W] layer, one per channel (a convolution has one value per output channel)."""
        flat = kappa.reshape(kappa.shape[0], -1)
        if np.any(np.abs(flat - flat[:, :1]) > RTOL * np.abs(flat[:, :1])):
            raise _Bad("its neurons scale their input differently within a channel; a netspec convolution "
                       "has one factor per channel")
        return flat[:, 0]

    def _dense(self, weight, bias, src: _Tensor, kappa: _Scale, base) -> tuple[dict, dict]:
        """A dense layer from a NIR weight [out, in] (columns in the NIR order of ``src``)."""
        weight = np.asarray(weight, dtype=np.float64)
        if len(src.shape) != 1 or weight.ndim != 2 or weight.shape[1] != src.shape[0]:
            raise _Bad(f"weight {list(weight.shape)} reads {list(src.shape)}; netspec's dense layers read "
                       "vectors (put a Flatten before it)")
        k = kappa.weights(src).reshape(-1)
        kernel = weight.T * k[None, :]
        if src.perm is not None:
            permuted = np.empty_like(kernel)
            permuted[src.perm] = kernel
            kernel = permuted
        tensors = {"kernel": kernel}
        if bias is not None:
            tensors["bias"] = np.asarray(bias, dtype=np.float64).reshape(-1) * kappa.drive.reshape(-1)
        return {**base, "type": "dense", "units": int(weight.shape[0])}, tensors

    def _padding(self, src: _Tensor, base: dict, padding, stride) -> str:
        """'valid' or 'same' for the spec; integer padding becomes a zeropad2d layer read by the layer."""
        if isinstance(padding, (bytes, str)):
            padding = _text(padding)
            if padding == "same" and tuple(stride) != (1, 1):
                raise _Bad("padding 'same' with a stride: PyTorch refuses it and Keras pads differently")
            return padding
        pads = np.broadcast_to(np.asarray(padding, dtype=np.int64).ravel(), (2,))
        if not pads.any():
            return "valid"
        pad = self.fresh(f"{base['name']}_pad")
        self.emit({"name": pad, "type": "zeropad2d", "inputs": [src.layer],
                   "padding": [[int(pads[0]), int(pads[0])], [int(pads[1]), int(pads[1])]]})
        base["inputs"] = [pad]
        return "valid"

    def _conv(self, node, src: _Tensor, kappa: _Scale, base) -> tuple[dict, dict]:
        if len(src.shape) != 3:
            raise _Bad(f"reads {list(src.shape)}; netspec convolves images [C, H, W]")
        weight = np.asarray(node.weight, dtype=np.float64)
        stride = tuple(int(s) for s in np.broadcast_to(np.asarray(node.stride).ravel(), (2,)))
        dilation = tuple(int(s) for s in np.broadcast_to(np.asarray(node.dilation).ravel(), (2,)))
        if dilation != (1, 1):
            raise _Bad(f"dilation {list(dilation)}: netspec convolutions are not dilated")
        cout, cin_g, kh, kw = weight.shape
        groups, cin = int(np.asarray(node.groups)), src.shape[0]
        kc = self._channels(kappa.weights(src))
        padding = self._padding(src, base, node.padding, stride)
        bias = np.asarray(node.bias, dtype=np.float64).reshape(-1) * self._channels(kappa.drive)
        common = {"kernel_size": [kh, kw], "strides": list(stride), "padding": padding}
        m = int(_meta(node).get(DEPTHWISE_KEY, 0))
        if groups == 1 and m > 0 and cout == cin * m and cin_g == cin:
            out = np.arange(cout)
            block = weight[out, out // m]
            weight[out, out // m] = 0
            if not np.any(weight):  # netspec's own depthwise convolution, written with groups 1
                kernel = block.reshape(cin, m, kh, kw).transpose(2, 3, 0, 1) * kc.reshape(cin, m)
                return ({**base, "type": "depthwise_conv2d", "depth_multiplier": m, **common},
                        {"kernel": kernel, "bias": bias})
            weight[out, out // m] = block
        if groups == 1:
            kernel = weight.transpose(2, 3, 1, 0) * kc
            return {**base, "type": "conv2d", "filters": cout, **common}, {"kernel": kernel, "bias": bias}
        if groups == cin and cin_g == 1 and cout % cin == 0:
            m = cout // cin
            kernel = weight.reshape(cin, m, kh, kw).transpose(2, 3, 0, 1) * kc.reshape(cin, m)
            return {**base, "type": "depthwise_conv2d", "depth_multiplier": m, **common}, {"kernel": kernel, "bias": bias}
        raise _Bad(f"groups {groups} with {cin} input channels: netspec has full (groups 1) and depthwise "
                   "(groups = channels) convolutions")

    def _pool(self, node, src: _Tensor, kappa: _Scale, base, average: bool) -> tuple[dict, dict]:
        if len(src.shape) != 3:
            raise _Bad(f"reads {list(src.shape)}; netspec pools images [C, H, W]")
        size = [int(s) for s in np.broadcast_to(np.asarray(node.kernel_size).ravel(), (2,))]
        stride = [int(s) for s in np.broadcast_to(np.asarray(node.stride).ravel(), (2,))]
        if np.any(np.asarray(node.padding)):
            raise _Bad("padded pooling: PyTorch counts the padded zeros in the mean, Keras (and netspec) do not")
        kc = self._channels(kappa.weights(src))
        mean = kc if average else kc * (size[0] * size[1])  # a sum whose neurons take 1/n of it is a mean
        if np.all(mean == 1.0) and base["activation"] != "linear":  # a hidden linear layer needs weights
            return {**base, "type": "avgpool2d", "pool_size": size, "strides": stride}, {}
        c = src.shape[0]
        kernel = np.broadcast_to(kc / (size[0] * size[1] if average else 1.0), (size[0], size[1], c)).reshape(size[0], size[1], c, 1)
        return ({**base, "type": "depthwise_conv2d", "kernel_size": size, "strides": stride, "padding": "valid"},
                {"kernel": kernel})

    def _scale(self, scale: _Scale, src: _Tensor, base) -> tuple[dict, dict]:
        """An element-wise scale: a 1x1 depthwise convolution of an image, a diagonal dense layer of a vector."""
        factor = scale.weights(src)
        if len(src.shape) == 3:
            kc = self._channels(factor)
            return {**base, "type": "depthwise_conv2d", "kernel_size": [1, 1]}, {"kernel": kc.reshape(1, 1, -1, 1)}
        n = src.shape[0]
        if n > MAX_DIAGONAL:
            raise _Bad(f"an element-wise scale of {n} values would be a {n} x {n} dense layer (at most {MAX_DIAGONAL})")
        return self._dense(np.diag(factor.reshape(-1)), None, src, _Scale(np.ones(n), np.ones(n)), base)

    # -- the document ------------------------------------------------------------------------------------
    def _document(self) -> dict:
        try:
            return self._document_of(self.own)
        except (ValueError, TypeError, IndexError) as exc:
            raise NetspecError(f"{self.path.name}: the graph's netspec metadata is unreadable ({type(exc).__name__}: "
                               f"{str(exc)[:200]})") from exc

    def _document_of(self, own: dict) -> dict:
        opts = self.options
        duration = opts.duration or (_text(own["duration_text"]) if "duration_text" in own else "100 ms")
        self._time(duration, "--duration" if opts.duration else f"{self.path.name}: duration")
        encoding = self.encoding
        low, high = (float(v) for v in np.asarray(own["range"]).ravel()[:2]) if "range" in own else (0.0, 1.0)
        inp: dict[str, Any] = {"shape": self.input_shape, "range": [low, high], "encoding": encoding}
        if encoding == "poisson":
            inp["max_rate"] = _text(own["max_rate_text"]) if "max_rate_text" in own else f"{1.0 / self.dt:g} Hz"
            inp["seed"] = int(own["seed"]) if "seed" in own else 0
        layers = [layer.to_yaml() for layer in self.layers]
        conv = self.convention
        for gap, nodes in self.gaps.items():
            self.notes.append(f"{gap} (nodes {', '.join(repr(n) for n in nodes)})")
        if conv.name != "nir" and conv.fires == ">":
            self.notes.append(f"{conv.library.split(' (')[0]} fires where the membrane exceeds the threshold, netspec where "
                              "it reaches it: spike counts differ only where a membrane lands exactly on the threshold")
        nir = require_nir()
        renamed = [f"'{raw}' -> '{new}'" for raw, new in self.names.items() if raw != new]
        if renamed:
            self.notes.append("node names made into layer names: " + ", ".join(renamed))
        return {
            "netspec": 1,
            "name": "",
            "description": (f"Imported from the NIR graph {self.path.name} ({len(self.graph.nodes)} nodes): a spiking network, "
                            f"every lambda 1, weights scaled to netspec's normalized membrane with dt = {self.dt_text}, "
                            f"stepped as {conv.library}.")[:4000],
            "source": {"model": self.path.name[:1000], "framework": f"nir {getattr(nir, '__version__', '?')}",
                       "exporter": f"netspec {__version__}"},
            "weights": {"file": "", "sha256": ""},
            "input": inp,
            "simulation": {"dt": self.dt_text, "duration": duration,
                           **({"timing": conv.timing} if conv.timing else {})},
            "neuron": {"model": NEURON_DEFAULTS["model"], "threshold": 1.0, "reset": NEURON_DEFAULTS["reset"]},
            "layers": layers,
        }


def translate(graph, path: str | Path, options: ImportOptions | None = None) -> Imported:
    """The spec document and tensors of a NIR graph already read (:func:`read_graph`)."""
    return _Reader(graph, Path(path), options or ImportOptions()).run()


def import_graph(path: str | Path, spec_path: str | Path, options: ImportOptions | None = None) -> tuple[Path, list[str]]:
    """Read the NIR graph ``path`` and write ``spec_path`` and its weights (same stem, ``.npz``), both
    validated before they are moved into place.

    Returns
    -------
    tuple[Path, list[str]]
        The spec written and notes for the user (the convention, renamed nodes, approximations, what the
        library simulates otherwise); a note that starts with ``warning:`` names a layer that cannot spike
        (:func:`~netspec.nir.check.unreachable`).
    """
    from ..export.pipeline import schema_pointer
    from ..export.writer import commit, spec_name, staging, write_npz

    spec_path = Path(spec_path)
    if spec_path.suffix.lower() == ".npz":
        raise NetspecError(f"{spec_path}: the spec is YAML; its weights go to the .npz next to it", 2)
    if not spec_path.parent.is_dir():
        raise NetspecError(f"{spec_path}: the folder {spec_path.parent} does not exist", 2)
    imported = translate(read_graph(path), path, options)
    doc = imported.doc
    doc["name"] = spec_name(spec_path.stem)
    npz_path = spec_path.with_suffix(".npz")
    doc["weights"]["file"] = npz_path.name
    with staging(spec_path) as tmp:
        doc["weights"]["sha256"] = write_npz(tmp / npz_path.name, imported.tensors)
        staged = tmp / spec_path.name
        staged.write_text(spec_yaml(doc, schema_pointer(spec_path)), encoding="utf-8")
        try:
            spec = load_spec(staged)
        except SpecError as exc:
            first = exc.diagnostics[0].message if exc.diagnostics else str(exc)
            raise NetspecError(f"{Path(path).name}: the graph does not make a valid spec: {first}") from exc
        commit([tmp / npz_path.name, staged], [npz_path, spec_path])
    from .check import unreachable

    return spec_path, imported.notes + unreachable(spec, imported.kappas, imported.convention.name)
