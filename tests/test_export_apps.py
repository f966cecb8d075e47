"""keras.applications architectures export, validate and build (runtime target, nothing compiled), and what
they need of the exporter: ReLU6 as a clipped relu, MobileNet's [1, 1, C] head, DenseNet's pre-activation batch
normalization on concatenations with linear branches. The exported spec's numpy reference must reproduce the
Keras model's logits.

Run time on one busy core: the default selection (the unit cases, VGG16 without its top, MobileNet and a DenseNet with
DenseNet121's structure but one or two blocks of each kind) stays under ~90 s; ResNet50, VGG19, InceptionV3 (75x75) and the
full DenseNet121 (some 720 spec layers: every reader of a 3x3 convolution's output gets its own folded copy)
take minutes and are marked ``slow`` (deselect with ``-m 'not slow'``)."""
from __future__ import annotations

import numpy as np
import pytest

from netspec.brian import BuildOptions, build
from netspec.cli import main as cli
from netspec.errors import NetspecError
from netspec.export import export_model
from netspec.reference import forward
from netspec.spec import load_spec

pytestmark = pytest.mark.keras
RNG = np.random.default_rng(11)


@pytest.fixture(scope="module")
def keras(keras_lib):
    keras_lib.utils.set_random_seed(5)
    return keras_lib


def randomize_bn(keras, model, rng):
    """BN statistics away from the identity (so that folding, or a per-channel layer, has something to get wrong),
    keeping most units active."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape[0]
            values = {"gamma": rng.uniform(0.7, 1.3, c), "beta": rng.normal(0.1, 0.1, c),
                      "moving_mean": rng.normal(0, 0.1, c), "moving_variance": rng.uniform(0.5, 1.5, c)}
            for name, value in values.items():
                var = getattr(layer, name)
                if var is not None:
                    var.assign(value.astype(np.float32))
    return model


def export(tmp_path, model, x, **kw):
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "cal.npz", x=x)
    out = export_model(tmp_path / "m.keras", tmp_path / "net.yaml", tmp_path / "cal.npz", progress=False, **kw)
    assert cli(["validate", str(out)]) == 0
    return load_spec(out)


def assert_reproduces(spec, model, x, rtol=1e-4):
    want = np.asarray(model(x, training=False), dtype=np.float64)
    got = forward(spec, x)[spec.order[-1]].reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * float(np.abs(want).max()))


# -- ReLU6 / ReLU(max_value) -------------------------------------------------------------------------
def test_relu6_is_a_clipped_relu(tmp_path, keras):
    L = keras.layers
    model = keras.Sequential([
        keras.Input((6, 6, 2)),
        L.Conv2D(4, 3, name="c1", kernel_initializer=keras.initializers.RandomNormal(0.5, 2.0)),
        L.BatchNormalization(name="bn1"), L.ReLU(max_value=6.0, name="r1"),
        L.Conv2D(3, 3, activation="relu6", name="c2"),
        L.Flatten(name="flat"), L.Dense(5, name="d"), L.ReLU(max_value=2.5, name="r3"), L.Activation("relu6", name="r4"),
        L.Dense(2, name="out"),
    ])
    randomize_bn(keras, model, RNG)
    x = RNG.uniform(0, 4, (16, 6, 6, 2)).astype(np.float32)
    spec = export(tmp_path, model, x)
    assert (spec.layer("c1").activation, spec.layer("c1").clip) == ("relu", 6.0)
    assert (spec.layer("c2").activation, spec.layer("c2").clip) == ("relu", 6.0)
    assert spec.layer("d").clip == 2.5  # two clips on one relu: the lower one
    assert [l.name for l in spec.layers][1:] == ["c1", "c2", "flat", "d", "out"]
    assert_reproduces(spec, model, x)
    acts = forward(spec, x)
    assert acts["c1"].max() == 6.0  # the clip binds on these inputs, and Keras agrees (above)
    for name in ("c1", "c2", "d"):  # a spiking neuron saturates at lambda: lambda never above the clip
        lam = np.asarray(spec.lam(spec.layer(name)))  # one per channel (the default) or one
        assert np.all(0 < lam) and np.all(lam <= spec.layer(name).clip)


@pytest.mark.parametrize("case", ["output", "pool"])
def test_relu6_refused_where_it_cannot_clip(tmp_path, keras, case):
    L = keras.layers
    if case == "output":
        layers, expected = ([L.Flatten(), L.Dense(3), L.ReLU(max_value=6.0, name="r")],
                            "layer 'r' (ReLU): a clipped relu (max_value=6) on the output layer is not supported")
    else:
        layers, expected = ([L.Conv2D(2, 3, activation="relu"), L.MaxPooling2D(name="p"), L.ReLU(6.0, name="r"), L.Flatten(), L.Dense(2)],
                            "layer 'r' (ReLU): cannot apply relu clipped at 6 to the layer before it: 'p' (maxpool2d) has no relu of its own to clip")
    model = keras.Sequential([keras.Input((6, 6, 2)), *layers])
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "cal.npz", x=RNG.uniform(size=(3, 6, 6, 2)).astype(np.float32))
    with pytest.raises(NetspecError, match="Supported: InputLayer") as e:
        export_model(tmp_path / "m.keras", tmp_path / "s.yaml", tmp_path / "cal.npz", progress=False)
    assert expected in str(e.value)


# -- [1, 1, C] heads and reshapes ----------------------------------------------------------------------
def test_mobilenet_head_is_held_flat(tmp_path, keras):
    """GlobalAveragePooling2D(keepdims=True) -> Dropout -> Conv2D 1x1 ('same': the centre tap of a 3x3) ->
    Reshape -> softmax: a global average pool, dense layers, the softmax on the last."""
    L = keras.layers
    inp = keras.Input((5, 5, 3))
    h = L.Conv2D(4, 3, activation="relu", name="c")(inp)
    h = L.GlobalAveragePooling2D(keepdims=True, name="gap")(h)
    h = L.Dropout(0.1)(h)
    h = L.Conv2D(6, 3, padding="same", name="fc", activation="relu")(h)
    h = L.Conv2D(3, 1, name="preds")(h)
    h = L.Reshape((3,), name="reshape")(h)
    model = keras.Model(inp, L.Activation("softmax", name="sm")(h))
    x = RNG.uniform(0, 1, (6, 5, 5, 3)).astype(np.float32)
    spec = export(tmp_path, model, x)
    assert [(l.name, l.type) for l in spec.layers][1:] == [("c", "conv2d"), ("gap", "global_avgpool2d"), ("fc", "dense"),
                                                           ("preds", "dense")]
    assert spec.layer("preds").activation == "softmax"
    assert_reproduces(spec, model, x, rtol=1e-5)


def test_reshape_that_moves_elements_is_refused(tmp_path, keras):
    L = keras.layers
    model = keras.Sequential([keras.Input((4, 4, 2)), L.Conv2D(2, 1, activation="relu"), L.Reshape((2, 16), name="rs"),
                              L.Flatten(), L.Dense(2)])
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "cal.npz", x=RNG.uniform(size=(3, 4, 4, 2)).astype(np.float32))
    with pytest.raises(NetspecError) as e:
        export_model(tmp_path / "m.keras", tmp_path / "s.yaml", tmp_path / "cal.npz", progress=False)
    assert "layer 'rs' (Reshape): Reshape from [4, 4, 2] to [2, 16] is not supported" in str(e.value)


# -- pre-activation batch normalization (DenseNet) -----------------------------------------------------
def dense_block_net(keras):
    """DenseNet's pattern in small: BN->ReLU on a max pool that a concatenation also reads, 3x3 convolutions
    entering concatenations without activation, a transition (BN, ReLU, linear 1x1 conv, 2x2 average pool) whose
    output other BN->ReLUs and a concatenation read."""
    L = keras.layers

    def block(x, name):
        y = L.BatchNormalization(name=f"{name}_0_bn")(x)
        y = L.Activation("relu", name=f"{name}_0_relu")(y)
        y = L.Conv2D(6, 1, use_bias=False, name=f"{name}_1_conv")(y)
        y = L.BatchNormalization(name=f"{name}_1_bn")(y)
        y = L.Activation("relu", name=f"{name}_1_relu")(y)
        y = L.Conv2D(3, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(y)
        return L.Concatenate(name=f"{name}_concat")([x, y])

    inp = keras.Input((10, 10, 2))
    x = L.Conv2D(4, 3, use_bias=False, name="stem")(inp)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.Activation("relu", name="stem_relu")(x)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = block(block(x, "b1"), "b2")
    x = L.BatchNormalization(name="t_bn")(x)
    x = L.Activation("relu", name="t_relu")(x)
    x = L.Conv2D(5, 1, use_bias=False, name="t_conv")(x)
    x = L.AveragePooling2D(2, strides=2, name="t_pool")(x)
    x = block(x, "b3")
    x = L.BatchNormalization(name="bn")(x)
    x = L.Activation("relu", name="relu")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, L.Dense(3, name="out")(x))


def test_preactivation_bn_on_concatenations(tmp_path, keras):
    model = randomize_bn(keras, dense_block_net(keras), RNG)
    x = RNG.uniform(0, 1, (12, 10, 10, 2)).astype(np.float32)
    spec = export(tmp_path, model, x)
    assert_reproduces(spec, model, x, rtol=1e-5)
    # no linear layer is left: every 3x3 conv (and the transition's conv+pool) became one copy per reader, BN folded
    assert not any(l.activation == "linear" for l in spec.layers[:-1])
    types = {l.name: l.type for l in spec.layers}
    # BN->ReLU on the max pool's spikes: a 1x1 depthwise slice (channels 0-3 of b1_0_bn: all of them)
    assert types["b1_0_bn"] == "depthwise_conv2d" and spec.layer("b1_0_bn").inputs == ("pool1",)
    # on [pool1, b1_2_conv]: a depthwise slice and a copy of the 3x3 conv, concatenated under the BN's name
    assert types["b2_0_bn"] == "concatenate"
    parts = [spec.layer(n) for n in spec.layer("b2_0_bn").inputs]
    assert [(p.type, p.inputs) for p in parts] == [("depthwise_conv2d", ("pool1",)), ("conv2d", ("b1_1_conv",))]
    conv = model.get_layer("b1_2_conv").kernel.numpy()
    bn = model.get_layer("b2_0_bn")
    s = bn.gamma.numpy() / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
    np.testing.assert_allclose(spec.array(parts[1], "kernel"), conv * s[4:], rtol=1e-6)
    # the transition's 1x1 conv and 2x2 average pool: one 2x2 stride-2 conv per reader
    copies = [l for l in spec.layers if l.type == "conv2d" and l.inputs == ("t_bn",)]
    assert len(copies) == 2 and all(l.kernel_size == (2, 2) and l.strides == (2, 2) for l in copies)
    assert "b1_2_conv" not in types and "t_conv" not in types and "b1_concat" not in types
    assert "b1_0_bn" in spec.description and spec.layer("b1_0_bn").activation == "relu"
    b = build(spec, tmp_path / "build", BuildOptions(standalone=False, steps=5))
    assert b.populations["b2_0_bn_b1_2_conv"] == 4 * 4 * 3


def test_avgpool_same_over_linear_conv_refused(tmp_path, keras):
    L = keras.layers
    inp = keras.Input((6, 6, 2))
    x = L.Conv2D(3, 3, activation="relu")(inp)
    x = L.Conv2D(2, 1, name="lin")(x)
    x = L.AveragePooling2D(3, strides=2, padding="same", name="ap")(x)
    y = L.ReLU()(L.BatchNormalization(name="bn")(x))
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(y)))
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "cal.npz", x=RNG.uniform(size=(3, 6, 6, 2)).astype(np.float32))
    with pytest.raises(NetspecError) as e:
        export_model(tmp_path / "m.keras", tmp_path / "s.yaml", tmp_path / "cal.npz", progress=False)
    assert ("layer 'ap' (AveragePooling2D): a batch normalization reads this average pool of a linear layer; netspec "
            "composes only a 'valid' average pool over a linear 1x1 convolution") in str(e.value)


# -- the architectures ---------------------------------------------------------------------------------
def _small_densenet(keras, **kw):
    from keras.src.applications.densenet import DenseNet  # DenseNet121's builder, with fewer blocks

    return DenseNet([1, 2, 1, 1], name="densenet_small", **kw)


SLOW = (pytest.mark.slow,)
#: name -> (constructor, smallest input side, keyword arguments, marks). VGG16 without its 4096-unit top (light);
#: VGG19 with it. Ten classes: random-weight networks map inputs to nearly the same logits, and λ needs a
#: non-negative one on the calibration samples.
ARCHS = {
    "vgg16": (lambda k, **kw: k.applications.VGG16(**kw), 32, {"include_top": False, "pooling": "avg"}, ()),
    "mobilenet": (lambda k, **kw: k.applications.MobileNet(**kw), 32, {}, ()),
    "densenet_small": (_small_densenet, 32, {}, ()),
    "resnet50": (lambda k, **kw: k.applications.ResNet50(**kw), 32, {}, SLOW),
    "vgg19": (lambda k, **kw: k.applications.VGG19(**kw), 32, {}, SLOW),
    "inceptionv3": (lambda k, **kw: k.applications.InceptionV3(**kw), 75, {}, SLOW),
    "densenet121": (lambda k, **kw: k.applications.DenseNet121(**kw), 32, {}, SLOW),
}


@pytest.mark.parametrize("arch", [pytest.param(a, marks=m) for a, (_, _, _, m) in ARCHS.items()])
def test_application_exports_and_builds(tmp_path, keras, arch):
    make, side, kw, _ = ARCHS[arch]
    model = make(keras, weights=None, input_shape=(side, side, 3), classes=10, classifier_activation=None, **kw)
    randomize_bn(keras, model, np.random.default_rng(1))
    x = np.random.default_rng(2).uniform(0, 1, (4, side, side, 3)).astype(np.float32)
    spec = export(tmp_path, model, x)
    assert_reproduces(spec, model, x[:2])
    out = spec.layer(spec.order[-1])
    assert out.activation in (None, "linear") and len(spec.shapes[out.name]) == 1
    b = build(spec, tmp_path / "build", BuildOptions(standalone=False, steps=4))
    assert b.script.is_file() and sum(b.populations.values()) > 0
