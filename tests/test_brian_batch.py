"""Samples side by side (``BuildOptions.batch``): every group holds ``batch`` copies of its layer, so that each
projection runs for all of them in one step and reads its kernel once. Each sample's results are exactly those of
``batch = 1``: every layer kind of tests/test_brian_kernels.py, max pooling, both timings, the membrane read-out,
unrolled synapses (replicated), runtime and standalone (the C++ scatter, grouped and not, elections, counters),
and a run of samples that does not fill the last row of copies."""
from __future__ import annotations

import numpy as np
import pytest

from netspec.brian import BuildOptions, build, simulate
from netspec.brian.runner import copies, side_by_side
from netspec.errors import NetspecError
from test_brian_kernels import NETS, _spec
from test_brian_support import assert_same_results


def test_side_by_side_rows_and_copies():
    values = np.arange(12).reshape(6, 2)  # 6 samples of 2 values
    np.testing.assert_array_equal(side_by_side(values, 3), [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]])
    with pytest.raises(ValueError, match="5 samples do not fill rows of 3"):
        side_by_side(values[:5], 3)
    np.testing.assert_array_equal(copies(np.array([0, 2]), 4, 3), [0, 2, 4, 6, 8, 10])


@pytest.mark.parametrize("timing", ["zero-latency", "one-step-per-layer"])
@pytest.mark.parametrize("name", list(NETS))
def test_batch_equals_one_sample_at_a_time(tmp_path, name, timing):
    spec, x = _spec(tmp_path, name, timing=timing)
    one = simulate(build(spec, tmp_path / "one", BuildOptions(samples_per_run=5)), x, record_neurons=True)
    many = simulate(build(spec, tmp_path / "many", BuildOptions(samples_per_run=4, batch=2)), x, record_neurons=True)
    assert all(v.sum() > 0 for v in one.neuron_counts.values()), "a silent layer would prove little"
    assert_same_results(one, many)  # 5 samples in runs of 4: the second run's row of 2 holds one padding copy


def test_batch_with_unrolled_synapses(tmp_path):
    """Unrolled projections, elections and counters are replicated per copy."""
    spec, x = _spec(tmp_path, "zeropad-crop-concat-add-maxpool")
    one = simulate(build(spec, tmp_path / "one", BuildOptions(samples_per_run=5, connectivity="synapses")), x)
    many = simulate(build(spec, tmp_path / "many", BuildOptions(samples_per_run=6, batch=3, connectivity="synapses")), x)
    assert_same_results(one, many)


def test_batch_membrane_read_out(tmp_path):
    import dataclasses

    spec, x = _spec(tmp_path, "conv-strides-same")
    spec = dataclasses.replace(spec, simulation=dataclasses.replace(spec.simulation, readout="membrane"))
    one = simulate(build(spec, tmp_path / "one", BuildOptions(samples_per_run=5)), x)
    many = simulate(build(spec, tmp_path / "many", BuildOptions(samples_per_run=4, batch=4)), x)
    assert one.v_steps is not None and np.abs(one.v_steps).sum() > 0
    assert_same_results(one, many)


@pytest.mark.cpp
@pytest.mark.parametrize("name", ["zeropad-crop-concat-add-maxpool", "maxpool-overlap-stacked", "depthwise-pool-refractory"])
def test_standalone_batch_equals_one_sample_at_a_time(tmp_path, name):
    """The C++ of every operation with copies side by side: grouped and per-spike scatters, elections of windows
    and of gates, counters of each copy, refractory gating, exponential synapses."""
    spec, x = _spec(tmp_path, name)
    one = simulate(build(spec, tmp_path / "one", BuildOptions(samples_per_run=5)), x)
    many = simulate(build(spec, tmp_path / "many", BuildOptions(samples_per_run=4, batch=4, standalone=True)), x,
                    results_dir=tmp_path / "r")
    assert one.counts.sum() > 0
    assert_same_results(one, many)


def test_batch_must_be_positive(tmp_path):
    spec, _ = _spec(tmp_path, "conv-strides-same")
    with pytest.raises(NetspecError, match="--batch must be at least 1, got 0"):
        build(spec, tmp_path / "b", BuildOptions(batch=0))
