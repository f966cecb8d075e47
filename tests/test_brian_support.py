"""Helpers shared by the builder tests (no tests here): small specs built in memory, lambdas calibrated on
the test inputs, and the error bound of the rate code."""
from __future__ import annotations

import copy

import numpy as np

from netspec.brian.plan import make_plan
from netspec.reference import forward, normalized
from netspec.spec import LAYER_TYPES, load_spec_data
from netspec.spec.layers import Role


def spec_data(name, input_shape, layers, *, steps=100, encoding="analog", neuron=None, extra_input=None, dt="1 ms"):
    """A spec document: an input layer 'x' followed by ``layers`` (weights inline)."""
    inp = {"shape": list(input_shape), "range": [0.0, 1.0], "encoding": encoding, **(extra_input or {})}
    doc = {
        "netspec": 1,
        "name": name,
        "input": inp,
        "simulation": {"dt": dt, "duration": f"{steps * float(dt.split()[0]):g} {dt.split()[1]}"},
        "layers": [{"name": "x", "type": "input"}, *copy.deepcopy(layers)],
    }
    if neuron is not None:
        doc["neuron"] = neuron
    return doc


def calibrated(doc, x, base):
    """The spec with every lambda set to the largest activation over ``x`` (the output: the largest
    positive logit), so normalized rates stay within [0, 1]."""
    doc = copy.deepcopy(doc)
    for layer in doc["layers"]:
        if LAYER_TYPES[layer["type"]].role is Role.POPULATION:
            layer["normalization"] = {"lambda": 1.0}
    spec = load_spec_data(doc, base)
    acts = forward(spec, x, logits=True)
    for layer in doc["layers"]:
        if "normalization" in layer and LAYER_TYPES[layer["type"]].role is not Role.SOURCE:
            top = float(np.max(acts[layer["name"]]))
            layer["normalization"] = {"lambda": max(top, 1e-3)}
    return load_spec_data(doc, base)


def rng_tensor(rng, shape, scale=0.5, shift=0.0):
    return (rng.normal(shift, scale, shape)).round(4).tolist()


def rate_bounds(spec, steps):
    """Per spiking layer, the largest |count/T - rate| the rate code allows for each neuron (1-D, channels-last).

    For IF neurons with reset by subtraction starting at rest, a neuron's count is its total input minus its
    final membrane, n_j = T*b_j + sum_i w_ij n_i - u_j(T). Hence its error e_j = n_j/T - a_j obeys
    ``|e_j| <= sum_i |w_ij| |e_i| + (1 + sum_i max(w_ij, 0)) / T`` as long as the membrane ends the sample in
    [-1, 1 + sum_i max(w_ij, 0)] (below threshold, plus the spikes of the last step, which arrive after the
    threshold test). Analog-driven neurons receive no spikes: |e_j| <= 1/T exactly (count = floor(T*I) for
    0 <= I <= 1). A max-pooling gate passes exactly max(member counts), so its error is at most its members'
    largest. Through the layers, the bounds add up in proportion to the weights.
    """
    plan = make_plan(spec, steps, connectivity="synapses")  # the unrolled weights
    bounds: dict[str, np.ndarray] = {}
    if plan.encoding == "poisson":
        raise ValueError("the deterministic bound needs analog input")
    for name in plan.order:
        if name in plan.relays:
            relay = plan.relays[name]
            b = np.zeros(relay.size)
            for e in relay.elections:
                np.maximum.at(b, e.post, bounds[e.source][e.pre])
            bounds[name] = b
            continue
        pop = plan.populations[name]
        b = np.full(pop.size, 1.0 / steps)
        for proj in pop.inputs:
            b += np.bincount(proj.post, weights=np.abs(proj.w) * bounds[proj.source][proj.pre], minlength=pop.size)
            b += np.bincount(proj.post, weights=np.maximum(proj.w, 0.0), minlength=pop.size) / steps
        bounds[name] = b
    return bounds


def reference_rates(spec, x):
    """λ-normalized activations per layer, flattened per sample: [N, n]."""
    rates = normalized(spec, forward(spec, x))
    return {k: np.asarray(v).reshape(len(x), -1) for k, v in rates.items()}


def assert_same_results(a, b):
    """Two simulations gave the same results: counts, spikes per step, end membranes, every layer's spikes and
    operations per step, and (where recorded) every neuron's count and the output membrane at every step."""
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.out_steps, b.out_steps)
    np.testing.assert_array_equal(a.v_out, b.v_out)
    assert a.layer_spikes.keys() == b.layer_spikes.keys()
    for k in a.layer_spikes:
        np.testing.assert_array_equal(a.layer_spikes[k], b.layer_spikes[k], err_msg=k)
        np.testing.assert_array_equal(a.layer_ops[k], b.layer_ops[k], err_msg=k)
    if a.neuron_counts:
        for k in a.neuron_counts:
            np.testing.assert_array_equal(a.neuron_counts[k], b.neuron_counts[k], err_msg=k)
    if a.v_steps is not None:
        np.testing.assert_array_equal(a.v_steps, b.v_steps)
