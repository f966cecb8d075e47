"""Propagation timing (``simulation.timing``): ``zero-latency`` (the default; the layers are updated one after
another within a step, so the input reaches the output in the first step) and ``one-step-per-layer`` (every
layer adds one step). The generated code of both is a golden file (tests/test_brian_build.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netspec.brian import BuildOptions, build, simulate
from netspec.reference import forward, normalized
from netspec.spec import load_spec_data
from test_brian_support import spec_data

ROOT = Path(__file__).resolve().parents[1]


def _chain(depth, timing=None, steps=12):
    """x[2] -> depth dense layers, identity weights and lambda 1: a drive of 1 makes every layer fire every step."""
    layers = [{"name": f"d{k}", "type": "dense", "units": 2, "kernel": [[1.0, 0.0], [0.0, 1.0]], "activation": "relu",
               "normalization": {"lambda": 1.0}} for k in range(depth)]
    layers[-1]["activation"] = "softmax"
    doc = spec_data("chain", (2,), layers, steps=steps)
    if timing:
        doc["simulation"]["timing"] = timing
    return doc


X = np.array([[1.0, 0.5], [0.25, 1.0]])


@pytest.mark.parametrize("connectivity", ["kernel", "synapses"])
def test_zero_latency_reaches_the_output_in_the_first_step(tmp_path, connectivity):
    depth, steps = 4, 12
    for timing, first in ((None, 0), ("zero-latency", 0), ("one-step-per-layer", depth - 1)):
        spec = load_spec_data(_chain(depth, timing, steps), tmp_path)
        sim = simulate(build(spec, tmp_path / f"{timing}-{connectivity}", BuildOptions(samples_per_run=2, connectivity=connectivity)),
                       X, record_neurons=True)
        # drive 1 -> a spike every step from the first step the input arrives; drive 0.5 -> every other step
        out = sim.out_steps[0, :, 0]
        assert np.flatnonzero(out)[0] == first and out[first:].all() and not out[:first].any(), timing
        assert sim.counts[0, 0] == steps - first
        # the rates match the ANN's: identity layers pass x on exactly (zero latency loses no step)
        if first == 0:
            expected = normalized(spec, forward(spec, X))[f"d{depth - 1}"]
            np.testing.assert_allclose(sim.counts / steps, expected, atol=1.0 / steps)


def test_zero_latency_is_the_default_and_is_written_back():
    spec = load_spec_data(_chain(2), ROOT)
    assert spec.simulation.zero_latency and "timing" not in spec.to_yaml()["simulation"]
    spec = load_spec_data(_chain(2, "one-step-per-layer"), ROOT)
    assert not spec.simulation.zero_latency and spec.to_yaml()["simulation"]["timing"] == "one-step-per-layer"


def test_unknown_timing_is_refused(tmp_path):
    from netspec.spec import SpecError
    with pytest.raises(SpecError, match="timing"):
        load_spec_data(_chain(2, "instant"), tmp_path)
