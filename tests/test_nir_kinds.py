"""NIR both ways covers every layer kind: the writer maps or refuses each by name (``writer.HANDLERS``), the
reader declares what NIR nodes read into each or why none do (``reader.READS``); and the reader makes its
layers with the spec's own layer classes, so a field is written or the import fails, never dropped."""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from netspec.errors import NetspecError  # noqa: E402
from netspec.nir import reader, writer  # noqa: E402
from netspec.nir.reader import READS, ROLES, ImportOptions, import_graph, translate  # noqa: E402
from netspec.spec import LAYER_TYPES, load_spec  # noqa: E402
from netspec.spec.layers import Layer, Role  # noqa: E402

KINDS = sorted(LAYER_TYPES.items())


@pytest.mark.parametrize("name,kind", KINDS)
def test_nir_writer_handles_every_kind(name, kind):
    assert writer.handles(kind), f"the NIR writer has no handler (mapping or refusal) for layer kind {name!r}"


@pytest.mark.parametrize("name,kind", KINDS)
def test_nir_reader_declares_every_kind(name, kind):
    assert reader.handles(kind), f"the NIR reader declares no NIR node (or reason for none) for layer kind {name!r}"
    entry = READS[kind]
    assert entry.how, name
    # the NIR classes named exist in the nir package and are ones the reader walks
    for node in entry.nodes:
        assert hasattr(nir, node) and node in ROLES, (name, node)


@dataclass(frozen=True)
class _Unregistered(Layer):
    """A kind neither direction knows (never registered)."""

    type = "unregistered"
    role = Role.POPULATION


def test_the_checks_fail_for_a_kind_without_an_entry():
    assert not writer.handles(_Unregistered)
    assert not reader.handles(_Unregistered)


def test_the_reader_refuses_to_make_a_kind_it_declares_no_node_for():
    with pytest.raises(NetspecError, match="'maxpool2d' layer, which READS says no NIR node reads into"):
        reader._kind("maxpool2d")


def _graph():
    rng = np.random.default_rng(3)
    f32 = np.float32
    nodes = {
        "x": nir.Input(input_type=np.array([2, 6, 6])),
        "c": nir.Conv2d(input_shape=(6, 6), weight=rng.normal(0, 0.3, (3, 2, 3, 3)).astype(f32), stride=(1, 1),
                        padding=(1, 1), dilation=(1, 1), groups=1, bias=np.full(3, 0.1, f32)),
        "c_if": nir.IF(r=np.full((3, 6, 6), 1000, f32), v_threshold=np.ones((3, 6, 6), f32)),
        "p": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "p_if": nir.IF(r=np.full((3, 3, 3), 250, f32), v_threshold=np.ones((3, 3, 3), f32)),
        "f": nir.Flatten(input_type={"input": np.array([3, 3, 3])}, start_dim=0, end_dim=-1),
        "d": nir.Affine(weight=rng.normal(0, 0.3, (4, 27)).astype(f32), bias=np.zeros(4, f32)),
        "d_lif": nir.LIF(tau=np.full(4, 0.02, f32), r=np.full(4, 20, f32), v_leak=np.zeros(4, f32),
                         v_threshold=np.ones(4, f32), v_reset=np.full(4, 0.25, f32)),
        "y": nir.Output(output_type=np.array([4])),
    }
    edges = [("x", "c"), ("c", "c_if"), ("c_if", "p"), ("p", "p_if"), ("p_if", "f"), ("f", "d"), ("d", "d_lif"), ("d_lif", "y")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def test_every_field_the_reader_sets_reaches_the_spec(tmp_path):
    """The spec the reader writes holds every field of every layer object it made: reading it back gives the
    same objects (a field the YAML dropped would come back as its default and differ)."""
    translated = reader._Reader(_graph(), tmp_path / "g.nir", ImportOptions())
    translated.run()
    made = {layer.name: layer for layer in translated.layers}
    assert [layer.type for layer in made.values()] == ["input", "zeropad2d", "conv2d", "avgpool2d", "flatten", "dense"]
    nir.write(tmp_path / "g.nir", _graph())
    spec = load_spec(import_graph(tmp_path / "g.nir", tmp_path / "g.yaml")[0])
    for layer in spec.layers:
        ours = made[layer.name]
        for f in fields(ours):
            if f.name != "inputs_written":
                assert getattr(layer, f.name) == getattr(ours, f.name), (layer.name, f.name)
    assert spec.layer("c_pad").padding == ((1, 1), (1, 1)) and spec.layer("c").kernel_size == (3, 3)
    assert spec.neurons["d"].tau_m.value == pytest.approx(0.02) and spec.neurons["d"].reset_value == 0.25


def test_a_field_the_layer_class_does_not_have_is_an_error_not_dropped(tmp_path):
    r = reader._Reader(_graph(), tmp_path / "g.nir", ImportOptions())
    with pytest.raises(NetspecError, match=r"internal error: the NIR reader made layer 'f' \(flatten\) with a field it does not have"):
        r.emit({"name": "f", "type": "flatten", "inputs": ["x"], "units": 3})
    with pytest.raises(NetspecError, match="layer 'd' \\(dense\\) with a field it does not have"):
        r.emit({"name": "d", "type": "dense", "units": 3, "pool_size": [2, 2]})


def test_translate_writes_layers_through_the_layer_classes(tmp_path):
    doc = translate(_graph(), tmp_path / "g.nir").doc
    dense = doc["layers"][-1]
    assert list(dense) == ["name", "type", "units", "kernel", "bias", "activation", "normalization", "neuron"]
    assert dense["kernel"] == "d/kernel" and dense["normalization"] == {"lambda": 1.0}
