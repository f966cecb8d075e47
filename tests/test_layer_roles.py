"""Every layer kind declares what it is once, on its class, and every backend handles every kind.

Adding a kind to ``netspec/spec/layers/`` without a rule in a backend fails here, before any network uses it.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from netspec import reference
from netspec.brian import plan
from netspec.spec import LAYER_TYPES
from netspec.spec.layers import Analog, Layer, Role

KINDS = sorted(LAYER_TYPES.items())


@pytest.mark.parametrize("name,kind", KINDS)
def test_reference_handles_every_kind(name, kind):
    assert reference.handles(kind), f"netspec.reference has no rule for layer kind {name!r}"


@pytest.mark.parametrize("name,kind", KINDS)
def test_builder_handles_every_kind(name, kind):
    assert plan.handles(kind), f"the Brian2 builder has no rule for layer kind {name!r}"


@dataclass(frozen=True)
class _Unhandled(Layer):
    """A kind no backend knows (never registered)."""

    type = "unhandled"
    role = Role.POPULATION


@dataclass(frozen=True)
class _UnhandledRelay(Layer):
    type = "unhandled_relay"
    role = Role.RELAY


def test_checks_fail_for_a_kind_without_rules():
    assert not reference.handles(_Unhandled)
    assert not plan.handles(_Unhandled)
    assert not plan.handles(_UnhandledRelay)


def test_roles_are_consistent():
    roles = {name: kind.role for name, kind in KINDS}
    assert [n for n, r in roles.items() if r is Role.SOURCE] == ["input"]
    assert sorted(n for n, r in roles.items() if r is Role.GATE) == ["maxpool2d"]
    assert sorted(n for n, r in roles.items() if r is Role.RELAY) == ["concatenate", "crop2d", "flatten", "zeropad2d"]
    for name, kind in KINDS:
        # only populations compute a weighted sum, and only kinds with weights or an average do
        assert not kind.macs or kind.role is Role.POPULATION, name
        # what the analog input can drive computes a weighted sum, an average or a sum (its current); what
        # passes it on only re-indexes it (a concatenation joins it with other branches)
        if kind.analog is Analog.DRIVEN:
            assert kind.macs and kind.role is Role.POPULATION, name
        if kind.analog is Analog.PASSES:
            assert kind.role is Role.RELAY, name
        if kind.sums_inputs:
            assert kind.role is Role.POPULATION and kind.arity[1] is None, name
        # an activation can be set exactly where the schema allows one
        assert kind.takes_activation == (name in {"dense", "conv2d", "depthwise_conv2d", "add"}), name


def test_spec_answers_the_derived_questions(tmp_path):
    from netspec.spec import load_spec_data

    doc = {
        "netspec": 1, "name": "roles", "input": {"shape": [2], "range": [0, 1], "encoding": "analog"},
        "simulation": {"dt": "1 ms", "duration": "10 ms"},
        "layers": [
            {"name": "x", "type": "input"},
            {"name": "a", "normalization": {"lambda": 1.0}, "type": "dense", "units": 2, "kernel": [[1, 0], [0, 1]], "activation": "relu"},
            {"name": "lin", "normalization": {"lambda": 1.0}, "type": "dense", "units": 2, "kernel": [[1, 0], [0, 1]], "activation": "linear"},
            {"name": "sum", "normalization": {"lambda": 1.0}, "type": "add", "inputs": ["a", "lin"], "activation": "relu"},
            {"name": "out", "normalization": {"lambda": 1.0}, "type": "dense", "units": 2, "kernel": [[1, 0], [0, 1]], "activation": "linear"},
        ],
    }
    spec = load_spec_data(doc, tmp_path)
    assert [n for n in spec.order if spec.is_population(n)] == ["a", "sum", "out"]
    assert [n for n in spec.order if spec.is_hidden_linear(n)] == ["lin"]
    assert spec.is_output("out") and not spec.is_hidden_linear("out")  # a linear output has neurons
    assert spec.neuron_count() == 6


def test_a_layer_entry_is_written_by_its_class_and_nothing_is_dropped():
    """The one writer of a layer entry is the layer class (``to_yaml``); a key the kind has no field for is an
    error, not a silent loss (the exporter turns it into an internal error)."""
    from netspec.errors import NetspecError
    from netspec.export.writer import written
    from netspec.spec.layers import Conv2D

    entry = {"name": "c", "type": "conv2d", "bias": "c/bias", "kernel": "c/kernel", "padding": "same",
             "kernel_size": [3, 3], "filters": 4, "activation": "relu", "clip": 6}
    assert list(written(entry)) == ["name", "type", "filters", "kernel_size", "padding", "kernel", "bias", "activation", "clip"]
    with pytest.raises(ValueError, match="a conv2d layer has no field 'units'"):
        Conv2D.from_yaml({**entry, "units": 3})
    with pytest.raises(NetspecError, match="internal error: the exporter wrote an entry .* no field 'units'"):
        written({**entry, "units": 3})
