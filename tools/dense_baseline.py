"""A time-stepped dense simulation of a spec's spiking network in TensorFlow: the peer netspec is measured against.

This is what SNN Toolbox's INI simulator and the PyTorch SNN libraries do: every time step, every layer computes
its ANN operation (one dense forward pass per step) on the spikes of its inputs, batched, and IF neurons with reset
by subtraction integrate it. Same network as netspec builds: the spec's weights, normalized the same way
(a source's spikes stand for lambda_source, a layer's input is divided by its lambda), zero-latency timing (the
layers update in data-flow order within a step), the analog input as a constant current, the membrane starting
at ``neuron.initial``, a layer's ``normalization.bias_correction`` added to its bias, netspec's spiking max pooling (a gate passes a spike when the largest spike count in its
window exceeds the spikes it passed so far), and netspec's read-out (spike count, or the membrane).

    PYTHONPATH=. python tools/dense_baseline.py specs/lenet-mnist.yaml --data data/mnist-1k --samples 128

Used by tools/bench_sim.py, which runs it in the same invocation as netspec's builds, on the same inputs. Arithmetic
is float32 and TensorFlow's (its convolutions sum in their own order), so spike counts agree with netspec's within
float rounding, not bit for bit: the bench prints how closely.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _tf(threads: int):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    return tf


class SteppedNetwork:
    """The spec's spiking network as TensorFlow operations, one call of :meth:`step` per time step."""

    def __init__(self, spec, tf):
        from netspec.spec.layers import (Add, AvgPool2D, Concatenate, Conv2D, Dense, DepthwiseConv2D, Flatten,
                                         GlobalAvgPool2D, MaxPool2D, Role, ZeroPad2D)

        self.spec, self.tf = spec, tf
        self.kinds = dict(Add=Add, AvgPool2D=AvgPool2D, Concatenate=Concatenate, Conv2D=Conv2D, Dense=Dense,
                          DepthwiseConv2D=DepthwiseConv2D, Flatten=Flatten, GlobalAvgPool2D=GlobalAvgPool2D,
                          MaxPool2D=MaxPool2D, ZeroPad2D=ZeroPad2D)
        self.Role = Role
        self.output = spec.order[-1]
        self.readout = spec.simulation.read_by
        if self.readout not in ("spike_count", "membrane"):
            raise SystemExit(f"dense baseline: read-out {self.readout!r} is not implemented")
        self.lam = {name: tf.constant(spec.lam_per_neuron(name).reshape(spec.shapes[name]), tf.float32)
                    for name in spec.order if not spec.is_hidden_linear(name)}
        self.w, self.corr = {}, {}
        for layer in spec.layers:
            for field in ("kernel", "bias"):
                arr = spec.array(layer, field)
                if arr is not None:
                    self.w[f"{layer.name}.{field}"] = tf.constant(np.asarray(arr, np.float32))
            corr = None if layer.normalization is None else layer.normalization.bias_correction
            if corr is not None and spec.is_population(layer):  # bias calibration: (b + correction) / lambda
                size = int(np.prod(spec.shapes[layer.name]))
                per = np.resize(np.asarray(corr, np.float64), size) / spec.lam_per_neuron(layer.name)
                self.corr[layer.name] = tf.constant(per.reshape(spec.shapes[layer.name]), tf.float32)
            if spec.is_population(layer):
                p = spec.neurons[layer.name]
                if p.model != "if" or p.reset != "subtract" or p.synapse != "delta" or p.refractory.value or p.clamp:
                    raise SystemExit(f"dense baseline: layer '{layer.name}': only IF neurons with reset by subtraction")

    # -- the ANN operation of a layer on its inputs' values (spikes times lambda) -----------------------
    def preact(self, layer, xs):
        tf, k = self.tf, self.kinds
        w = self.w.get(f"{layer.name}.kernel")
        b = self.w.get(f"{layer.name}.bias")
        if isinstance(layer, k["Dense"]):
            z = tf.matmul(xs[0], w)
        elif isinstance(layer, k["Conv2D"]):
            z = tf.nn.conv2d(xs[0], w, strides=layer.stride, padding=layer.pad.upper())
        elif isinstance(layer, k["DepthwiseConv2D"]):
            s = layer.stride
            z = tf.nn.depthwise_conv2d(xs[0], w, strides=(1, s[0], s[1], 1), padding=layer.pad.upper())
        elif isinstance(layer, k["AvgPool2D"]):
            z = tf.nn.avg_pool2d(xs[0], layer.pool_size, layer.stride, layer.pad.upper())
        elif isinstance(layer, k["GlobalAvgPool2D"]):
            z = tf.reduce_mean(xs[0], axis=(1, 2))
        elif isinstance(layer, k["Add"]):
            z = tf.add_n(xs)
        elif isinstance(layer, k["Flatten"]):
            return tf.reshape(xs[0], (tf.shape(xs[0])[0], -1))
        elif isinstance(layer, k["ZeroPad2D"]):
            (t, bt), (lf, r) = layer.padding
            return tf.pad(xs[0], ((0, 0), (t, bt), (lf, r), (0, 0)))
        elif isinstance(layer, k["Concatenate"]):
            return tf.concat(xs, axis=1 + layer.resolved_axis(len(xs[0].shape) - 1))
        elif layer.role is self.Role.RELAY and layer.sources(self.spec.in_shapes(layer)) is not None:
            return self.gather(layer, xs)
        else:
            raise SystemExit(f"dense baseline: layer '{layer.name}' ({layer.type}) is not implemented")
        return z if b is None else z + b

    def gather(self, layer, xs):
        """Any other index-only kind, as its class's ``sources`` says: each output element copies one input
        element (or is 0). A zero is appended to every input's flat values for the elements it does not give."""
        tf = self.tf
        n = tf.shape(xs[0])[0]
        out = 0
        for x, src in zip(xs, layer.sources(self.spec.in_shapes(layer))):
            flat = tf.concat([tf.reshape(x, (n, -1)), tf.zeros((n, 1), x.dtype)], axis=1)
            index = np.where(src >= 0, src, flat.shape[1] - 1)
            out = out + tf.gather(flat, index, axis=1)
        return tf.reshape(out, (n, *self.spec.shapes[layer.name]))

    # -- state ----------------------------------------------------------------------------------------
    def start(self, x):
        """The state at the start of a batch of samples ``x`` (float32 [B, ...]): membranes at their initial
        value, counters at 0, and the analog drive of the layers that read the input (the same every step)."""
        tf, spec = self.tf, self.spec
        x = tf.constant(np.asarray(x, np.float32))
        n = x.shape[0]
        state = {"v": {}, "count": {}, "best": {}, "drive": {}, "x": x}
        for name in spec.order:
            layer = spec.layer(name)
            shape = (n, *spec.shapes[name])
            if spec.is_population(layer):
                state["v"][name] = tf.fill(shape, float(spec.neurons[name].initial_u))
                state["count"][name] = tf.zeros(shape)
                if self._reads_only_input(layer):
                    state["drive"][name] = self.preact(layer, [self._value(i, {}, state) for i in layer.inputs]) / self.lam[name]
                    if name in self.corr:
                        state["drive"][name] = state["drive"][name] + self.corr[name]
            elif layer.role is self.Role.GATE:
                state["best"][name] = tf.zeros(shape)
        return state

    def _value(self, name, spikes, state):
        """What layer ``name`` passes on in this step: spikes times its lambda; the input's values; a hidden
        linear layer's weighted sum; an index-only layer's re-indexing of its inputs' values."""
        spec = self.spec
        layer = spec.layer(name)
        if layer.role is self.Role.SOURCE:
            return state["x"]
        if spec.is_hidden_linear(layer) or layer.role is self.Role.RELAY:
            return self.preact(layer, [self._value(i, spikes, state) for i in layer.inputs])
        return spikes[name] * self.lam[name]

    def step(self, state):
        """One time step, zero-latency: every layer in data-flow order integrates what its inputs fired in this
        step. Returns the new state and this step's output spikes (zeros for the membrane read-out)."""
        tf, spec = self.tf, self.spec
        new = {"v": dict(state["v"]), "count": dict(state["count"]), "best": dict(state["best"]),
               "drive": state["drive"], "x": state["x"]}
        spikes: dict = {}
        for name in spec.order:
            layer = spec.layer(name)
            if layer.role is self.Role.GATE:  # netspec's spiking max pooling, on its members' counts
                counts = self._counts(layer.inputs[0], new)
                m = tf.nn.max_pool2d(counts, layer.pool_size, layer.stride, layer.pad.upper())
                fire = tf.cast(m > new["best"][name], tf.float32)
                new["best"][name] = new["best"][name] + fire
                spikes[name] = fire
            elif spec.is_population(layer):
                z = new["drive"].get(name)
                if z is None:
                    z = self.preact(layer, [self._value(i, spikes, new) for i in layer.inputs]) / self.lam[name]
                    if name in self.corr:
                        z = z + self.corr[name]
                v = new["v"][name] + z
                if name == self.output and self.readout == "membrane":
                    new["v"][name] = v
                    spikes[name] = tf.zeros_like(v)
                    continue
                fire = tf.cast(v >= 1.0, tf.float32)
                new["v"][name] = v - fire
                new["count"][name] = new["count"][name] + fire
                spikes[name] = fire
        return new, spikes[self.output]

    def _reads_only_input(self, layer) -> bool:
        spec = self.spec
        frontier = list(layer.inputs)
        while frontier:
            src = spec.layer(frontier.pop())
            if src.role is self.Role.SOURCE:
                continue
            if src.role is not self.Role.RELAY:
                return False
            frontier += list(src.inputs)
        return True

    def _counts(self, name, state):
        """Spike counts so far of the neurons behind an index-only layer (a gate's members)."""
        spec = self.spec
        layer = spec.layer(name)
        if layer.role is self.Role.RELAY:
            return self.preact(layer, [self._counts(i, state) for i in layer.inputs])
        if layer.role is self.Role.GATE:
            return state["best"][name]
        return state["count"][name]


def simulate(spec, x: np.ndarray, steps: int, batch: int = 64, threads: int = 1):
    """(output spike counts or final output membranes [N, n_out], seconds of the simulation)."""
    tf = _tf(threads)
    net = SteppedNetwork(spec, tf)
    step = tf.function(net.step)  # one graph per step: TensorFlow's own kernels, no Python between the ops
    outs = []
    t0 = time.perf_counter()
    for start in range(0, len(x), batch):
        state = net.start(x[start:start + batch])
        total = 0.0
        for _ in range(steps):
            state, out = step(state)
            total = total + out
        if net.readout == "membrane":
            total = state["v"][net.output]
        outs.append(np.asarray(total).reshape(len(x[start:start + batch]), -1))
    return np.concatenate(outs), time.perf_counter() - t0


def main() -> int:
    from netspec.datasets import load_dataset
    from netspec.spec import Limits, load_spec

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", type=Path)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=None)
    args = ap.parse_args()
    spec = load_spec(args.spec, Limits(max_memory=None))
    x = load_dataset(args.data, require_labels=False, limit=args.samples).x
    out, seconds = simulate(spec, x, args.steps or spec.simulation.steps, args.batch)
    print(f"{len(x)} samples, {len(x) / seconds:.2f} samples/s ({seconds:.1f} s), one thread, batch {args.batch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
