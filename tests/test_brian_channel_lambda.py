"""Per-channel normalization factors, and the Inception case: branches with different lambdas concatenated,
then max-pooled. A pooling window compares counts within one channel, which belongs to one branch, so it builds;
kernel and unrolled synapses give the same spikes; the rates match the normalized ANN within the rate bound."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from netspec.brian import BuildOptions, build, simulate
from netspec.reference import forward
from netspec.spec import load_spec_data
from test_brian_support import calibrated, rate_bounds, reference_rates, spec_data

T = 60


def _inception(pool="maxpool2d"):
    rng = np.random.default_rng(11)

    def r(*shape, shift=0.1):
        return rng.normal(shift, 0.5, shape).round(4).tolist()

    layers = [
        {"name": "c0", "type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "same", "kernel": r(3, 3, 1, 2, shift=0.3),
         "bias": r(2), "activation": "relu"},
        {"name": "b1", "type": "conv2d", "inputs": ["c0"], "filters": 2, "kernel_size": 1, "kernel": r(1, 1, 2, 2, shift=0.4),
         "activation": "relu"},
        {"name": "b2", "type": "conv2d", "inputs": ["c0"], "filters": 3, "kernel_size": 3, "padding": "same",
         "kernel": r(3, 3, 2, 3), "activation": "relu"},
        {"name": "cat", "type": "concatenate", "inputs": ["b1", "b2", "c0"]},
        {"name": "mp", "type": pool, "pool_size": 2} if pool == "maxpool2d" else
        # InceptionV3's pattern: a 3x3 average pool (stride 1, same) over the branches, as a layer with neurons
        {"name": "mp", "type": pool, "pool_size": 3, "strides": 1, "padding": "same"},
        {"name": "f", "type": "flatten"},
        {"name": "out", "type": "dense", "units": 3, "kernel": r((3 if pool == "maxpool2d" else 6) ** 2 * 7, 3, shift=0.0),
         "activation": "softmax"},
    ]
    return spec_data("inception", (6, 6, 1), layers, steps=T)


X = np.random.default_rng(4).uniform(0, 1, (4, 6, 6, 1))


def _per_channel(spec_doc, x, base):
    """The calibrated spec with every hidden layer's lambda replaced by its maximum per channel."""
    spec = calibrated(spec_doc, x, base)
    acts = forward(spec, x, logits=True)
    doc = copy.deepcopy(spec_doc)
    for layer in doc["layers"]:
        if layer["name"] in ("c0", "b1", "b2"):
            top = acts[layer["name"]].reshape(-1, acts[layer["name"]].shape[-1]).max(axis=0)
            layer["normalization"] = {"lambda": [float(max(v, 1e-3)) for v in top]}
        elif layer["name"] != "x" and spec.layer(layer["name"]).normalization is not None:
            layer["normalization"] = {"lambda": spec.layer(layer["name"]).normalization.lam}
    return load_spec_data(doc, base)


@pytest.mark.parametrize("pool", ["maxpool2d", "avgpool2d"])
@pytest.mark.parametrize("kind", ["per-layer", "per-channel"])
def test_inception_block_with_pooling_builds_and_matches_its_ann(tmp_path, kind, pool):
    """Max pooling compares counts within a channel; average pooling over the concatenation carries each
    channel's lambda_in/lambda_out in its weights (one per window and channel)."""
    doc = _inception(pool)
    spec = calibrated(doc, X, tmp_path) if kind == "per-layer" else _per_channel(doc, X, tmp_path)
    lams = {n: spec.lam(n) for n in ("b1", "b2", "c0")}
    assert len({float(np.max(v)) for v in lams.values()}) == 3, "the branches must differ for the case to matter"
    if kind == "per-channel":
        assert np.ndim(lams["b2"]) == 1 and lams["b2"].size == 3 and np.ptp(lams["b2"]) > 0
    k = simulate(build(spec, tmp_path / "k", BuildOptions(samples_per_run=4)), X, record_neurons=True)
    s = simulate(build(spec, tmp_path / "s", BuildOptions(samples_per_run=4, connectivity="synapses")), X, record_neurons=True)
    for name in k.neuron_counts:
        np.testing.assert_array_equal(k.neuron_counts[name], s.neuron_counts[name], err_msg=name)
    np.testing.assert_array_equal(k.counts, s.counts)
    ref = reference_rates(spec, X)
    bounds = rate_bounds(spec, T)
    for name in ("c0", "b1", "b2", "mp", "out"):
        rate = k.neuron_counts[name].reshape(len(X), -1) / T
        assert rate.sum() > 0, name
        err = np.abs(rate - ref[name])
        assert np.all(err <= bounds[name] + 1e-9), (name, float((err - bounds[name]).max()))


@pytest.mark.cpp
def test_average_pooling_over_branches_of_different_lambdas_in_the_binary(tmp_path):
    """The C++ scatter reads the average pool's weight of its window and channel: the standalone build of the
    avgpool Inception block (same-padded 3x3 windows: 4, 6 or 9 taps) spikes exactly as the runtime build."""
    spec = calibrated(_inception("avgpool2d"), X, tmp_path)
    runtime = simulate(build(spec, tmp_path / "r", BuildOptions(samples_per_run=4)), X)
    binary = simulate(build(spec, tmp_path / "b", BuildOptions(samples_per_run=4, standalone=True)), X)
    np.testing.assert_array_equal(binary.counts, runtime.counts)
    np.testing.assert_array_equal(binary.layer_spikes["mp"], runtime.layer_spikes["mp"])
    assert runtime.layer_spikes["mp"].sum() > 0
