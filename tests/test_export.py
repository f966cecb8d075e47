"""netspec.export: Keras models -> specs. The reference of the exported spec reproduces the Keras model,
BN folding is exact, λ equals a percentile recomputed from Keras' own intermediate outputs, and every
unsupported construct is refused by name with nothing written."""
from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from netspec.cli import main as cli
from netspec.errors import NetspecError
from netspec.export import export_model
from netspec.export.fold import bn_scale_shift, fold_bn
from netspec.export.normalize import TopValues
from netspec.reference import forward
from netspec.spec import load_spec

pytestmark = pytest.mark.keras
RNG = np.random.default_rng(7)


@pytest.fixture(scope="module")
def keras(keras_lib):
    keras = keras_lib
    keras.utils.set_random_seed(3)
    return keras


def randomize(keras, model):
    """Non-trivial BN statistics and non-zero biases, so that folding has something to get wrong."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape[0]
            values = {"gamma": RNG.uniform(0.5, 1.5, c), "beta": RNG.normal(0, 0.3, c),
                      "moving_mean": RNG.normal(0, 0.3, c), "moving_variance": RNG.uniform(0.3, 2.0, c)}
            for name, value in values.items():
                var = getattr(layer, name)
                if var is not None:
                    var.assign(value.astype(np.float32))
        elif getattr(layer, "bias", None) is not None:
            layer.bias.assign(RNG.normal(0, 0.2, layer.bias.shape).astype(np.float32))
    return model


def export(tmp_path, model, x, name="net", fmt="keras", **kw):
    """Export with the paper's λ per layer unless ``kw`` says otherwise (these tests are about λ; the low-latency
    defaults are tests/test_export_calibrate.py's)."""
    kw = {"method": "percentile", **kw}
    model.save(tmp_path / f"m.{fmt}")
    np.savez(tmp_path / "cal.npz", x=x)
    out = export_model(tmp_path / f"m.{fmt}", tmp_path / f"{name}.yaml", tmp_path / "cal.npz", progress=False, **kw)
    assert out == tmp_path / f"{name}.yaml"
    assert cli(["validate", str(out)]) == 0
    return load_spec(out)


def assert_reproduces(spec, model, x):
    want = np.asarray(model.predict(x, verbose=0), dtype=np.float64)
    got = forward(spec, x)[spec.order[-1]]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * max(1.0, float(np.abs(want).max())))


def files(tmp_path) -> set[str]:
    return {p.name for p in tmp_path.iterdir()}


# -- whole models ---------------------------------------------------------------------------------
def lenet(keras):
    L = keras.layers
    return keras.Sequential([
        keras.Input((12, 12, 1)),
        L.Conv2D(4, 3, use_bias=False, name="c1"), L.BatchNormalization(name="bn1"), L.ReLU(name="r1"),
        L.MaxPooling2D(name="p1"),
        L.Conv2D(6, 3, strides=2, padding="same", name="c2"), L.BatchNormalization(name="bn2"), L.Activation("relu", name="r2"),
        L.Flatten(name="flat"), L.Dropout(0.5, name="drop"),
        L.Dense(8, activation="relu", name="d1"), L.GaussianNoise(0.1), L.Dense(3, name="d2"), L.Softmax(name="sm"),
    ], name="lenet")


def percentile_of(values, p=99.9, strict=True):
    v = values.ravel()
    return float(np.percentile(v[v > 0] if strict else v[v >= 0], p))


def test_sequential_lenet(tmp_path, keras):
    model = randomize(keras, lenet(keras))
    x = RNG.uniform(0, 1, (40, 12, 12, 1)).astype(np.float32)
    spec = export(tmp_path, model, x)
    assert [l.type for l in spec.layers] == ["input", "conv2d", "maxpool2d", "conv2d", "flatten", "dense", "dense"]
    assert [l.name for l in spec.layers][1:] == ["c1", "p1", "c2", "flat", "d1", "d2"]
    assert spec.layer("d2").activation == "softmax" and spec.layer("c2").activation == "relu"
    assert_reproduces(spec, model, x)
    # λ: numpy percentile of Keras' own intermediate outputs
    K = keras.Model(model.inputs, [model.get_layer(n).output for n in ("r1", "r2", "d1", "d2")])
    r1, r2, d1, logits = (np.asarray(a) for a in K.predict(x, verbose=0))
    assert spec.source["normalization"] == {"method": "percentile", "percentile": 99.9}  # said once, for all layers
    for name, acts, strict in (("c1", r1, True), ("c2", r2, True), ("d1", d1, True), ("d2", logits, False)):
        norm = spec.layer(name).normalization
        assert (norm.method, norm.percentile, norm.samples) == (None, None, None)
        assert norm.lam == pytest.approx(percentile_of(acts, strict=strict), rel=1e-5)
    assert spec.layer("p1").normalization is None and spec.lam("p1") == spec.lam("c1")
    assert spec.input.range == (0.0, float(x.max()))
    assert spec.source["calibration"]["sha256"] == hashlib.sha256((tmp_path / "cal.npz").read_bytes()).hexdigest()
    assert spec.source["calibration"]["samples"] == 40 and spec.source["model"] == "m.keras"
    assert spec.weights.file == "net.npz" and spec.name == "net"
    assert files(tmp_path) == {"m.keras", "cal.npz", "net.yaml", "net.npz"}


def test_bn_folding_exact(tmp_path, keras):
    model = randomize(keras, lenet(keras))
    x = RNG.uniform(0, 1, (8, 12, 12, 1)).astype(np.float32)
    spec = export(tmp_path, model, x)
    bn = model.get_layer("bn2")
    conv = model.get_layer("c2")
    s = bn.gamma.numpy() / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
    want_k = conv.kernel.numpy() * s
    want_b = bn.beta.numpy() + (conv.bias.numpy() - bn.moving_mean.numpy()) * s
    np.testing.assert_allclose(spec.array("c2", "kernel"), want_k, rtol=1e-6)
    np.testing.assert_allclose(spec.array("c2", "bias"), want_b, rtol=1e-5, atol=1e-7)
    # c1 has no bias of its own: folding creates one
    bn1 = model.get_layer("bn1")
    s1 = bn1.gamma.numpy() / np.sqrt(bn1.moving_variance.numpy() + bn1.epsilon)
    np.testing.assert_allclose(spec.array("c1", "bias"), bn1.beta.numpy() - bn1.moving_mean.numpy() * s1, rtol=1e-5, atol=1e-7)


def test_fold_depthwise_channel_order():
    k = RNG.normal(size=(3, 3, 2, 3))
    scale, shift = bn_scale_shift(RNG.uniform(0.5, 2, 6), RNG.normal(size=6), RNG.normal(size=6), RNG.uniform(0.5, 2, 6), 1e-3)
    k2, b2 = fold_bn("depthwise_conv2d", k, None, scale, shift)
    for c in range(2):
        for m in range(3):
            np.testing.assert_allclose(k2[:, :, c, m], k[:, :, c, m] * scale[c * 3 + m], rtol=1e-6)
    np.testing.assert_allclose(b2, shift, rtol=1e-6)


def inception(keras):
    L = keras.layers
    inp = keras.Input((9, 9, 2), name="image")
    z = L.ZeroPadding2D(((1, 0), (2, 1)), name="zp")(inp)
    stem = L.Conv2D(4, 3, activation="relu", name="stem")(z)
    a = L.Conv2D(3, 1, activation="relu", name="a1")(stem)
    b = L.ReLU(name="rb")(L.BatchNormalization(name="bnb")(L.Conv2D(3, 3, padding="same", name="b1")(stem)))
    c = L.Conv2D(2, 1, activation="relu", name="c1")(L.MaxPooling2D(3, strides=1, padding="same", name="pc")(stem))
    cat = L.Concatenate(name="cat")([a, b, c])
    res = L.BatchNormalization(name="bnr")(L.Conv2D(8, 3, padding="same", name="res")(cat))
    s = L.ReLU(name="radd")(L.Add(name="add")([res, cat]))
    d = L.ReLU(name="rd")(L.BatchNormalization(name="bnd")(L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, name="dw")(s)))
    p = L.AveragePooling2D(2, strides=1, padding="same", name="ap")(d)
    g = L.GlobalAveragePooling2D(name="gap")(p)
    out = L.Dense(4, activation="softmax", name="out")(L.Dropout(0.2)(g))
    return keras.Model(inp, out, name="inception")


def test_functional_branches_residual(tmp_path, keras):
    model = randomize(keras, inception(keras))
    x = RNG.uniform(-0.5, 1, (24, 9, 9, 2)).astype(np.float32)
    spec = export(tmp_path, model, x, percentile=99.0)
    assert spec.layer("res").activation == "linear" and spec.layer("add").activation == "relu"
    assert spec.layer("cat").inputs == ("a1", "b1", "c1") and spec.layer("add").inputs == ("res", "cat")
    assert spec.input.range == (float(x.min()), float(x.max()))
    assert_reproduces(spec, model, x)
    names = {"stem": "stem", "a1": "a1", "b1": "rb", "c1": "c1", "add": "radd", "dw": "rd", "ap": "ap", "gap": "gap"}
    K = keras.Model(model.inputs, [model.get_layer(k).output for k in names.values()])
    outs = dict(zip(names, (np.asarray(a) for a in K.predict(x, verbose=0))))
    for name, acts in outs.items():
        assert spec.layer(name).normalization.lam == pytest.approx(percentile_of(acts, 99.0), rel=1e-5), name
    dense = model.get_layer("out")
    logits = outs["gap"] @ dense.kernel.numpy() + dense.bias.numpy()
    assert spec.layer("out").normalization.lam == pytest.approx(percentile_of(logits, 99.0, strict=False), rel=1e-5)
    assert spec.layer("res").normalization.lam == spec.layer("add").normalization.lam  # linear branch: its add's λ
    assert spec.layer("cat").normalization is None and spec.layer("zp").normalization is None


def test_max_method_and_cli(tmp_path, keras, capsys):
    model = randomize(keras, lenet(keras))
    x = RNG.uniform(0, 1, (30, 12, 12, 1)).astype(np.float32)
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "cal.npz", x_train=x, y_train=np.zeros(30, dtype=int))
    rc = cli(["export", str(tmp_path / "m.keras"), "-o", str(tmp_path / "l.yaml"), "--calibration", str(tmp_path / "cal.npz"),
              "--normalization", "max", "--samples", "20", "--input-encoding", "poisson", "--duration", "50 ms"])
    assert rc == 0
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'l.yaml'} and l.npz: 7 layers")
    spec = load_spec(tmp_path / "l.yaml")
    assert spec.input.encoding == "poisson" and spec.input.max_rate.text == "1000 Hz" and spec.input.seed == 0
    assert spec.simulation.duration.text == "50 ms" and spec.simulation.dt.text == "1 ms"
    K = keras.Model(model.inputs, model.get_layer("r2").output)
    r2 = np.asarray(K.predict(x[:20], verbose=0))
    assert spec.source["normalization"] == {"method": "max"} and spec.source["calibration"]["samples"] == 20
    norm = spec.layer("c2").normalization
    assert (norm.method, norm.percentile, norm.samples) == (None, None, None)
    assert norm.lam == pytest.approx(float(r2.max()), rel=1e-5)


def test_export_is_deterministic_and_h5(tmp_path, keras):
    model = randomize(keras, lenet(keras))
    x = RNG.uniform(0, 1, (10, 12, 12, 1)).astype(np.float32)
    a = export(tmp_path, model, x, name="a")
    b = export(tmp_path, model, x, name="b")
    assert a.weights.sha256 == b.weights.sha256
    h5 = export(tmp_path, model, x, name="h", fmt="h5")
    assert h5.source["model"] == "m.h5"
    assert_reproduces(h5, model, x)


SINGLE = {  # layer -> (input shape, encoding)
    "dense": (lambda L: L.Dense(5, activation="relu"), (6,), "analog"),
    "conv_same_s2": (lambda L: L.Conv2D(3, (4, 2), strides=2, padding="same", use_bias=False), (7, 6, 2), "analog"),
    "depthwise": (lambda L: L.DepthwiseConv2D(3, padding="same", depth_multiplier=3), (5, 5, 2), "analog"),
    "maxpool_same": (lambda L: L.MaxPooling2D(3, strides=2, padding="same"), (7, 6, 2), "poisson"),
    "avgpool_same": (lambda L: L.AveragePooling2D(3, strides=2, padding="same"), (7, 6, 2), "analog"),
    "global_avg": (lambda L: L.GlobalAveragePooling2D(), (4, 5, 3), "analog"),
    "zeropad": (lambda L: L.ZeroPadding2D(((2, 0), (1, 3))), (3, 4, 2), "analog"),
    "flatten": (lambda L: L.Flatten(), (3, 4, 2), "analog"),
    "crop": (lambda L: L.Cropping2D(((1, 0), (2, 1))), (4, 5, 2), "analog"),
}


#: Kinds without neurons: a model cannot end with them (NS209), so their case reads them through one more layer.
NO_NEURONS = {"flatten": lambda L: L.Dense(3), "maxpool_same": lambda L: L.GlobalAveragePooling2D(),
              "zeropad": lambda L: L.GlobalAveragePooling2D(), "crop": lambda L: L.GlobalAveragePooling2D()}


@pytest.mark.parametrize("case", sorted(SINGLE))
def test_single_layer(tmp_path, keras, case):
    make, shape, encoding = SINGLE[case]
    inp = keras.Input(shape)
    out = make(keras.layers)(inp)
    if case in NO_NEURONS:
        out = NO_NEURONS[case](keras.layers)(out)
    model = randomize(keras, keras.Model(inp, out))
    x = RNG.uniform(0, 1, (6, *shape)).astype(np.float32)
    spec = export(tmp_path, model, x, encoding=encoding)
    assert len(spec.layers) == (3 if case in NO_NEURONS else 2)
    assert_reproduces(spec, model, x)


def test_output_without_neurons_is_refused_by_name(tmp_path, keras):
    """A model ending in a layer without neurons exported without complaint and then could not be built (found by
    tests/property); the validator's refusal names the layer, and nothing is written."""
    inp = keras.Input((4, 4, 1))
    model = keras.Model(inp, keras.layers.Flatten(name="flat")(keras.layers.Conv2D(2, 2, activation="relu")(inp)))
    with pytest.raises(NetspecError) as e:
        export(tmp_path, model, RNG.uniform(size=(3, 4, 4, 1)))
    assert str(e.value) == (f"{tmp_path / 'net.yaml'}: the output layer 'flat' is flatten, which has no neurons to read "
                            "out; end the network with a layer that has them (dense, conv2d, depthwise_conv2d, avgpool2d, "
                            "global_avgpool2d, add)")
    assert files(tmp_path) == {"m.keras", "cal.npz"}


def test_analog_input_into_maxpool_is_explained(tmp_path, keras):
    inp = keras.Input((4, 4, 1))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.MaxPooling2D()(inp))))
    with pytest.raises(NetspecError) as e:
        export(tmp_path, model, RNG.uniform(size=(3, 4, 4, 1)))
    assert "(use poisson encoding)" in str(e.value)
    assert files(tmp_path) == {"m.keras", "cal.npz"}


# -- refusals -------------------------------------------------------------------------------------
def _seq(keras, *layers, shape=(6, 6, 2)):
    return keras.Sequential([keras.Input(shape), *layers])


REFUSALS = {
    "unknown layer": (lambda k, L: _seq(k, L.LayerNormalization(name="ln"), L.Flatten(), L.Dense(2)),
                      "layer 'ln' (LayerNormalization): this layer type is not supported"),
    "relu6 after pool": (lambda k, L: _seq(k, L.Conv2D(2, 3, activation="relu"), L.MaxPooling2D(name="p"), L.ReLU(max_value=6.0, name="r"), L.Flatten(), L.Dense(2)),
                         "layer 'r' (ReLU): cannot apply relu clipped at 6 to the layer before it: 'p' (maxpool2d) has no relu of its own to clip"),
    "leaky": (lambda k, L: _seq(k, L.Conv2D(2, 3), L.ReLU(negative_slope=0.1, name="r"), L.Flatten(), L.Dense(2)),
              "layer 'r' (ReLU): ReLU with negative_slope=0.1 is not supported"),
    "threshold": (lambda k, L: _seq(k, L.Conv2D(2, 3), L.ReLU(threshold=0.5, name="r"), L.Flatten(), L.Dense(2)),
                  "layer 'r' (ReLU): ReLU with threshold=0.5 is not supported"),
    "bn after pool": (lambda k, L: _seq(k, L.Conv2D(2, 3, activation="relu"), L.MaxPooling2D(name="p"), L.BatchNormalization(name="bn"), L.Flatten(), L.Dense(2)),
                      "layer 'bn' (BatchNormalization): cannot fold this BatchNormalization: it follows maxpool2d layer 'p'"),
    "bn after relu": (lambda k, L: _seq(k, L.Conv2D(2, 3, activation="relu", name="c"), L.BatchNormalization(name="bn"), L.Flatten(), L.Dense(2)),
                      "layer 'bn' (BatchNormalization): cannot fold this BatchNormalization: 'c' already applies activation 'relu'"),
    "bn shared output": (lambda k, L: _bn_shared(k, L), "layer 'c' (Conv2D): it has no activation (linear) and feeds flatten layer 'f2'"),
    "tanh": (lambda k, L: _seq(k, L.Flatten(), L.Dense(4, activation="tanh", name="d"), L.Dense(2)),
             "layer 'd' (Dense): activation 'tanh' is not supported"),
    "sigmoid layer": (lambda k, L: _seq(k, L.Flatten(), L.Dense(4), L.Activation("sigmoid", name="a"), L.Dense(2)),
                      "layer 'a' (Activation): activation 'sigmoid' is not supported"),
    "channels_first": (lambda k, L: _seq(k, L.Conv2D(2, 3, data_format="channels_first", name="c"), L.Flatten(), L.Dense(2), shape=(2, 6, 6)),
                       "layer 'c' (Conv2D): data_format 'channels_first' is not supported"),
    "dilation": (lambda k, L: _seq(k, L.Conv2D(2, 3, dilation_rate=2, name="c"), L.Flatten(), L.Dense(2)),
                 "layer 'c' (Conv2D): dilation_rate [2, 2] is not supported"),
    "groups": (lambda k, L: _seq(k, L.Conv2D(2, 3, groups=2, name="c"), L.Flatten(), L.Dense(2)),
               "layer 'c' (Conv2D): groups=2 is not supported"),
    "hidden softmax": (lambda k, L: _seq(k, L.Flatten(), L.Dense(4, activation="softmax", name="d"), L.Dense(2)),
                       "layer 'd' (Dense): softmax is only supported as the output layer's activation"),
    "softmax layer hidden": (lambda k, L: _seq(k, L.Flatten(), L.Dense(4), L.Softmax(name="s"), L.Dense(2)),
                             "layer 's' (Softmax): softmax is only supported as the output layer's activation"),
    "linear into pool": (lambda k, L: _seq(k, L.Conv2D(2, 3, name="c"), L.MaxPooling2D(), L.Flatten(), L.Dense(2)),
                         "layer 'c' (Conv2D): it has no activation (linear) and feeds maxpool2d layer"),
    "relu after flatten": (lambda k, L: _seq(k, L.Conv2D(2, 3), L.Flatten(name="f"), L.ReLU(name="r"), L.Dense(2)),
                           "layer 'r' (ReLU): cannot apply relu to the layer before it: 'f' (flatten) has no activation of its own"),
    "dense on image": (lambda k, L: _seq(k, L.Dense(3, name="d"), L.Flatten(), L.Dense(2)),
                       "layer 'd' (Dense): Dense on a [6, 6, 2] input (applied to the last axis) is not supported"),
    "concat on rows": (lambda k, L: _concat_axis(k, L), "layer 'cat' (Concatenate): Concatenate on axis 1 is not supported"),
    "shared layer": (lambda k, L: _shared(k, L), "layer 'shared' (Conv2D) is called more than once"),
    "backend op": (lambda k, L: _backend_op(k, L), "is a backend op, not a Keras layer"),
    "nested": (lambda k, L: _nested(k, L), "(Sequential) is a nested model"),
    "two inputs": (lambda k, L: _two_inputs(k, L), "has 2 inputs and 1 outputs"),
}


def _bn_shared(k, L):
    inp = k.Input((6, 6, 2))
    c = L.Conv2D(2, 3, name="c")(inp)
    a = L.Flatten(name="f1")(L.ReLU()(L.BatchNormalization(name="bn")(c)))
    b = L.Flatten(name="f2")(c)
    return k.Model(inp, L.Dense(2)(L.Concatenate()([a, b])))


def _concat_axis(k, L):
    inp = k.Input((6, 6, 2))
    a = L.Conv2D(2, 3, activation="relu")(inp)
    b = L.Conv2D(2, 3, activation="relu")(inp)
    return k.Model(inp, L.Dense(2)(L.Flatten()(L.Concatenate(axis=1, name="cat")([a, b]))))


def _shared(k, L):
    inp = k.Input((6, 6, 2))
    conv = L.Conv2D(2, 1, activation="relu", name="shared")
    return k.Model(inp, L.Dense(2)(L.Flatten()(conv(conv(inp)))))


def _backend_op(k, L):
    inp = k.Input((6, 6, 2))
    a = L.Conv2D(2, 1, activation="relu")(inp)
    return k.Model(inp, L.Dense(2)(L.Flatten()(k.ops.add(a, inp))))


def _nested(k, L):
    inner = k.Sequential([k.Input((6, 6, 2)), L.Conv2D(2, 3, activation="relu")], name="inner")
    inp = k.Input((6, 6, 2))
    return k.Model(inp, L.Dense(2)(L.Flatten()(inner(inp))))


def _two_inputs(k, L):
    a, b = k.Input((6, 6, 2)), k.Input((6, 6, 2))
    return k.Model([a, b], L.Dense(2)(L.Flatten()(L.Add()([a, b]))))


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusals(tmp_path, keras, case):
    make, expected = REFUSALS[case]
    model = make(keras, keras.layers)
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "cal.npz", x=RNG.uniform(size=(3, 6, 6, 2)).astype(np.float32))
    with pytest.raises(NetspecError) as e:
        export_model(tmp_path / "m.keras", tmp_path / "s.yaml", tmp_path / "cal.npz", progress=False)
    assert expected in str(e.value)
    if "layer '" in expected and "backend op" not in expected and "nested" not in expected and "called more than once" not in expected:
        assert "Supported: InputLayer, Dense, Conv2D" in str(e.value)
    assert files(tmp_path) == {"m.keras", "cal.npz"}


def test_bad_files(tmp_path, keras):
    np.savez(tmp_path / "cal.npz", x=RNG.uniform(size=(3, 6, 6, 2)).astype(np.float32))
    with pytest.raises(NetspecError) as e:
        export_model(tmp_path / "missing.keras", tmp_path / "s.yaml", tmp_path / "cal.npz", progress=False)
    assert str(e.value) == f"{tmp_path / 'missing.keras'}: model file not found"
    (tmp_path / "junk.keras").write_bytes(b"not a model")
    with pytest.raises(NetspecError) as e:
        export_model(tmp_path / "junk.keras", tmp_path / "s.yaml", tmp_path / "cal.npz", progress=False)
    assert str(e.value) == f"{tmp_path / 'junk.keras'}: not a Keras 3 model (a .keras file is a zip archive; this one is corrupt or something else)"
    (tmp_path / "junk.h5").write_bytes(b"not a model")
    with pytest.raises(NetspecError) as e:
        export_model(tmp_path / "junk.h5", tmp_path / "s.yaml", tmp_path / "cal.npz", progress=False)
    assert str(e.value).startswith(f"{tmp_path / 'junk.h5'}: cannot load the Keras model: ")
    model = lenet(keras)
    model.save(tmp_path / "m.keras")
    with pytest.raises(NetspecError) as e:
        export_model(tmp_path / "m.keras", tmp_path / "s.yaml", tmp_path / "cal.npz", progress=False)
    assert str(e.value) == f"{tmp_path / 'cal.npz'}: samples have shape [6, 6, 2], the model 'm.keras' expects [12, 12, 1]"
    with pytest.raises(NetspecError) as e:
        export_model(tmp_path / "m.keras", tmp_path / "s.yaml", tmp_path / "cal.npz", percentile=0, progress=False)
    assert str(e.value) == "--percentile: must be in (0, 100], got 0"
    with pytest.raises(NetspecError) as e:
        export_model(tmp_path / "m.keras", tmp_path / "s.yaml", tmp_path / "cal.npz", duration="5 mV", progress=False)
    assert str(e.value) == "--duration: expected a positive time such as '100 ms', got '5 mV'"
    assert files(tmp_path) == {"m.keras", "cal.npz", "junk.keras", "junk.h5"}


def test_silent_layer_is_reported(tmp_path, keras):
    L = keras.layers
    model = _seq(keras, L.Flatten(), L.Dense(3, activation="relu", name="dead"), L.Dense(2), shape=(2, 2, 1))
    dead = model.get_layer("dead")
    dead.bias.assign(-np.ones(3, dtype=np.float32) * 100)
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "cal.npz", x=RNG.uniform(size=(4, 2, 2, 1)).astype(np.float32))
    with pytest.raises(NetspecError) as e:
        export_model(tmp_path / "m.keras", tmp_path / "s.yaml", tmp_path / "cal.npz", progress=False)
    assert str(e.value).startswith("layer 'dead' has no non-zero activation on the 4 calibration sample(s)")
    assert files(tmp_path) == {"m.keras", "cal.npz"}


# -- streaming percentile (no TensorFlow needed, but kept with the exporter) --------------------------
@pytest.mark.parametrize("p", [50.0, 99.0, 99.9, 100.0])
def test_top_values_percentile_exact(p):
    values = RNG.exponential(size=400_000)
    values[RNG.integers(0, values.size, 5000)] = 1.0  # ties
    tail = TopValues(int(np.ceil((1 - p / 100) * values.size)) + 4)
    for chunk in np.array_split(values, 97):
        tail.add(chunk)
    assert tail.count == values.size
    assert tail.percentile(p) == np.percentile(values, p)
    assert tail.values.size == min(values.size, tail.keep)


def test_too_many_values_for_a_low_percentile(tmp_path, keras, monkeypatch):
    import netspec.export.normalize as normalize

    monkeypatch.setattr(normalize, "MAX_KEPT", 1000)
    model = randomize(keras, lenet(keras))
    with pytest.raises(NetspecError) as e:
        export(tmp_path, model, RNG.uniform(0, 1, (10, 12, 12, 1)).astype(np.float32), percentile=50.0)
    assert str(e.value).startswith("--percentile 50 on 10 samples would hold about")
    assert files(tmp_path) == {"m.keras", "cal.npz"}


def test_names_sanitized_and_unique():
    """Translation on a hand-made graph (no TensorFlow): names become identifiers, collisions get suffixes."""
    from netspec.export.keras_reader import KGraph, KNode
    from netspec.export.translate import translate_graph

    dense = {"units": 2, "activation": "relu"}
    nodes = [
        KNode("in put", "InputLayer", {}, [], (3,)),
        KNode("a.b", "Dense", dense, ["in put"], (2,), {"kernel": np.ones((3, 2))}),
        KNode("a_b", "Dense", dense, ["a.b"], (2,), {"kernel": np.ones((2, 2))}),
        KNode("1st-layer", "Dense", {"units": 2, "activation": "softmax"}, ["a_b"], (2,), {"kernel": np.ones((2, 2))}),
    ]
    result = translate_graph(KGraph(nodes, "1st-layer", "keras test", "Functional", 4))
    assert [l.name for l in result.layers] == ["in_put", "a_b", "a_b_2", "l_1st_layer"]
    assert result.layers[2].inputs == ["a_b"] and result.layers[3].inputs == ["a_b_2"]


def test_safety_net_catches_a_wrong_translation(tmp_path, keras, monkeypatch):
    """If a translation step were wrong (here: BN not folded), the check against Keras refuses to write."""
    import netspec.export.translate as translate

    monkeypatch.setattr(translate, "fold_bn", lambda kind, kernel, bias, scale, shift: (kernel, bias if bias is not None else 0 * shift))
    model = randomize(keras, lenet(keras))
    with pytest.raises(NetspecError) as e:
        export(tmp_path, model, RNG.uniform(0, 1, (10, 12, 12, 1)).astype(np.float32))
    assert "internal error: the exported spec's output differs from the Keras model's by" in str(e.value)
    assert files(tmp_path) == {"m.keras", "cal.npz"}


# -- the written form: provenance once, nothing written before the λs are known ----------------------
def test_a_layer_normalized_differently_keeps_its_method(tmp_path, keras, monkeypatch):
    """Layers say only their λ where they were normalized as ``source`` says; a layer that was not keeps
    its own method, percentile and samples, and the spec stays valid."""
    import netspec.export.pipeline as pipeline
    from netspec.spec import Normalization

    real = pipeline.compute_lambdas

    def one_by_max(spec, x, **kw):
        norms = real(spec, x, **kw)
        norms["d1"] = Normalization(norms["d1"].lam * 2, "max", None, 7)
        norms["c2"] = Normalization(norms["c2"].lam, "percentile", 99.0, len(x))
        return norms

    monkeypatch.setattr(pipeline, "compute_lambdas", one_by_max)
    model = randomize(keras, lenet(keras))
    spec = export(tmp_path, model, RNG.uniform(0, 1, (20, 12, 12, 1)).astype(np.float32))
    assert spec.source["normalization"] == {"method": "percentile", "percentile": 99.9}
    assert spec.source["calibration"]["samples"] == 20
    entries = {l.name: l.normalization.to_yaml() for l in spec.layers if l.normalization is not None}
    image = spec.input_layer.name
    assert set(entries) == {image, "c1", "c2", "d1", "d2"}
    assert entries["d1"] == {"lambda": entries["d1"]["lambda"], "method": "max", "samples": 7}
    assert entries["c2"] == {"lambda": entries["c2"]["lambda"], "method": "percentile", "percentile": 99.0}
    assert all(list(entries[name]) == ["lambda"] for name in ("c1", "d2"))
    assert entries[image] == {"lambda": 1.0}


def test_nothing_is_written_before_the_lambdas_or_when_export_fails(tmp_path, keras, monkeypatch):
    """While λ is computed the staging folder holds the weights only (no spec with a stand-in λ); a failure
    there, or a spec text that does not read back as the document, leaves nothing behind."""
    import netspec.export.pipeline as pipeline

    seen = []

    def fail(spec, x, **kw):
        seen.extend(sorted(p.name for p in tmp_path.glob(".netspec-export-*/*")))
        raise NetspecError("calibration failed")

    model = randomize(keras, lenet(keras))
    x = RNG.uniform(0, 1, (10, 12, 12, 1)).astype(np.float32)
    monkeypatch.setattr(pipeline, "compute_lambdas", fail)
    with pytest.raises(NetspecError, match="calibration failed"):
        export(tmp_path, model, x)
    assert seen == ["net.npz"]
    assert files(tmp_path) == {"m.keras", "cal.npz"}
    monkeypatch.undo()
    monkeypatch.setattr(pipeline, "spec_yaml", lambda doc, schema_ref=None: "netspec: 1\n")
    with pytest.raises(NetspecError) as e:
        export(tmp_path, model, x)
    assert str(e.value) == f"{tmp_path / 'net.yaml'}: internal error: the spec text to write is wrong (it reads back differently); nothing was written; please report this"
    assert files(tmp_path) == {"m.keras", "cal.npz"}


def test_channel_method(tmp_path, keras, capsys):
    """--normalization channel: the percentile per output channel of every hidden layer; the output keeps one
    factor (its channels are the classes), written with the method it was computed by. (Last in the file: it
    draws from the module's RNG, which the other tests' models depend on.)"""
    model = randomize(keras, lenet(keras))
    x = RNG.uniform(0, 1, (30, 12, 12, 1)).astype(np.float32)
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "cal.npz", x=x)
    rc = cli(["export", str(tmp_path / "m.keras"), "-o", str(tmp_path / "l.yaml"), "--calibration", str(tmp_path / "cal.npz"),
              "--normalization", "channel", "--percentile", "99"])
    assert rc == 0 and "99th percentile per channel" in capsys.readouterr().out
    assert cli(["validate", str(tmp_path / "l.yaml")]) == 0
    spec = load_spec(tmp_path / "l.yaml")
    assert spec.source["normalization"] == {"method": "channel", "percentile": 99.0}
    K = keras.Model(model.inputs, [model.get_layer(n).output for n in ("r1", "r2", "d1", "d2")])
    r1, r2, d1, logits = (np.asarray(a) for a in K.predict(x, verbose=0))
    for name, acts in (("c1", r1), ("c2", r2), ("d1", d1)):
        norm = spec.layer(name).normalization
        assert norm.per_channel and norm.method is None  # said once in source.normalization
        chans = acts.reshape(-1, acts.shape[-1])
        want = [percentile_of(chans[:, c], 99) if (chans[:, c] > 0).any() else None for c in range(chans.shape[1])]
        top = max(w for w in want if w is not None)
        assert norm.lam == pytest.approx([top if w is None else w for w in want], rel=1e-5)
    out = spec.layer("d2").normalization
    assert not out.per_channel and (out.method, out.percentile) == ("percentile", 99.0)
    assert out.lam == pytest.approx(percentile_of(logits, 99, strict=False), rel=1e-5)
    assert_reproduces(spec, model, x)
