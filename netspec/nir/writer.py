"""Writing a spec's spiking network as a NIR graph (``netspec nir SPEC -o GRAPH.nir``).

Every layer kind has one handler (:data:`HANDLERS`, keyed by the layer class): it maps the layer or
refuses it with a message naming it. What each kind becomes (``convention`` explains units and layouts):

* ``input`` -> ``Input`` (``[C, H, W]`` for images);
* a layer of neurons (dense, conv2d, depthwise_conv2d, avgpool2d, global_avgpool2d) -> its weighted node
  (``Affine``/``Linear``, ``Conv2d``, ``AvgPool2d``) followed by an
  ``IF``, ``LIF`` or ``CubaLIF`` node named ``<layer>_if``/``_lif``/``_cubalif``; the weights are the
  normalized ones the builder simulates, W*lambda_in/lambda_out and b/lambda_out (for analog input W/lambda);
  a global average pool is a whole-image ``AvgPool2d`` whose ``[C, 1, 1]`` spikes are flattened; a
  depthwise convolution is a ``Conv2d`` with ``groups = 1`` and zeros between channels (nir 1.0.8 types a
  grouped Conv2d's input wrongly, so ``nir.read`` would refuse ``groups = C``), ``depth_multiplier`` in the
  metadata;
* ``add`` -> one neuron node named after the layer; every input enters it on its own edge (NIR sums the
  edges that enter a node): a population directly, or through a ``Scale`` node when lambda_in/lambda_out
  is not 1; a hidden linear layer as its weighted node, normalized by the add's lambda;
* ``flatten`` -> ``Flatten``; ``zeropad2d`` -> the padding of the convolution that reads it;
* the output layer's spikes -> ``Output``.

Refused, by name: ``maxpool2d`` (NIR has no spiking max pooling), ``concatenate`` (NIR has no
concatenation), asymmetric padding, IF neurons with exponential synapses. Written only with
``approximate=True`` and recorded in the node's metadata (so that netspec reads its own graph back
exactly): refractory periods, delays, and a bias into a CubaLIF (netspec adds it to the membrane, NIR
passes it through the synaptic current). Reset by subtraction, which NIR 1.0.8 cannot express, is written
as ``v_reset = 0`` with ``reset_mode: subtract`` in the metadata, and the result says what other readers
will simulate instead.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .. import __version__
from ..errors import NetspecError
from ..spec import Spec
from ..spec.layers import (Add, AvgPool2D, Concatenate, Conv2D, Crop2D, Dense, DepthwiseConv2D, Flatten, GlobalAvgPool2D, Input,
                           Layer, MaxPool2D, Role, ZeroPad2D, conv_geometry)
from ..spec.units import steps_in
from .convention import (BIAS_KEY, DELAY_KEY, DEPTHWISE_KEY, GRAPH_KEY, INITIAL_KEY, LAYER_KEY, REFRACTORY_KEY, RESET_KEY, chw_order, require_nir,
                         to_nir_shape)

F32 = np.float32


@dataclass
class Written:
    """What :func:`write_graph` wrote.

    Attributes
    ----------
    path : Path
        The NIR file.
    nodes, edges : int
        Size of the graph.
    rows : list[tuple[str, str, str]]
        Per spec layer: name, type, the NIR nodes it became.
    notes : list[str]
        What other NIR readers will simulate differently, and what was approximated.
    """

    path: Path
    nodes: int
    edges: int
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _Graph:
    """The graph being written: nodes, edges, and where each layer's spikes are."""

    def __init__(self, spec: Spec, approximate: bool):
        self.nir = require_nir()
        self.spec = spec
        self.approximate = approximate
        self.dt = spec.simulation.dt.value
        self.nodes: dict[str, object] = {}
        self.edges: list[tuple[str, str]] = []
        self.spikes: dict[str, str] = {}  # layer -> NIR node whose output carries its spikes
        self.perm: dict[str, np.ndarray | None] = {}  # flat layer -> spec index of every NIR position
        self.pads: dict[str, tuple[str, tuple[tuple[int, int], tuple[int, int]]]] = {}  # zeropad -> (source, padding)
        self.rows: list[tuple[str, str, str]] = []
        self.notes: list[str] = []
        self.subtract: list[str] = []
        self.depthwise: list[str] = []
        self.layer_names = {layer.name for layer in spec.layers}

    # -- nodes and edges -----------------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        """A node name derived from ``base`` that is neither a node yet nor a layer's name."""
        name, k = base, 2
        while name in self.nodes or name in self.layer_names:
            name, k = f"{base}_{k}", k + 1
        return name

    def add(self, name: str, node) -> str:
        self.nodes[name] = node
        return name

    def edge(self, a: str, b: str) -> None:
        self.edges.append((a, b))

    # -- where inputs come from ------------------------------------------------------------------------
    def source(self, consumer: Layer, name: str) -> str:
        """The node carrying the spikes of layer ``name``, as ``consumer`` reads them."""
        if name in self.pads:
            raise NetspecError(f"layer '{name}' (zeropad2d) feeds '{consumer.name}' ({consumer.type}): NIR has no padding "
                               "node; only a convolution that reads the padding can take it")
        return self.spikes[name]

    def unpadded(self, name: str) -> tuple[str, tuple[tuple[int, int], tuple[int, int]]]:
        """Layer ``name`` seen through zero padding: the padded layer and the padding (summed over a chain)."""
        (t, b), (l, r) = (0, 0), (0, 0)
        while name in self.pads:
            name, ((pt, pb), (pl, pr)) = self.pads[name]
            t, b, l, r = t + pt, b + pb, l + pl, r + pr
        return name, ((t, b), (l, r))

    def from_analog_input(self, name: str) -> bool:
        layer = self.spec.layer(name)
        while layer.role is Role.RELAY and len(layer.inputs) == 1:
            layer = self.spec.layer(layer.inputs[0])
        return layer.role is Role.SOURCE and self.spec.input.encoding == "analog"

    def normalized(self, w: np.ndarray, source: str, lam_out: float) -> np.ndarray:
        """Weights as the builder simulates them: W*lambda_source/lambda_out, or W/lambda_out from the
        analog input (the same float64 operations, so the values are the builder's)."""
        w = np.asarray(w, dtype=np.float64)
        if self.from_analog_input(source):
            return w / lam_out
        return w * self.spec.lam(source) / lam_out

    def kappa(self, source: str, lam_out: float) -> float:
        """lambda_source/lambda_out for a weightless projection (average pooling)."""
        return self.normalized(np.ones(1), source, lam_out)[0]

    # -- approximations -----------------------------------------------------------------------------
    def approximation(self, layer: Layer, what: str, why: str, meta: dict, key: str, value) -> None:
        if not self.approximate:
            raise NetspecError(f"layer '{layer.name}': {what}: {why}; `netspec nir --approximate` writes the graph without "
                               f"it (recorded in the node's metadata '{key}')")
        meta[key] = value
        self.notes.append(f"layer '{layer.name}': {what} left out of the NIR dynamics ({why}); netspec reads it back "
                          f"from the metadata '{key}', other readers simulate without it")

    # -- neurons ------------------------------------------------------------------------------------
    def neuron(self, layer: Layer, shape: tuple[int, ...], kappa: float, biased: bool, name: str | None = None) -> str:
        """The IF/LIF/CubaLIF node of ``layer``'s neurons, normalized (threshold 1, leak 0), its input
        scaled by ``kappa`` through ``r``."""
        nir = self.nir
        p = self.spec.neurons[layer.name]
        dt = self.spec.simulation.dt
        meta: dict = {LAYER_KEY: layer.name}
        if steps_in(p.refractory, dt):
            self.approximation(layer, f"refractory period {p.refractory.text}", "NIR 1.0.8 neurons have no refractory period",
                               meta, REFRACTORY_KEY, float(p.refractory.value))
        if p.initial_u:
            self.approximation(layer, f"initial {p.initial_u:g}", "NIR 1.0.8 neurons start at v = 0 every run", meta,
                               INITIAL_KEY, float(p.initial_u))
        if p.clamp:
            raise NetspecError(f"layer '{layer.name}': clamp {p.clamp}: NIR 1.0.8 neurons always spike; remove it from a "
                               "copy of the spec to write the graph")
        if steps_in(p.delay, dt):
            self.approximation(layer, f"delay {p.delay.text}", "netspec does not write NIR Delay nodes", meta, DELAY_KEY,
                               float(p.delay.value))
        if p.reset == "subtract":
            u_reset, meta[RESET_KEY] = 0.0, "subtract"
            self.subtract.append(layer.name)
        elif p.reset == "zero":
            u_reset, meta[RESET_KEY] = 0.0, "zero"
        else:
            u_reset, meta[RESET_KEY] = (p.reset_value - p.rest.value) / p.scale, "value"
        ones = np.ones(shape, dtype=F32)
        common = {"v_threshold": ones.copy(), "v_reset": (ones * u_reset).astype(F32), "metadata": meta}
        if p.model == "if":
            if p.synapse == "exponential":
                raise NetspecError(f"layer '{layer.name}': IF neurons with exponential synapses: NIR has no current-based "
                                   "integrate-and-fire node without leak (CubaLIF leaks); use delta synapses or model lif")
            node, kind = nir.IF(r=(ones * (kappa / self.dt)).astype(F32), **common), "if"
        else:
            tau = float(p.tau_m.value)
            r = (ones * (kappa * tau / self.dt)).astype(F32)
            if p.synapse == "delta":
                node, kind = nir.LIF(tau=(ones * tau).astype(F32), r=r, v_leak=np.zeros(shape, F32), **common), "lif"
            else:
                if biased:
                    self.approximation(layer, "a bias with exponential synapses", "netspec adds the bias to the membrane, "
                                       "a CubaLIF passes it through its synaptic current", meta, BIAS_KEY, "membrane")
                node = nir.CubaLIF(tau_syn=(ones * float(p.tau_syn.value)).astype(F32), tau_mem=(ones * tau).astype(F32), r=r,
                                   v_leak=np.zeros(shape, F32), w_in=ones.copy(), **common)
                kind = "cubalif"
        return self.add(name or self.fresh(f"{layer.name}_{kind}"), node)


# -- weighted nodes: (graph, layer, lambda_out) -> (node, kappa, the layer read) ---------------------------
def _dense(g: _Graph, layer: Dense, lam: float):
    src = layer.inputs[0]
    w = g.normalized(g.spec.array(layer, "kernel"), src, lam)
    perm = g.perm.get(src)
    if perm is not None:
        w = w[perm]
    bias = g.spec.array(layer, "bias")
    meta = {LAYER_KEY: layer.name}
    if bias is None:
        return g.nir.Linear(weight=w.T.astype(F32), metadata=meta), 1.0, src
    b = np.asarray(bias, dtype=np.float64) / lam
    return g.nir.Affine(weight=w.T.astype(F32), bias=b.astype(F32), metadata=meta), 1.0, src


def _conv(g: _Graph, layer: Conv2D | DepthwiseConv2D, lam: float):
    src, ((t, b), (l, r)) = g.unpadded(layer.inputs[0])
    h, w, c = g.spec.shapes[layer.inputs[0]]
    pads = []
    for size, k, s, (before, after) in ((h, layer.kernel_size[0], layer.stride[0], (t, b)),
                                        (w, layer.kernel_size[1], layer.stride[1], (l, r))):
        _, own_before, own_after = conv_geometry(size, k, s, layer.pad)
        before, after = before + own_before, after + own_after
        if before != after:
            raise NetspecError(f"layer '{layer.name}': pads {before} before and {after} after along an axis (Keras 'same' "
                               "with an even kernel or a stride, or uneven zero padding); NIR Conv2d pads both sides equally")
        pads.append(before)
    kernel = g.normalized(g.spec.array(layer, "kernel"), layer.inputs[0], lam)
    meta = {LAYER_KEY: layer.name}
    if isinstance(layer, DepthwiseConv2D):
        # nir 1.0.8 types a Conv2d's input as weight.shape[1] channels whatever its groups, so a grouped
        # convolution fails nir.read's type check: write the same function with groups 1 (zeros off the
        # block diagonal) and the depth multiplier in the metadata
        kh, kw, cin, m = kernel.shape
        weight = np.zeros((cin * m, cin, kh, kw))
        out = np.arange(cin * m)
        weight[out, out // m] = kernel.transpose(2, 3, 0, 1).reshape(cin * m, kh, kw)
        meta[DEPTHWISE_KEY] = m
        g.depthwise.append(layer.name)
    else:
        weight = kernel.transpose(3, 2, 0, 1)
    bias = g.spec.array(layer, "bias")
    b = np.zeros(weight.shape[0]) if bias is None else np.asarray(bias, dtype=np.float64) / lam
    sh, sw = g.spec.shapes[src][:2]
    node = g.nir.Conv2d(input_shape=(sh, sw), weight=weight.astype(F32), stride=tuple(layer.stride), padding=tuple(pads),
                        dilation=(1, 1), groups=1, bias=b.astype(F32), metadata=meta)
    return node, 1.0, src


def _avgpool(g: _Graph, layer: AvgPool2D, lam: float):
    h, w, _ = g.spec.shapes[layer.inputs[0]]
    for size, k, s in ((h, layer.pool_size[0], layer.stride[0]), (w, layer.pool_size[1], layer.stride[1])):
        if conv_geometry(size, k, s, layer.pad)[1:] != (0, 0):
            raise NetspecError(f"layer '{layer.name}': average pooling with 'same' padding: Keras leaves the padded "
                               "positions out of the mean, PyTorch/NIR readers count them; pad the input explicitly or use 'valid'")
    node = g.nir.AvgPool2d(kernel_size=np.array(layer.pool_size), stride=np.array(layer.stride), padding=np.array([0, 0]),
                           metadata={LAYER_KEY: layer.name})
    return node, g.kappa(layer.inputs[0], lam), layer.inputs[0]


def _global_avgpool(g: _Graph, layer: GlobalAvgPool2D, lam: float):
    h, w, _ = g.spec.shapes[layer.inputs[0]]
    node = g.nir.AvgPool2d(kernel_size=np.array([h, w]), stride=np.array([h, w]), padding=np.array([0, 0]),
                           metadata={LAYER_KEY: layer.name})
    return node, g.kappa(layer.inputs[0], lam), layer.inputs[0]


WEIGHTED: dict[type[Layer], Callable] = {
    Dense: _dense, Conv2D: _conv, DepthwiseConv2D: _conv, AvgPool2D: _avgpool, GlobalAvgPool2D: _global_avgpool,
}


def _biased(spec: Spec, layer: Layer) -> bool:
    bias = spec.array(layer, "bias")
    return bias is not None and bool(np.any(bias))


def _nir_shape(g: _Graph, layer: Layer) -> tuple[int, ...]:
    shape = to_nir_shape(g.spec.shapes[layer.name])
    return (shape[0], 1, 1) if isinstance(layer, GlobalAvgPool2D) else shape


# -- one handler per layer kind --------------------------------------------------------------------------
def _input(g: _Graph, layer: Input) -> None:
    shape = to_nir_shape(tuple(g.spec.input.shape))
    g.add(layer.name, g.nir.Input(input_type=np.array(shape), metadata={LAYER_KEY: layer.name}))
    g.spikes[layer.name], g.perm[layer.name] = layer.name, None
    encoding = g.spec.input.encoding
    g.rows.append((layer.name, layer.type, f"Input '{layer.name}' {list(shape)}"))
    if encoding == "analog":
        g.notes.append(f"input '{layer.name}': analog; feed each sample as a constant input value in every time step")
    else:
        g.notes.append(f"input '{layer.name}': poisson; feed spike trains of rate {g.spec.input.max_rate.text} * x / "
                       f"{g.spec.input.range[1]:g} (the encoding is not part of the graph)")


def _population(g: _Graph, layer: Layer) -> None:
    if g.spec.is_hidden_linear(layer):
        consumers = g.spec.consumers(layer.name)
        if len(consumers) != 1:
            raise NetspecError(f"layer '{layer.name}': a hidden linear layer read by {len(consumers)} add layers; netspec "
                               "writes it once, normalized by the one add it feeds")
        return  # written by the add layer it feeds
    lam = g.spec.lam(layer)
    node, kappa, src = WEIGHTED[type(layer)](g, layer, lam)
    wname = g.add(layer.name, node)
    g.edge(g.source(layer, src), wname)
    nname = g.neuron(layer, _nir_shape(g, layer), kappa, _biased(g.spec, layer))
    g.edge(wname, nname)
    out = nname
    if isinstance(layer, GlobalAvgPool2D):
        c = g.spec.shapes[layer.name][0]
        out = g.add(g.fresh(f"{layer.name}_flat"), g.nir.Flatten(input_type={"input": np.array([c, 1, 1])}, start_dim=0,
                                                                  end_dim=-1, metadata={LAYER_KEY: layer.name}))
        g.edge(nname, out)
    g.spikes[layer.name], g.perm[layer.name] = out, None
    chain = f"{type(node).__name__} '{wname}' -> {type(g.nodes[nname]).__name__} '{nname}'"
    g.rows.append((layer.name, layer.type, chain + (f" -> Flatten '{out}'" if out != nname else "")))


def _add(g: _Graph, layer: Add) -> None:
    lam = g.spec.lam(layer)
    name = layer.name
    shape = _nir_shape(g, layer)
    feeds: list[str] = []
    perms = []
    biased = False
    parts = []
    for i in layer.inputs:
        if g.spec.is_hidden_linear(i):
            hidden = g.spec.layer(i)
            node, kappa, src = WEIGHTED[type(hidden)](g, hidden, lam)
            g.edge(g.source(hidden, src), g.add(i, node))
            feed = i
            if kappa != 1.0:
                feed = g.add(g.fresh(f"{i}_scale"), g.nir.Scale(scale=np.full(shape, kappa, dtype=F32), metadata={LAYER_KEY: i}))
                g.edge(i, feed)
            biased = biased or _biased(g.spec, hidden)
            perms.append(None)
            parts.append(f"{type(node).__name__} '{i}' (hidden linear)")
            g.rows.append((i, hidden.type, f"{type(node).__name__} '{i}' -> into '{name}'"))
        else:
            feed = g.source(layer, i)
            factor = g.kappa(i, lam)
            if factor != 1.0:
                scale = g.add(g.fresh(f"{name}_from_{i}"), g.nir.Scale(scale=np.full(shape, factor, dtype=F32),
                                                                        metadata={LAYER_KEY: name}))
                g.edge(feed, scale)
                feed = scale
                parts.append(f"Scale '{scale}'")
            else:
                parts.append(f"'{feed}'")
            perms.append(g.perm.get(i))
        feeds.append(feed)
    if any(p is not None for p in perms) and not all(p is not None and np.array_equal(p, perms[0]) for p in perms):
        raise NetspecError(f"layer '{name}' adds a flattened image to a tensor ordered otherwise; NIR flattens "
                           "channels-first, netspec channels-last, so the sum would mix elements")
    node = g.neuron(layer, shape, 1.0, biased, name=name)
    for feed in feeds:
        g.edge(feed, node)
    g.spikes[name], g.perm[name] = node, perms[0]
    g.rows.append((name, layer.type, " + ".join(parts) + f" -> {type(g.nodes[node]).__name__} '{name}'"))


def _flatten(g: _Graph, layer: Flatten) -> None:
    src = layer.inputs[0]
    feed = g.source(layer, src)
    shape = g.spec.shapes[src]
    if len(shape) == 1:
        g.spikes[layer.name], g.perm[layer.name] = feed, g.perm.get(src)
        g.rows.append((layer.name, layer.type, "nothing (already flat)"))
        return
    node = g.nir.Flatten(input_type={"input": np.array(to_nir_shape(shape))}, start_dim=0, end_dim=-1,
                         metadata={LAYER_KEY: layer.name})
    g.edge(feed, g.add(layer.name, node))
    g.spikes[layer.name] = layer.name
    g.perm[layer.name] = chw_order(*shape) if len(shape) == 3 else None
    g.rows.append((layer.name, layer.type, f"Flatten '{layer.name}'" + (" (channels-first order)" if len(shape) == 3 else "")))


def _zeropad(g: _Graph, layer: ZeroPad2D) -> None:
    g.pads[layer.name] = (layer.inputs[0], layer.padding)
    g.rows.append((layer.name, layer.type, "padding of the convolution that reads it"))


def _maxpool(g: _Graph, layer: MaxPool2D) -> None:
    raise NetspecError(f"layer '{layer.name}' (maxpool2d): NIR has no spiking max pooling (netspec passes the spikes of "
                       "each window's most active input); train the network with average pooling to write it as NIR")


def _crop(g: _Graph, layer: Crop2D) -> None:
    raise NetspecError(f"layer '{layer.name}' (crop2d): NIR has no cropping node")


def _concatenate(g: _Graph, layer: Concatenate) -> None:
    raise NetspecError(f"layer '{layer.name}' (concatenate): NIR has no concatenation node; netspec does not split the "
                       "layers that read it by input yet")


#: What every layer kind becomes: a handler that maps it or refuses it by name.
HANDLERS: dict[type[Layer], Callable[[_Graph, Layer], None]] = {
    Input: _input, Dense: _population, Conv2D: _population, DepthwiseConv2D: _population, AvgPool2D: _population,
    GlobalAvgPool2D: _population, Add: _add, Flatten: _flatten, ZeroPad2D: _zeropad, MaxPool2D: _maxpool,
    Concatenate: _concatenate, Crop2D: _crop,
}


def handles(kind: type[Layer]) -> bool:
    """Whether the NIR writer has a handler (a mapping or a refusal by name) for the layer kind ``kind``."""
    return kind in HANDLERS


def build_graph(spec: Spec, *, approximate: bool = False):
    """The NIR graph of ``spec``'s spiking network (a ``nir.NIRGraph``, type-checked by NIR) and the
    :class:`Written` summary (``path`` empty). Raises :class:`NetspecError` naming the layer NIR cannot express."""
    if spec.simulation.readout not in (None, "spike_count"):
        raise NetspecError(f"simulation.readout: NIR carries spikes; a read-out by {spec.simulation.readout!r} cannot be written")
    for layer in spec.layers:
        if layer.normalization is not None and layer.normalization.per_channel:
            raise NetspecError(f"layer '{layer.name}': lambda per channel cannot be written to NIR yet (give one number)")
        if layer.normalization is not None and layer.normalization.bias_correction is not None:
            raise NetspecError(f"layer '{layer.name}': normalization.bias_correction cannot be written to NIR yet (delete it "
                               "from a copy of the spec, or export without --calibrate-bias)")
    g = _Graph(spec, approximate)
    for name in spec.order:
        layer = spec.layer(name)
        handler = HANDLERS.get(type(layer))
        if handler is None:
            raise NetspecError(f"layer '{name}' ({layer.type}): netspec has no NIR mapping for this layer kind")
        handler(g, layer)
    out = spec.output_layer
    out_node = g.add(g.fresh("output"), g.nir.Output(output_type=np.array(to_nir_shape(spec.shapes[out.name]))))
    g.edge(g.spikes[out.name], out_node)
    if g.subtract:
        g.notes.insert(0, f"reset by subtraction ({', '.join(g.subtract)}): NIR 1.0.8 IF/LIF nodes reset to v_reset; netspec "
                          "writes v_reset = 0 and reset_mode: subtract in each node's metadata and reads it back exactly. "
                          "snnTorch's and Norse's readers reset to v_reset and lose the charge above threshold, so strongly "
                          "driven neurons fire less often there (sinabs and Spyx subtract whatever the graph says)")
    if g.depthwise:
        g.notes.append(f"depthwise convolutions ({', '.join(g.depthwise)}): written as Conv2d with groups 1 and zero weights "
                       "between channels (nir 1.0.8's type check ignores groups), depth multiplier in the metadata")
    inp = spec.input
    meta = {GRAPH_KEY: {
        "version": f"netspec {__version__}", "name": spec.name, "dt": float(spec.simulation.dt.value),
        "dt_text": str(spec.simulation.dt.text), "duration_text": str(spec.simulation.duration.text),
        "encoding": inp.encoding, "range": np.array(inp.range, dtype=np.float64),
        **({"max_rate_text": str(inp.max_rate.text)} if inp.max_rate is not None else {}),
        **({"seed": int(inp.seed)} if inp.seed is not None else {}),
    }}
    try:
        graph = g.nir.NIRGraph(nodes=g.nodes, edges=g.edges, metadata=meta, type_check=True)
    except (ValueError, AssertionError) as exc:
        raise NetspecError(f"internal error: NIR rejects the graph written for '{spec.name}' ({exc}); please report this") from exc
    return graph, Written(Path(), len(g.nodes), len(g.edges), g.rows, g.notes)


def write_graph(spec: Spec, path: str | Path, *, approximate: bool = False) -> Written:
    """Write ``spec``'s spiking network to ``path`` with ``nir.write``, then check that ``nir.read`` accepts it.

    Parameters
    ----------
    spec : Spec
    path : str | Path
        The ``.nir`` file; written through a temporary file, so a failure leaves nothing behind.
    approximate : bool
        Leave out what NIR cannot express (refractory periods, delays, a CubaLIF's bias path), recording
        it in the node metadata, instead of refusing the layer.

    Returns
    -------
    Written
    """
    nir = require_nir()
    path = Path(path)
    if not path.parent.is_dir():
        raise NetspecError(f"{path}: the folder {path.parent} does not exist", 2)
    graph, written = build_graph(spec, approximate=approximate)
    fd, tmp = tempfile.mkstemp(prefix=".netspec-nir-", suffix=".nir", dir=path.parent)
    os.close(fd)
    try:
        nir.write(tmp, graph)
        nir.read(tmp)  # NIR's own reader and type check accept what was written
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    written.path = path
    return written
