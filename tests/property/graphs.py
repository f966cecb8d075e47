"""Hypothesis strategies for small random spec documents, made from the layer classes in
:mod:`netspec.spec.layers`: every candidate layer is created with its class (``from_yaml``), and its
output shape and the shapes of its tensors come from the class's own rules (``output_shape``,
``tensor_shapes``). A candidate a class refuses (a window larger than its input, say) is not added.

:func:`spec_documents` draws chains and DAGs: convolutions (strides, paddings), depthwise convolutions,
every pooling kind, zero padding, flatten, dense layers, branches joined by concatenation (along channels
or a spatial axis) or by add (with a hidden linear branch, a residual, or a plain one), each possibly
followed by a pooling layer; per-layer or per-channel lambda (sometimes extreme), neuron defaults and
per-layer overrides of every model, synapse, reset, refractory period, delay, initial membrane and clamp;
analog or poisson input; every read-out and timing; inline weights from a seeded generator, finite,
sometimes very large or very small. ``wild`` documents also try what the format allows but a network
may not be: an output without neurons, time constants not longer than dt, a refractory membrane read-out,
linear layers feeding other kinds; ``calibrated`` ones set every lambda from the reference on the inputs
they come with, for rate checks.
"""
from __future__ import annotations

import collections
import copy
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

from netspec.reference import forward
from netspec.spec import LAYER_TYPES, load_spec_data
from netspec.spec.layers import Role, ShapeError

#: Generated cases per kind of check, for the summary at the end of the run (see conftest.py).
CASES: collections.Counter = collections.Counter()


def examples(share: float) -> int:
    """This test's number of examples: ``share`` of the loaded profile's ``max_examples``."""
    from hypothesis import settings

    return max(1, int(round(settings.default.max_examples * share)))


#: Spatial kinds a random step may add after a spatial layer.
SPATIAL_STEPS = ("conv2d", "depthwise_conv2d", "avgpool2d", "maxpool2d", "zeropad2d", "branches", "branches")
POOLS = ("avgpool2d", "maxpool2d", "global_avgpool2d")


@dataclass
class Graph:
    """A spec document being drawn: its layers (plain YAML data, weights inline) and every layer's shape."""

    rng: np.random.Generator
    scale: float
    layers: list[dict] = field(default_factory=list)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    count: int = 0

    def fresh(self, kind: str) -> str:
        self.count += 1
        return f"{kind.split('_')[0][:4]}{self.count}"

    def add(self, raw: dict, *inputs: str) -> str | None:
        """Add the layer ``raw`` reading ``inputs`` if its class accepts their shapes; its name, or None."""
        cls = LAYER_TYPES[raw["type"]]
        raw = {**raw, "name": self.fresh(raw["type"]), "inputs": list(inputs)}
        layer = cls.from_yaml(raw)
        in_shapes = [self.shapes[i] for i in inputs]
        try:
            shape = layer.output_shape(in_shapes)
        except ShapeError:
            return None
        if min(shape) < 1:
            return None
        for key, tshape in layer.tensor_shapes(in_shapes).items():
            if key == "bias" and self.rng.random() < 0.3:
                continue
            w = self.rng.normal(0.1, 1.0, tshape) * self.scale / np.sqrt(max(1, np.prod(tshape[:-1])))
            raw[key] = w.round(6).tolist() if self.scale >= 1e-3 else w.tolist()
        self.layers.append(raw)
        self.shapes[raw["name"]] = tuple(shape)
        return raw["name"]


def _lam(draw, channels: int, extreme: bool):
    """A normalization block: one factor, or one per channel."""
    lo, hi = (-6, 6) if extreme else (-1, 1)
    value = st.floats(lo, hi).map(lambda e: float(f"{10 ** e:.6g}"))
    if draw(st.booleans()):
        return {"lambda": draw(value)}
    return {"lambda": draw(st.lists(value, min_size=channels, max_size=channels))}


def _neuron(draw, wild: bool) -> dict:
    """Neuron parameters: an override block (possibly empty)."""
    out: dict = {}
    if draw(st.integers(0, 3)) == 0:
        out["model"] = "lif"
        out["tau_m"] = draw(st.sampled_from(["1 ms", "0.5 ms"] if wild and draw(st.booleans()) else ["4 ms", "20 ms"]))
    if draw(st.integers(0, 3)) == 0:
        out["synapse"] = "exponential"
        out["tau_syn"] = draw(st.sampled_from(["1 ms", "0.5 ms"] if wild and draw(st.booleans()) else ["2 ms", "5 ms"]))
    if draw(st.integers(0, 4)) == 0:
        out["reset"] = draw(st.sampled_from(["zero", 0.25]))
    if draw(st.integers(0, 4)) == 0:
        out["refractory"] = draw(st.sampled_from(["1 ms", "2 ms"]))
    if draw(st.integers(0, 5)) == 0:
        out["delay"] = "1 ms"
    if draw(st.integers(0, 5)) == 0:
        out["initial"] = 0.5
    if draw(st.integers(0, 5)) == 0:
        out["clamp"] = 2
    return out


def _activation(draw, g: Graph) -> dict:
    if draw(st.integers(0, 9)) == 0:
        return {"activation": "relu", "clip": 2.0, **({"levels": 4} if draw(st.booleans()) else {})}
    return {"activation": "relu"}


def _weighted(draw, g: Graph, src: str, same: bool = False, filters: int | None = None) -> dict:
    """A dense or convolution layer reading ``src`` (``same``: keeps the spatial shape)."""
    shape = g.shapes[src]
    if len(shape) == 1:
        return {"type": "dense", "units": filters or draw(st.integers(1, 4))}
    if not same and draw(st.integers(0, 3)) == 0:
        return {"type": "depthwise_conv2d", "kernel_size": draw(st.integers(1, 3)), "strides": draw(st.integers(1, 2)),
                "padding": draw(st.sampled_from(["valid", "same"])), "depth_multiplier": draw(st.integers(1, 2))}
    return {"type": "conv2d", "filters": filters or draw(st.integers(1, 3)),
            "kernel_size": [draw(st.integers(1, 3)), draw(st.integers(1, 3))],
            "strides": 1 if same else [draw(st.integers(1, 2)), draw(st.integers(1, 2))],
            "padding": "same" if same else draw(st.sampled_from(["valid", "same"]))}


def _pool(draw, kind: str, same: bool = False) -> dict:
    if kind == "global_avgpool2d":
        return {"type": kind}
    raw = {"type": kind, "pool_size": [draw(st.integers(1, 3)), draw(st.integers(1, 3))]}
    if same:
        raw.update(strides=1, padding="same")
    else:
        if draw(st.booleans()):
            raw["strides"] = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
        raw["padding"] = draw(st.sampled_from(["valid", "same"]))
    return raw


def _branches(draw, g: Graph, src: str, wild: bool) -> str | None:
    """Two or three branches from ``src`` joined by concatenation or add, maybe followed by a pooling layer."""
    shape = g.shapes[src]
    join = draw(st.sampled_from(["concatenate", "add"]))
    n = draw(st.integers(2, 3))
    heads: list[str] = []
    if join == "add":
        width = shape[-1] if draw(st.booleans()) else draw(st.integers(1, 3))
        for k in range(n):
            if k == 0 and width == shape[-1] and draw(st.booleans()):
                heads.append(src)  # a residual: the source itself
                continue
            act = {"activation": "linear"} if draw(st.integers(0, 2)) == 0 else _activation(draw, g)
            head = g.add({**_weighted(draw, g, src, same=True, filters=width), **act}, src)
            if head is None:
                return None
            heads.append(head)
        joined = g.add({"type": "add", "activation": "relu"}, *heads)
    else:
        for k in range(n):
            choice = draw(st.integers(0, 3))
            if choice == 0:
                heads.append(src)
            elif choice == 1 and len(shape) == 3:
                head = g.add(_pool(draw, draw(st.sampled_from(["avgpool2d", "maxpool2d"])), same=True), src)
                heads.append(head)
            else:
                head = g.add({**_weighted(draw, g, src, same=True), **_activation(draw, g)}, src)
                heads.append(head)
            if heads[-1] is None:
                return None
        axis = -1
        if len(shape) == 3 and len({g.shapes[h][-1] for h in heads}) == 1 and draw(st.integers(0, 2)) == 0:
            axis = draw(st.sampled_from([0, 1]))  # along rows or columns
        joined = g.add({"type": "concatenate", **({} if axis == -1 else {"axis": axis})}, *heads)
    if joined is None or len(g.shapes[joined]) != 3 or not draw(st.booleans()):
        return joined
    return g.add(_pool(draw, draw(st.sampled_from(POOLS))), joined) or joined


@st.composite
def spec_documents(draw, wild: bool = False, max_steps: int = 4):
    """A spec document (plain data, weights inline) of a small random network, and the inputs it is run on."""
    seed = draw(st.integers(0, 2**20))
    extreme = draw(st.integers(0, 4)) == 0
    scale = draw(st.sampled_from([1e-30, 1e-4, 1e4, 1e30])) if extreme else 1.0
    g = Graph(np.random.default_rng(seed), scale)
    spatial = draw(st.integers(0, 3)) > 0
    shape = (draw(st.integers(3, 6)), draw(st.integers(3, 6)), draw(st.integers(1, 2))) if spatial else (draw(st.integers(2, 6)),)
    g.shapes["x"] = shape
    g.layers.append({"name": "x", "type": "input"})
    last = "x"
    for _ in range(draw(st.integers(1, max_steps))):
        s = g.shapes[last]
        if len(s) == 3:
            step = draw(st.sampled_from(SPATIAL_STEPS + ("flatten", "global_avgpool2d")))
        else:
            step = draw(st.sampled_from(["dense", "branches"]))
        if step == "branches":
            new = _branches(draw, g, last, wild)
        elif step in ("conv2d", "depthwise_conv2d", "dense"):
            raw = _weighted(draw, g, last)
            new = g.add({**raw, **_activation(draw, g)}, last)
        elif step in POOLS:
            new = g.add(_pool(draw, step), last)
        elif step == "zeropad2d":
            pad = [[draw(st.integers(0, 1)), draw(st.integers(0, 1))], [draw(st.integers(0, 1)), draw(st.integers(0, 1))]]
            new = g.add({"type": "zeropad2d", "padding": pad}, last)
        else:
            new = g.add({"type": "flatten"}, last)
        last = new or last
    # the output: mostly a dense layer (after a flatten); a wild document may end anywhere
    if not (wild and draw(st.integers(0, 3)) == 0):
        if len(g.shapes[last]) == 3 and draw(st.integers(0, 3)) > 0:
            last = g.add({"type": "flatten"}, last)
        out = g.add({**_weighted(draw, g, last), "activation": draw(st.sampled_from(["softmax", "linear"]))}, last)
        last = out or last
    elif g.layers[-1].get("activation") == "relu" and draw(st.booleans()):
        g.layers[-1]["activation"] = draw(st.sampled_from(["softmax", "linear"]))
        g.layers[-1].pop("clip", None)
        g.layers[-1].pop("levels", None)
    _prune(g, last)

    # normalization: every layer with neurons has a factor; the input sometimes has one
    for raw in g.layers:
        cls = LAYER_TYPES[raw["type"]]
        if cls.role is Role.POPULATION or (cls.role is Role.SOURCE and draw(st.integers(0, 4)) == 0):
            raw["normalization"] = _lam(draw, g.shapes[raw["name"]][-1], extreme or wild)
    # a hidden linear layer must feed add layers only; a wild document may let one feed anything
    if wild and draw(st.integers(0, 5)) == 0:
        hidden = [r for r in g.layers[1:-1] if LAYER_TYPES[r["type"]].takes_activation and r["type"] != "add"]
        if hidden:
            draw(st.sampled_from(hidden))["activation"] = "linear"

    encoding = draw(st.sampled_from(["analog", "analog", "poisson"]))
    steps = draw(st.integers(8, 30))
    doc = {
        "netspec": 1,
        "name": "generated",
        "input": {"shape": list(shape), "range": [0.0, 1.0], "encoding": encoding},
        "simulation": {"dt": "1 ms", "duration": f"{steps} ms"},
        "layers": g.layers,
    }
    if encoding == "poisson":
        doc["input"].update(max_rate=draw(st.sampled_from(["1000 Hz", "400 Hz"])), seed=draw(st.integers(0, 9)))
    readout = draw(st.sampled_from([None, None, "spike_count", "membrane", "softmax"]))
    if readout:
        doc["simulation"]["readout"] = readout
        if readout == "softmax" and encoding == "analog":
            doc["input"]["seed"] = 1
    if draw(st.booleans()):
        doc["simulation"]["timing"] = draw(st.sampled_from(["zero-latency", "one-step-per-layer"]))
    defaults = _neuron(draw, wild)
    if defaults:
        doc["neuron"] = defaults
    for raw in g.layers:
        if LAYER_TYPES[raw["type"]].role is Role.POPULATION and raw.get("activation") != "linear" and draw(st.integers(0, 4)) == 0:
            override = _neuron(draw, wild)
            if override:
                raw["neuron"] = override
    x = np.random.default_rng(seed + 1).uniform(0, 1, (3, *shape))
    return doc, x


def _prune(g: Graph, output: str) -> None:
    """Drop layers that do not reach ``output`` (a refused step may leave a dead branch)."""
    keep = {output}
    for raw in reversed(g.layers):
        if raw["name"] in keep:
            keep.update(raw.get("inputs", []))
    g.layers[:] = [r for r in g.layers if r["name"] in keep]


@st.composite
def calibrated_documents(draw, max_steps: int = 3):
    """A spec document whose lambdas are the largest activation of every layer on its inputs (the
    output's: the largest logit), with the paper's neurons (IF, reset by subtraction, delta synapses),
    analog input, zero latency and the spike-count read-out: the case the rate bound is stated for."""
    doc, x = draw(spec_documents(wild=False, max_steps=max_steps))
    doc.pop("neuron", None)
    doc["input"] = {"shape": doc["input"]["shape"], "range": [0.0, 1.0], "encoding": "analog"}
    doc["simulation"] = {"dt": "1 ms", "duration": "1 ms"}
    for raw in doc["layers"]:
        raw.pop("neuron", None)
        raw.pop("clip", None), raw.pop("levels", None)
        if "normalization" in raw:
            raw["normalization"] = {"lambda": 1.0}
    return doc, x


def calibrate(doc: dict, x: np.ndarray, base, steps: int):
    """The spec of ``doc`` with each lambda the largest activation over ``x`` (at least 1e-3), run for ``steps``."""
    doc = copy.deepcopy(doc)
    doc["simulation"]["duration"] = f"{steps} ms"
    acts = forward(load_spec_data(doc, base), x, logits=True)
    for raw in doc["layers"]:
        if "normalization" in raw and raw["type"] != "input":
            raw["normalization"] = {"lambda": max(float(np.max(acts[raw["name"]])), 1e-3)}
        elif raw["type"] == "input":
            raw.pop("normalization", None)
    return load_spec_data(doc, base)
