"""NIR: spec -> NIR -> spec round trips (same spike counts), hand-built NIR graphs for every supported node
(import, validate, build, run, and the same function as the graph), NIR's own checks on what netspec
writes, and the refusals, each with its message."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from netspec.brian import BuildOptions, build, simulate  # noqa: E402
from netspec.cli import main  # noqa: E402
from netspec.errors import NetspecError  # noqa: E402
from netspec.nir import HANDLERS, ImportOptions, import_graph, is_nir_file, write_graph  # noqa: E402
from netspec.reference import forward  # noqa: E402
from netspec.spec import LAYER_TYPES, load_spec, load_spec_data  # noqa: E402
from test_brian_support import spec_data  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RNG = np.random.default_rng(13)


def dyadic(shape, scale=8):
    """Weights k/16: normalizing them by the powers of two used as lambdas here is exact in float32, so the
    graph's float32 weights are the builder's float64 ones and spike counts must agree exactly."""
    return (RNG.integers(-scale, scale + 1, size=shape) / 16).tolist()


def _counts(spec, x, folder):
    return simulate(build(spec, folder, BuildOptions(samples_per_run=len(x))), x, record_neurons=True)


def _round_trip(tmp_path, doc, approximate=False):
    spec = load_spec_data(doc, tmp_path)
    graph = tmp_path / "net.nir"
    written = write_graph(spec, graph, approximate=approximate)
    back, _notes = import_graph(graph, tmp_path / "back.yaml", ImportOptions())
    return spec, load_spec(back), written


def _same_network(tmp_path, spec, back, x):
    a = _counts(spec, x, tmp_path / "a")
    b = _counts(back, x, tmp_path / "b")
    assert a.counts.sum() > 20
    np.testing.assert_array_equal(a.out_steps, b.out_steps)
    for layer, counts in a.neuron_counts.items():
        if layer in b.neuron_counts:
            np.testing.assert_array_equal(counts, b.neuron_counts[layer], err_msg=layer)


# -- the writer covers every layer kind -----------------------------------------------------------------
def test_every_layer_kind_is_mapped_or_refused():
    """A new layer kind without a NIR handler fails here."""
    assert set(LAYER_TYPES.values()) <= set(HANDLERS), sorted(set(LAYER_TYPES) - {c.type for c in HANDLERS})


# -- round trips -------------------------------------------------------------------------------------
def _cnn_doc():
    """zeropad -> conv2d (IF) -> conv2d 'same' (IF) + hidden linear 1x1 -> add -> avgpool (lambda ratio 2)
    -> depthwise (LIF) -> flatten -> dense (IF, reset to zero): every writer path but global pooling."""
    layers = [
        {"name": "pad", "type": "zeropad2d", "padding": [[1, 1], [1, 1]]},
        {"name": "c1", "type": "conv2d", "filters": 3, "kernel_size": 3, "kernel": dyadic((3, 3, 2, 3)),
         "bias": dyadic((3,), 2), "activation": "relu", "normalization": {"lambda": 2.0}},
        {"name": "c2", "type": "conv2d", "filters": 3, "kernel_size": 3, "padding": "same", "kernel": dyadic((3, 3, 3, 3)),
         "activation": "relu", "normalization": {"lambda": 1.0}},
        {"name": "skip", "type": "conv2d", "inputs": ["c1"], "filters": 3, "kernel_size": 1, "kernel": dyadic((1, 1, 3, 3)),
         "bias": dyadic((3,), 2), "activation": "linear", "normalization": {"lambda": 1.0}},
        {"name": "res", "type": "add", "inputs": ["c2", "skip", "c1"], "activation": "relu", "normalization": {"lambda": 1.0}},
        {"name": "pool", "type": "avgpool2d", "pool_size": 2, "normalization": {"lambda": 0.5}},
        {"name": "dw", "type": "depthwise_conv2d", "kernel_size": 2, "depth_multiplier": 2, "kernel": dyadic((2, 2, 3, 2)),
         "activation": "relu", "normalization": {"lambda": 0.5}, "neuron": {"model": "lif", "tau_m": "20 ms"}},
        {"name": "flat", "type": "flatten"},
        {"name": "out", "type": "dense", "units": 3, "kernel": dyadic((24, 3)), "bias": dyadic((3,), 2),
         "activation": "softmax", "normalization": {"lambda": 1.0}, "neuron": {"reset": "zero"}},
    ]
    return spec_data("cnn", (6, 6, 2), layers, steps=60, neuron={"model": "if", "reset": "subtract"})


def test_cnn_round_trip_gives_the_same_spike_counts(tmp_path):
    spec, back, written = _round_trip(tmp_path, _cnn_doc())
    assert {n: t for n, t, _ in written.rows}["pool"] == "avgpool2d"
    graph = nir.read(tmp_path / "net.nir")  # NIR's reader and type check accept it
    kinds = {name: type(node).__name__ for name, node in graph.nodes.items()}
    assert kinds["c1"] == "Conv2d" and kinds["c1_if"] == "IF" and kinds["dw_lif"] == "LIF" and kinds["flat"] == "Flatten"
    assert kinds["skip"] == "Conv2d" and kinds["res"] == "IF" and kinds["pool"] == "AvgPool2d"
    assert kinds["res_from_c1"] == "Scale"  # lambda 2 -> 1
    assert list(graph.nodes["c1"].padding) == [1, 1]  # the zero padding
    # nir 1.0.8 mistypes grouped convolutions: a depthwise one is written with groups 1, zeros between channels
    assert graph.nodes["dw"].groups == 1 and graph.nodes["dw"].metadata["depth_multiplier"] == 2
    assert back.layer("dw").type == "depthwise_conv2d" and back.layer("dw").multiplier == 2
    assert {("c2_if", "res"), ("skip", "res"), ("res_from_c1", "res")} <= set(graph.edges)
    assert graph.nodes["c1_if"].metadata["reset_mode"] == "subtract" and graph.nodes["out_if"].metadata["reset_mode"] == "zero"
    graph.check_types()
    # the pool's factor lambda_in/lambda_out = 2 rides on r; read back as a depthwise convolution
    assert back.layer("pool").type == "depthwise_conv2d" and back.layer("skip").activation == "linear"
    assert back.neurons["c1"].reset == "subtract" and back.neurons["out"].reset == "zero"
    assert back.neurons["dw"].model == "lif" and back.neurons["dw"].tau_m.value == pytest.approx(0.02, rel=1e-12)
    x = RNG.integers(0, 17, size=(4, 6, 6, 2)) / 16
    _same_network(tmp_path, spec, back, x)


def _mlp_doc(**out_neuron):
    hidden = {"name": "h", "type": "dense", "units": 5, "kernel": dyadic((4, 5)), "bias": dyadic((5,), 2),
              "activation": "relu", "normalization": {"lambda": 0.5}, "neuron": {"refractory": "2 ms"}}
    out = {"name": "out", "type": "dense", "units": 3, "kernel": dyadic((5, 3)), "bias": dyadic((3,), 2),
           "activation": "softmax", "normalization": {"lambda": 1.0}, "neuron": out_neuron}
    return spec_data("mlp", (4,), [hidden, out], steps=80)


def test_approximated_mlp_round_trip_restores_what_nir_cannot_say(tmp_path):
    """Refractory period and the membrane bias path of exponential synapses ride in the node metadata."""
    doc = _mlp_doc(model="lif", tau_m="30 ms", synapse="exponential", tau_syn="3 ms", reset=0.25)
    spec, back, written = _round_trip(tmp_path, doc, approximate=True)
    graph = nir.read(tmp_path / "net.nir")
    assert type(graph.nodes["out_cubalif"]).__name__ == "CubaLIF"
    assert graph.nodes["h_if"].metadata["refractory_s"] == pytest.approx(0.002)
    assert any("refractory period 2 ms left out" in n for n in written.notes)
    assert back.neurons["h"].refractory.value == pytest.approx(0.002)
    assert back.neurons["out"].synapse == "exponential" and back.neurons["out"].reset_value == pytest.approx(0.25)
    x = RNG.integers(0, 17, size=(4, 4)) / 16
    _same_network(tmp_path, spec, back, x)


def test_initial_potential_rides_in_the_metadata_with_approximate(tmp_path):
    """A quantized (QCFS) layer's neurons start at half the threshold: NIR cannot say it, --approximate records it
    in the node's metadata and netspec reads it back, so the network spikes the same."""
    doc = _mlp_doc()
    doc["layers"][1]["neuron"] = {"initial": 0.5}
    doc["layers"][1].update(clip=0.5, levels=4)
    spec, back, written = _round_trip(tmp_path, doc, approximate=True)
    graph = nir.read(tmp_path / "net.nir")
    assert graph.nodes["h_if"].metadata["initial_u"] == pytest.approx(0.5)
    assert any("initial 0.5 left out" in n for n in written.notes)
    assert back.neurons["h"].initial_u == 0.5 and back.neurons["out"].initial_u == 0.0
    _same_network(tmp_path, spec, back, RNG.integers(0, 17, size=(4, 4)) / 16)


def test_global_pooling_and_poisson_input_round_trip(tmp_path):
    layers = [
        {"name": "c", "type": "conv2d", "filters": 2, "kernel_size": 2, "kernel": dyadic((2, 2, 1, 2)),
         "activation": "relu", "normalization": {"lambda": 1.0}},
        {"name": "g", "type": "global_avgpool2d", "normalization": {"lambda": 1.0}},
        {"name": "out", "type": "dense", "units": 2, "kernel": dyadic((2, 2)), "activation": "softmax",
         "normalization": {"lambda": 1.0}},
    ]
    doc = spec_data("gp", (3, 3, 1), layers, encoding="poisson", extra_input={"max_rate": "500 Hz", "seed": 7})
    spec, back, written = _round_trip(tmp_path, doc)
    assert back.input.encoding == "poisson" and back.input.max_rate.value == 500 and back.input.seed == 7
    assert [l.type for l in back.layers] == ["input", "conv2d", "avgpool2d", "flatten", "dense"]
    assert back.shapes["g"] == (1, 1, 2)


# -- hand-built NIR graphs -----------------------------------------------------------------------------
def _write(tmp_path, nodes, edges, name="g.nir", type_check=True):
    path = tmp_path / name
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges, type_check=type_check))
    return path


def _import(tmp_path, path, **options):
    spec_path, notes = import_graph(path, tmp_path / "imported.yaml", ImportOptions(**options))
    return load_spec(spec_path), notes


def test_hand_built_mlp_imports_with_the_stated_conventions(tmp_path, capsys):
    """IF (r, v_threshold, v_reset), LIF (tau, r, v_leak), Affine and Linear: per-step weights kappa*W with
    kappa = dt*r/(tau*(v_threshold - v_leak)); the result spikes exactly like the same network written by hand."""
    w1, b1 = RNG.integers(0, 17, size=(5, 4)) / 16, RNG.integers(0, 5, size=5) / 16
    w2 = RNG.integers(-4, 17, size=(3, 5)) / 16
    f32 = np.float32
    nodes = {
        "x": nir.Input(input_type=np.array([4])),
        "fc.1": nir.Affine(weight=w1.astype(f32), bias=b1.astype(f32)),
        "0": nir.IF(r=np.full(5, 500, f32), v_threshold=np.full(5, 2, f32), v_reset=np.full(5, 0.5, f32)),  # kappa 1/4
        "fc2": nir.Linear(weight=w2.astype(f32)),
        "lif2": nir.LIF(tau=np.full(3, 0.02, f32), r=np.full(3, 40, f32), v_leak=np.full(3, -1, f32),
                        v_threshold=np.full(3, 1, f32), v_reset=np.full(3, -1, f32)),  # kappa 0.001*40/(0.02*2) = 1
        "y": nir.Output(output_type=np.array([3])),
    }
    path = _write(tmp_path, nodes, [("x", "fc.1"), ("fc.1", "0"), ("0", "fc2"), ("fc2", "lif2"), ("lif2", "y")])
    assert main(["export", str(path), "-o", str(tmp_path / "imported.yaml"), "--duration", "60 ms"]) == 0
    out = capsys.readouterr().out
    assert "3 layers, 8 neurons, dt 1 ms, every lambda 1" in out and "'fc.1' -> 'fc_1'" in out
    spec = load_spec(tmp_path / "imported.yaml")
    assert [l.name for l in spec.layers] == ["x", "fc_1", "fc2"]
    np.testing.assert_array_equal(spec.array("fc_1", "kernel"), (w1.T / 4).astype(f32))
    np.testing.assert_array_equal(spec.array("fc2", "kernel"), w2.T.astype(f32))
    assert spec.neurons["fc_1"].reset_value == 0.25 and spec.neurons["fc2"].model == "lif"
    assert spec.neurons["fc2"].reset == "zero" and spec.lam("fc2") == 1.0
    hand = spec_data("hand", (4,), [
        {"name": "fc_1", "type": "dense", "units": 5, "kernel": (w1.T / 4).tolist(), "bias": (b1 / 4).tolist(),
         "activation": "relu", "normalization": {"lambda": 1.0}, "neuron": {"reset": 0.25}},
        {"name": "fc2", "type": "dense", "units": 3, "kernel": w2.T.tolist(), "activation": "relu",
         "normalization": {"lambda": 1.0}, "neuron": {"model": "lif", "tau_m": "20 ms", "reset": "zero"}},
    ], steps=60, neuron={"model": "if"})
    x = RNG.integers(0, 17, size=(3, 4)) / 16
    _same_network(tmp_path, load_spec_data(hand, tmp_path), spec, x)


def _chw_conv(x, w, b, stride=1, pad=0, groups=1):
    """PyTorch's Conv2d on one [C, H, W] sample, in loops: the graph's own meaning."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    cout, cin_g, kh, kw = w.shape
    oh, ow = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    y = np.zeros((cout, oh, ow))
    per = cout // groups
    for o in range(cout):
        g = o // per
        for i in range(oh):
            for j in range(ow):
                patch = x[g * cin_g:(g + 1) * cin_g, i * stride:i * stride + kh, j * stride:j * stride + kw]
                y[o, i, j] = np.sum(patch * w[o]) + b[o]
    return y


def test_hand_built_cnn_imports_as_the_same_function(tmp_path):
    """Conv2d (padding 1), SumPool2d, AvgPool2d, Scale, Flatten, CubaLIF:
    the imported spec's reference (channels-last) computes the graph's channels-first function, and it
    builds and runs."""
    f32 = np.float32
    w1, b1 = np.array(dyadic((4, 2, 3, 3))), np.array(dyadic((4,), 2))
    scale = np.repeat(np.array([0.5, 1.0, 2.0, 0.25]), 4).reshape(4, 2, 2)
    ones = lambda *s: np.ones(s, f32)  # noqa: E731
    nodes = {
        "in": nir.Input(input_type=np.array([2, 6, 6])),
        "conv": nir.Conv2d(input_shape=(6, 6), weight=w1.astype(f32), stride=1, padding=1, dilation=1, groups=1,
                           bias=b1.astype(f32)),
        "if1": nir.IF(r=ones(4, 6, 6) * 1000, v_threshold=ones(4, 6, 6)),
        "sum": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "if2": nir.IF(r=ones(4, 3, 3) * 250, v_threshold=ones(4, 3, 3)),  # a sum of 4 at 1/4: the mean
        "avg": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([1, 1]), padding=np.array([0, 0])),
        "if4": nir.IF(r=ones(4, 2, 2) * 1000, v_threshold=ones(4, 2, 2)),
        "sc": nir.Scale(scale=scale.astype(f32)),
        "if5": nir.IF(r=ones(4, 2, 2) * 1000, v_threshold=ones(4, 2, 2)),
        "flat": nir.Flatten(input_type={"input": np.array([4, 2, 2])}, start_dim=0, end_dim=-1),
        "fc": nir.Linear(weight=np.array(dyadic((3, 16))).astype(f32)),
        "out": nir.CubaLIF(tau_syn=ones(3) * 0.004, tau_mem=ones(3) * 0.02, r=ones(3) * 20, v_leak=0 * ones(3),
                           v_threshold=ones(3), w_in=ones(3)),
        "y": nir.Output(output_type=np.array([3])),
    }
    chain = ["in", "conv", "if1", "sum", "if2", "avg", "if4", "sc", "if5", "flat", "fc", "out", "y"]
    edges = list(zip(chain, chain[1:]))
    spec, _ = _import(tmp_path, _write(tmp_path, nodes, edges))
    assert [l.type for l in spec.layers] == ["input", "zeropad2d", "conv2d", "avgpool2d", "avgpool2d", "depthwise_conv2d",
                                             "flatten", "dense"]
    assert spec.neurons["fc"].synapse == "exponential" and spec.neurons["fc"].tau_syn.value == pytest.approx(0.004)
    # the graph's function, channels-first, with relu standing for each layer of neurons
    x = RNG.integers(0, 17, size=(2, 6, 6, 2)) / 16
    acts = forward(spec, x)
    fc = np.asarray(nodes["fc"].weight, np.float64)
    for s in range(len(x)):
        a = np.maximum(_chw_conv(x[s].transpose(2, 0, 1), w1, b1, pad=1), 0)
        a = np.maximum(a.reshape(4, 3, 2, 3, 2).sum(axis=(2, 4)) / 4, 0)
        a = np.maximum(np.stack([[[a[c, i:i + 2, j:j + 2].mean() for j in range(2)] for i in range(2)] for c in range(4)]), 0)
        a = np.maximum(a * scale, 0)
        y = np.maximum(fc @ a.ravel(), 0)
        np.testing.assert_allclose(acts["fc"][s], y, atol=1e-6)
    sim = _counts(spec, x, tmp_path / "b")
    assert sim.counts.shape == (2, 3)


def test_hand_built_depthwise_and_sum_graph(tmp_path):
    """Conv2d with groups = channels (depth multiplier 2; nir 1.0.8's own type check mistypes it, so it is
    written unchecked, as other tools must) and a node summing three edges: two weighted, one direct."""
    f32 = np.float32
    wd = np.array(dyadic((4, 1, 3, 3)))
    ones = lambda *s: np.ones(s, f32)  # noqa: E731
    nodes = {
        "in": nir.Input(input_type=np.array([2, 5, 5])),
        "dw": nir.Conv2d(input_shape=(5, 5), weight=wd.astype(f32), stride=1, padding=1, dilation=1, groups=2,
                         bias=np.zeros(4, f32)),
        "a": nir.IF(r=ones(4, 5, 5) * 1000, v_threshold=ones(4, 5, 5)),
        "pw": nir.Conv2d(input_shape=(5, 5), weight=np.array(dyadic((4, 4, 1, 1))).astype(f32), stride=1, padding=0,
                         dilation=1, groups=1, bias=np.array(dyadic((4,), 2)).astype(f32)),
        "b": nir.IF(r=ones(4, 5, 5) * 1000, v_threshold=ones(4, 5, 5)),
        "sum": nir.IF(r=ones(4, 5, 5) * 1000, v_threshold=ones(4, 5, 5)),
        "y": nir.Output(output_type=np.array([4, 5, 5])),
    }
    nodes["pw2"] = nir.Conv2d(input_shape=(5, 5), weight=np.array(dyadic((4, 4, 1, 1))).astype(f32), stride=1, padding=0,
                              dilation=1, groups=1, bias=np.zeros(4, f32))
    edges = [("in", "dw"), ("dw", "a"), ("a", "pw"), ("pw", "b"), ("b", "sum"), ("a", "sum"), ("a", "pw2"), ("pw2", "sum"),
             ("sum", "y")]
    spec, _ = _import(tmp_path, _write(tmp_path, nodes, edges, type_check=False))
    assert spec.layer("dw").type == "depthwise_conv2d" and spec.layer("dw").multiplier == 2
    assert spec.layer("sum").type == "add" and spec.layer("sum").inputs == ("pw", "dw", "pw2")  # named by weights
    assert spec.layer("pw2").activation == "linear"
    sim = _counts(spec, RNG.integers(0, 17, size=(2, 5, 5, 2)) / 16, tmp_path / "b")
    assert sim.counts.shape == (2, 100)


# -- refusals: the writer -------------------------------------------------------------------------------
def _refusal(tmp_path, doc, approximate=False):
    with pytest.raises(NetspecError) as err:
        write_graph(load_spec_data(doc, tmp_path), tmp_path / "x.nir", approximate=approximate)
    assert not (tmp_path / "x.nir").exists()
    return str(err.value)


def test_max_pool_lenet_is_refused_with_its_name(tmp_path, capsys):
    import shutil

    import yaml
    # the shipped spec reads the output by membrane, starts at 0.5 and has lambda per channel (each refused
    # first): a spike-count copy with one lambda per layer
    doc = yaml.safe_load((ROOT / "specs" / "lenet-mnist.yaml").read_text())
    del doc["simulation"]["readout"], doc["neuron"]["initial"]
    for layer in doc["layers"]:
        if isinstance(layer.get("normalization", {}).get("lambda"), list):
            layer["normalization"]["lambda"] = max(layer["normalization"]["lambda"])
    src = tmp_path / "src"
    src.mkdir()
    (src / "lenet-mnist.yaml").write_text(yaml.safe_dump(doc))
    shutil.copy(ROOT / "specs" / "lenet-mnist.npz", src)
    out = tmp_path / "out"
    out.mkdir()
    assert main(["nir", str(src / "lenet-mnist.yaml"), "-o", str(out / "l.nir")]) == 1
    err = capsys.readouterr().err
    assert err == ("netspec: error: layer 'pool1' (maxpool2d): NIR has no spiking max pooling (netspec passes the spikes of "
                   "each window's most active input); train the network with average pooling to write it as NIR\n")
    assert not list(out.iterdir())


def test_what_nir_cannot_express_is_refused_by_layer(tmp_path):
    doc = _mlp_doc()
    assert _refusal(tmp_path, doc) == ("layer 'h': refractory period 2 ms: NIR 1.0.8 neurons have no refractory period; "
                                       "`netspec nir --approximate` writes the graph without it (recorded in the node's "
                                       "metadata 'refractory_s')")
    del doc["layers"][1]["neuron"]
    doc["layers"][2]["neuron"] = {"synapse": "exponential", "tau_syn": "3 ms"}
    assert "layer 'out': IF neurons with exponential synapses: NIR has no current-based" in _refusal(tmp_path, doc)
    doc["layers"][2]["neuron"] = {"model": "lif", "tau_m": "20 ms", "synapse": "exponential", "tau_syn": "3 ms"}
    assert _refusal(tmp_path, doc).startswith("layer 'out': a bias with exponential synapses: netspec adds the bias")
    doc["layers"][2]["neuron"] = {"delay": "2 ms"}
    assert _refusal(tmp_path, doc).startswith("layer 'out': delay 2 ms: netspec does not write NIR Delay nodes")
    doc["layers"][2]["neuron"] = {"initial": 0.5}
    assert _refusal(tmp_path, doc) == ("layer 'out': initial 0.5: NIR 1.0.8 neurons start at v = 0 every run; "
                                       "`netspec nir --approximate` writes the graph without it (recorded in the node's "
                                       "metadata 'initial_u')")
    doc["layers"][2]["neuron"] = {"clamp": 3}
    assert _refusal(tmp_path, doc).startswith("layer 'out': clamp 3: NIR 1.0.8 neurons always spike")
    cat = spec_data("cat", (4,), [
        {"name": "a", "type": "dense", "units": 2, "kernel": dyadic((4, 2)), "activation": "relu", "normalization": {"lambda": 1.0}},
        {"name": "b", "type": "dense", "inputs": ["x"], "units": 2, "kernel": dyadic((4, 2)), "activation": "relu",
         "normalization": {"lambda": 1.0}},
        {"name": "j", "type": "concatenate", "inputs": ["a", "b"]},
        {"name": "out", "type": "dense", "units": 2, "kernel": dyadic((4, 2)), "activation": "softmax", "normalization": {"lambda": 1.0}},
    ])
    assert _refusal(tmp_path, cat).startswith("layer 'j' (concatenate): NIR has no concatenation node")
    even = spec_data("even", (4, 4, 1), [
        {"name": "c", "type": "conv2d", "filters": 1, "kernel_size": 2, "padding": "same", "kernel": dyadic((2, 2, 1, 1)),
         "activation": "relu", "normalization": {"lambda": 1.0}},
    ])
    assert _refusal(tmp_path, even).startswith("layer 'c': pads 0 before and 1 after along an axis")


# -- refusals: the reader -------------------------------------------------------------------------------
def _mlp_nodes(**override):
    f32 = np.float32
    nodes = {
        "x": nir.Input(input_type=np.array([3])),
        "fc": nir.Affine(weight=np.ones((2, 3), f32), bias=np.zeros(2, f32)),
        "lif": nir.LIF(tau=np.full(2, 0.01, f32), r=np.full(2, 10, f32), v_leak=np.zeros(2, f32), v_threshold=np.ones(2, f32)),
        "y": nir.Output(output_type=np.array([2])),
    }
    nodes.update(override)
    return nodes, [("x", "fc"), ("fc", "lif"), ("lif", "y")]


@pytest.mark.parametrize("override, message", [
    ({"lif": nir.LI(tau=np.full(2, 0.01), r=np.ones(2), v_leak=np.zeros(2))},
     "g.nir: node 'lif' (LI): a non-spiking leaky integrator (a read-out by membrane potential); netspec reads out spike counts"),
    ({"lif": nir.LIF(tau=np.array([0.01, 0.02]), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2))},
     "g.nir: node 'lif' (LIF): tau differs across the layer (0.01 to 0.02); a spec layer has one value"),
    ({"lif": nir.IF(r=np.ones(2), v_threshold=np.ones(2), v_reset=np.full(2, 1.5))},
     "g.nir: node 'lif' (IF): v_reset at 1.5 of the threshold: at or above it, the neuron would fire at every step"),
    ({"lif": nir.CubaLIF(tau_syn=np.full(2, 0.005), tau_mem=np.full(2, 0.02), r=np.ones(2), v_leak=np.zeros(2),
                         v_threshold=np.ones(2)), "fc": nir.Affine(weight=np.ones((2, 3)), bias=np.ones(2))},
     "g.nir: node 'lif' (CubaLIF): its input has a bias, which NIR passes through the synaptic current"),
])
def test_unsupported_nodes_are_refused_by_name(tmp_path, override, message):
    nodes, edges = _mlp_nodes(**override)
    with pytest.raises(NetspecError) as err:
        _import(tmp_path, _write(tmp_path, nodes, edges))
    assert str(err.value).startswith(message)
    assert not (tmp_path / "imported.yaml").exists()


def test_a_weighted_sum_as_output_is_refused(tmp_path):
    nodes, _ = _mlp_nodes()
    del nodes["lif"]
    with pytest.raises(NetspecError, match=r"node 'fc' \(Affine\): feeds 'y' \(Output\); netspec needs every weighted node "
                                           r"to feed one neuron node \(a weighted sum read out without spiking"):
        _import(tmp_path, _write(tmp_path, nodes, [("x", "fc"), ("fc", "y")]))


def test_bad_files_are_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n not really")
    assert main(["export", str(bad), "-o", str(tmp_path / "s.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"netspec: error: {bad}: not a readable NIR graph (") and err.count("\n") == 1
    nodes, edges = _mlp_nodes()
    nodes["fc"] = nir.Affine(weight=np.ones((2, 4)), bias=np.zeros(2))  # reads 4, the input has 3
    path = tmp_path / "mismatch.nir"
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    assert main(["export", str(path), "-o", str(tmp_path / "s.yaml")]) == 1
    err = capsys.readouterr().err
    assert "not a readable NIR graph" in err and "type mismatch" in err and err.count("\n") == 1
    good = _write(tmp_path, *_mlp_nodes())
    assert main(["export", str(good), "-o", str(tmp_path / "s.yaml"), "--calibration", "x.npz"]) == 2
    assert "--calibration: a NIR graph is already a spiking network" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "m.keras"), "-o", str(tmp_path / "s.yaml")]) == 2
    assert "--calibration: required to export a Keras model" in capsys.readouterr().err


def test_nir_content_is_recognized_without_the_suffix(tmp_path):
    path = _write(tmp_path, *_mlp_nodes(), name="graph.h5")
    assert is_nir_file(path) and is_nir_file(tmp_path / "any.nir")
    assert not is_nir_file(ROOT / "specs" / "tiny-dense.yaml")
    spec, _ = _import(tmp_path, path, dt="0.1 ms")
    assert spec.simulation.dt.value == pytest.approx(1e-4)
    # dt 0.1 ms: kappa = 1e-4 * 10 / 0.01 = 0.1
    np.testing.assert_allclose(spec.array("fc", "kernel"), np.full((3, 2), 0.1), rtol=1e-6)


def test_shipped_dense_spec_writes_and_reads_back(tmp_path, capsys):
    graph = tmp_path / "tiny.nir"
    assert main(["nir", str(ROOT / "specs" / "tiny-dense.yaml"), "-o", str(graph)]) == 0
    out = capsys.readouterr().out
    assert "hidden  dense  Affine 'hidden' -> IF 'hidden_if'" in out and "note: reset by subtraction (hidden, out)" in out
    assert main(["export", str(graph), "-o", str(tmp_path / "tiny.yaml")]) == 0
    assert main(["validate", str(tmp_path / "tiny.yaml")]) == 0
    back = load_spec(tmp_path / "tiny.yaml")
    orig = load_spec(ROOT / "specs" / "tiny-dense.yaml")
    # W * lambda_in / lambda_out, in float32
    np.testing.assert_allclose(back.array("out", "kernel"), orig.array("out", "kernel") * 1.2 / 0.9, rtol=1e-6)
    np.testing.assert_allclose(back.array("hidden", "kernel"), orig.array("hidden", "kernel") / 1.2, rtol=1e-6)


def test_graph_metadata_and_copy_safety(tmp_path):
    """The doc the tests start from is not modified by writing it."""
    doc = _cnn_doc()
    before = copy.deepcopy(doc)
    write_graph(load_spec_data(doc, tmp_path), tmp_path / "c.nir")
    assert doc == before
    meta = nir.read(tmp_path / "c.nir").metadata["netspec"]
    assert meta["dt_text"] == "1 ms" and meta["encoding"] == "analog" and meta["name"] == "cnn"


def test_hostile_values_in_a_graph_are_one_line_errors(tmp_path):
    """nir.read does not check what a node holds; netspec names the node instead of failing somewhere inside."""
    nodes, edges = _mlp_nodes()
    nodes["lif"].metadata = {"refractory_s": "soon"}
    with pytest.raises(NetspecError, match=r"^g.nir: node 'lif' \(LIF\): holds values netspec cannot read \(ValueError"):
        _import(tmp_path, _write(tmp_path, nodes, edges))
    nodes, edges = _mlp_nodes()
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata={"netspec": {"dt_text": "1 parsec"}})
    nir.write(tmp_path / "m.nir", graph)
    with pytest.raises(NetspecError, match=r"m.nir: dt: unknown unit 'parsec'"):
        _import(tmp_path, tmp_path / "m.nir")
    weird = {"x": nodes["x"], "1st layer!": nodes["fc"], "lif": nodes["lif"], "y": nodes["y"]}
    spec, notes = _import(tmp_path, _write(tmp_path, weird, [("x", "1st layer!"), ("1st layer!", "lif"), ("lif", "y")]))
    assert spec.layers[1].name == "n_1st_layer_" and "'1st layer!' -> 'n_1st_layer_'" in notes[0]


def test_readme_mlp_example(tmp_path):
    """The README's import example: LIF with r = tau/dt and IF with r = 1/dt keep their weights (kappa 1)."""
    rng = np.random.default_rng(0)
    graph = nir.NIRGraph.from_list(
        nir.Input(input_type=np.array([4])),
        nir.Affine(weight=rng.normal(0, 0.5, (8, 4)).astype(np.float32), bias=np.full(8, 0.05, np.float32)),
        nir.LIF(tau=np.full(8, 0.02), r=np.full(8, 20.0), v_leak=np.zeros(8), v_threshold=np.ones(8)),
        nir.Linear(weight=rng.normal(0, 0.5, (3, 8)).astype(np.float32)),
        nir.IF(r=np.full(3, 1000.0), v_threshold=np.ones(3)),
    )
    nir.write(tmp_path / "mlp.nir", graph)
    spec, _ = _import(tmp_path, tmp_path / "mlp.nir")
    assert [l.name for l in spec.layers] == ["input", "affine", "linear"] and spec.neuron_count() == 11
    np.testing.assert_array_equal(spec.array("affine", "kernel"), graph.nodes["affine"].weight.T)
    np.testing.assert_array_equal(spec.array("linear", "kernel"), graph.nodes["linear"].weight.T)
    assert spec.neurons["affine"].model == "lif" and spec.neurons["affine"].tau_m.text == "20 ms"
    assert spec.neurons["linear"].model == "if" and spec.neurons["linear"].reset == "zero"
    readme = (ROOT / "README.md").read_text()
    assert "nir.LIF(tau=np.full(8, 0.02), r=np.full(8, 20.0), v_leak=np.zeros(8), v_threshold=np.ones(8))," in readme
