"""Valid specs: every file under tests/spec/valid/ and specs/ loads, and survives a round trip
load -> Spec.to_yaml -> spec_yaml -> parse -> load with equal typed layers, shapes, arrays and neuron
parameters. Then what the loader derives from a few of them, checked against the file by hand."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netspec.spec import LAYER_TYPES, check_file, load_spec, spec_yaml
from netspec.spec.load import check_document
from netspec.spec.yamlsrc import parse_document

HERE = Path(__file__).parent
REPO = HERE.parent.parent
VALID = sorted((HERE / "valid").glob("*.yaml"))
SHIPPED = sorted((REPO / "specs").glob("*.yaml"))


def _reload(spec, folder: Path):
    """Write the spec back to YAML text and load that text again (weights resolved from ``folder``)."""
    text = spec_yaml(spec.to_yaml())
    spec2, diagnostics = check_document(parse_document(text, "round-trip.yaml"), folder)
    assert diagnostics == [], [d.text() for d in diagnostics]
    return text, spec2


def test_valid_specs_cover_every_layer_type():
    assert len(VALID) >= 6
    used = {layer.type for path in VALID for layer in load_spec(path).layers}
    assert used == set(LAYER_TYPES)


@pytest.mark.parametrize("path", VALID + SHIPPED, ids=lambda p: p.parent.name + "/" + p.stem)
def test_valid_spec_loads_without_diagnostics(path):
    spec, diagnostics = check_file(path)
    assert diagnostics == []
    assert spec.path == path
    assert spec.order[-1] == spec.output_layer.name
    assert spec.order[0] == spec.input_layer.name
    # every layer comes after its inputs, every layer has a shape
    position = {name: i for i, name in enumerate(spec.order)}
    assert sorted(position) == sorted(layer.name for layer in spec.layers)
    for layer in spec.layers:
        assert all(position[i] < position[layer.name] for i in layer.inputs)
        assert all(isinstance(d, int) and d > 0 for d in spec.shapes[layer.name])
    # every referenced tensor is loaded, finite, with the shape its layer needs
    for layer in spec.layers:
        for field in layer.tensors():
            arr = spec.array(layer, field)
            assert arr is not None and np.all(np.isfinite(arr))
            assert arr.shape == tuple(layer.tensor_shapes(spec.in_shapes(layer))[field])


@pytest.mark.parametrize("path", VALID + SHIPPED, ids=lambda p: p.parent.name + "/" + p.stem)
def test_round_trip(path):
    spec = load_spec(path)
    text, again = _reload(spec, path.parent)
    assert text.startswith("# yaml-language-server: $schema=")
    assert again.layers == spec.layers  # typed layers: every field (inline tensors compare via arrays)
    assert [layer.inputs_written for layer in again.layers] == [layer.inputs_written for layer in spec.layers]
    assert again.order == spec.order
    assert again.shapes == spec.shapes
    assert again.arrays.keys() == spec.arrays.keys()
    for key, arr in spec.arrays.items():
        assert np.array_equal(again.arrays[key], arr), key
    assert again.neurons == spec.neurons
    assert (again.input, again.simulation, again.weights) == (spec.input, spec.simulation, spec.weights)
    assert (again.name, again.description, again.source) == (spec.name, spec.description, spec.source)
    # and writing it again changes nothing: to_yaml is a fixed point
    assert again.to_yaml() == spec.to_yaml()
    assert spec_yaml(again.to_yaml()) == text


def test_inputs_are_written_back_only_where_the_file_wrote_them():
    spec = load_spec(HERE / "valid" / "inception.yaml")
    written = {layer["name"] for layer in spec.to_yaml()["layers"] if "inputs" in layer}
    assert written == {"b1", "b3", "bp", "mixed"}
    assert spec.layer("flat").inputs == ("mixed",)  # read by default from the layer listed before


def test_depthwise_poisson_derived_facts():
    spec = load_spec(HERE / "valid" / "depthwise-poisson.yaml")
    assert spec.shapes == {
        "image": (5, 5, 2),
        "pad": (6, 7, 2),  # [[1, 0], [0, 2]]: one row on top, two columns on the right
        "dw": (5, 5, 4),  # kernel [2, 3] 'valid': 6-2+1, 7-3+1; 2 channels * multiplier 2
        "pool": (3, 3, 4),  # pool 3 stride 2 'same' on 5: ceil(5/2)
        "gap": (4,),
        "out": (3,),
    }
    dw = spec.layer("dw")
    assert (dw.multiplier, dw.stride, dw.pad) == (2, (1, 1), "valid")
    assert spec.array("dw", "kernel").shape == (2, 3, 2, 2)
    pool = spec.layer("pool")
    assert (pool.pool_size, pool.stride, pool.pad) == ((3, 3), (2, 2), "same")
    assert spec.input.encoding == "poisson" and spec.input.seed == 7
    assert spec.input.max_rate.value == pytest.approx(500.0) and spec.input.max_rate.text == "500 Hz"
    assert spec.simulation.steps == 100  # 50 ms / 0.5 ms
    assert spec.lam("pad") == 1.0 and spec.lam("image") == 1.0  # the input's default, inherited by zeropad
    assert spec.layer("out").normalization.percentile == 99.9
    assert spec.neuron_count() == 5 * 5 * 4 + 3 * 3 * 4 + 4 + 3


def test_inception_branches_keep_their_own_lambda():
    spec = load_spec(HERE / "valid" / "inception.yaml")
    assert spec.shapes["mixed"] == (8, 8, 4 + 5 + 3)
    assert spec.shapes["flat"] == (8 * 8 * 12,)
    assert [spec.lam(i) for i in spec.layer("mixed").inputs] == [1.5, 2.5, 1.2]  # bp inherits the stem's
    with pytest.raises(ValueError, match="one factor per branch"):
        spec.lam("mixed")
    assert spec.layer("mixed").resolved_axis(3) == 2
    assert spec.source["calibration"] == {"data": "none.npz", "samples": 10}


def test_residual_add_is_fed_by_linear_convolutions():
    spec = load_spec(HERE / "valid" / "residual.yaml")
    assert [c.name for c in spec.consumers("c1")] == ["r1", "r2"]
    assert spec.layer("r1").activation == spec.layer("r2").activation == "linear"
    assert spec.shapes["sum"] == spec.shapes["r1"] == spec.shapes["r2"] == (6, 6, 4)
    assert spec.array("r1", "bias") is None  # no bias written, none invented
    assert spec.neurons["sum"].reset == "zero" and spec.neurons["sum"].reset_value == 0.0
    assert spec.neurons["sum"].refractory.value == pytest.approx(1e-3)
    assert spec.output_layer.activation == "linear"


def test_lif_in_millivolts_merges_defaults_and_overrides():
    spec = load_spec(HERE / "valid" / "lif-mv.yaml")
    h, out = spec.neurons["h"], spec.neurons["out"]
    assert h.model == out.model == "lif"
    assert h.tau_m.value == pytest.approx(10e-3) and out.tau_m.value == pytest.approx(20e-3)
    assert h.threshold.value == pytest.approx(-52.5e-3) and out.threshold.value == pytest.approx(-50e-3)
    assert h.rest.value == pytest.approx(-65e-3)
    assert h.reset_value == pytest.approx(-65e-3)  # reset: zero -> to rest
    assert out.reset_value == pytest.approx(-70e-3)
    assert h.scale == pytest.approx(12.5e-3)
    assert h.synapse == "exponential" and h.tau_syn.value == pytest.approx(5e-3)
    assert out.synapse == "delta" and out.delay.value == 0.0
    assert h.delay.value == pytest.approx(0.5e-3)  # 5 steps of 0.1 ms
    assert spec.simulation.steps == 250


def test_strided_conv_and_units_of_a_second():
    spec = load_spec(HERE / "valid" / "strided-conv.yaml")
    assert spec.shapes["conv"] == (4, 4, 2)  # 'same' stride 2 on 7: ceil(7/2)
    assert spec.shapes["pool"] == (2, 2, 2) and spec.shapes["top"] == (1, 2, 2)
    assert spec.simulation.duration.value == 1.0 and spec.simulation.steps == 1000
    assert spec.lam("image") == 255 and spec.lam("flat") == 90.5
    assert spec.input.range == (0.0, 255.0)


def test_flat_branches_concatenate_on_axis_zero():
    spec = load_spec(HERE / "valid" / "flat-branches.yaml")
    assert spec.shapes["ab"] == (5,)
    assert spec.layer("ab").resolved_axis(1) == 0
    params = spec.neurons["a"]
    assert (params.threshold.value, params.rest.value, params.reset_value, params.scale) == (2.0, 0.5, 0.25, 1.5)
