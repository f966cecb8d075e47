"""netspec.keras.QuantizedClip (QCFS, Bu et al. 2022) and its conversion: the layer's values, gradients and
config round trip; the export (λ = the trained clip, clip and levels recorded, neurons starting at 0.5) and its
refusals; the spiking layer reproducing the quantized activation in L steps; max pooling, λ per channel, the
membrane read-out and NIR with such layers."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from netspec.brian import BuildOptions, build, simulate
from netspec.cli import main as cli
from netspec.errors import NetspecError
from netspec.export import export_model
from netspec.reference import forward
from netspec.spec import load_spec, load_spec_data

pytestmark = pytest.mark.keras
RNG = np.random.default_rng(18)


@pytest.fixture(scope="module")
def keras(keras_lib):
    keras_lib.utils.set_random_seed(5)
    return keras_lib


@pytest.fixture(scope="module")
def QC(keras):
    from netspec.keras import QuantizedClip

    return QuantizedClip


def qcfs(x, clip, levels):
    """The activation as the paper writes it: clip / L * clip(floor(x L / clip + 1/2), 0, L)."""
    return clip / levels * np.clip(np.floor(x * levels / clip + 0.5), 0, levels)


# -- the layer ---------------------------------------------------------------------------------------------
def test_forward_values(keras, QC):
    layer = QC(levels=4, initial_clip=1.5)
    x = RNG.uniform(-1, 2.5, (6, 50)).astype(np.float32)
    got = np.asarray(layer(x))
    np.testing.assert_allclose(got, qcfs(x.astype(np.float64), 1.5, 4), atol=1e-6)
    assert set(np.round(np.unique(got) / (1.5 / 4), 4)) <= {0, 1, 2, 3, 4}


def test_straight_through_gradients(keras, QC):
    import tensorflow as tf

    layer = QC(levels=4, initial_clip=2.0)
    x = tf.Variable(np.array([-1.0, -0.3, 0.3, 0.9, 1.7, 2.2, 3.0], dtype=np.float32))
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(layer(x))
    gx, gclip = tape.gradient(y, [x, layer.clip])
    # the floor passes its gradient through: 1 where the quantized value floor(x L / clip + 1/2) is within [0, L]
    np.testing.assert_array_equal(gx.numpy(), [0, 0, 1, 1, 1, 1, 0])
    v = x.numpy().astype(np.float64)
    steps = np.floor(v * 4 / 2 + 0.5)
    inside = (steps >= 0) & (steps <= 4)
    want = np.sum((steps / 4 - v / 2)[inside]) + np.sum(steps > 4)  # the paper's: q - x / clip inside, 1 above
    assert float(gclip) == pytest.approx(want, rel=1e-5)


def test_config_round_trips_through_save_and_load(keras, QC, tmp_path):
    L = keras.layers
    model = keras.Sequential([keras.Input((5,)), L.Dense(4, name="d"), QC(levels=8, initial_clip=3.0, name="q"),
                              L.Dense(2, name="out")])
    model.get_layer("q").clip.assign(1.25)
    model.save(tmp_path / "m.keras")
    back = keras.models.load_model(tmp_path / "m.keras")
    layer = back.get_layer("q")
    assert type(layer) is QC
    assert layer.get_config() == model.get_layer("q").get_config()
    assert layer.levels == 8 and layer.initial_clip == 3.0 and float(layer.clip) == 1.25
    x = RNG.normal(0, 1, (7, 5)).astype(np.float32)
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
    assert [w.name for w in layer.trainable_weights] == ["clip"]


@pytest.mark.parametrize("kwargs, message", [
    ({"levels": 0}, "levels must be an integer >= 1, got 0"),
    ({"levels": 2.5}, "levels must be an integer >= 1, got 2.5"),
    ({"initial_clip": -1.0}, "initial_clip must be a finite number > 0, got -1.0"),
    ({"initial_clip": float("inf")}, "initial_clip must be a finite number > 0, got inf"),
])
def test_bad_arguments(keras, QC, kwargs, message):
    with pytest.raises(ValueError) as err:
        QC(name="q", **kwargs)
    assert str(err.value) == f"QuantizedClip 'q': {message}"


# -- export ------------------------------------------------------------------------------------------------
def convnet(keras, QC, levels=4):
    """conv -> BN -> QCFS -> maxpool -> conv (plain relu) -> flatten -> dense -> QCFS -> dense softmax."""
    L = keras.layers
    model = keras.Sequential([
        keras.Input((8, 8, 1), name="image"),
        L.Conv2D(4, 3, use_bias=False, name="c1"), L.BatchNormalization(name="bn1"), QC(levels, 1.0, name="q1"),
        L.MaxPooling2D(2, name="p1"),
        L.Conv2D(3, 2, activation="relu", name="c2"),
        L.Flatten(name="flat"), L.Dense(6, name="d1"), QC(levels, 1.0, name="q2"), L.Dense(3, activation="softmax", name="out"),
    ], name="qnet")
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(RNG.normal(0, 0.2, 4).astype(np.float32))
            layer.moving_variance.assign(RNG.uniform(0.5, 1.5, 4).astype(np.float32))
        elif getattr(layer, "bias", None) is not None:
            layer.bias.assign(RNG.uniform(0.0, 0.3, layer.bias.shape).astype(np.float32))
    model.get_layer("q1").clip.assign(0.8)
    model.get_layer("q2").clip.assign(1.3)
    return model


def _export(tmp_path, model, x, name="net", **kw):
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "cal.npz", x=x)
    out = export_model(tmp_path / "m.keras", tmp_path / f"{name}.yaml", tmp_path / "cal.npz", progress=False, **kw)
    assert cli(["validate", str(out)]) == 0
    return load_spec(out), yaml.safe_load(out.read_text())


X = RNG.uniform(0, 1, (64, 8, 8, 1)).astype(np.float32)


def test_export_records_clip_levels_and_initial(keras, QC, tmp_path):
    model = convnet(keras, QC)
    spec, doc = _export(tmp_path, model, X)
    entries = {e["name"]: e for e in doc["layers"]}
    for name, clip in (("c1", 0.8), ("d1", 1.3)):
        e = entries[name]
        assert e["activation"] == "relu" and e["levels"] == 4 and e["clip"] == pytest.approx(clip)
        assert e["normalization"] == {"lambda": e["clip"], "method": "clip"}  # the trained clip, no percentile
        assert e["neuron"] == {"initial": 0.5}
    assert "clip" not in entries["c2"] and "neuron" not in entries["c2"] and "method" not in entries["c2"]["normalization"]
    assert "neuron" not in entries["out"]
    assert "Quantized activation (netspec.keras.QuantizedClip; lambda = the trained clip): c1, d1." in doc["description"]
    # the numpy reference computes the quantized activation as Keras does
    want = model.predict(X, verbose=0)
    got = forward(spec, X)["out"]
    close = np.all(np.abs(got - want) <= 1e-4, axis=1)
    assert close.mean() >= 0.95
    acts = forward(spec, X)
    assert set(np.round(np.unique(acts["d1"]) / (1.3 / 4), 3)) <= {0, 1, 2, 3, 4}


def test_export_options_initial_and_channel(keras, QC, tmp_path, capsys):
    model = convnet(keras, QC)
    spec, doc = _export(tmp_path, model, X, name="rest", quantized_initial=0.0)
    assert all("neuron" not in e for e in doc["layers"])
    # per-channel lambda: the plain relu layer gets one per channel, the quantized ones keep their clip
    spec, doc = _export(tmp_path, model, X, name="chan", method="channel")
    entries = {e["name"]: e for e in doc["layers"]}
    assert isinstance(entries["c2"]["normalization"]["lambda"], list) and len(entries["c2"]["normalization"]["lambda"]) == 3
    assert entries["c1"]["normalization"] == {"lambda": pytest.approx(0.8), "method": "clip"}
    assert cli(["export", str(tmp_path / "m.keras"), "-o", str(tmp_path / "cli.yaml"), "--calibration",
                str(tmp_path / "cal.npz"), "--quantized-initial", "1.5"]) == 2
    assert "--quantized-initial: must be in [0, 1), got 1.5" in capsys.readouterr().err


def test_quantized_add_of_a_residual_block(keras, QC, tmp_path):
    """QCFS after an Add (a residual block's sum) goes on the add layer, whose neurons it quantizes."""
    L = keras.layers
    inp = keras.Input((6, 6, 1))
    a = QC(4, 1.0, name="qa")(L.Conv2D(3, 3, padding="same", name="a")(inp))
    b = L.Conv2D(3, 3, padding="same", name="b")(a)
    s = QC(4, 1.0, name="qs")(L.Add(name="sum")([a, b]))
    model = keras.Model(inp, L.Dense(2, activation="softmax", name="out")(L.Flatten(name="flat")(s)))
    model.get_layer("qs").clip.assign(1.7)
    x = RNG.uniform(0, 1, (32, 6, 6, 1)).astype(np.float32)
    spec, doc = _export(tmp_path, model, x)
    entries = {e["name"]: e for e in doc["layers"]}
    assert entries["sum"]["type"] == "add" and entries["sum"]["levels"] == 4
    assert entries["sum"]["normalization"] == {"lambda": pytest.approx(1.7), "method": "clip"}
    assert entries["sum"]["neuron"] == {"initial": 0.5} and entries["b"]["activation"] == "linear"
    assert np.mean(np.all(np.abs(forward(spec, x)["out"] - model.predict(x, verbose=0)) <= 1e-4, axis=1)) >= 0.95


def _refusal(tmp_path, keras, model) -> str:
    model.save(tmp_path / "bad.keras")
    np.savez(tmp_path / "cal.npz", x=RNG.uniform(0, 1, (4, *model.inputs[0].shape[1:])).astype(np.float32))
    with pytest.raises(NetspecError) as err:
        export_model(tmp_path / "bad.keras", tmp_path / "bad.yaml", tmp_path / "cal.npz", progress=False)
    assert not (tmp_path / "bad.yaml").exists()
    return str(err.value)


def test_clip_the_conversion_cannot_honour_is_refused(keras, QC, tmp_path):
    L = keras.layers
    for value, text in ((-0.5, "-0.5"), (float("nan"), "nan"), (0.0, "0.0")):
        model = keras.Sequential([keras.Input((4,)), L.Dense(3, name="d"), QC(4, name="q"), L.Dense(2, name="out")])
        model.get_layer("q").clip.assign(value)
        assert _refusal(tmp_path, keras, model) == (f"layer 'q' (QuantizedClip): its trained clip is {text}; the conversion "
                                                    "needs a finite clip > 0 (it becomes the layer's lambda)")


@pytest.mark.parametrize("levels", [0, -2, 2.5, True])
def test_levels_the_conversion_cannot_honour_are_refused(keras, QC, levels):
    from netspec.export.keras_reader import read_graph
    from netspec.export.translate import translate_graph

    L = keras.layers
    layer = QC(4, name="q")
    model = keras.Sequential([keras.Input((4,)), L.Dense(3, name="d"), layer, L.Dense(2, name="out")])
    layer.levels = levels  # past the constructor's check, as a model file written by other code could say
    with pytest.raises(NetspecError) as err:
        translate_graph(read_graph(model))
    assert str(err.value) == (f"layer 'q' (QuantizedClip): levels is {levels!r}; the conversion needs a whole number "
                              "of quantization steps >= 1")


def _where(keras, QC, case):
    L = keras.layers
    inp = keras.Input((6, 6, 1))
    if case == "after_pool":
        x = QC(4, name="q")(L.MaxPooling2D(name="pool")(L.Conv2D(2, 3, activation="relu", name="c")(inp)))
        return keras.Model(inp, L.Dense(2, name="out")(L.Flatten()(x)))
    if case == "output":
        return keras.Model(inp, QC(4, name="q")(L.Dense(2, name="out")(L.Flatten(name="flat")(inp))))
    if case == "shared_input":
        c = L.Conv2D(2, 3, name="c")(inp)
        x = L.Concatenate(name="cat")([QC(4, name="q")(c), L.ReLU(name="r")(c)])
        return keras.Model(inp, L.Dense(2, name="out")(L.Flatten()(x)))
    if case == "twice":
        x = QC(4, name="q2")(QC(4, name="q1")(L.Conv2D(2, 3, name="c")(inp)))
        return keras.Model(inp, L.Dense(2, name="out")(L.Flatten()(x)))
    if case == "bn_after":
        x = L.BatchNormalization(name="bn")(QC(4, name="q")(L.Conv2D(2, 3, name="c")(inp)))
        return keras.Model(inp, L.Dense(2, name="out")(L.Flatten()(x)))
    raise AssertionError(case)


WHERE = {
    "after_pool": "layer 'q' (QuantizedClip): cannot convert this quantized activation: it follows maxpool2d layer 'pool', "
                  "which has no neurons of its own to quantize (the spiking layer reproduces QCFS only on a weighted sum)",
    "output": "layer 'q' (QuantizedClip): a quantized activation on the model's output cannot be converted: the output "
              "layer is read out (its logits), not quantized; use QuantizedClip on hidden layers only",
    "shared_input": "layer 'q' (QuantizedClip): cannot convert this quantized activation: the output of 'c' is also read by 'r'",
    "twice": "layer 'q2' (QuantizedClip): cannot convert this quantized activation: 'q1' already applies a quantized activation",
    "bn_after": "layer 'bn' (BatchNormalization): cannot fold this BatchNormalization: 'q' already applies activation 'relu'; "
                "BN must come before the activation",
}
SUFFIX = ("; QuantizedClip must directly follow a Dense, Conv2D or DepthwiseConv2D layer (after its BatchNormalization, "
          "if any) or an Add, whose output nothing else reads")


@pytest.mark.parametrize("case", sorted(WHERE))
def test_places_that_break_the_equivalence_are_refused(keras, QC, tmp_path, case):
    message = _refusal(tmp_path, keras, _where(keras, QC, case))
    want = WHERE[case]
    if "cannot convert this quantized activation" in want:
        want += SUFFIX
    if case == "bn_after":
        assert message.startswith(want + ". Supported: ")
    else:
        assert message == want


# -- the spiking network ------------------------------------------------------------------------------------
def test_spiking_layer_reproduces_the_quantized_activation_in_levels_steps(keras, QC, tmp_path):
    """An IF neuron with threshold λ = clip, reset by subtraction, starting at λ/2 and driven by the constant
    current z fires floor(z T / λ + 1/2) times in T steps (at most T): at T = L its rate times λ is QCFS(z)."""
    L = keras.layers
    levels = 4
    model = keras.Sequential([keras.Input((6,)), L.Dense(20, name="h"), QC(levels, name="q"), L.Dense(3, name="out")])
    model.get_layer("q").clip.assign(0.9)
    x = RNG.uniform(0, 1, (5, 6)).astype(np.float32)
    spec, doc = _export(tmp_path, model, RNG.uniform(0, 1, (64, 6)).astype(np.float32), duration=f"{levels} ms")
    sim = simulate(build(spec, tmp_path / "b", BuildOptions(samples_per_run=len(x))), x, record_neurons=True)
    rate = sim.neuron_counts["h"].reshape(len(x), -1) / levels
    want = forward(spec, x)["h"] / 0.9  # the quantized activation over λ
    assert want.max() > 0.5 and 0 < np.mean(want) < 1
    np.testing.assert_allclose(rate, want, atol=1e-9)


def _snn(spec, x, folder, **kw):
    return simulate(build(spec, folder, BuildOptions(samples_per_run=len(x), **kw)), x, record_neurons=True)


@pytest.mark.parametrize("method", ["percentile", "channel"])
def test_max_pooling_and_lambda_per_channel_with_quantized_layers(keras, QC, tmp_path, method):
    """The convnet (QCFS conv -> max pool -> relu conv -> QCFS dense): kernel and unrolled synapses spike the
    same, and after 32 steps every layer's rate is the normalized ANN activation within a few steps' worth."""
    model = convnet(keras, QC)
    spec, _ = _export(tmp_path, model, X, duration="32 ms", method=method)
    x = X[:4]
    k = _snn(spec, x, tmp_path / "k")
    s = _snn(spec, x, tmp_path / "s", connectivity="synapses")
    for name in k.neuron_counts:
        np.testing.assert_array_equal(k.neuron_counts[name], s.neuron_counts[name], err_msg=name)
    acts = forward(spec, x)
    for name in ("c1", "c2", "d1"):
        rate = k.neuron_counts[name].reshape(len(x), -1) / 32
        lam = np.broadcast_to(np.asarray(spec.lam(name), dtype=float), acts[name].shape[1:]).reshape(-1)
        want = np.minimum(acts[name].reshape(len(x), -1) / lam, 1.0)
        assert rate.sum() > 0, name
        assert np.mean(np.abs(rate - want)) < 0.1, (name, float(np.mean(np.abs(rate - want))))


def test_membrane_readout_and_nir_with_quantized_layers(keras, QC, tmp_path, capsys):
    L = keras.layers
    model = keras.Sequential([keras.Input((6,)), L.Dense(12, name="h1"), QC(4, name="q1"), L.Dense(8, name="h2"),
                              QC(4, name="q2"), L.Dense(3, activation="softmax", name="out")])
    model.get_layer("q1").clip.assign(0.7)
    model.get_layer("q2").clip.assign(0.6)
    # what NIR can carry: spike counts, one lambda per layer, membranes at rest but on the quantized layers
    spec, doc = _export(tmp_path, model, RNG.uniform(0, 1, (64, 6)).astype(np.float32), duration="16 ms",
                        readout="spike_count", initial=0.0, method="percentile")
    x = RNG.uniform(0, 1, (6, 6)).astype(np.float32)
    # the membrane read-out: an answer at every step, the class of the largest output membrane
    doc["simulation"]["readout"] = "membrane"
    mem = load_spec_data(doc, tmp_path)
    sim = simulate(build(mem, tmp_path / "m", BuildOptions(samples_per_run=len(x))), x)
    assert sim.v_steps.shape == (len(x), 16, 3) and not sim.counts.any()
    np.testing.assert_array_equal(sim.v_steps[:, -1], sim.v_out)
    assert np.mean(sim.predictions() == forward(mem, x)["out"].argmax(axis=1)) >= 5 / 6
    # NIR: the initial potential is left out only when asked, then read back from the metadata
    spec_file = str(tmp_path / "net.yaml")
    assert cli(["nir", spec_file, "-o", str(tmp_path / "n.nir")]) == 1
    assert "layer 'h1': initial 0.5: NIR 1.0.8 neurons start at v = 0 every run; `netspec nir --approximate`" in capsys.readouterr().err
    assert cli(["nir", spec_file, "-o", str(tmp_path / "n.nir"), "--approximate"]) == 0
    assert cli(["export", str(tmp_path / "n.nir"), "-o", str(tmp_path / "back.yaml")]) == 0
    back = load_spec(tmp_path / "back.yaml")
    assert back.neurons["h1"].initial_u == 0.5 and back.neurons["h2"].initial_u == 0.5 and back.neurons["out"].initial_u == 0
    a = _snn(spec, x, tmp_path / "a")
    b = _snn(back, x, tmp_path / "b2")
    assert a.counts.sum() > 10
    np.testing.assert_array_equal(a.out_steps, b.out_steps)
