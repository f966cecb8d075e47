"""netspec.reference: the numpy ANN against plain-loop oracles and, where TensorFlow is installed, against
the Keras layers themselves (<= 1e-5 relative)."""
from __future__ import annotations

import hashlib
import math
import os

import numpy as np
import pytest

from netspec.errors import NetspecError
from netspec.reference import forward, normalized, predict, preactivation
from netspec.spec import LAYER_TYPES, load_spec_data
from netspec.spec.layers import Analog, Role

RNG = np.random.default_rng(1234)


# -- building small specs -------------------------------------------------------------------------
def make_spec(tmp_path, in_shape, layers, tensors, encoding="analog", lo=-1.0, hi=1.0):
    """A validated spec from layer entries (normalization filled in) and a dict of tensors."""
    np.savez(tmp_path / "w.npz", **{k: np.asarray(v, dtype=np.float32) for k, v in tensors.items()})
    sha = hashlib.sha256((tmp_path / "w.npz").read_bytes()).hexdigest()
    entries = [{"name": "x", "type": "input"}]
    for i, layer in enumerate(layers):
        layer = dict(layer)
        if LAYER_TYPES[layer["type"]].role is Role.POPULATION:
            layer.setdefault("normalization", {"lambda": 0.5 + i})
        entries.append(layer)
    if LAYER_TYPES[entries[-1]["type"]].role is not Role.POPULATION:
        # an output without neurons is refused (NS209): read the layer under test through a global average
        # (spatial) or an add of it with itself (flat), which the tests do not look at
        spatial = entries[-1]["type"] != "flatten"
        entries.append({"name": "readout", "type": "global_avgpool2d" if spatial else "add",
                        "inputs": [entries[-1]["name"]] * (1 if spatial else 2), "normalization": {"lambda": 1.0},
                        **({} if spatial else {"activation": "relu"})})
    inp = {"shape": list(in_shape), "range": [lo, hi], "encoding": encoding}
    if encoding == "poisson":
        inp.update(max_rate="1000 Hz", seed=0)
    doc = {"netspec": 1, "name": "t", "weights": {"file": "w.npz", "sha256": sha}, "input": inp,
           "simulation": {"dt": "1 ms", "duration": "10 ms"}, "layers": entries}
    return load_spec_data(doc, tmp_path)


def same_geometry(size, k, s):
    """TensorFlow's 'same' padding, written out independently of netspec.spec.layers.conv_geometry."""
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2


def geometry(size, k, s, padding):
    return same_geometry(size, k, s) if padding == "same" else ((size - k) // s + 1, 0)


def naive_windows(x, k, s, padding):
    """Yield (i, j, rows, cols) of every output position with the in-bounds input rows/columns."""
    n, h, w, c = x.shape
    oh, top = geometry(h, k[0], s[0], padding)
    ow, left = geometry(w, k[1], s[1], padding)
    for i in range(oh):
        for j in range(ow):
            rows = [i * s[0] - top + a for a in range(k[0])]
            cols = [j * s[1] - left + b for b in range(k[1])]
            yield i, j, rows, cols, (oh, ow)


def naive_conv(x, kernel, s, padding):
    kh, kw, c, f = kernel.shape
    out = None
    for i, j, rows, cols, (oh, ow) in naive_windows(x, (kh, kw), s, padding):
        if out is None:
            out = np.zeros((x.shape[0], oh, ow, f))
        for a, r in enumerate(rows):
            for b, q in enumerate(cols):
                if 0 <= r < x.shape[1] and 0 <= q < x.shape[2]:
                    out[:, i, j, :] += x[:, r, q, :] @ kernel[a, b]
    return out


def naive_depthwise(x, kernel, s, padding):
    kh, kw, c, m = kernel.shape
    out = None
    for i, j, rows, cols, (oh, ow) in naive_windows(x, (kh, kw), s, padding):
        if out is None:
            out = np.zeros((x.shape[0], oh, ow, c * m))
        for a, r in enumerate(rows):
            for b, q in enumerate(cols):
                if 0 <= r < x.shape[1] and 0 <= q < x.shape[2]:
                    for ch in range(c):
                        for mm in range(m):
                            out[:, i, j, ch * m + mm] += x[:, r, q, ch] * kernel[a, b, ch, mm]
    return out


def naive_pool(x, k, s, padding, kind):
    out = None
    for i, j, rows, cols, (oh, ow) in naive_windows(x, k, s, padding):
        if out is None:
            out = np.zeros((x.shape[0], oh, ow, x.shape[3]))
        vals = [x[:, r, q, :] for r in rows for q in cols if 0 <= r < x.shape[1] and 0 <= q < x.shape[2]]
        out[:, i, j, :] = np.max(vals, axis=0) if kind == "max" else np.mean(vals, axis=0)
    return out


CONV_CASES = [  # (input H, W), kernel, strides, padding
    ((7, 6), (3, 3), (1, 1), "valid"),
    ((7, 6), (3, 3), (1, 1), "same"),
    ((7, 6), (4, 2), (2, 2), "same"),  # asymmetric padding: one row above, two below
    ((8, 7), (3, 5), (2, 3), "same"),
    ((8, 7), (2, 3), (3, 2), "valid"),
]


# -- numpy-only tests -------------------------------------------------------------------------------
@pytest.mark.parametrize("hw,k,s,pad", CONV_CASES)
def test_conv2d_matches_loops(tmp_path, hw, k, s, pad):
    x = RNG.normal(size=(3, *hw, 2))
    kernel, bias = RNG.normal(size=(*k, 2, 4)), RNG.normal(size=4)
    layer = {"name": "c", "type": "conv2d", "filters": 4, "kernel_size": list(k), "strides": list(s), "padding": pad,
             "kernel": "c/kernel", "bias": "c/bias", "activation": "linear"}
    spec = make_spec(tmp_path, (*hw, 2), [layer], {"c/kernel": kernel, "c/bias": bias})
    got = forward(spec, x)["c"]
    want = naive_conv(x, kernel.astype(np.float32).astype(np.float64), s, pad) + bias.astype(np.float32)
    assert got.shape == want.shape == (3, *spec.shapes["c"])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("hw,k,s,pad", CONV_CASES)
def test_depthwise_matches_loops(tmp_path, hw, k, s, pad):
    x = RNG.normal(size=(2, *hw, 3))
    kernel = RNG.normal(size=(*k, 3, 2))
    layer = {"name": "d", "type": "depthwise_conv2d", "kernel_size": list(k), "strides": list(s), "padding": pad,
             "depth_multiplier": 2, "kernel": "d/kernel", "activation": "relu"}
    spec = make_spec(tmp_path, (*hw, 3), [layer], {"d/kernel": kernel})
    want = np.maximum(naive_depthwise(x, kernel.astype(np.float32).astype(np.float64), s, pad), 0)
    np.testing.assert_allclose(forward(spec, x)["d"], want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("hw,k,s,pad", CONV_CASES)
def test_pooling_matches_loops(tmp_path, kind, hw, k, s, pad):
    x = RNG.uniform(size=(2, *hw, 3))
    layer = {"name": "p", "type": f"{kind}pool2d", "pool_size": list(k), "strides": list(s), "padding": pad}
    spec = make_spec(tmp_path, (*hw, 3), [layer], {}, encoding="poisson", lo=0.0)
    np.testing.assert_allclose(forward(spec, x)["p"], naive_pool(x, k, s, pad, kind), rtol=1e-12)


def test_avgpool_same_excludes_padding(tmp_path):
    x = np.ones((1, 3, 3, 1))
    layer = {"name": "p", "type": "avgpool2d", "pool_size": [2, 2], "strides": [2, 2], "padding": "same"}
    spec = make_spec(tmp_path, (3, 3, 1), [layer], {}, encoding="poisson", lo=0.0)
    np.testing.assert_array_equal(forward(spec, x)["p"], np.ones((1, 2, 2, 1)))  # not 0.5 or 0.25 at the edges


def test_routing_layers_and_residual(tmp_path):
    """zeropad, concatenate (channels), flatten order, a linear conv summed into a relu add, global pooling."""
    k1, b1 = RNG.normal(size=(3, 3, 2, 2)), RNG.normal(size=2)
    k2 = RNG.normal(size=(1, 1, 2, 2))
    w, b = RNG.normal(size=(4 * 5 * 4, 3)), RNG.normal(size=3)
    layers = [
        {"name": "pad", "type": "zeropad2d", "padding": [[1, 0], [0, 2]]},
        {"name": "c1", "type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "same", "kernel": "c1/k", "bias": "c1/b", "activation": "relu"},
        {"name": "c2", "type": "conv2d", "inputs": ["c1"], "filters": 2, "kernel_size": 1, "kernel": "c2/k", "activation": "linear"},
        {"name": "sum", "type": "add", "inputs": ["c1", "c2"], "activation": "relu"},
        {"name": "cat", "type": "concatenate", "inputs": ["sum", "c1"]},
        {"name": "flat", "type": "flatten"},
        {"name": "out", "type": "dense", "units": 3, "kernel": "out/k", "bias": "out/b", "activation": "softmax"},
    ]
    spec = make_spec(tmp_path, (3, 3, 2), layers, {"c1/k": k1, "c1/b": b1, "c2/k": k2, "out/k": w, "out/b": b})
    x = RNG.normal(size=(4, 3, 3, 2))
    acts = forward(spec, x)
    f32 = lambda a: a.astype(np.float32).astype(np.float64)  # noqa: E731
    pad = np.zeros((4, 4, 5, 2))
    pad[:, 1:, :3] = x
    np.testing.assert_array_equal(acts["pad"], pad)
    c1 = np.maximum(naive_conv(pad, f32(k1), (1, 1), "same") + f32(b1), 0)
    np.testing.assert_allclose(acts["c1"], c1, rtol=1e-10, atol=1e-12)
    c2 = naive_conv(c1, f32(k2), (1, 1), "valid")
    np.testing.assert_allclose(acts["c2"], c2, rtol=1e-10, atol=1e-12)  # linear: negative values kept
    assert (acts["c2"] < 0).any()
    np.testing.assert_allclose(acts["sum"], np.maximum(c1 + c2, 0), rtol=1e-10, atol=1e-12)
    cat = np.concatenate([acts["sum"], acts["c1"]], axis=-1)
    np.testing.assert_array_equal(acts["cat"], cat)
    flat = np.array([[cat[n, i, j, c] for i in range(4) for j in range(5) for c in range(4)] for n in range(4)])
    np.testing.assert_array_equal(acts["flat"], flat)
    z = flat @ f32(w) + f32(b)
    soft = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(acts["out"], soft, rtol=1e-10)
    np.testing.assert_allclose(forward(spec, x, logits=True)["out"], z, rtol=1e-10)
    np.testing.assert_array_equal(predict(spec, x, batch=3), np.argmax(z, axis=1))
    # preactivation is the linear part
    np.testing.assert_allclose(preactivation(spec, "out", [flat]), z, rtol=1e-10)
    np.testing.assert_allclose(preactivation(spec, spec.layer("sum"), [c1, c2]), c1 + c2, rtol=1e-12)


def test_normalized_convention(tmp_path):
    w1, w2 = RNG.normal(size=(4, 5)), RNG.normal(size=(5, 3))
    layers = [
        {"name": "h", "type": "dense", "units": 5, "kernel": "h/k", "activation": "relu", "normalization": {"lambda": 2.0}},
        {"name": "o", "type": "dense", "units": 3, "kernel": "o/k", "activation": "softmax", "normalization": {"lambda": 4.0}},
    ]
    spec = make_spec(tmp_path, (4,), layers, {"h/k": w1, "o/k": w2})
    x = RNG.normal(size=(6, 4))
    for logits in (False, True):
        acts = forward(spec, x, logits=logits)
        rates = normalized(spec, acts)
        h = np.maximum(x @ w1.astype(np.float32), 0)
        np.testing.assert_allclose(rates["h"], h / 2.0, rtol=1e-6)
        np.testing.assert_allclose(rates["o"], np.maximum(h @ w2.astype(np.float32), 0) / 4.0, rtol=1e-6)
        np.testing.assert_array_equal(rates["x"], x)


def test_normalized_concatenate_uses_branch_lambdas(tmp_path):
    layers = [
        {"name": "a", "type": "dense", "inputs": ["x"], "units": 2, "kernel": "a/k", "activation": "relu", "normalization": {"lambda": 2.0}},
        {"name": "b", "type": "dense", "inputs": ["x"], "units": 1, "kernel": "b/k", "activation": "relu", "normalization": {"lambda": 5.0}},
        {"name": "cat", "type": "concatenate", "inputs": ["a", "b"]},
        {"name": "o", "type": "dense", "units": 2, "kernel": "o/k", "activation": "linear", "normalization": {"lambda": 1.0}},
    ]
    spec = make_spec(tmp_path, (3,), layers, {"a/k": RNG.normal(size=(3, 2)), "b/k": RNG.normal(size=(3, 1)), "o/k": RNG.normal(size=(3, 2))})
    acts = forward(spec, RNG.normal(size=(5, 3)))
    rates = normalized(spec, acts)
    np.testing.assert_allclose(rates["cat"], np.concatenate([acts["a"] / 2.0, acts["b"] / 5.0], axis=1))


def test_quantized_clip_floor_shift(tmp_path):
    """levels: clip * clamp(floor(z*levels/clip + 1/2)/levels, 0, 1), on a grid of pre-activations that crosses
    every step's edge (and both ends)."""
    clip, levels = 1.5, 4
    layers = [{"name": "q", "type": "dense", "units": 1, "kernel": "q/k", "activation": "relu", "clip": clip,
               "levels": levels, "normalization": {"lambda": clip, "method": "clip"}},
              {"name": "o", "type": "dense", "units": 1, "kernel": "o/k", "activation": "linear"}]
    spec = make_spec(tmp_path, (1,), layers, {"q/k": np.ones((1, 1)), "o/k": np.ones((1, 1))}, lo=-1.0)
    z = np.linspace(-0.5, 2.0, 101)[:, None]
    got = forward(spec, z)["q"][:, 0]
    step = clip / levels
    want = [0.0 if v < step / 2 else min(clip, step * np.floor(v / step + 0.5)) for v in z[:, 0]]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert set(np.round(got / step, 9)) == {0.0, 1.0, 2.0, 3.0, 4.0}


def test_forward_rejects_wrong_shape(tmp_path):
    spec = make_spec(tmp_path, (4,), [{"name": "o", "type": "dense", "units": 1, "kernel": "o/k", "activation": "linear"}], {"o/k": np.ones((4, 1))})
    with pytest.raises(NetspecError) as e:
        forward(spec, np.zeros((2, 5)))
    assert str(e.value) == "reference: inputs have shape [2, 5], the spec 't' expects [N, 4]"


def test_example_specs_run():
    """The shipped examples: reference output is a probability distribution and predict agrees."""
    from netspec.spec import load_spec

    root = os.path.join(os.path.dirname(__file__), "..", "specs")
    for name in ("tiny-dense.yaml", "small-conv.yaml"):
        spec = load_spec(os.path.join(root, name))
        x = RNG.uniform(size=(5, *spec.input.shape))
        out = forward(spec, x)[spec.order[-1]]
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-12)
        np.testing.assert_array_equal(predict(spec, x), out.argmax(axis=1))


# -- against Keras ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keras(keras_lib):
    return keras_lib


def keras_case(keras, name):
    """(Keras layer, input shape, spec layer entry, tensors from the layer's weights)."""
    L = keras.layers
    cases = {
        "dense": (L.Dense(5, activation="relu"), (6,), {"type": "dense", "units": 5, "activation": "relu"}),
        "conv_valid": (L.Conv2D(3, 3), (7, 6, 2), {"type": "conv2d", "filters": 3, "kernel_size": 3, "activation": "linear"}),
        "conv_same_s2": (L.Conv2D(3, (4, 2), strides=2, padding="same", activation="relu"), (7, 6, 2),
                         {"type": "conv2d", "filters": 3, "kernel_size": [4, 2], "strides": 2, "padding": "same", "activation": "relu"}),
        "conv_nobias": (L.Conv2D(2, 3, strides=(2, 3), padding="same", use_bias=False), (8, 7, 2),
                        {"type": "conv2d", "filters": 2, "kernel_size": 3, "strides": [2, 3], "padding": "same", "activation": "linear"}),
        "depthwise": (L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2), (7, 6, 3),
                      {"type": "depthwise_conv2d", "kernel_size": 3, "strides": 2, "padding": "same", "depth_multiplier": 2, "activation": "linear"}),
        "maxpool_same": (L.MaxPooling2D(3, strides=2, padding="same"), (7, 6, 2), {"type": "maxpool2d", "pool_size": 3, "strides": 2, "padding": "same"}),
        "avgpool_same": (L.AveragePooling2D(3, strides=2, padding="same"), (7, 6, 2), {"type": "avgpool2d", "pool_size": 3, "strides": 2, "padding": "same"}),
        "avgpool_valid": (L.AveragePooling2D(2), (7, 6, 2), {"type": "avgpool2d", "pool_size": 2}),
        "global_avg": (L.GlobalAveragePooling2D(), (5, 4, 3), {"type": "global_avgpool2d"}),
        "zeropad": (L.ZeroPadding2D(((1, 2), (0, 3))), (3, 4, 2), {"type": "zeropad2d", "padding": [[1, 2], [0, 3]]}),
        "flatten": (L.Flatten(), (3, 4, 2), {"type": "flatten"}),
        "softmax_dense": (L.Dense(4, activation="softmax"), (6,), {"type": "dense", "units": 4, "activation": "softmax"}),
        # ReLU(max_value): relu with a clip (MobileNet's ReLU6)
        "relu6": (keras.Sequential([L.Dense(5), L.ReLU(max_value=6.0)]), (6,),
                  {"type": "dense", "units": 5, "activation": "relu", "clip": 6.0}),
    }
    layer, shape, entry = cases[name]
    return layer, shape, entry


@pytest.mark.keras
@pytest.mark.parametrize("name", ["dense", "conv_valid", "conv_same_s2", "conv_nobias", "depthwise", "maxpool_same",
                                  "avgpool_same", "avgpool_valid", "global_avg", "zeropad", "flatten", "softmax_dense", "relu6"])
def test_layer_matches_keras(tmp_path, keras, name):
    layer, shape, entry = keras_case(keras, name)
    inp = keras.Input(shape)
    model = keras.Model(inp, layer(inp))
    tensors = {}
    for var in layer.weights:
        key = var.path.split("/")[-1]
        value = np.asarray(var.numpy())
        if key == "bias":
            value = RNG.normal(size=value.shape)  # non-zero biases
            var.assign(value.astype(np.float32))
        tensors[f"l/{key}"] = value
        entry[key] = f"l/{key}"
    needs_poisson = LAYER_TYPES[entry["type"]].analog is not Analog.DRIVEN
    layers = [{"name": "l", **entry}]
    if "clip" in entry:  # a clip applies to a hidden layer: read it through an output layer
        layers.append({"name": "o", "type": "dense", "units": 1, "kernel": "o/k", "activation": "linear"})
        tensors["o/k"] = np.ones((entry["units"], 1))
    spec = make_spec(tmp_path, shape, layers, tensors,
                     encoding="poisson" if needs_poisson else "analog", lo=0.0 if needs_poisson else -1.0)
    x = RNG.uniform(0 if needs_poisson else -1, 1, size=(64 if "clip" in entry else 8, *shape)).astype(np.float32)
    x *= 8 if "clip" in entry else 1  # the clip case: values on both sides of the clip
    want = np.asarray(model(x, training=False))
    if "clip" in entry:
        assert (want == entry["clip"]).any() and (want == 0).any() and ((want > 0) & (want < 6)).any()
    got = forward(spec, x)["l"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * max(1.0, np.abs(want).max()))


@pytest.mark.keras
def test_concatenate_and_add_match_keras(tmp_path, keras):
    L = keras.layers
    inp = keras.Input((5, 5, 2))
    a = L.Conv2D(3, 3, padding="same", activation="relu", name="a")(inp)
    b = L.Conv2D(3, 1, name="b")(a)
    s = L.ReLU()(L.Add()([a, b]))
    c = L.Concatenate()([s, a])
    model = keras.Model(inp, c)
    ws = {f"{l.name}/{v.path.split('/')[-1]}": v.numpy() for l in (model.get_layer("a"), model.get_layer("b")) for v in l.weights}
    layers = [
        {"name": "a", "type": "conv2d", "filters": 3, "kernel_size": 3, "padding": "same", "kernel": "a/kernel", "bias": "a/bias", "activation": "relu"},
        {"name": "b", "type": "conv2d", "filters": 3, "kernel_size": 1, "kernel": "b/kernel", "bias": "b/bias", "activation": "linear"},
        {"name": "s", "type": "add", "inputs": ["a", "b"], "activation": "relu"},
        {"name": "c", "type": "concatenate", "inputs": ["s", "a"]},
    ]
    spec = make_spec(tmp_path, (5, 5, 2), layers, ws)
    x = RNG.normal(size=(4, 5, 5, 2)).astype(np.float32)
    want = np.asarray(model(x, training=False))
    np.testing.assert_allclose(forward(spec, x)["c"], want, rtol=1e-5, atol=1e-6)
