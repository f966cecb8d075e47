"""Connectivity of every layer kind: the synapse lists, applied as a sparse product, reproduce the numpy
reference (Keras semantics); the plan composes index-only layers and normalizes weights per source."""
from __future__ import annotations

import time

import numpy as np
import pytest

from netspec.brian import connectivity as conn
from netspec.brian.plan import make_plan
from netspec.reference import preactivation
from netspec.spec import SpecError, load_spec_data
from netspec.spec.layers import Concatenate, Flatten, ZeroPad2D
from test_brian_support import calibrated, spec_data


def apply(pre, post, w, x, n_out):
    """sum over synapses of w * x[:, pre] into n_out outputs, per sample."""
    flat = x.reshape(len(x), -1)
    return np.stack([np.bincount(post, weights=w * row[pre], minlength=n_out) for row in flat])


@pytest.mark.parametrize("padding,strides,kernel", [("valid", (1, 1), (3, 3)), ("same", (1, 1), (3, 3)),
                                                    ("same", (2, 2), (3, 2)), ("same", (2, 3), (4, 4)),
                                                    ("valid", (2, 1), (2, 3))])
def test_conv2d_matches_reference(tmp_path, padding, strides, kernel):
    rng = np.random.default_rng(1)
    shape = (7, 6, 3)
    k = rng.normal(size=(*kernel, 3, 4))
    spec = _spec_with(tmp_path, shape, {"type": "conv2d", "filters": 4, "kernel_size": list(kernel),
                                        "strides": list(strides), "padding": padding, "kernel": k.tolist()})
    x = rng.uniform(size=(3, *shape))
    pre, post, w = conn.conv2d(shape, k, strides, padding)
    want = preactivation(spec, "L", [x]).reshape(3, -1)
    np.testing.assert_allclose(apply(pre, post, w, x, want.shape[1]), want, atol=1e-12)
    # each output neuron reads exactly the valid taps of its window (no padded taps)
    assert pre.size == spec.layer("L").connections([shape])


@pytest.mark.parametrize("padding,strides", [("valid", (1, 1)), ("same", (2, 2))])
def test_depthwise_matches_reference(tmp_path, padding, strides):
    rng = np.random.default_rng(2)
    shape = (6, 5, 3)
    k = rng.normal(size=(3, 3, 3, 2))
    spec = _spec_with(tmp_path, shape, {"type": "depthwise_conv2d", "kernel_size": 3, "depth_multiplier": 2,
                                        "strides": list(strides), "padding": padding, "kernel": k.tolist()})
    x = rng.uniform(size=(2, *shape))
    pre, post, w = conn.depthwise_conv2d(shape, k, strides, padding)
    want = preactivation(spec, "L", [x]).reshape(2, -1)
    np.testing.assert_allclose(apply(pre, post, w, x, want.shape[1]), want, atol=1e-12)


@pytest.mark.parametrize("padding,pool,strides", [("valid", (2, 2), None), ("same", (3, 3), (2, 2)),
                                                  ("same", (2, 3), (1, 2))])
def test_avgpool_excludes_padding_as_keras(tmp_path, padding, pool, strides):
    rng = np.random.default_rng(3)
    shape = (5, 7, 2)
    layer = {"type": "avgpool2d", "pool_size": list(pool), "padding": padding}
    if strides:
        layer["strides"] = list(strides)
    spec = _spec_with(tmp_path, shape, layer)
    x = rng.uniform(size=(2, *shape))
    lay = spec.layer("L")
    pre, post, w = conn.avgpool2d(shape, lay.pool_size, lay.stride, lay.pad)
    want = preactivation(spec, "L", [x]).reshape(2, -1)
    np.testing.assert_allclose(apply(pre, post, w, x, want.shape[1]), want, atol=1e-12)


def test_global_avgpool_and_dense(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.uniform(size=(2, 3, 4, 5))
    pre, post, w = conn.global_avgpool2d((3, 4, 5))
    np.testing.assert_allclose(apply(pre, post, w, x, 5), x.mean(axis=(1, 2)), atol=1e-12)
    k = rng.normal(size=(6, 3))
    v = rng.uniform(size=(2, 6))
    pre, post, w = conn.dense(6, k)
    np.testing.assert_allclose(apply(pre, post, w, v, 3), v @ k, atol=1e-12)


def test_zeropad_and_concat_index_maps():
    (src,) = ZeroPad2D(name="p", padding=((1, 0), (0, 2))).sources([(2, 3, 1)])
    grid = src.reshape(3, 5)
    assert grid[0].tolist() == [-1] * 5
    assert grid[1].tolist() == [0, 1, 2, -1, -1] and grid[2].tolist() == [3, 4, 5, -1, -1]
    a, b = Concatenate(name="c").sources([(2, 2, 1), (2, 2, 3)])
    assert a.reshape(2, 2, 4)[..., 0].ravel().tolist() == [0, 1, 2, 3] and (a.reshape(2, 2, 4)[..., 1:] == -1).all()
    assert (b.reshape(2, 2, 4)[..., 0] == -1).all() and b.reshape(2, 2, 4)[..., 1:].ravel().tolist() == list(range(12))
    (f,) = Flatten(name="f").sources([(2, 2, 3)])
    assert f.tolist() == list(range(12))


def test_plan_composes_flatten_zeropad_concat_and_scales_each_branch(tmp_path):
    """conv -> zeropad -> flatten, concatenated with a dense branch of another lambda, into one dense layer:
    the dense layer gets one projection per branch, re-indexed to the populations, weights W*lam_src/lam."""
    rng = np.random.default_rng(5)
    layers = [
        {"name": "c", "type": "conv2d", "inputs": ["x"], "filters": 2, "kernel_size": 2, "kernel": rng.normal(size=(2, 2, 1, 2)).tolist(), "activation": "relu"},
        {"name": "zp", "type": "zeropad2d", "padding": [[1, 0], [0, 1]]},
        {"name": "f", "type": "flatten"},
        {"name": "d", "type": "dense", "inputs": ["x_flat"], "units": 3, "kernel": rng.normal(size=(9, 3)).tolist(), "activation": "relu"},
        {"name": "cat", "type": "concatenate", "inputs": ["f", "d"]},
        {"name": "out", "type": "dense", "units": 2, "kernel": rng.normal(size=(2 * 3 * 3 + 3, 2)).tolist(), "activation": "softmax"},
    ]
    layers.insert(0, {"name": "x_flat", "type": "flatten", "inputs": ["x"]})
    doc = spec_data("compose", (3, 3, 1), layers)
    x = rng.uniform(size=(4, 3, 3, 1))
    spec = calibrated(doc, x, tmp_path)
    plan = make_plan(spec, connectivity="synapses")
    out = plan.populations["out"]
    assert [p.source for p in out.inputs] == ["c", "d"]
    kernel = spec.array("out", "kernel")
    # rebuild the ANN's dense input from the populations' activations and compare with the projections
    from netspec.reference import forward

    acts = forward(spec, x)
    total = np.zeros((len(x), 2))
    for proj in out.inputs:
        src = acts[proj.source].reshape(len(x), -1) / spec.lam(proj.source)
        total += apply(proj.pre, proj.post, proj.w, src, 2)
    z = acts["cat"] @ kernel
    np.testing.assert_allclose(total, z / spec.lam("out"), atol=1e-10)
    # padded positions of the zero padding carry no synapse: c has 2*2*2 = 8 neurons, each feeding 2 outputs
    assert out.inputs[0].pre.size == 8 * 2
    assert plan.fanout["c"].tolist() == [2] * 8


def test_add_with_hidden_linear_branch(tmp_path):
    """add(relu dense, linear dense): one population gets the linear layer's projection (and bias) directly."""
    rng = np.random.default_rng(6)
    layers = [
        {"name": "a", "type": "dense", "units": 3, "kernel": rng.normal(size=(4, 3)).tolist(), "bias": [0.1, 0.2, 0.3], "activation": "relu"},
        {"name": "lin", "type": "dense", "inputs": ["a"], "units": 3, "kernel": rng.normal(size=(3, 3)).tolist(), "bias": [0.5, -0.5, 0.25], "activation": "linear"},
        {"name": "sum", "type": "add", "inputs": ["a", "lin"], "activation": "relu"},
        {"name": "out", "type": "dense", "units": 2, "kernel": rng.normal(size=(3, 2)).tolist(), "activation": "softmax"},
    ]
    spec = calibrated(spec_data("add", (4,), layers), rng.uniform(size=(5, 4)), tmp_path)
    plan = make_plan(spec, connectivity="synapses")
    assert "lin" not in plan.populations and "lin" not in plan.order
    pop = plan.populations["sum"]
    assert [p.source for p in pop.inputs] == ["a"]  # identity branch and linear branch merged: same source
    assert pop.inputs[0].pre.size == 3 + 9
    np.testing.assert_allclose(pop.bias, np.array([0.5, -0.5, 0.25]) / spec.lam("sum"))


def test_analog_input_drive_matches_reference(tmp_path):
    """The analog current into the first layer is the normalized preactivation W.x/lam + b/lam."""
    rng = np.random.default_rng(7)
    layers = [{"name": "c", "type": "conv2d", "filters": 3, "kernel_size": 3, "padding": "same",
               "kernel": rng.normal(size=(3, 3, 2, 3)).tolist(), "bias": [0.1, -0.1, 0.2], "activation": "relu"},
              {"name": "f", "type": "flatten"},
              {"name": "out", "type": "dense", "units": 2, "kernel": rng.normal(size=(75, 2)).tolist(), "activation": "softmax"}]
    x = rng.uniform(size=(3, 5, 5, 2))
    spec = calibrated(spec_data("drive", (5, 5, 2), layers), x, tmp_path)
    pop = make_plan(spec).populations["c"]
    from netspec.brian import runner

    windows = [p.window for p in pop.drive]
    arrays = {f"D_{k}_pos": p.pos for k, p in enumerate(pop.drive)} | {f"D_{k}_w": p.w for k, p in enumerate(pop.drive)}
    got = runner.kernel_drive(x, windows, arrays, "D", pop.size) + pop.bias
    want = preactivation(spec, "c", [x]).reshape(3, -1) / spec.lam("c")
    np.testing.assert_allclose(got, want, atol=1e-10)


def test_million_synapse_conv_builds_fast():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 32, 32))
    t0 = time.perf_counter()
    pre, post, w = conn.conv2d((12, 12, 32), kernel, (1, 1), "same")
    seconds = time.perf_counter() - t0
    assert pre.size == 32 * 32 * 10 * 10 * 9 + 32 * 32 * (4 * 10 * 6 + 4 * 4)  # interior, edge and corner taps
    assert np.all(np.diff(pre) >= 0)  # sorted by presynaptic neuron
    assert seconds < 1.0, f"{pre.size:,} synapses took {seconds:.2f} s"


def test_maxpool_over_branches_of_different_lambda(tmp_path):
    """Branches joined on the channel axis: every pooling window lies in one channel of one branch, so
    different lambdas are fine (the Inception case). Joined along the width, a window mixes both branches'
    counts, which mean different activations: refused by validation (NS512), naming the layer, before any
    build."""
    rng = np.random.default_rng(8)
    layers = [
        {"name": "a", "type": "conv2d", "filters": 1, "kernel_size": 1, "kernel": [[[[1.0]]]], "activation": "relu", "normalization": {"lambda": 1.0}},
        {"name": "b", "type": "conv2d", "inputs": ["x"], "filters": 1, "kernel_size": 1, "kernel": [[[[2.0]]]], "activation": "relu", "normalization": {"lambda": 2.0}},
        {"name": "cat", "type": "concatenate", "inputs": ["a", "b"]},
        {"name": "mp", "type": "maxpool2d", "pool_size": 2},
        {"name": "f", "type": "flatten"},
        {"name": "out", "type": "dense", "units": 1, "kernel": rng.normal(size=(2, 1)).tolist(), "activation": "softmax", "normalization": {"lambda": 1.0}},
    ]
    plan = make_plan(load_spec_data(spec_data("mix", (2, 2, 1), layers), tmp_path))
    np.testing.assert_array_equal(plan.relays["mp"].lam, [1.0, 2.0])
    layers[2]["axis"] = 1
    layers[5]["kernel"] = [[0.5]]
    with pytest.raises(SpecError, match=r"NS512: layer 'mp' \(layers\[4\]\)\.inputs: the pooling window at row 0, column 0, "
                                         r"channel 0 reads neurons of 'cat' with different lambdas \(1 and 2\)"):
        load_spec_data(spec_data("mix", (2, 1, 1), layers), tmp_path)


def _spec_with(tmp_path, shape, layer):
    """input -> L (the layer under test) -> flatten -> dense: a valid spec whose layer L we can ask about."""
    layer = dict(layer, name="L")
    if layer["type"] in ("conv2d", "depthwise_conv2d"):
        layer.update(activation="relu", normalization={"lambda": 1.0})
    else:
        layer.update(normalization={"lambda": 1.0})
    doc = spec_data("probe", shape, [layer, {"name": "f", "type": "flatten"}])
    n = int(np.prod(_out_shape(doc)))
    doc["layers"].append({"name": "out", "type": "dense", "units": 1, "kernel": [[0.0]] * n, "activation": "softmax",
                          "normalization": {"lambda": 1.0}})
    return load_spec_data(doc, tmp_path)


def _out_shape(doc):
    """Shape of layer L, from its own shape rule."""
    from netspec.spec.layers import LAYER_TYPES

    layer = doc["layers"][1]
    typed = LAYER_TYPES[layer["type"]].from_yaml(layer, ("x",))
    return typed.output_shape([tuple(doc["input"]["shape"])])
