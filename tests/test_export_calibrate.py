"""Bias calibration (netspec/export/calibrate.py) and the low-latency export defaults.

The numpy-stepped SNN must be the network netspec builds (spike counts equal to Brian2's, with a bias
correction, initial 0.5 and both read-outs); calibration must shrink the rate mismatch it corrects; the
spec records the correction, validates, and the builder uses it while the reference ignores it; bad options on
the command line are refused in one line (ExportOptions' own refusals: test_export_options.py); a default export
writes what README.md says.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest

from netspec.brian import BuildOptions, build, simulate as brian_simulate
from netspec.brian.plan import make_plan
from netspec.export.calibrate import calibrate_biases, simulate
from netspec.reference import forward, normalized
from netspec.spec import SpecError, load_spec_data
from test_brian_support import calibrated, rng_tensor, spec_data

RNG = np.random.default_rng(7)


def _r(*shape, scale=0.5, shift=0.0):
    return rng_tensor(RNG, shape, scale=scale, shift=shift)


#: conv -> max pool, a concatenation of two branches, a residual add with a hidden linear branch, dense output
LAYERS = [
    {"name": "c1", "type": "conv2d", "filters": 3, "kernel_size": 3, "padding": "same", "kernel": _r(3, 3, 1, 3, scale=0.4, shift=0.1),
     "bias": _r(3, scale=0.05), "activation": "relu"},
    {"name": "mp", "type": "maxpool2d", "pool_size": 2},
    {"name": "b1", "type": "conv2d", "filters": 2, "kernel_size": 1, "kernel": _r(1, 1, 3, 2, shift=0.2), "bias": _r(2, scale=0.05),
     "activation": "relu"},
    {"name": "b2", "type": "conv2d", "inputs": ["mp"], "filters": 2, "kernel_size": 3, "padding": "same",
     "kernel": _r(3, 3, 3, 2, scale=0.3, shift=0.05), "bias": _r(2, scale=0.05), "activation": "relu"},
    {"name": "cat", "type": "concatenate", "inputs": ["b1", "b2"]},
    {"name": "f", "type": "flatten"},
    {"name": "h", "type": "dense", "units": 6, "kernel": _r(36, 6, scale=0.3, shift=0.05), "bias": _r(6, scale=0.05), "activation": "relu"},
    {"name": "lin", "type": "dense", "units": 6, "kernel": _r(6, 6, scale=0.3), "bias": _r(6, scale=0.05), "activation": "linear"},
    {"name": "sum", "type": "add", "inputs": ["h", "lin"], "activation": "relu"},
    {"name": "out", "type": "dense", "units": 3, "kernel": _r(6, 3, shift=0.1), "activation": "softmax"},
]
SHAPE = (6, 6, 1)


def _spec(tmp_path, *, steps=20, readout=None, initial=None):
    doc = spec_data("cal", SHAPE, LAYERS, steps=steps, neuron={"initial": initial} if initial else None)
    if readout:
        doc["simulation"]["readout"] = readout
    x = RNG.uniform(0, 1, (6, *SHAPE))
    return calibrated(doc, x, tmp_path), x


def _corrected(spec, corrections, tmp_path):
    """The spec with ``normalization.bias_correction`` set on the layers named in ``corrections``."""
    doc = spec.to_yaml()
    for layer in doc["layers"]:
        if layer["name"] in corrections:
            c = corrections[layer["name"]]
            layer["normalization"]["bias_correction"] = [float(v) for v in c] if np.ndim(c) else float(c)
    return load_spec_data(doc, tmp_path)


@pytest.mark.parametrize("readout", ["spike_count", "membrane"])
def test_stepped_snn_is_the_built_network(tmp_path, readout):
    """Every neuron's spike count (and the output's count or membrane) equals Brian2's, with bias corrections."""
    spec, x = _spec(tmp_path, readout=readout, initial=0.5)
    spec = _corrected(spec, {"c1": [0.02, -0.01, 0.03], "b2": 0.01, "sum": [0.01] * 6, "out": [0.0, 0.02, -0.02]}, tmp_path)
    mine = simulate(spec, x, 20)
    membrane = readout == "membrane"
    # per-neuron counts need spike monitors, which a non-spiking output cannot have: per layer and sample then
    sim = brian_simulate(build(spec, tmp_path / "b", BuildOptions(samples_per_run=len(x), float32=False)), x, record_neurons=not membrane)
    pops = {"c1", "b1", "b2", "h", "sum", "out"} - ({"out"} if membrane else set())
    assert set(mine.counts) == pops
    for name, counts in mine.counts.items():
        assert counts.sum() > 0, name
        if membrane:
            np.testing.assert_array_equal(counts.reshape(len(x), -1).sum(axis=1), sim.layer_spikes[name].sum(axis=1), err_msg=name)
        else:
            np.testing.assert_array_equal(counts.reshape(len(x), -1), sim.neuron_counts[name], err_msg=name)
    if membrane:
        np.testing.assert_allclose(mine.readout[-1], sim.v_out, rtol=0, atol=1e-9)
    else:
        np.testing.assert_array_equal(mine.readout[-1], sim.counts)


def test_calibration_reduces_the_rate_mismatch(tmp_path):
    """At T = 8 from rest, the rates lag the normalized ANN; the corrections shrink every layer's mean gap."""
    spec, x = _spec(tmp_path, steps=8)
    x = RNG.uniform(0, 1, (40, *SHAPE))
    target = normalized(spec, forward(spec, x))

    def gaps(s):
        rates = simulate(s, x, 8).rates
        return {n: np.abs(target[n].reshape(-1, target[n].shape[-1]).mean(axis=0) - rates[n]).mean() for n in rates}

    before = gaps(spec)
    corrections = calibrate_biases(spec, x, 8)
    assert set(corrections) == set(before) == {"c1", "b1", "b2", "h", "sum", "out"}
    after = gaps(_corrected(spec, corrections, tmp_path))
    assert before["sum"] > 0.01  # the uncorrected network does lag
    assert sum(after.values()) < 0.5 * sum(before.values()), (before, after)
    for name in before:
        assert after[name] <= before[name] + 1e-3, (name, before[name], after[name])


def _clipped_gaps(spec, x, steps):
    """Per population: the mean over channels of |mean target rate - mean SNN rate|, the target the normalized ANN
    activation at most 1 (one spike per step; the membrane output unclipped)."""
    target = normalized(spec, forward(spec, x))
    rates = simulate(spec, x, steps).rates
    return {n: np.abs(np.minimum(target[n], 1.0).reshape(-1, target[n].shape[-1]).mean(axis=0) - rates[n]).mean()
            for n in rates}


def test_secant_rounds_close_the_gap_that_one_correction_leaves(tmp_path):
    """From rest at T = 6 the first correction (the gap itself) falls short where neurons are silent or saturated;
    two secant rounds per layer close more of it, on every layer together and never much worse on one."""
    spec, _ = _spec(tmp_path, steps=6)
    x = RNG.uniform(0, 1, (40, *SHAPE))
    one = _clipped_gaps(_corrected(spec, calibrate_biases(spec, x, 6, rounds=0), tmp_path), x, 6)
    two = _clipped_gaps(_corrected(spec, calibrate_biases(spec, x, 6, rounds=2), tmp_path), x, 6)
    assert sum(two.values()) < 0.7 * sum(one.values()), (one, two)
    for name in one:
        assert two[name] <= one[name] + 2e-3, (name, one[name], two[name])


def test_current_cache_changes_nothing(tmp_path, monkeypatch):
    """Calibration keeps each population's input currents between its simulations when they fit; computed again each
    time (a cap of 0 bytes) the corrections are the same numbers."""
    import netspec.export.calibrate as cal

    spec, x = _spec(tmp_path, steps=8, initial=0.5)
    kept = calibrate_biases(spec, x, 8)
    monkeypatch.setattr(cal, "MAX_CURRENT_BYTES", 0)
    again = calibrate_biases(spec, x, 8)
    assert set(kept) == set(again)
    for name in kept:
        np.testing.assert_array_equal(kept[name], again[name], err_msg=name)


def test_calibration_aims_at_rates_a_neuron_can_reach(tmp_path):
    """A first layer whose λ is a fifth of its usual one saturates in places (one spike per step): calibration aims at
    rates of at most 1 there, so it raises the others less than unclipped targets would and ends closer to what the
    layer can do."""
    spec, _ = _spec(tmp_path, steps=8)
    doc = spec.to_yaml()
    index = [entry["name"] for entry in doc["layers"]].index("c1")
    doc["layers"][index]["normalization"]["lambda"] = spec.lam(spec.layer("c1")) / 5
    low = load_spec_data(doc, tmp_path)
    x = RNG.uniform(0, 1, (20, *SHAPE))
    assert (normalized(low, forward(low, x))["c1"] > 1).mean() > 0.05
    clipped = calibrate_biases(low, x, 8, rounds=0)["c1"]
    unclipped = calibrate_biases(low, x, 8, rounds=0, clip=False)["c1"]
    assert (clipped < unclipped).all(), (clipped, unclipped)
    gap = {key: _clipped_gaps(_corrected(low, {"c1": c}, tmp_path), x, 8)["c1"] for key, c in
           (("clipped", clipped), ("unclipped", unclipped))}
    assert gap["clipped"] < 0.5 * gap["unclipped"], gap


def test_builder_uses_the_correction_and_reference_ignores_it(tmp_path):
    spec, x = _spec(tmp_path)
    corrected = _corrected(spec, {"h": [0.1] * 6}, tmp_path)
    for name, a in forward(spec, x).items():
        np.testing.assert_array_equal(a, forward(corrected, x)[name])
    lam = spec.lam_per_neuron("h")
    diff = make_plan(corrected, 20).populations["h"].bias - make_plan(spec, 20).populations["h"].bias
    np.testing.assert_allclose(diff, 0.1 / lam)


@pytest.mark.parametrize("layer, value, message", [
    ("c1", [0.1, 0.2], "bias_correction has 2 values, the layer has 3 channels (give one number, or one per channel)"),
    ("lin", 0.1, "bias_correction: a hidden linear layer has no neurons (correct the add it feeds)"),
])
def test_bad_bias_correction_is_located(tmp_path, layer, value, message):
    spec, _ = _spec(tmp_path)
    doc = spec.to_yaml()
    index = [entry["name"] for entry in doc["layers"]].index(layer)
    doc["layers"][index]["normalization"]["bias_correction"] = value
    with pytest.raises(SpecError) as e:
        load_spec_data(doc, tmp_path)
    first = e.value.diagnostics[0]
    assert (first.code, first.message) == ("NS514", message)
    assert tuple(first.path) == ("layers", index, "normalization", "bias_correction")


def test_cli_refuses_bad_bias_steps_in_one_line(tmp_path, capsys):
    from netspec.cli import main

    for argv, message in [
        (["--calibrate-bias", "--bias-steps", "0"], "--bias-steps: must be a whole number of time steps >= 1, got 0"),
        (["--bias-steps", "8"], "--bias-steps, --bias-samples, --bias-rounds: used only with --calibrate-bias"),
        (["--bias-rounds", "1"], "--bias-steps, --bias-samples, --bias-rounds: used only with --calibrate-bias"),
        (["--calibrate-bias", "--bias-rounds", "-1"], "--bias-rounds: must be a whole number >= 0, got -1"),
    ]:
        rc = main(["export", str(tmp_path / "m.keras"), "-o", str(tmp_path / "s.yaml"), "--calibration", str(tmp_path / "c.npz"), *argv])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and err.count("\n") == 0 and err.endswith(message), err


def _tiny_model(keras, tmp_path):
    L = keras.layers
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(4, 3, activation="relu", name="conv2d"), L.MaxPooling2D(2, name="mp"),
                              L.Flatten(name="f"), L.Dense(6, activation="relu", name="dense"),
                              L.Dense(3, activation="softmax", name="dense_1")])
    rng = np.random.default_rng(0)
    for w in model.weights:
        w.assign(rng.normal(0.1, 0.4, w.shape).astype(np.float32))
    model.save(tmp_path / "m.keras")
    x = rng.uniform(0, 1, (50, 8, 8, 1)).astype(np.float32)
    np.savez(tmp_path / "cal.npz", x=x)
    return x


def test_default_export_is_the_low_latency_one(tmp_path, keras_lib):
    """`netspec export` with no options: membrane read-out, initial 0.5, λ per channel at the 99.9th percentile,
    no bias calibration, as README.md says."""
    from netspec.cli import main
    from netspec.spec import load_spec

    _tiny_model(keras_lib, tmp_path)
    assert main(["export", str(tmp_path / "m.keras"), "-o", str(tmp_path / "s.yaml"), "--calibration", str(tmp_path / "cal.npz")]) == 0
    spec = load_spec(tmp_path / "s.yaml")
    assert spec.simulation.readout == "membrane"
    assert spec.neuron_defaults["initial"] == 0.5
    assert spec.source["normalization"] == {"method": "channel", "percentile": 99.9}
    assert spec.layer("conv2d").normalization.per_channel and spec.layer("dense").normalization.per_channel
    assert all(layer.normalization is None or layer.normalization.bias_correction is None for layer in spec.layers)


def test_calibrated_export_records_the_correction(tmp_path, keras_lib, capsys):
    """--calibrate-bias --bias-steps 8 --bias-rounds 1: every population gets one correction per channel (the output
    per class, with one λ), source says how, the spec validates, and the correction is the one calibration computes."""
    from netspec.cli import main
    from netspec.spec import load_spec

    x = _tiny_model(keras_lib, tmp_path)
    assert main(["export", str(tmp_path / "m.keras"), "-o", str(tmp_path / "s.yaml"), "--calibration", str(tmp_path / "cal.npz"),
                 "--calibrate-bias", "--bias-steps", "8", "--bias-rounds", "1"]) == 0
    assert "biases calibrated at T = 8 on 50 samples" in capsys.readouterr().out
    assert main(["validate", str(tmp_path / "s.yaml")]) == 0
    spec = load_spec(tmp_path / "s.yaml")
    assert spec.source["normalization"] == {"method": "channel", "percentile": 99.9,
                                            "bias_correction": {"steps": 8, "samples": 50, "rounds": 1}}
    for name in ("conv2d", "dense"):
        norm = spec.layer(name).normalization
        assert norm.per_channel and len(norm.bias_correction) == len(norm.lam), name
    assert len(spec.layer("dense_1").normalization.bias_correction) == 3  # per class; one lambda
    plain = copy.deepcopy(spec.to_yaml())
    for layer in plain["layers"]:
        layer.get("normalization", {}).pop("bias_correction", None)
    again = calibrate_biases(load_spec_data(plain, tmp_path), x.astype(np.float64), 8, rounds=1)
    for name in ("conv2d", "dense", "dense_1"):
        np.testing.assert_allclose(again[name], spec.layer(name).normalization.bias_correction, rtol=1e-6, atol=1e-12)
