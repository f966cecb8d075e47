"""Read-outs and start-of-sample options: ``simulation.readout`` (``spike_count``, ``membrane``: a non-spiking
output read by its membrane, ``softmax``: the paper's spiking softmax), ``neuron.initial`` (the membrane at
the start of a sample) and ``neuron.clamp`` (a layer integrates but does not spike for its first N steps).
Each in both connectivity modes (exactly equal) and both timings; runtime against standalone in
``test_deterministic_readouts_standalone_match_runtime``."""
from __future__ import annotations

import numpy as np
import pytest

from netspec.brian import BuildOptions, build, simulate
from netspec.errors import NetspecError
from netspec.run import metrics
from netspec.spec import SpecError, load_spec_data
from test_brian_support import assert_same_results, spec_data

X = np.array([[1.0, 0.5], [0.25, 1.0], [0.5, 0.75]])
TIMINGS = ("zero-latency", "one-step-per-layer")


def _chain(depth=3, steps=12, readout=None, timing=None, neuron=None, layer_neuron=None, seed=None):
    """x[2] -> depth dense layers, identity weights and lambda 1: a drive of 1 makes every layer fire every step."""
    layers = [{"name": f"d{k}", "type": "dense", "units": 2, "kernel": [[1.0, 0.0], [0.0, 1.0]], "activation": "relu",
               "normalization": {"lambda": 1.0}} for k in range(depth)]
    layers[-1]["activation"] = "softmax"
    for k, params in (layer_neuron or {}).items():
        layers[k]["neuron"] = params
    doc = spec_data("chain", (2,), layers, steps=steps, neuron=neuron,
                    extra_input=None if seed is None else {"seed": seed})
    if readout:
        doc["simulation"]["readout"] = readout
    if timing:
        doc["simulation"]["timing"] = timing
    return doc


def _run(doc, path, connectivity="kernel", x=X, seed=None, standalone=False, **kw):
    spec = load_spec_data(doc, path)
    built = build(spec, path / f"b-{connectivity}-{standalone}",
                  BuildOptions(samples_per_run=len(x), connectivity=connectivity, standalone=standalone))
    return simulate(built, x, seed=seed, **kw)


@pytest.mark.parametrize("timing", TIMINGS)
def test_membrane_readout_answers_from_the_first_step(tmp_path, timing):
    depth, steps = 3, 12
    sims = [_run(_chain(depth, steps, "membrane", timing), tmp_path, c) for c in ("kernel", "synapses")]
    assert_same_results(*sims)
    sim = sims[0]
    assert sim.v_steps.shape == (3, steps, 2) and not sim.counts.any() and not sim.layer_spikes["d2"].any()
    # one step per layer: d0 fires in step 0, d1 in step 1, whose spike the output membrane integrates in step 1
    # (it needs no threshold test of its own)
    lag = 0 if timing == "zero-latency" else depth - 2
    # sample 0 (x = [1, 0.5]): the output membrane integrates one spike of class 0 per step once it arrives
    np.testing.assert_array_equal(sim.v_steps[0, :, 0], np.maximum(np.arange(steps) + 1 - lag, 0))
    assert sim.v_steps[0, lag, 0] > sim.v_steps[0, lag, 1]  # the right answer at the first step it can have one
    # the membrane integrates the rates: x * (steps - lag) within 1 spike; the class is the ANN's
    np.testing.assert_allclose(sim.v_out, X * (steps - lag), atol=1.0)
    np.testing.assert_array_equal(sim.predictions(), X.argmax(axis=1))
    np.testing.assert_array_equal(sim.v_steps[:, -1], sim.v_out)
    err = metrics.membrane_error_vs_time(sim.v_steps, X.argmax(axis=1))
    assert err[-1] == 0 and err.shape == (steps,)


@pytest.mark.parametrize("timing", TIMINGS)
def test_initial_potential_brings_the_first_spike_sooner(tmp_path, timing):
    x = np.array([[0.5, 0.25]])
    rest = _run(_chain(1, 8, timing=timing), tmp_path / "rest", x=x)
    # half the threshold on the one layer, by a per-layer override of a default of 0
    half = [_run(_chain(1, 8, timing=timing, neuron={"initial": 0.0}, layer_neuron={0: {"initial": 0.5}}),
                 tmp_path / "half", c, x=x) for c in ("kernel", "synapses")]
    assert_same_results(*half)
    # drive 0.5 from 0: spikes at steps 1, 3, 5, 7; from 0.5: at steps 0, 2, 4, 6
    np.testing.assert_array_equal(np.flatnonzero(rest.out_steps[0, :, 0]), [1, 3, 5, 7])
    np.testing.assert_array_equal(np.flatnonzero(half[0].out_steps[0, :, 0]), [0, 2, 4, 6])
    # drive 0.25 from 0.5: steps 1, 5 (from 0: 3, 7)
    np.testing.assert_array_equal(np.flatnonzero(half[0].out_steps[0, :, 1]), [1, 5])
    np.testing.assert_array_equal(np.flatnonzero(rest.out_steps[0, :, 1]), [3, 7])


@pytest.mark.parametrize("timing", TIMINGS)
def test_clamped_layer_integrates_but_does_not_spike(tmp_path, timing):
    steps, clamp = 10, 3
    doc = _chain(3, steps, timing=timing, layer_neuron={1: {"clamp": clamp}})
    sims = [_run(doc, tmp_path, c, x=np.array([[1.0, 0.0], [0.0, 0.0]])) for c in ("kernel", "synapses")]
    assert_same_results(*sims)
    sim = sims[0]
    lag = 0 if timing == "zero-latency" else 1  # d1 -> d2 in one-step-per-layer
    d0_lag = 0 if timing == "zero-latency" else 1  # x -> d0 is the drive; d0 -> d1 adds a step
    d1 = sim.layer_spikes["d1"][0]
    first = max(clamp, d0_lag)
    assert not d1[:first].any() and d1[first:].all()  # silent while clamped, then one spike per step
    assert sim.counts[0, 0] == steps - first - lag and sim.counts[0, 1] == 0
    # the output fires every step it receives (one step per layer: the last spike arrives after its threshold)
    assert sim.v_out[0, 0] == lag


def test_clamp_counts_steps_of_every_sample(tmp_path):
    """The clamp restarts with every sample (steps counted from the sample's start)."""
    doc = _chain(1, 6, layer_neuron={0: {"clamp": 2}})
    sim = _run(doc, tmp_path, x=np.array([[1.0, 1.0]] * 3))
    np.testing.assert_array_equal(sim.out_steps[:, :, 0], [[0, 0, 1, 1, 1, 1]] * 3)


@pytest.mark.parametrize("timing", TIMINGS)
def test_spiking_softmax(tmp_path, timing):
    steps = 40
    doc = _chain(2, steps, "softmax", timing, seed=7)
    sims = [_run(doc, tmp_path, c) for c in ("kernel", "synapses")]
    assert_same_results(*sims)  # the same random numbers in both connectivity modes
    sim = sims[0]
    again = _run(doc, tmp_path, "kernel")
    assert_same_results(sim, again)  # reproducible with the spec's seed
    other = _run(doc, tmp_path, "kernel", seed=8)
    assert not np.array_equal(other.out_steps, sim.out_steps)
    # no reset: the output membranes integrate the full drive, x * (steps - lag)
    lag = 0 if timing == "zero-latency" else 1
    np.testing.assert_allclose(sim.v_out, X * (steps - lag), atol=1.0)
    # the largest membrane fires with probability -> 1, the others -> 0: the counts rank like the ANN
    np.testing.assert_array_equal(sim.predictions(), X.argmax(axis=1))
    assert sim.counts[0, 0] > 0.8 * steps and sim.counts[0, 1] < 0.2 * steps
    # the sample with x = [0.5, 0.75]: both classes spike early, when the softmax is not yet sharp
    assert sim.counts[2, 0] > 0


def test_membrane_readout_refuses_an_output_refractory_period(tmp_path):
    """Refused by the validator (NS508), before any build; an inherited one names where to override it."""
    doc = _chain(2, 8, "membrane", layer_neuron={1: {"refractory": "2 ms"}})
    with pytest.raises(SpecError) as info:
        load_spec_data(doc, tmp_path)
    (d,) = info.value.diagnostics
    assert (d.code, d.path[-2:]) == ("NS508", ("neuron", "refractory")) and "output layer 'd1'" in d.message
    doc = _chain(2, 8, "membrane", neuron={"refractory": "2 ms"})
    with pytest.raises(SpecError) as info:
        load_spec_data(doc, tmp_path)
    (d,) = info.value.diagnostics
    assert (d.code, d.path) == ("NS508", ("neuron", "refractory"))
    assert d.message.endswith("give it refractory: '0 ms' in its own neuron block")
    doc["layers"][-1]["neuron"] = {"refractory": "0 ms"}
    assert build(load_spec_data(doc, tmp_path), tmp_path / "b").script.exists()


def test_membrane_readout_records_every_neuron(tmp_path):
    """record_neurons (netspec run's plots) with an output that does not spike: its counts are zeros (found by
    tests/property: the spike monitor on the output failed)."""
    built = build(load_spec_data(_chain(2, 8, "membrane"), tmp_path), tmp_path / "b")
    sim = simulate(built, X, record_neurons=True)
    assert sim.neuron_counts["d1"].shape == (len(X), 2) and not sim.neuron_counts["d1"].any()
    assert sim.neuron_counts["d0"].sum() > 0


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["layers"][1].setdefault("neuron", {}).update(initial=1.0), "initial"),
    (lambda d: d["layers"][1].setdefault("neuron", {}).update(initial="0.5 mV"), "initial"),
    (lambda d: d["layers"][1].setdefault("neuron", {}).update(clamp=-1), "clamp"),
    (lambda d: d["layers"][1].setdefault("neuron", {}).update(clamp=2.5), "clamp"),
    (lambda d: d["simulation"].update(readout="rate"), "readout"),
    (lambda d: d["input"].update(seed=3), "seed applies to poisson encoding only"),
])
def test_bad_readout_options_are_refused(tmp_path, edit, message):
    doc = _chain(2, 8)
    edit(doc)
    with pytest.raises(SpecError, match=message):
        load_spec_data(doc, tmp_path)


@pytest.mark.cpp
@pytest.mark.parametrize("timing", TIMINGS)
def test_deterministic_readouts_standalone_match_runtime(tmp_path, timing):
    """Membrane read-out, an initial potential and a clamped layer together: the binary equals runtime."""
    doc = _chain(3, 10, "membrane", timing, neuron={"initial": 0.25}, layer_neuron={1: {"clamp": 2}})
    runtime = _run(doc, tmp_path, "kernel")
    standalone = _run(doc, tmp_path, "kernel", standalone=True)
    assert_same_results(runtime, standalone)
    assert standalone.v_steps[0, -1, 0] > 0


@pytest.mark.cpp
def test_softmax_in_the_binary_is_seeded_per_run(tmp_path):
    doc = _chain(2, 30, "softmax", seed=5)
    a = _run(doc, tmp_path, "kernel", standalone=True)
    b = _run(doc, tmp_path, "kernel", standalone=True)
    c = _run(doc, tmp_path, "kernel", standalone=True, seed=6)
    assert_same_results(a, b)
    assert not np.array_equal(a.out_steps, c.out_steps)
    np.testing.assert_array_equal(a.predictions(), X.argmax(axis=1))


def test_membrane_readout_of_a_network_where_nothing_spikes(tmp_path):
    """Analog input straight into an output read by its membrane: no layer spikes, and the generated script
    still has a body for its neuron monitors (found by tests/property: an empty ``if`` block)."""
    doc = _chain(1, 6, "membrane")
    built = build(load_spec_data(doc, tmp_path), tmp_path / "b")
    compile(built.script.read_text(), str(built.script), "exec")
    sim = simulate(built, X, record_neurons=True)
    assert not sim.neuron_counts["d0"].any() and sim.v_steps.shape == (len(X), 6, 2)
