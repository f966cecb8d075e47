"""The spiking network a spec describes, as plain data: populations, projections, max-pool relays, drives.

One module of some 500 lines because its parts work on one structure, the segment map (which node neuron
every element of a layer's output comes from): routing through index-only layers, composing weighted layers
through it, normalizing what results and electing max-pool windows would each need the others' internals.

:func:`make_plan` walks the spec in topological order and decides what every layer becomes in the SNN:

* a **population** (``NeuronGroup``) for every layer with neurons (dense, conv2d, depthwise_conv2d,
  avgpool2d, global_avgpool2d, add, and the output), except hidden ``linear`` layers;
* a **relay** for every max-pooling layer: a group of gates, one per pooling window, that passes the spikes
  of the window's most active member (see the generated code for the rule);
* for ``poisson`` input, an input population; for ``analog`` input, no neurons: projections from the input
  are folded into a per-sample **drive** (a constant current, ``W.x/lambda + b/lambda``, set per sample);
* index-only layers (flatten, zero padding, concatenation) vanish into the indices of the projections, and a
  hidden linear layer's projection is composed into the add layer it feeds.

Every projection carries normalized weights ``W * lambda_source / lambda_target``, where
``lambda_source`` is the factor of the population the spikes come from (for a concatenation, each branch
its own), and every population a normalized bias ``b / lambda``. Factors may be per channel: every node
keeps one per neuron, a weight takes its source neuron's and its target neuron's.

Poisson input neurons fire with probability ``max_rate * dt * x / high`` per step and their spikes carry
``W * lambda_0 / lambda`` (``lambda_0`` the input layer's factor, default 1), as in the paper: the input
rates stand for ``x / lambda_0`` exactly when ``max_rate = 1/dt`` and ``lambda_0 = high``; a lower
``max_rate`` scales the input drive (not the biases) down by ``max_rate * dt``.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from ..errors import NetspecError
from ..spec import NeuronParams, Spec
from ..spec.units import steps_in
from ..spec.layers import AvgPool2D, Conv2D, Dense, DepthwiseConv2D, GlobalAvgPool2D, Layer, Role
from . import connectivity as conn
from . import kernels as kern
from .kernels import Piece
from .runner import keys
from .runner.geometry import Average, Filters

#: How projections are simulated: from their kernels (default) or as one Brian2 synapse per connection.
KERNEL, SYNAPSES = "kernel", "synapses"
CONNECTIVITY = (KERNEL, SYNAPSES)

#: Read-outs of the output layer (simulation.readout): spike count, membrane potential (the output does not
#: spike), the paper's spiking softmax (no reset; each step a neuron fires with probability softmax(u)_i).
SPIKE_COUNT, MEMBRANE, SOFTMAX = "spike_count", "membrane", "softmax"
READOUTS = (SPIKE_COUNT, MEMBRANE, SOFTMAX)

#: Node kinds: what emits the spikes a projection carries.
POPULATION, RELAY, POISSON, ANALOG = "population", "relay", "poisson", "analog"


@dataclass
class Node:
    """Something a projection can come from. ``name`` is the layer name."""

    name: str
    kind: str
    size: int
    lam: np.ndarray  # per neuron


@dataclass
class Projection:
    """Synapses from one node into one population (all kernel projections between the pair merged).

    Unrolled (``pieces`` None): ``pre``/``post`` index the source node and the target population; ``w`` is
    normalized. Kernel form: ``pieces`` (normalized weights), ``pre``/``post``/``w`` empty. ``count``: connections.
    """

    source: str
    target: str
    pre: np.ndarray
    post: np.ndarray
    w: np.ndarray
    index: int = 0  # k in the object name S_<target>_<k>
    pieces: list[Piece] | None = None
    count: int = 0

    @property
    def name(self) -> str:
        return keys.projection(self.target, self.index)


@dataclass
class Election:
    """Membership of one source node's neurons in a relay's pooling windows. ``key`` ranks the members
    of a window (0 = first: lowest source, then lowest index), for the deterministic tie rule."""

    source: str
    relay: str
    pre: np.ndarray
    post: np.ndarray
    key: np.ndarray
    index: int = 0

    @property
    def name(self) -> str:
        return keys.election(self.relay, self.index)


@dataclass
class Population:
    """A NeuronGroup. ``bias`` is per neuron and normalized; ``drive`` holds the analog input projection in
    kernel form (weights per input unit) or None."""

    name: str
    layer_type: str
    shape: tuple[int, ...]
    params: NeuronParams
    lam: np.ndarray  # per neuron (one value per channel, tiled)
    bias: np.ndarray
    drive: list[Piece] | None = None
    inputs: list[Projection] = field(default_factory=list)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class Relay:
    """A max-pooling layer in the SNN: one gate per window. ``stage`` orders relays that feed relays."""

    name: str
    shape: tuple[int, ...]
    lam: np.ndarray  # per gate: the factor of its window's channel
    elections: list[Election] = field(default_factory=list)
    stage: int = 1
    members_max: int = 1  # most members of any window (keys are below this)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class Plan:
    """The whole SNN. ``order`` lists every spiking node (input population, populations, relays) in the
    spec's order; ``output`` names the read-out population."""

    spec: Spec
    steps: int
    input_name: str
    encoding: str
    input_size: int
    populations: dict[str, Population]
    relays: dict[str, Relay]
    order: list[str]
    output: str
    fanout: dict[str, np.ndarray]  # node -> outgoing synapses per neuron (projections only)
    counted: set[str]  # nodes whose neurons keep a per-sample spike count (members of max-pool windows)
    connectivity: str = KERNEL

    @property
    def readout(self) -> str:
        """How the output is read: :data:`SPIKE_COUNT`, :data:`MEMBRANE` or :data:`SOFTMAX`."""
        return self.spec.simulation.read_by

    @property
    def kinds(self) -> dict[str, str]:
        out = {}
        for name in self.order:
            out[name] = RELAY if name in self.relays else (POISSON if name == self.input_name else POPULATION)
        return out

    def size(self, name: str) -> int:
        if name in self.populations:
            return self.populations[name].size
        if name in self.relays:
            return self.relays[name].size
        return self.input_size


# -- segments: where each element of a layer's output comes from ---------------------------------------
Segment = tuple[str, np.ndarray, np.ndarray]  # (node, node index, layer output index)


def _segments(spec: Spec, name: str, cache: dict[str, list[Segment]]) -> list[Segment]:
    if name in cache:
        return cache[name]
    layer = spec.layer(name)
    if layer.role is Role.RELAY:
        segs = _reindex(layer, spec, cache)
    elif spec.is_hidden_linear(layer):  # only an add layer may read it, through its kernel
        raise NetspecError(f"layer '{name}': a hidden linear layer has no neurons; only add layers may read it")
    else:  # the input, a max-pool gate or a population: spikes come from its own neurons
        every = np.arange(int(np.prod(spec.shapes[name])))
        segs = [(name, every, every)]
    cache[name] = segs
    return segs


# -- relays: every index-only kind re-indexes its inputs as its class's ``sources`` says -------------------
def _reindex(layer: Layer, spec: Spec, cache: dict[str, list[Segment]]) -> list[Segment]:
    sources = layer.sources(spec.in_shapes(layer))
    if sources is None:
        raise NetspecError(f"layer '{layer.name}': the builder cannot route through layer type {layer.type!r}")
    segs = []
    for name, src in zip(layer.inputs, sources):
        hit = np.flatnonzero(src >= 0)  # the output elements this input gives
        for node, sidx, oidx in _segments(spec, name, cache):
            inv = np.full(int(np.prod(spec.shapes[name])), -1, dtype=np.int64)
            inv[oidx] = np.arange(oidx.size)
            mine = hit[inv[src[hit]] >= 0]  # ... out of this segment of it
            segs.append((node, sidx[inv[src[mine]]], mine))
    return segs


def _compose(spec: Spec, source_layer: str, pre, post, w, cache) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """Re-index synapses that read ``source_layer``'s output so that they read the nodes behind it."""
    size = int(np.prod(spec.shapes[source_layer]))
    out = []
    for node, sidx, oidx in _segments(spec, source_layer, cache):
        inv = np.full(size, -1, dtype=np.int64)
        inv[oidx] = np.arange(oidx.size)
        pos = inv[pre]
        keep = pos >= 0
        if not keep.any():
            continue
        out.append((node, sidx[pos[keep]].astype(conn.INDEX), post[keep].astype(conn.INDEX), w[keep]))
    return out


def _kcompose(spec: Spec, source_layer: str, piece: Piece, cache) -> list[tuple[str, Piece, np.ndarray]]:
    """Kernel form of :func:`_compose`: one piece per segment, with the node -> input position map and the
    fan-out of every node neuron (segments that reach no target are dropped, as unrolled)."""
    fan_pos = piece.fanout_per_position()
    out = []
    for node, sidx, oidx in _segments(spec, source_layer, cache):
        fan = fan_pos[oidx]
        if not fan.any():
            continue
        pos = np.full(int(np.prod(spec.shapes[node])), -1, dtype=conn.INDEX)
        pos[sidx] = oidx
        node_fan = np.zeros(pos.size, dtype=np.int64)
        node_fan[sidx] = fan
        out.append((node, piece.narrowed(pos), node_fan))
    return out


def _kernel(spec: Spec, name: str, unrolled: bool = True):
    """The (pre, post, w) connectivity of a layer with one input, in ANN weights (None unless ``unrolled``),
    its kernel form, and its bias per neuron."""
    layer = spec.layer(name)
    in_shape = spec.in_shapes(layer)[0]
    syn = _connections(layer, in_shape, spec) if unrolled else None
    piece = kern.kernel_projection(layer, in_shape, spec)
    out_n = int(np.prod(spec.shapes[name]))
    bias = spec.array(layer, "bias")
    per_neuron = np.zeros(out_n)
    if bias is not None:
        per_neuron = np.tile(np.asarray(bias, dtype=np.float64), out_n // bias.size)
    return syn, piece, per_neuron


# -- weighted kinds: their unrolled connections (a test checks every one-input population kind has a rule) --
@functools.singledispatch
def _connections(layer: Layer, in_shape, spec: Spec):
    raise NetspecError(f"layer '{layer.name}': the builder does not support layer type {layer.type!r} here")


@_connections.register
def _(layer: Dense, in_shape, spec):
    return conn.dense(in_shape[0], spec.array(layer, "kernel"))


@_connections.register
def _(layer: Conv2D, in_shape, spec):
    return conn.conv2d(in_shape, spec.array(layer, "kernel"), layer.stride, layer.pad)


@_connections.register
def _(layer: DepthwiseConv2D, in_shape, spec):
    return conn.depthwise_conv2d(in_shape, spec.array(layer, "kernel"), layer.stride, layer.pad)


@_connections.register
def _(layer: AvgPool2D, in_shape, spec):
    return conn.avgpool2d(in_shape, layer.pool_size, layer.stride, layer.pad)


@_connections.register
def _(layer: GlobalAvgPool2D, in_shape, spec):
    return conn.global_avgpool2d(in_shape)


def handles(kind: type[Layer]) -> bool:
    """Whether the builder knows what the layer kind ``kind`` becomes in the SNN."""
    if kind.role in (Role.SOURCE, Role.GATE):
        return True
    if kind.role is Role.RELAY:
        return kind.sources is not Layer.sources
    return kind.sums_inputs or (_connections.dispatch(kind) is not _connections.dispatch(object)
                                and kern.handles(kind))


def make_plan(spec: Spec, steps: int | None = None, connectivity: str = KERNEL) -> Plan:
    """Decide the SNN for ``spec`` (see the module docstring). ``steps`` overrides the time steps per
    sample; ``connectivity`` says how projections are simulated: ``'kernel'`` (from the kernels; projections
    into a population with a synaptic delay stay unrolled synapses) or ``'synapses'`` (all unrolled).
    Raises :class:`NetspecError` for what the SNN cannot represent."""
    if connectivity not in CONNECTIVITY:
        raise NetspecError(f"build: connectivity must be one of {', '.join(CONNECTIVITY)}, not {connectivity!r}", 2)
    dt = spec.simulation.dt.value
    if spec.simulation.read_by not in READOUTS:
        raise NetspecError(f"simulation.readout: expected one of {', '.join(READOUTS)}, not {spec.simulation.readout!r}")
    # what depends on the spec alone (an output with neurons, time constants longer than dt, no refractory
    # membrane read-out) the validator has checked: NS209, NS513, NS508
    out_name = spec.order[-1]
    inp = spec.input_layer
    encoding = spec.input.encoding
    input_size = int(np.prod(spec.input.shape))
    cache: dict[str, list[Segment]] = {}
    populations: dict[str, Population] = {}
    relays: dict[str, Relay] = {}
    order: list[str] = [inp.name] if encoding == "poisson" else []
    lams: dict[str, np.ndarray] = {inp.name: spec.lam_per_neuron(inp)}  # per neuron of every node

    for name in spec.order:
        layer = spec.layer(name)
        if layer.role is Role.GATE:
            relays[name] = _relay(spec, name, cache, lams, relays)
            lams[name] = relays[name].lam
            order.append(name)
        elif spec.is_population(layer):
            params = spec.neurons[name]
            lam = spec.lam_per_neuron(layer)
            pop = Population(name, layer.type, tuple(spec.shapes[name]), params, lam, np.zeros(int(np.prod(spec.shapes[name]))))
            # unrolled synapses: the option, and projections with a delay (a kernel scatter has no spike queue)
            unrolled = connectivity == SYNAPSES or steps_in(params.delay, dt) > 0
            parts: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
            kparts: list[tuple[str, Piece, np.ndarray]] = []
            feeds = [(i, i) for i in layer.inputs] if layer.sums_inputs else [(layer.name, None)]
            for owner, branch in feeds:
                if branch is None or spec.is_hidden_linear(branch):
                    src_layer = spec.layer(owner)
                    syn, piece, bias = _kernel(spec, owner, unrolled)
                    pop.bias += bias / lam
                    if unrolled:
                        parts += _compose(spec, src_layer.inputs[0], *syn, cache)
                    kparts += _kcompose(spec, src_layer.inputs[0], piece, cache)
                else:
                    if unrolled:
                        parts += _compose(spec, branch, *conn.identity(pop.size), cache)
                    kparts += _kcompose(spec, branch, kern.identity(pop.size), cache)
            corr = None if layer.normalization is None else layer.normalization.bias_correction
            if corr is not None:  # bias calibration: (b + correction) / lambda, per channel
                pop.bias += np.resize(np.asarray(corr, dtype=np.float64), pop.size) / lam
            _attach(pop, parts, kparts, lams, inp.name, encoding, unrolled, _charge(spec, params))
            populations[name] = pop
            lams[name] = lam
            order.append(name)

    fanout = {n: np.zeros(_size(n, populations, relays, input_size), dtype=np.int64) for n in order}
    for pop in populations.values():
        for proj in pop.inputs:
            fanout[proj.source] += proj.fanout
            del proj.fanout
    counted = {e.source for r in relays.values() for e in r.elections if e.source not in relays}
    return Plan(spec, int(steps or spec.simulation.steps), inp.name, encoding, input_size, populations, relays,
                order, out_name, fanout, counted, connectivity)


def _charge(spec: Spec, p: NeuronParams) -> float | None:
    """For exponential synapses, dt/tau_syn: a spike adds ``(w*dt)/tau_syn`` to the charge (precomputed into
    the weights in both connectivity modes, so that they round alike)."""
    return spec.simulation.dt.value if p.synapse == "exponential" else None


def _size(name, populations, relays, input_size) -> int:
    if name in populations:
        return populations[name].size
    if name in relays:
        return relays[name].size
    return input_size


def _attach(pop: Population, parts, kparts, lams: dict[str, float], input_name: str, encoding: str, unrolled: bool,
            dt: float | None) -> None:
    """Normalize the composed projections of ``pop`` and group them by source node (analog input: drive, always
    in kernel form). ``parts`` are unrolled, ``kparts`` in kernel form; ``unrolled`` says which become
    projections. ``dt`` (exponential synapses): weights become charges ``(w*dt)/tau_syn``."""
    def charge(w):
        return (w * dt) / pop.params.tau_syn.value if dt is not None else w

    def norm(w, node, pre, post):
        return charge((w * lams[node][pre]) / pop.lam[post])

    def knorm(piece: Piece, node):
        c_in = piece.window.input[2]
        lam_in = np.ones(c_in)
        valid = piece.pos >= 0
        lam_in[piece.pos[valid] % c_in] = lams[node][valid]
        return piece.through(piece.pos, charge(_scaled(piece, lam_in, pop.lam)))

    rank = list(lams).index
    by_source: dict[str, list] = {}
    for node, pre, post, w in parts:
        by_source.setdefault(node, []).append((pre, post, w))
    kby_source: dict[str, list] = {}
    for node, piece, fan in kparts:
        kby_source.setdefault(node, []).append((piece, fan))
    analog = input_name if encoding == "analog" else None
    if analog in kby_source:
        # the input's normalized activation is x/lambda_0 and its weights W*lambda_0/lambda: per unit of x, W/lambda
        pop.drive = [p.through(p.pos, _scaled(p, None, pop.lam)) for p, _ in kby_source[analog]]
    if unrolled:
        for node, pieces in sorted(by_source.items(), key=lambda kv: rank(kv[0])):
            if node == analog:
                continue
            pre = np.concatenate([p[0] for p in pieces])
            post = np.concatenate([p[1] for p in pieces])
            w = np.concatenate([p[2] for p in pieces])
            order = np.argsort(pre, kind="stable")
            pre, post, w = pre[order], post[order], w[order]
            proj = Projection(node, pop.name, pre, post, norm(w, node, pre, post), count=int(pre.size))
            proj.fanout = np.bincount(pre, minlength=int(np.prod(pop_shape_of(node, kparts, kby_source))))
            pop.inputs.append(proj)
    else:
        empty = np.zeros(0, dtype=conn.INDEX)
        for node, pieces in sorted(kby_source.items(), key=lambda kv: rank(kv[0])):
            if node == analog:
                continue
            fan = np.sum([f for _, f in pieces], axis=0)
            proj = Projection(node, pop.name, empty, empty, np.zeros(0), count=int(fan.sum()),
                              pieces=[knorm(p, node) for p, _ in pieces])
            proj.fanout = fan
            pop.inputs.append(proj)
    for k, proj in enumerate(pop.inputs):
        proj.index = k


def _scaled(piece: Piece, lam_in: np.ndarray | None, lam_out: np.ndarray) -> np.ndarray:
    """A piece's weights times ``lam_in`` of their input channel (None: 1) over the target's factor of their
    output channel (``lam_out`` per target neuron, channels-last over the piece's [OH, OW, channels]), in the
    order of operations of the unrolled weights ``(w * lam_in) / lam_out``. Average pooling gets one weight
    per (window, channel): ``[OH*OW*C]``."""
    win = piece.window
    (kh, kw), c, f = win.kernel, win.input[2], win.filters
    lam_in = np.ones(c) if lam_in is None else lam_in
    lam_out = lam_out.reshape(-1, win.channels_out)[0]
    if isinstance(win, Average):
        # one weight per (window, channel), 1/taps of the window times the channel's lambda_in/lambda_out, so
        # branches of different factors (an Inception block's concatenation) keep theirs
        return ((piece.w[:, None] * lam_in[None, :]) / lam_out[None, :]).ravel()
    # [KH, KW, C, F]: filters take their filter's lambda_out, a depthwise window its output channel's (c, m)
    out = lam_out[None, :] if isinstance(win, Filters) else lam_out.reshape(c, f)
    return ((piece.w.reshape(kh, kw, c, f) * lam_in[:, None]) / out).ravel()


def pop_shape_of(node, kparts, kby_source) -> int:
    """Neurons of ``node`` (from its kernel pieces' index map)."""
    return kby_source[node][0][0].pos.size


def _relay(spec: Spec, name: str, cache, lams: dict[str, float], relays: dict[str, Relay]) -> Relay:
    layer = spec.layer(name)
    src_layer = layer.inputs[0]
    pre, post = conn.pool_windows(spec.shapes[src_layer], layer.pool_size, layer.stride, layer.pad)
    parts = _compose(spec, src_layer, pre, post, np.zeros(pre.size), cache)
    sources = sorted({p[0] for p in parts}, key=list(lams).index)
    if spec.input.encoding == "analog" and spec.input_layer.name in sources:
        raise NetspecError(f"layer '{name}': max pooling cannot read the analog input (use poisson encoding)")
    # rank the members of every window: by source (in order), then by source index
    rank = np.concatenate([np.full(p[1].size, sources.index(p[0]), dtype=np.int64) for p in parts])
    all_pre = np.concatenate([p[1] for p in parts]).astype(np.int64)
    all_post = np.concatenate([p[2] for p in parts]).astype(np.int64)
    order = np.lexsort((all_pre, rank, all_post))
    sorted_post = all_post[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_post)) + 1]
    first = np.repeat(starts, np.diff(np.r_[starts, sorted_post.size]))
    keys = np.empty(order.size, dtype=np.int64)
    keys[order] = np.arange(order.size) - first
    # counts are compared within a window, so its members must share one lambda (one channel of one branch)
    member_lam = np.concatenate([lams[p[0]][p[1]] for p in parts])
    size = int(np.prod(spec.shapes[name]))
    lo = np.full(size, np.inf)
    hi = np.full(size, -np.inf)
    np.minimum.at(lo, all_post, member_lam)
    np.maximum.at(hi, all_post, member_lam)
    if np.any(lo[np.isfinite(lo)] != hi[np.isfinite(lo)]):
        raise NetspecError(f"layer '{name}': a pooling window over neurons with different lambdas cannot be compared "
                           "by spike counts")
    stage = 1 + max([relays[s].stage for s in sources if s in relays], default=0)
    relay = Relay(name, tuple(spec.shapes[name]), np.where(np.isfinite(lo), lo, 1.0), stage=stage,
                  members_max=int(keys.max()) + 1 if keys.size else 1)
    for index, source in enumerate(sources):
        sel = rank == index
        e_pre, e_post, e_key = all_pre[sel], all_post[sel], keys[sel]
        o = np.argsort(e_pre, kind="stable")
        relay.elections.append(Election(source, name, e_pre[o].astype(conn.INDEX), e_post[o].astype(conn.INDEX),
                                        e_key[o], index))
    return relay
