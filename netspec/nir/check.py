"""Never silently dead: after a NIR graph is read, can its neurons reach the threshold within a sample?

A graph read in the wrong convention usually comes out with every weight scaled by a kappa far from what
the graph was trained with (an IF node written as ``r = 1`` by a library that adds ``r*I`` per step, read
by NIR's equations at ``dt = 1 ms``: kappa = 0.001). Such a network imports cleanly and answers at chance.
:func:`unreachable` bounds, from the spec's weights and the input range alone (no data), the spike count
any neuron of each layer can reach in the spec's ``T`` steps, and names the first layer where even the
bound is below one spike.

The bound, layer by layer in the spec's order: the analog input is at most ``x_max`` per step (its range;
for poisson input, one spike per step); a layer of neurons receives per step at most
``b+ + sum_j W+_ij * r_j`` (positive biases and weights only, ``r_j`` the bound on its inputs' spikes per
step; with an input range below 0, ``|W|`` times the largest magnitude), and fires at most
``r_i = min(1, that)`` spikes per step (an IF neuron needs the threshold's worth of charge for each spike,
and a leaky one loses charge); a leaky neuron whose charge per step is below ``1 - exp(-dt/tau_m)`` of its
threshold never reaches it (``r_i = 0``). The count over the sample is at most ``T * r_i``.
"""
from __future__ import annotations

import math

import numpy as np

from .. import reference
from ..spec import Spec
from ..spec.layers import Role


def spike_bounds(spec: Spec) -> dict[str, np.ndarray]:
    """Per layer (every node of the spec's order), an upper bound on what each of its neurons (or positions)
    passes on per step: spikes per step for layers of neurons, the input value for the input."""
    inp = spec.input
    low, high = (float(v) for v in inp.range)
    signed = low < 0
    x_max = 1.0 if inp.encoding == "poisson" else (max(abs(low), abs(high)) if signed else high)
    arrays = {key: (np.abs(v) if signed else np.maximum(v, 0.0)) for key, v in spec.arrays.items()}
    bound_spec = _with_arrays(spec, arrays)
    dt = spec.simulation.dt.value
    out: dict[str, np.ndarray] = {}
    for name in spec.order:
        layer = spec.layer(name)
        if layer.role is Role.SOURCE:
            out[name] = np.full((1, *spec.shapes[name]), x_max)
            continue
        pre = reference.preactivation(bound_spec, layer, [out[i] for i in layer.inputs])
        if layer.role is not Role.POPULATION or spec.is_hidden_linear(layer):
            out[name] = np.maximum(pre, 0.0)  # relays, max-pool gates and hidden linear sums pass it on
            continue
        rate = np.clip(pre, 0.0, 1.0)
        p = spec.neurons[name]
        if p.model == "lif":
            rate = np.where(pre < 1.0 - math.exp(-dt / p.tau_m.value), 0.0, rate)
        out[name] = rate
    return {name: value[0] for name, value in out.items()}


def _with_arrays(spec: Spec, arrays) -> Spec:
    import dataclasses

    return dataclasses.replace(spec, arrays=arrays)


def unreachable(spec: Spec, kappas: dict[str, tuple[str, float]], convention: str) -> list[str]:
    """Warnings for the first layer of neurons that cannot spike once in a sample (every layer after it
    then gets no input either), naming it, its kappa and what would change it; empty when every layer can."""
    steps = spec.simulation.steps
    bounds = spike_bounds(spec)
    dead = [name for name in spec.order if spec.is_population(name) and float(np.max(bounds[name], initial=0.0)) * steps < 1.0]
    if not dead:
        return []
    first = dead[0]
    most = float(np.max(bounds[first], initial=0.0)) * steps
    later = [n for n in dead[1:]]
    options = []
    text, kappa = kappas.get(first, ("kappa of the graph", None))
    if convention == "nir":
        options.append("--convention norse, sinabs or spyx if the graph comes from a library that adds r*I to an IF "
                       "node every step (Norse, Sinabs and Spyx write IF with r = 1), snntorch for snnTorch's Leaky")
        dt = spec.simulation.dt.value
        if kappa is not None and 0 < kappa < 1:
            options.append(f"--dt '{dt / kappa:.3g} s' makes this layer's kappa 1 (kappa grows with dt; give the "
                           "step the graph was trained with)")
        else:
            options.append("--dt with the step the graph was trained with (kappa grows with dt)")
    options.append(f"--duration longer than {spec.simulation.duration.text}" if most > 0 else
                   "a graph whose weights and biases can drive this layer (no positive input reaches it)")
    what = (f"at most {most:.3g} spikes per neuron in the {steps} steps of a sample, even with every input at its maximum"
            if most > 0 else "no positive input at all")
    tail = f"; so neither can {', '.join(repr(n) for n in later)}" if later else ""
    return [f"warning: layer '{first}' cannot spike: {what} ({text}){tail}. "
            f"Options: {'; '.join(options)}"]
