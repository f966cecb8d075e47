"""Projections simulated from their kernels (``--connectivity kernel``, the default) give exactly the spikes of
the unrolled Brian2 synapses (``--connectivity synapses``): every layer kind, strides, paddings, depthwise
multipliers, zero padding / concatenation / add compositions, max pooling after a convolution, poisson input,
exponential synapses, refractoriness, LIF; in runtime and standalone mode, whatever the split into runs.
"""
from __future__ import annotations

import numpy as np
import pytest

from netspec.brian import BuildOptions, build, simulate
from netspec.brian import kernels, plan
from netspec.errors import NetspecError
from netspec.spec import LAYER_TYPES
from test_brian_support import assert_same_results, calibrated, spec_data

T = 30


def _r(rng, *shape, scale=0.4, shift=0.1):
    return rng.normal(shift, scale, shape).round(4).tolist()


def _nets():
    rng = np.random.default_rng(7)
    nets = {}
    nets["conv-strides-same"] = ((7, 7, 2), [
        {"name": "c1", "type": "conv2d", "filters": 3, "kernel_size": 3, "strides": 2, "padding": "same", "kernel": _r(rng, 3, 3, 2, 3),
         "bias": _r(rng, 3, scale=0.05), "activation": "relu"},
        {"name": "c2", "type": "conv2d", "filters": 4, "kernel_size": [2, 3], "strides": [1, 2], "padding": "valid",
         "kernel": _r(rng, 2, 3, 3, 4), "activation": "relu", "neuron": {"model": "lif", "tau_m": "10 ms"}},
        {"name": "f", "type": "flatten"},
        {"name": "out", "type": "dense", "units": 3, "kernel": _r(rng, 3 * 1 * 4, 3), "activation": "softmax"},
    ])
    nets["depthwise-pool-refractory"] = ((6, 6, 2), [
        {"name": "c", "type": "conv2d", "filters": 2, "kernel_size": 1, "kernel": _r(rng, 1, 1, 2, 2, shift=0.5), "activation": "relu"},
        {"name": "dw", "type": "depthwise_conv2d", "kernel_size": 3, "padding": "same", "depth_multiplier": 2,
         "kernel": _r(rng, 3, 3, 2, 2), "activation": "relu", "neuron": {"refractory": "2 ms"}},
        {"name": "ap", "type": "avgpool2d", "pool_size": 3, "strides": 2, "padding": "same"},
        {"name": "g", "type": "global_avgpool2d", "neuron": {"synapse": "exponential", "tau_syn": "3 ms"}},
        {"name": "out", "type": "dense", "units": 2, "kernel": _r(rng, 4, 2), "activation": "softmax"},
    ])
    nets["zeropad-crop-concat-add-maxpool"] = ((6, 6, 1), [
        {"name": "c1", "type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "same", "kernel": _r(rng, 3, 3, 1, 2), "activation": "relu"},
        {"name": "mp", "type": "maxpool2d", "pool_size": 2},
        {"name": "c2", "type": "conv2d", "inputs": ["c1"], "filters": 2, "kernel_size": 2, "strides": 2, "kernel": _r(rng, 2, 2, 2, 2),
         "activation": "relu"},
        {"name": "cat", "type": "concatenate", "inputs": ["mp", "c2"]},
        {"name": "zp", "type": "zeropad2d", "padding": [[1, 1], [1, 1]]},
        {"name": "crop", "type": "crop2d", "cropping": [[0, 1], [1, 0]]},
        {"name": "c3", "type": "conv2d", "filters": 2, "kernel_size": 2, "kernel": _r(rng, 2, 2, 4, 2), "activation": "relu"},
        {"name": "cat2", "type": "concatenate", "inputs": ["c3", "c3"]},
        {"name": "c4", "type": "conv2d", "filters": 2, "kernel_size": 1, "kernel": _r(rng, 1, 1, 4, 2), "activation": "relu"},
        {"name": "lin", "type": "conv2d", "inputs": ["c3"], "filters": 2, "kernel_size": 1, "kernel": _r(rng, 1, 1, 2, 2), "activation": "linear"},
        {"name": "sum", "type": "add", "inputs": ["c4", "lin", "c3"], "activation": "relu"},
        {"name": "f", "type": "flatten"},
        {"name": "out", "type": "dense", "units": 3, "kernel": _r(rng, 3 * 3 * 2, 3), "activation": "softmax"},
    ])
    # overlapping windows (9 members), and a max-pool over a max-pool and a convolution (two elections, one
    # of them from gates)
    nets["maxpool-overlap-stacked"] = ((7, 7, 1), [
        {"name": "c1", "type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "same", "kernel": _r(rng, 3, 3, 1, 2, shift=0.3),
         "activation": "relu"},
        {"name": "mp1", "type": "maxpool2d", "pool_size": 3, "strides": 1},
        {"name": "c2", "type": "conv2d", "inputs": ["c1"], "filters": 2, "kernel_size": 3, "kernel": _r(rng, 3, 3, 2, 2, shift=0.3),
         "activation": "relu"},
        {"name": "cat", "type": "concatenate", "inputs": ["mp1", "c2"]},
        {"name": "mp2", "type": "maxpool2d", "pool_size": 2},
        {"name": "f", "type": "flatten"},
        {"name": "out", "type": "dense", "units": 3, "kernel": _r(rng, 2 * 2 * 4, 3), "activation": "softmax"},
    ])
    return nets


NETS = _nets()


def _spec(tmp_path, name, encoding="analog", steps=T, timing=None):
    shape, layers = NETS[name]
    x = np.random.default_rng(2).uniform(0, 1, (5, *shape))
    extra = {"max_rate": "1000 Hz", "seed": 3} if encoding == "poisson" else None
    doc = spec_data(name, shape, layers, steps=steps, encoding=encoding, extra_input=extra)
    if timing:
        doc["simulation"]["timing"] = timing
    return calibrated(doc, x, tmp_path), x


@pytest.mark.parametrize("timing", ["zero-latency", "one-step-per-layer"])
@pytest.mark.parametrize("encoding", ["analog", "poisson"])
@pytest.mark.parametrize("name", list(NETS))
def test_kernel_equals_synapses(tmp_path, name, encoding, timing):
    spec, x = _spec(tmp_path, name, encoding, timing=timing)
    k = simulate(build(spec, tmp_path / "k", BuildOptions(samples_per_run=5)), x, record_neurons=True)
    s = simulate(build(spec, tmp_path / "s", BuildOptions(samples_per_run=5, connectivity="synapses")), x,
                 record_neurons=True)
    assert all(v.sum() > 0 for v in k.neuron_counts.values()), "a silent layer would prove little"
    assert_same_results(k, s)


def test_split_into_runs_does_not_matter(tmp_path):
    """Analog input (poisson runs are seeded per run by design): the drive of a sample does not depend on the
    other samples of its run, nor on how many there are."""
    spec, x = _spec(tmp_path, "zeropad-crop-concat-add-maxpool")
    a = simulate(build(spec, tmp_path / "a", BuildOptions(samples_per_run=5)), x)
    b = simulate(build(spec, tmp_path / "b", BuildOptions(samples_per_run=2)), x)
    assert_same_results(a, b)


def test_plan_holds_no_per_connection_arrays(tmp_path):
    spec, _ = _spec(tmp_path, "zeropad-crop-concat-add-maxpool")
    k, s = plan.make_plan(spec), plan.make_plan(spec, connectivity="synapses")
    for name, pop in k.populations.items():
        assert [p.count for p in pop.inputs] == [p.count for p in s.populations[name].inputs]
        for proj in pop.inputs:
            assert proj.pieces and proj.pre.size == 0
    for name in k.fanout:
        np.testing.assert_array_equal(k.fanout[name], s.fanout[name])


def test_a_branch_of_a_concatenation_carries_only_its_channels_of_the_kernel(tmp_path):
    """c3 reads the concatenation of mp and c2 (2 channels each, through a pad and a crop): each of its two
    pieces holds its branch's half of the 2x2x4x2 kernel, not the whole of it (DenseNet121's transitions read 25
    branches, and whole kernels were 9 GB), and the pieces' weights are the kernel's, normalized."""
    spec, _ = _spec(tmp_path, "zeropad-crop-concat-add-maxpool")
    (a, b) = [proj.pieces[0] for proj in plan.make_plan(spec).populations["c3"].inputs]
    assert [p.window.input for p in (a, b)] == [(4, 4, 2), (4, 4, 2)]  # 3x3, padded to 5x5, cropped to 4x4
    assert a.w.size == b.w.size == 2 * 2 * 2 * 2
    kernel = np.asarray(spec.array(spec.layer("c3"), "kernel")).reshape(2, 2, 4, 2)
    lam = {n: np.broadcast_to(spec.lam(n), (2,)) for n in ("mp", "c2", "c3")}  # a max pool has its input's
    for piece, channels, source in ((a, slice(0, 2), "mp"), (b, slice(2, 4), "c2")):
        expected = kernel[:, :, channels, :] * lam[source][:, None] / lam["c3"]
        np.testing.assert_allclose(piece.w.reshape(2, 2, 2, 2), expected, rtol=1e-12)


def test_every_weighted_kind_has_a_kernel_form():
    for name, kind in LAYER_TYPES.items():
        if plan._connections.dispatch(kind) is not plan._connections.dispatch(object):
            assert kernels.handles(kind), name


def test_unknown_connectivity_is_refused(tmp_path):
    spec, _ = _spec(tmp_path, "conv-strides-same")
    with pytest.raises(NetspecError, match="connectivity"):
        build(spec, tmp_path / "b", BuildOptions(connectivity="dense"))


def test_float32_within_tolerance(tmp_path):
    """float32 (the default) against --float64: output counts within 2 spikes per neuron over T steps (rounding
    of u can move a spike by a step; the stated tolerance)."""
    spec, x = _spec(tmp_path, "conv-strides-same")
    a = simulate(build(spec, tmp_path / "a", BuildOptions(samples_per_run=5, float32=False)), x)
    b = simulate(build(spec, tmp_path / "b", BuildOptions(samples_per_run=5)), x)
    assert b.counts.sum() > 0
    assert np.abs(a.counts.astype(int) - b.counts).max() <= 2


@pytest.mark.cpp
@pytest.mark.parametrize("timing", ["zero-latency", "one-step-per-layer"])
def test_standalone_kernel_equals_runtime_synapses(tmp_path, timing):
    """Analog input (runtime and the binary draw different random numbers for poisson input)."""
    spec, x = _spec(tmp_path, "zeropad-crop-concat-add-maxpool", timing=timing)
    sa = simulate(build(spec, tmp_path / "sa", BuildOptions(standalone=True, samples_per_run=3)), x, results_dir=tmp_path / "r")
    rt = simulate(build(spec, tmp_path / "rt", BuildOptions(samples_per_run=2, connectivity="synapses")), x)
    assert sa.counts.sum() > 0
    assert_same_results(sa, rt)


@pytest.mark.cpp
def test_standalone_elections_of_overlapping_and_stacked_pools(tmp_path):
    """The C++ max-pooling elections and spike counters: overlapping windows and a gate of gates."""
    spec, x = _spec(tmp_path, "maxpool-overlap-stacked")
    sa = simulate(build(spec, tmp_path / "sa", BuildOptions(standalone=True, samples_per_run=3)), x, results_dir=tmp_path / "r")
    rt = simulate(build(spec, tmp_path / "rt", BuildOptions(samples_per_run=5, connectivity="synapses")), x)
    assert all(v.sum() > 0 for v in sa.layer_spikes.values())
    assert_same_results(sa, rt)


def test_cython_target_with_kernel_projections_is_one_clear_error(tmp_path):
    """Kernel projections have numpy and C++ implementations: the cython runtime target is refused in one line,
    from simulate() and from network.py's command line, before anything compiles."""
    import subprocess
    import sys

    spec, x = _spec(tmp_path, "conv-strides-same")
    built = build(spec, tmp_path / "b", BuildOptions(samples_per_run=5))
    with pytest.raises(NetspecError, match=r"^simulate: runtime target 'cython': the kernel projection S_\w+ has "
                       r"numpy and C\+\+ \(standalone\) implementations only; use --target numpy"):
        simulate(built, x, target="cython")
    np.save(tmp_path / "x.npy", x)
    done = subprocess.run([sys.executable, str(built.script), "--inputs", str(tmp_path / "x.npy"), "--out",
                           str(tmp_path / "o.npz"), "--target", "cython"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("network.py: error: runtime target 'cython'")


@pytest.mark.cpp
def test_standalone_openmp_threads_give_the_same_counts(tmp_path):
    """--threads 2: the kernel scatter runs once per step (the operation of a one-element group), not once per
    thread, and neuron updates split over threads change nothing."""
    spec, x = _spec(tmp_path, "zeropad-crop-concat-add-maxpool")
    one = simulate(build(spec, tmp_path / "one", BuildOptions(standalone=True, samples_per_run=5)), x,
                   results_dir=tmp_path / "r1")
    two = simulate(build(spec, tmp_path / "two", BuildOptions(standalone=True, samples_per_run=5, threads=2)), x,
                   results_dir=tmp_path / "r2")
    assert one.counts.sum() > 0
    assert_same_results(one, two)
