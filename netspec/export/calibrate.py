"""Bias calibration: correct each layer's bias so the SNN's rates after T steps match the normalized ANN.

A variant of SNN Calibration (Li et al., ICML 2021, bias correction): a converted network's rates lag its
ANN's activations at short T (spikes reach a deep layer late; a neuron keeps what is left in its membrane at
the end; a neuron above λ saturates), and the gap is systematic per channel. :func:`simulate` steps the
normalized spec's spiking network in numpy exactly as netspec builds it (IF neurons with reset by subtraction,
zero-latency timing, the analog input as a constant current, membranes starting at ``neuron.initial``,
netspec's spiking max pooling, the spike-count or membrane read-out; float64). With zero-latency timing a layer
at step t depends only on what its inputs fired up to step t, so the network is computed layer by layer, each
over all T steps at once (its inputs' spike trains stacked into one batch of T·N samples for the ANN operation,
then the T integration steps): one pass costs one ANN forward pass per step.

Calibration (:func:`calibrate_biases`), layer by layer in data-flow order: the layer's rates (spikes / T; for
a membrane read-out, the integrated membrane / T) are simulated from its inputs' spike trains, already
corrected, and a shift of its normalized input current is found per output channel that brings the channel's
mean rate over the calibration samples and positions to its target, the mean of ``min(ANN activation / λ, 1)``
(a neuron fires at most once per step; the membrane output's target is unclipped). The first shift is the gap
itself, the SNN Calibration paper's bias correction; it falls short, since neurons that the ANN keeps silent or
that saturate do not follow a shift, so ``rounds`` secant steps per channel follow (the slope from the last two
shifts, at least :data:`MIN_SLOPE`). The layer is simulated again with its final shift for the layers after it.
Its input currents are computed once for all these simulations when they fit in :data:`MAX_CURRENT_BYTES`.

The correction is written in the layer's ``normalization.bias_correction`` in the activation's units (as the
bias): the builder uses ``(b + bias_correction) / λ``; the numpy reference ignores it and still computes the
original ANN.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import NetspecError
from ..reference import forward, normalized, preactivation
from ..spec import Spec
from ..spec.layers import Role

#: Most bytes of spike trains (one byte per neuron, step and sample) a simulation holds at once.
MAX_TRAIN_BYTES = 3_000_000_000
#: Samples whose inputs go through one ANN operation at once (times the steps).
_BATCH = 64
#: Most bytes of one population's input currents (float64, all samples and steps) the calibration keeps between
#: its simulations of that population; above it they are computed again each time.
MAX_CURRENT_BYTES = 1_000_000_000
#: Secant rounds per population after the first correction (:func:`calibrate_biases`).
ROUNDS = 2
#: A channel's rate is taken to follow its input shift at least this much (secant steps; no runaway on a channel
#: that barely moved) ...
MIN_SLOPE = 0.1
#: ... and one secant step moves its shift by at most this (rate units: spikes per step).
MAX_STEP = 0.5


def supported(spec: Spec) -> str | None:
    """Why :func:`simulate` cannot step the spec (one line), or None when it can."""
    if spec.input.encoding != "analog":
        return "it needs analog input (the spec's input encoding is poisson)"
    if not spec.simulation.zero_latency:
        return "it needs zero-latency timing"
    if spec.simulation.read_by not in ("spike_count", "membrane"):
        return f"it needs the spike_count or membrane read-out, not {spec.simulation.read_by}"
    for layer in spec.layers:
        if spec.is_population(layer):
            p = spec.neurons[layer.name]
            if (p.model != "if" or p.reset != "subtract" or p.synapse != "delta" or p.refractory.value or p.clamp
                    or p.delay.value or p.scale != 1.0 or p.rest.value):
                return (f"layer '{layer.name}': it needs IF neurons (threshold 1, rest 0) with reset by subtraction, delta "
                        "synapses, no refractory period, delay or clamp")
    return None


@dataclass
class Simulated:
    """What :func:`simulate` gives.

    Attributes
    ----------
    rates : dict
        Population name -> mean rate per output channel over samples and positions, float64 [C]
        (the output's integrated membrane per step with the membrane read-out).
    readout : np.ndarray
        float64 [T, N, classes]: the output's membrane after each step (membrane read-out) or its spike
        count so far (spike count).
    corrections : dict
        Population name -> bias correction per channel (activation units) the simulation used.
    counts : dict
        Population name -> spike count of every neuron, float64 [N, *shape] (not the output with the
        membrane read-out: it does not spike).
    """

    rates: dict[str, np.ndarray]
    readout: np.ndarray
    corrections: dict[str, np.ndarray]
    counts: dict[str, np.ndarray]


def simulate(spec: Spec, x: np.ndarray, steps: int, *, calibrate: bool = False, progress=None, rounds: int = ROUNDS,
             clip: bool = True) -> Simulated:
    """Step the spec's SNN ``steps`` steps on the samples ``x`` ``[N, *input.shape]``.

    With ``calibrate``, every population's bias correction is computed (see the module docstring) and used;
    without it, each layer's ``normalization.bias_correction`` is (as the builder does).

    Raises
    ------
    NetspecError
        The spec cannot be stepped (:func:`supported`), or the spike trains would not fit in memory.
    """
    why = supported(spec)
    if why:
        raise NetspecError(f"bias calibration: {why}")
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    trains_bytes = steps * n * sum(int(np.prod(spec.shapes[l.name])) for l in spec.layers
                                   if spec.is_population(l) or l.role is Role.GATE)
    if trains_bytes > MAX_TRAIN_BYTES:
        raise NetspecError(f"bias calibration: {n} samples x {steps} steps of spike trains need about "
                           f"{trains_bytes / 1e9:.1f} GB; use fewer --bias-samples or --bias-steps")
    return _Stepper(spec, x, steps, progress, rounds, clip).run(calibrate)


class _Stepper:
    def __init__(self, spec: Spec, x: np.ndarray, steps: int, progress, rounds: int, clip: bool):
        self.spec, self.x, self.steps, self.progress, self.rounds, self.clip = spec, x, steps, progress, rounds, clip
        self.out = spec.order[-1]
        self.membrane = spec.simulation.read_by == "membrane"
        self.lam = {n: spec.lam_per_neuron(n).reshape(spec.shapes[n]) for n in spec.order if not spec.is_hidden_linear(n)}
        self.trains: dict[str, np.ndarray] = {}  # bool [T, N, *shape] of every population and gate
        self.batches = [slice(s, min(len(x), s + _BATCH)) for s in range(0, len(x), _BATCH)]

    def run(self, calibrate: bool) -> Simulated:
        spec = self.spec
        pops = [n for n in spec.order if spec.is_population(n)]
        target = _target_means(spec, self.x, pops, self.clip) if calibrate else {}
        rates, corrections, counts = {}, {}, {}
        readout = None
        for name in spec.order:
            layer = spec.layer(name)
            if layer.role is Role.GATE:
                self.trains[name] = self._gate(layer)
            elif name in pops:
                lam_c = self.lam[name].reshape(-1, self.lam[name].shape[-1])[0]
                cache = {} if self._cacheable(name) else None
                if calibrate:
                    corrections[name] = self._solve(layer, target[name], cache) * lam_c
                else:
                    c = None if layer.normalization is None else layer.normalization.bias_correction
                    corrections[name] = np.broadcast_to(np.asarray(0.0 if c is None else c, dtype=np.float64), lam_c.shape)
                rate, train, trace, final = self._population(layer, corrections[name] / lam_c, keep=True, cache=cache)
                rates[name] = rate
                if final is not None:
                    counts[name] = final
                if train is not None:
                    self.trains[name] = train
                if name == self.out:
                    readout = trace
                if self.progress is not None:
                    self.progress(pops.index(name) + 1, len(pops))
        return Simulated(rates, readout, corrections, counts)

    # -- one population over all steps ------------------------------------------------------------------
    def _solve(self, layer, target: np.ndarray, cache: dict | None) -> np.ndarray:
        """The shift per channel (rate units) that brings the layer's mean rates to ``target``: first the gap itself
        (as if every neuron's rate followed its input one for one), then ``self.rounds`` secant steps per channel,
        since silent and saturated neurons do not follow and the first step falls short."""
        d0 = np.zeros(target.shape)
        r0 = self._population(layer, d0, keep=False, cache=cache)[0]
        d1 = target - r0
        for _ in range(self.rounds):
            r1 = self._population(layer, d1, keep=False, cache=cache)[0]
            moved = np.abs(d1 - d0) > 1e-9
            slope = np.where(moved, (r1 - r0) / np.where(moved, d1 - d0, 1.0), 1.0)
            step = (target - r1) / np.clip(slope, MIN_SLOPE, 1.0)
            d0, r0, d1 = d1, r1, d1 + np.clip(step, -MAX_STEP, MAX_STEP)
        return d1

    def _cacheable(self, name: str) -> bool:
        """Whether a population's input currents (all batches) fit in :data:`MAX_CURRENT_BYTES`, so that the
        calibration's repeated simulations of it compute them once."""
        layer = self.spec.layer(name)
        steps = 1 if not layer.sums_inputs and self._reads_only_input(name) else self.steps
        return steps * len(self.x) * int(np.prod(self.spec.shapes[name])) * 8 <= MAX_CURRENT_BYTES

    def _population(self, layer, shift: np.ndarray, keep: bool, cache: dict | None = None):
        """(mean rate per channel, the spike train if ``keep``, the read-out trace if it is the output, every neuron's
        spike count if ``keep`` and it spikes). ``cache``: a dict that keeps each batch's input current."""
        spec, T = self.spec, self.steps
        name = layer.name
        shape = spec.shapes[name]
        u0 = spec.neurons[name].initial_u
        is_out = name == self.out
        no_spikes = is_out and self.membrane
        train = np.zeros((T, len(self.x), *shape), dtype=bool) if keep and not no_spikes else None
        trace = np.zeros((T, len(self.x), int(np.prod(shape)))) if is_out else None
        final = np.zeros((len(self.x), *shape)) if keep and not no_spikes else None
        total = np.zeros(shape[-1])
        for b, sl in enumerate(self.batches):
            current = cache.get(b) if cache is not None else None
            if current is None:
                current = self._current(layer, sl)  # [T, n, *shape] or [n, *shape] (analog: every step alike)
                if cache is not None:
                    cache[b] = current
            current = current + shift
            v = np.full((sl.stop - sl.start, *shape), u0)
            count = np.zeros_like(v)
            for t in range(T):
                v += current[t] if current.ndim == v.ndim + 1 else current
                if no_spikes:
                    if is_out:
                        trace[t, sl] = v.reshape(v.shape[0], -1)
                    continue
                fire = v >= 1.0
                v -= fire
                count += fire
                if train is not None:
                    train[t, sl] = fire
                if is_out:
                    trace[t, sl] = count.reshape(count.shape[0], -1)
            got = (v - u0) if no_spikes else count
            total += got.reshape(-1, shape[-1]).sum(axis=0)
            if final is not None:
                final[sl] = count
        per = len(self.x) * int(np.prod(shape[:-1]))
        return total / (per * T), train, trace, final

    def _current(self, layer, sl: slice) -> np.ndarray:
        """The normalized input current of a population for the samples ``sl``: [T, n, *shape], or [n, *shape]
        when it reads only the analog input."""
        spec = self.spec
        if not layer.sums_inputs and self._reads_only_input(layer.name):
            return preactivation(spec, layer, [self._value(i, sl, None) for i in layer.inputs]) / self.lam[layer.name]
        n = sl.stop - sl.start
        values = [self._value(i, sl, n) for i in layer.inputs]
        if layer.sums_inputs:
            z = sum(values)
        else:
            z = preactivation(spec, layer, values)
        return z.reshape(self.steps, n, *spec.shapes[layer.name]) / self.lam[layer.name]

    def _value(self, name: str, sl: slice, n: int | None) -> np.ndarray:
        """What ``name`` passes on at every step for the samples ``sl``, flattened to [T*n, *shape] (``n`` None:
        the analog input, not repeated over steps)."""
        spec = self.spec
        layer = spec.layer(name)
        if layer.role is Role.SOURCE:
            x = self.x[sl]
            return x if n is None else np.broadcast_to(x, (self.steps, *x.shape)).reshape(-1, *x.shape[1:])
        if spec.is_hidden_linear(layer) or layer.role is Role.RELAY:
            return preactivation(spec, layer, [self._value(i, sl, n) for i in layer.inputs])
        train = self.trains[name][:, sl]
        return (train * self.lam[name]).reshape(-1, *spec.shapes[name])

    def _gate(self, layer) -> np.ndarray:
        """netspec's spiking max pooling over all steps: a gate passes a spike when the largest spike count in its
        window exceeds the spikes it has passed."""
        spec, T = self.spec, self.steps
        shape = spec.shapes[layer.name]
        out = np.zeros((T, len(self.x), *shape), dtype=bool)
        for sl in self.batches:
            n = sl.stop - sl.start
            counts = self._counts(layer.inputs[0], sl)  # [T, n, *in_shape]
            m = preactivation(spec, layer, [counts.reshape(-1, *counts.shape[2:])]).reshape(T, n, *shape)
            best = np.zeros((n, *shape))
            for t in range(T):
                fire = m[t] > best
                best += fire
                out[t, sl] = fire
        return out

    def _counts(self, name: str, sl: slice) -> np.ndarray:
        """Spike counts so far [T, n, *shape] of the neurons behind an index-only layer (a gate's members)."""
        spec = self.spec
        layer = spec.layer(name)
        if layer.role is Role.RELAY:
            parts = [self._counts(i, sl) for i in layer.inputs]
            n = sl.stop - sl.start
            flat = preactivation(spec, layer, [p.reshape(-1, *p.shape[2:]) for p in parts])
            return flat.reshape(self.steps, n, *flat.shape[1:])
        return np.cumsum(self.trains[name][:, sl], axis=0, dtype=np.float64)

    def _reads_only_input(self, name: str) -> bool:
        spec = self.spec
        frontier = list(spec.layer(name).inputs)
        while frontier:
            src = spec.layer(frontier.pop())
            if src.role is Role.SOURCE:
                continue
            if src.role is not Role.RELAY:
                return False
            frontier += list(src.inputs)
        return True


def _target_means(spec: Spec, x: np.ndarray, pops: list[str], clip: bool) -> dict[str, np.ndarray]:
    """The mean per channel of the rates the SNN should reach: the normalized ANN activations, with ``clip`` at most 1
    (what a neuron can fire: one spike per step), and the output's logits / λ with the membrane read-out, which
    integrates them unclipped."""
    out = spec.order[-1]
    sums = {name: 0.0 for name in pops}
    for start in range(0, len(x), 256):
        acts = forward(spec, x[start:start + 256], logits=True)
        rates = normalized(spec, acts)
        if clip:
            rates = {name: np.minimum(rates[name], 1.0) for name in pops}
        if spec.simulation.read_by == "membrane":
            layer = spec.layer(out)
            rates[out] = preactivation(spec, layer, [acts[i] for i in layer.inputs]) / spec.lam(layer)
        for name in pops:
            r = rates[name]
            sums[name] = sums[name] + r.reshape(-1, r.shape[-1]).sum(axis=0)
    return {name: sums[name] / (len(x) * int(np.prod(spec.shapes[name][:-1]))) for name in pops}


def calibrate_biases(spec: Spec, x: np.ndarray, steps: int, progress=None, rounds: int = ROUNDS, clip: bool = True
                     ) -> dict[str, np.ndarray]:
    """Bias corrections per population (activation units, one per output channel), calibrated at ``steps``
    time steps on the samples ``x``, layer by layer in data-flow order (see the module docstring)."""
    if steps < 1:
        raise NetspecError(f"--bias-steps: must be at least 1, got {steps}", 2)
    return simulate(spec, x, steps, calibrate=True, progress=progress, rounds=rounds, clip=clip).corrections
