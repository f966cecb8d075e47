"""Neuron and synapse models in the generated network (runtime mode, numpy target): physical units, LIF,
refractory periods, exponential synapses, delays, poisson input, and the reset between samples."""
from __future__ import annotations


import numpy as np
import pytest

from netspec.brian import BuildOptions, build, simulate
from netspec.spec import load_spec_data
from test_brian_support import spec_data


def _chain(neuron=None, out_neuron=None, steps=60, w_out=0.6, bias_out=0.0):
    """x[3] -> h (3 IF neurons, drive = x) -> out (2 neurons): identity-like weights, lambda 1."""
    h = {"name": "h", "type": "dense", "units": 3, "kernel": [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]], "activation": "relu",
         "normalization": {"lambda": 1.0}}
    out = {"name": "out", "type": "dense", "units": 2, "kernel": [[w_out, 0.0], [0.0, w_out], [0.2, 0.2]],
           "bias": [bias_out, bias_out], "activation": "softmax", "normalization": {"lambda": 1.0}}
    if out_neuron:
        out["neuron"] = out_neuron
    return spec_data("chain", (3,), [h, out], steps=steps, neuron=neuron)


def _run(tmp_path, doc, x, tag, **opts):
    spec = load_spec_data(doc, tmp_path)
    built = build(spec, tmp_path / tag, BuildOptions(samples_per_run=opts.pop("spr", 4), **opts))
    return built, simulate(built, x, record_neurons=True)


X = np.array([[0.9, 0.35, 0.5], [0.4, 0.77, 0.1], [1.0, 0.0, 0.25]])


def test_millivolt_twin_spikes_exactly_like_the_dimensionless_network(tmp_path):
    plain = _chain(neuron={"model": "lif", "tau_m": "30 ms", "threshold": 1.0, "rest": 0.0, "reset": "subtract", "refractory": "1 ms"})
    volts = _chain(neuron={"model": "lif", "tau_m": "30 ms", "threshold": "-50 mV", "rest": "-65 mV", "reset": "subtract", "refractory": "1 ms"})
    _, a = _run(tmp_path, plain, X, "plain")
    b_build, b = _run(tmp_path, volts, X, "volts")
    assert a.counts.sum() > 20
    np.testing.assert_array_equal(a.out_steps, b.out_steps)
    for layer in a.neuron_counts:
        np.testing.assert_array_equal(a.neuron_counts[layer], b.neuron_counts[layer])
    np.testing.assert_array_equal(a.v_out, b.v_out)
    text = b_build.script.read_text()
    assert "v = v_rest + u*(v_thr - v_rest) : volt" in text and "'v_rest': -0.065*volt" in text


def test_refractory_period_caps_the_rate(tmp_path):
    """Refractory 3 ms at dt 1 ms: after a spike the neuron ignores 3 steps, so under drive 1 it fires every
    4th step (rate 1/(refractory + dt)), and never faster under any drive."""
    doc = _chain(neuron={"refractory": "3 ms"}, steps=40)
    _, sim = _run(tmp_path, doc, X, "ref")
    counts_h = sim.neuron_counts["h"]
    assert counts_h[2, 0] == 10  # drive 1.0: steps 0, 4, 8, ..., 36
    assert np.all(counts_h <= 10)
    # without the refractory period the same neuron fires at every step
    _, free = _run(tmp_path, _chain(steps=40), X, "free")
    assert free.neuron_counts["h"][2, 0] == 40
    # output spikes are never closer than 4 steps
    for s in range(len(X)):
        for k in range(2):
            steps = np.flatnonzero(sim.out_steps[s, :, k])
            assert np.all(np.diff(steps) >= 4)


def test_delay_shifts_the_output_by_the_delay(tmp_path):
    """With no bias, the output layer's whole input arrives 3 steps later, so its spike train is the
    undelayed one shifted by exactly 3 steps."""
    _, base = _run(tmp_path, _chain(steps=50), X, "nodelay")
    _, late = _run(tmp_path, _chain(out_neuron={"delay": "3 ms"}, steps=50), X, "delay")
    assert base.counts.sum() > 10
    np.testing.assert_array_equal(late.out_steps[:, 3:], base.out_steps[:, :-3])
    assert not late.out_steps[:, :3].any()
    np.testing.assert_array_equal(late.neuron_counts["h"], base.neuron_counts["h"])


def test_exponential_synapse_carries_the_same_charge_later(tmp_path):
    tau = 4
    _, delta = _run(tmp_path, _chain(steps=100), X, "delta")
    _, expo = _run(tmp_path, _chain(out_neuron={"synapse": "exponential", "tau_syn": f"{tau} ms"}, steps=100), X, "exp")
    first = lambda sim, s, k: int(np.flatnonzero(sim.out_steps[s, :, k])[0])  # noqa: E731
    lag = max(1, int(np.ceil(tau * 1.2)))
    for s in range(len(X)):
        for k in range(2):
            if delta.counts[s, k] == 0:
                assert expo.counts[s, k] == 0
                continue
            assert first(expo, s, k) > first(delta, s, k)
            # same total charge: counts differ only by the charge still in flight at the end
            assert delta.counts[s, k] - lag <= expo.counts[s, k] <= delta.counts[s, k]


def test_lif_leak(tmp_path):
    """LIF with tau 10 ms at dt 1 ms, integrated exactly: a drive of 0.05 per step settles at u = 0.5 and never
    fires (the IF neuron fires 5 times in 100 steps); a drive of 0.2 fires as the exact recurrence says."""
    doc = _chain(neuron={"model": "lif", "tau_m": "10 ms"}, steps=100)
    x = np.array([[0.05, 0.2, 0.0]])
    _, sim = _run(tmp_path, doc, x, "lif")
    a = np.exp(-0.1)
    u, n = 0.0, 0
    for _ in range(100):
        u = u * a + 0.2 * 10 * (1 - a)
        if u >= 1:
            n, u = n + 1, u - 1
    assert sim.neuron_counts["h"][0, 0] == 0
    assert abs(int(sim.neuron_counts["h"][0, 1]) - n) <= 1 and n > 5
    _, if_sim = _run(tmp_path, _chain(steps=100), x, "if")
    assert if_sim.neuron_counts["h"][0, 0] == 5


def test_reset_to_a_value_and_to_rest(tmp_path):
    """Drive 0.75: reset to rest loses the overshoot (fires every 2nd step: 50 in 100), reset by subtraction
    keeps it (75), reset to 0.5 (of threshold) fires every step after the first."""
    x = np.array([[0.75, 0.0, 0.0]])
    counts = {}
    for reset in ("subtract", "zero", 0.5):
        _, sim = _run(tmp_path, _chain(neuron={"reset": reset}, steps=100), x, f"reset-{reset}")
        counts[reset] = int(sim.neuron_counts["h"][0, 0])
    assert counts == {"subtract": 75, "zero": 50, 0.5: 99}


def test_each_sample_starts_from_a_fresh_network(tmp_path):
    """Samples simulated back to back in one run give exactly what each gives alone: membranes, synaptic
    currents, refractory state, delayed spikes in flight and max-pooling gates are all reset."""
    layers = [
        {"name": "c", "type": "conv2d", "filters": 2, "kernel_size": 2, "padding": "same", "kernel": np.full((2, 2, 1, 2), 0.4).tolist(),
         "activation": "relu", "normalization": {"lambda": 1.0}, "neuron": {"refractory": "1 ms"}},
        {"name": "mp", "type": "maxpool2d", "pool_size": 2},
        {"name": "f", "type": "flatten"},
        {"name": "d", "type": "dense", "units": 3, "kernel": np.random.default_rng(0).uniform(0, 0.5, (8, 3)).tolist(),
         "bias": [0.02, 0.0, -0.01], "activation": "relu", "normalization": {"lambda": 1.0},
         "neuron": {"model": "lif", "tau_m": "20 ms", "synapse": "exponential", "tau_syn": "3 ms"}},
        {"name": "out", "type": "dense", "units": 2, "kernel": [[0.7, 0.1], [0.2, 0.6], [0.4, 0.4]], "activation": "softmax",
         "normalization": {"lambda": 1.0}, "neuron": {"delay": "4 ms", "reset": "zero"}},
    ]
    doc = spec_data("fresh", (4, 4, 1), layers, steps=30)
    x = np.random.default_rng(3).uniform(0, 1, (3, 4, 4, 1))
    spec = load_spec_data(doc, tmp_path)
    built = build(spec, tmp_path / "b", BuildOptions(samples_per_run=3))
    together = simulate(built, x, record_neurons=True)
    assert together.counts.sum() > 5
    for s in range(3):
        alone = simulate(built, x[s:s + 1], record_neurons=True)
        np.testing.assert_array_equal(alone.out_steps[0], together.out_steps[s])
        np.testing.assert_array_equal(alone.v_out[0], together.v_out[s])
        for layer in alone.layer_spikes:
            np.testing.assert_array_equal(alone.layer_spikes[layer][0], together.layer_spikes[layer][s])
            np.testing.assert_array_equal(alone.layer_ops[layer][0], together.layer_ops[layer][s])


def test_poisson_input_rates_and_seeds(tmp_path):
    """Poisson input neurons fire with probability max_rate*dt*x/high per step; a seed makes runs
    reproducible, another seed changes them, and runs of several chunks use a seed per chunk."""
    layers = [{"name": "out", "type": "dense", "units": 2, "kernel": [[0.5, 0.0], [0.0, 0.5], [0.25, 0.25], [0.1, 0.1]],
               "activation": "softmax", "normalization": {"lambda": 1.0}}]
    doc = spec_data("poisson", (4,), layers, steps=400, encoding="poisson", extra_input={"max_rate": "500 Hz", "seed": 11})
    spec = load_spec_data(doc, tmp_path)
    built = build(spec, tmp_path / "p", BuildOptions(samples_per_run=2))
    x = np.array([[1.0, 0.5, 0.2, 0.0]] * 3)
    a = simulate(built, x, record_neurons=True)
    rates = a.neuron_counts["x"] / 400
    expected = 0.5 * x  # 500 Hz * 1 ms
    assert np.all(np.abs(rates - expected) <= 4 * np.sqrt(expected * (1 - expected) / 400) + 1e-12)
    assert a.neuron_counts["x"][:, 3].sum() == 0
    # the spec's seed is the default; the same seed gives the same trains, another seed other trains
    again = simulate(built, x, record_neurons=True)
    np.testing.assert_array_equal(a.neuron_counts["x"], again.neuron_counts["x"])
    other = simulate(built, x, seed=12, record_neurons=True)
    assert not np.array_equal(a.neuron_counts["x"], other.neuron_counts["x"])
    # samples 0 and 2 sit at the same position of different chunks: different random numbers
    assert not np.array_equal(a.neuron_counts["x"][0], a.neuron_counts["x"][2])
    assert "poisson" in built.script.read_text() and "rand() < p" in built.script.read_text()
    assert built.populations == {"x": 4, "out": 2} and built.fanout["x"] == 8
    np.testing.assert_array_equal(a.layer_ops["x"].sum(axis=1), 2 * a.neuron_counts["x"].sum(axis=1))


@pytest.mark.parametrize("bad,message", [
    ({"synapse": "exponential", "tau_syn": "1 ms"}, "tau_syn '1 ms' must be longer than dt '1 ms'"),
])
def test_parameters_the_integration_cannot_take(tmp_path, bad, message):
    """Refused by the validator (NS513), before any build."""
    from netspec.spec import SpecError

    with pytest.raises(SpecError, match=message) as info:
        load_spec_data(_chain(out_neuron=bad), tmp_path)
    assert [d.code for d in info.value.diagnostics] == ["NS513"]
