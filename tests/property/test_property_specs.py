"""Generated spec graphs, checked end to end (issue 22).

* ``validate`` accepts a document exactly when the builder can build it: every accepted spec builds (runtime,
  numpy target, both connectivities); every refused one gets located one-line diagnostics with known codes. Where the builder keeps a refusal of its own (max pooling of the analog input, a pooling window
  whose members have different lambdas), the spec the validator refuses is also refused by the builder.
* Kernel projections and unrolled synapses give exactly the same spikes, layer by layer, on a few inputs.
* With the paper's neurons and lambdas calibrated on the inputs, every neuron's rate after T = 200 steps is
  within the rate code's bound of its normalized ANN activation (:func:`test_brian_support.rate_bounds`:
  1/T for analog-driven neurons, growing with depth in proportion to the weights).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from graphs import CASES, calibrated_documents, calibrate, examples, spec_documents
from netspec.brian import BuildOptions, build, simulate
from netspec.errors import NetspecError
from netspec.spec import CODES, SpecError, load_spec_data
from netspec.spec import load as spec_load
from netspec.spec import rules
from test_brian_support import assert_same_results, rate_bounds, reference_rates

#: Refusals the builder makes itself too (plan.py), and the rule that reports them.
MIRRORED = {"NS510": rules.rule_analog_input, "NS512": rules.rule_channel_lambdas}


def _validate(doc, base):
    try:
        return load_spec_data(doc, base), []
    except SpecError as exc:
        return None, exc.diagnostics


def _without(rule, doc, base, monkeypatch):
    """The spec of ``doc`` validated without ``rule``, or None if other rules refuse it too."""
    with monkeypatch.context() as m:
        m.setattr(spec_load, "RULES", tuple(r for r in rules.RULES if r is not rule))
        spec, _ = _validate(doc, base)
    return spec


@settings(max_examples=examples(1.0))
@given(st.one_of(spec_documents(wild=False), spec_documents(wild=True)))
def test_validate_accepts_exactly_what_builds(case):
    doc, x = case
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as monkeypatch:
        spec, diagnostics = _validate(doc, tmp)
        if spec is None:
            CASES["validate-refused"] += 1
            for d in diagnostics:
                assert d.code in CODES and d.message and "\n" not in d.text(), d.text()
                assert d.where, f"{d.code}: no location: {d.message}"
            first = diagnostics[0]
            note(first.text())
            if first.code in MIRRORED and len(diagnostics) == 1:
                lenient = _without(MIRRORED[first.code], doc, tmp, monkeypatch)
                if lenient is not None:
                    CASES["builder-refusal-mirrored"] += 1
                    with pytest.raises(NetspecError):
                        build(lenient, Path(tmp) / "b")
            return
        CASES["validate-accepted"] += 1
        for connectivity in ("kernel", "synapses"):
            built = build(spec, Path(tmp) / connectivity, BuildOptions(samples_per_run=2, connectivity=connectivity))
            assert built.script.exists()


@settings(max_examples=examples(0.08))
@given(spec_documents(wild=False))
def test_kernel_and_unrolled_synapses_spike_alike(case):
    doc, x = case
    with tempfile.TemporaryDirectory() as tmp:
        spec, diagnostics = _validate(doc, tmp)
        if spec is None:
            return  # the other test covers refusals
        CASES["kernel=synapses"] += 1
        x = x[:2]
        k = simulate(build(spec, Path(tmp) / "k", BuildOptions(samples_per_run=2)), x, record_neurons=True)
        s = simulate(build(spec, Path(tmp) / "s", BuildOptions(samples_per_run=2, connectivity="synapses")), x,
                     record_neurons=True)
        assert_same_results(k, s)


T = 200


@settings(max_examples=examples(0.06))
@given(calibrated_documents())
def test_rates_match_the_reference_within_the_rate_bound(case):
    doc, x = case
    with tempfile.TemporaryDirectory() as tmp:
        spec, diagnostics = _validate(doc, tmp)
        if spec is None:
            return
        spec = calibrate(doc, x, tmp, T)
        CASES["rates"] += 1
        built = build(spec, Path(tmp) / "b", BuildOptions(samples_per_run=3))
        sim = simulate(built, x, record_neurons=True)
        ref = reference_rates(spec, x)
        bounds = rate_bounds(spec, T)
        for layer, counts in sim.neuron_counts.items():
            err = np.abs(counts / T - ref[layer])
            assert np.all(err <= bounds[layer] + 1e-9), (layer, float((err - bounds[layer]).max()))
