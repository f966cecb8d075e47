"""The build folder: generated script (golden files, safety), key and reuse, the CLI, user errors.

Regenerate the golden files after an intended change of the generated code with

    NETSPEC_REGENERATE_GOLDEN=1 pytest tests/test_brian_build.py -k golden

and review the diff of ``tests/golden/*.network.py`` like any other change.
"""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from netspec.brian import BuildOptions, build, build_command, simulate
from netspec.brian import codegen
from netspec.brian.build import resolve, spec_hash
from netspec.brian.plan import make_plan
from netspec.errors import NetspecError
from netspec.spec import load_spec, load_spec_data
from test_brian_support import spec_data

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"


def _masked(text: str) -> str:
    """The build key hashes the builder's own source and the Brian2 version; everything else is compared."""
    return re.sub(r"build key: [0-9a-f]{64}", "build key: <key>", text)


def _shipped(name, **changes):
    doc = yaml.safe_load((ROOT / "specs" / f"{name}.yaml").read_text())
    for key, value in changes.items():
        doc["simulation"][key] = value
    return load_spec_data(doc, ROOT / "specs")


def _poisson_pool():
    """Poisson input, two convolutions concatenated, a max pool over the concatenation, a dense output."""
    k = lambda *shape: np.linspace(-0.5, 0.8, int(np.prod(shape))).reshape(shape).round(3).tolist()  # noqa: E731
    layers = [
        {"name": "a", "type": "conv2d", "inputs": ["x"], "filters": 2, "kernel_size": 3, "padding": "same", "kernel": k(3, 3, 1, 2),
         "activation": "relu", "normalization": {"lambda": 1.5}},
        {"name": "b", "type": "conv2d", "inputs": ["x"], "filters": 1, "kernel_size": 1, "kernel": k(1, 1, 1, 1),
         "activation": "relu", "normalization": {"lambda": 0.5}},
        {"name": "cat", "type": "concatenate", "inputs": ["a", "b"]},
        {"name": "pool", "type": "maxpool2d", "pool_size": 2},
        {"name": "flat", "type": "flatten"},
        {"name": "out", "type": "dense", "units": 3, "kernel": k(12, 3), "activation": "softmax", "normalization": {"lambda": 2.0}},
    ]
    return load_spec_data(spec_data("poisson-pool", (4, 4, 1), layers, encoding="poisson",
                                     extra_input={"max_rate": "500 Hz", "seed": 1}), ROOT)


def _rich():
    """Unrolled synapses with every neuron feature: LIF in mV, reset to a value, refractoriness, exponential
    synapses, a delay, and max pooling on poisson input."""
    layers = [
        {"name": "c", "type": "conv2d", "filters": 2, "kernel_size": 2, "kernel": np.full((2, 2, 1, 2), 0.3).tolist(),
         "activation": "relu", "normalization": {"lambda": 1.0}},
        {"name": "p", "type": "maxpool2d", "pool_size": 2},
        {"name": "f", "type": "flatten"},
        {"name": "out", "type": "dense", "units": 2, "kernel": np.full((8, 2), 0.5).tolist(), "activation": "softmax",
         "normalization": {"lambda": 1.0}},
    ]
    neuron = {"model": "lif", "tau_m": "20 ms", "threshold": "-50 mV", "rest": "-65 mV", "reset": "-70 mV",
              "refractory": "1 ms", "synapse": "exponential", "tau_syn": "3 ms", "delay": "2 ms"}
    return load_spec_data(spec_data("rich", (5, 5, 1), layers, encoding="poisson", neuron=neuron,
                                    extra_input={"max_rate": "200 Hz", "seed": 3}), ROOT)


#: golden file -> (spec, build options)
GOLDENS = {
    "tiny-dense": (lambda: _shipped("tiny-dense"), BuildOptions()),
    "tiny-dense.one-step-per-layer": (lambda: _shipped("tiny-dense", timing="one-step-per-layer"), BuildOptions()),
    "small-conv.standalone": (lambda: _shipped("small-conv"), BuildOptions(standalone=True, threads=2)),
    "poisson-pool": (_poisson_pool, BuildOptions()),
    "rich.synapses": (_rich, BuildOptions(connectivity="synapses")),
}


@pytest.mark.parametrize("name", sorted(GOLDENS))
def test_generated_script_matches_golden_file(name):
    """The generated network.py of: the dense example, with both timings; the conv + max-pool example as a
    standalone build (rendered, not compiled); poisson input into a max pool over a concatenation; unrolled
    synapses with every neuron feature."""
    make_spec, options = GOLDENS[name]
    spec = make_spec()
    plan = make_plan(spec, options.steps, options.connectivity)
    text = _masked(codegen.render(plan, "0" * 64, spec_hash(spec), resolve(spec, options)))
    path = GOLDEN / f"{name}.network.py"
    if os.environ.get("NETSPEC_REGENERATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"generated network.py changed ({path.name}); see the module docstring to regenerate"


def test_a_build_writes_the_rendered_script(tmp_path):
    spec = _shipped("tiny-dense")
    built = build(spec, tmp_path / "tiny")
    plan = make_plan(spec)
    assert built.options.batch == spec.estimate().default_batch == 8  # a small network: eight side by side
    assert built.script.read_text() == codegen.render(plan, built.key, spec_hash(spec), built.options)


def test_generated_script_is_deterministic_and_self_contained(tmp_path):
    spec = load_spec(ROOT / "specs" / "small-conv.yaml")
    a = build(spec, tmp_path / "a").script.read_text()
    b = build(spec, tmp_path / "b", force=True).script.read_text()
    assert a == b
    tree = ast.parse(a)
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    # the code that runs the network is the runner package copied next to the script (tests/test_brian_runner.py)
    assert imported == {"numpy", "brian2", "netspec_runner"}
    assert "Network(*objects" in a and "magic" not in a and "runner.main(MODEL" in a
    for group in ("L_conv1", "L_pool1", "L_conv2", "L_fc"):
        assert f"{group} = NeuronGroup(" in a
    for operation in ("S_conv2_0", "S_fc_0", "E_pool1_0"):
        assert f"name='{operation}'" in a
    # in data-flow order: each layer with what it receives
    assert a.index("L_conv2 = NeuronGroup(") < a.index("name='S_conv2_0'") < a.index("L_fc = NeuronGroup(")
    assert "du/dt = I/dt : 1" in a and "threshold='u >= 1'" in a


def test_script_runs_on_its_own(tmp_path):
    """python network.py --inputs x.npy --out r.npz, as the docstring says, in a fresh interpreter."""
    built = build(load_spec(ROOT / "specs" / "tiny-dense.yaml"), tmp_path / "tiny")
    x = np.random.default_rng(0).uniform(0, 1, (3, 4))
    np.save(tmp_path / "x.npy", x)
    done = subprocess.run([sys.executable, str(built.script), "--inputs", str(tmp_path / "x.npy"), "--out",
                           str(tmp_path / "r.npz"), "--target", "numpy"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    with np.load(tmp_path / "r.npz") as r:
        direct = simulate(built, x)
        np.testing.assert_array_equal(r["counts"], direct.counts)
        np.testing.assert_array_equal(r["spikes_hidden"], direct.layer_spikes["hidden"])


HOSTILE = "'''\"\"\" + __import__('os').system('touch /tmp/pwned') {{ 7*7 }} {% raw %}\n#"


def test_hostile_text_never_reaches_the_script(tmp_path):
    doc = spec_data("hostile", (2,), [
        {"name": "h", "type": "dense", "units": 2, "kernel": [[1.0, 0.0], [0.0, 1.0]], "activation": "relu",
         "normalization": {"lambda": 1.0}},
        {"name": "out", "type": "dense", "units": 2, "kernel": [[1.0, 0.0], [0.0, 1.0]], "activation": "softmax",
         "normalization": {"lambda": 1.0}, "neuron": {"tau_m": " 20  ms ", "model": "lif", "refractory": "2e0 ms"}},
    ])
    doc["description"] = HOSTILE
    doc["source"] = {"model": HOSTILE, "framework": "x'); import os; os.system('id"}
    spec = load_spec_data(doc, tmp_path)
    text = build(spec, tmp_path / "h").script.read_text()
    for fragment in ("__import__", "os.system", "pwned", "7*7", "{%", " 20  ms ", "2e0 ms", "import os; os"):
        assert fragment not in text
    ast.parse(text)
    assert "0.02*second" in text  # units written from the parsed value


@pytest.mark.parametrize("name", ["x; import os", "__class__", "a b", "1abc", "conv\n1"])
def test_names_are_checked_again_before_codegen(name):
    with pytest.raises(NetspecError, match="is not a valid identifier"):
        codegen.ident(name)


def test_numbers_are_written_exactly():
    assert codegen.num(0.1) == "0.1" and float(codegen.num(1 / 3)) == 1 / 3
    with pytest.raises(NetspecError):
        codegen.num(float("nan"))


def test_unchanged_spec_is_not_rebuilt(tmp_path):
    spec = load_spec(ROOT / "specs" / "tiny-dense.yaml")
    first = build(spec, tmp_path / "t")
    mtime = first.script.stat().st_mtime_ns
    second = build(load_spec(ROOT / "specs" / "tiny-dense.yaml"), tmp_path / "t")
    assert first.rebuilt and not second.rebuilt and second.key == first.key
    assert second.script.stat().st_mtime_ns == mtime
    # any option, the step count or forcing rebuilds
    assert build(spec, tmp_path / "t", BuildOptions(samples_per_run=7)).rebuilt
    assert build(spec, tmp_path / "t", BuildOptions(samples_per_run=7, steps=20)).rebuilt
    assert build(spec, tmp_path / "t", BuildOptions(samples_per_run=7, steps=20), force=True).rebuilt
    again = build(spec, tmp_path / "t", BuildOptions(samples_per_run=7, steps=20))
    assert not again.rebuilt and again.steps == 20 and "STEPS = 20" in again.script.read_text()
    # a changed weight changes the key
    doc = spec.to_yaml()
    doc["layers"][1]["kernel"][0][0] = 0.51
    changed = build(load_spec_data(doc, ROOT / "specs"), tmp_path / "t", BuildOptions(samples_per_run=7, steps=20))
    assert changed.rebuilt and changed.key != again.key


def test_build_summary(tmp_path):
    built = build(load_spec(ROOT / "specs" / "small-conv.yaml"), tmp_path / "s")
    # conv1 10x10x4 (analog, no synapses), pool1 5x5x4 gates, conv2 3x3x6, fc 3
    assert built.populations == {"conv1": 400, "conv2": 54, "fc": 3}
    assert built.synapses == {"conv1": 0, "pool1": 400, "conv2": 9 * 9 * 4 * 6, "fc": 54 * 3}
    assert built.fanout == {"conv1": 0, "pool1": 9 * 9 * 4 * 6, "conv2": 54 * 3, "fc": 0}
    assert built.steps == 200 and built.dir == tmp_path / "s"


def test_default_folder_is_build_slash_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    built = build(load_spec(ROOT / "specs" / "tiny-dense.yaml"))
    assert built.dir == Path("build") / "tiny-dense" and (tmp_path / "build" / "tiny-dense" / "network.py").exists()


def test_build_command_prints_folder_and_reuse(tmp_path, capsys):
    spec = load_spec(ROOT / "specs" / "tiny-dense.yaml")
    out = str(tmp_path / "cli")
    assert build_command(spec, BuildOptions(), out) == 0
    first = capsys.readouterr().out
    assert build_command(spec, BuildOptions(), out) == 0
    second = capsys.readouterr().out
    assert "built (runtime)" in first and "up to date, reused" in second and str(tmp_path / "cli") in second


def test_cli_build_end_to_end(tmp_path):
    done = subprocess.run([sys.executable, "-m", "netspec", "build", str(ROOT / "specs" / "tiny-dense.yaml"), "-o",
                           str(tmp_path / "o")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "FLOAT_DTYPE = np.float32" in (tmp_path / "o" / "network.py").read_text()  # the default
    done = subprocess.run([sys.executable, "-m", "netspec", "build", str(ROOT / "specs" / "tiny-dense.yaml"), "-o",
                           str(tmp_path / "o64"), "--float64"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "FLOAT_DTYPE = np.float64" in (tmp_path / "o64" / "network.py").read_text()
    bad = subprocess.run([sys.executable, "-m", "netspec", "build", str(ROOT / "specs" / "tiny-dense.yaml"), "-o",
                          str(tmp_path / "o"), "--threads", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "netspec: error: build: --threads must be at least 1, got 0" in bad.stderr


def test_simulate_refuses_inputs_of_the_wrong_shape(tmp_path):
    built = build(load_spec(ROOT / "specs" / "tiny-dense.yaml"), tmp_path / "t")
    with pytest.raises(NetspecError, match=r"simulate: inputs have shape \[2, 5\], the spec 'tiny-dense' expects \[N, 4\]"):
        simulate(built, np.zeros((2, 5)))
    empty = simulate(built, np.zeros((0, 4)))
    assert empty.counts.shape == (0, 2) and empty.out_steps.shape == (0, 100, 2)


def test_predictions_break_ties_by_membrane_then_index():
    from netspec.brian import SimResult

    counts = np.array([[3, 5, 5], [2, 2, 2], [0, 0, 0], [1, 4, 0]])
    v = np.array([[0.9, 0.1, 0.4], [0.5, 0.7, 0.7], [0.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    sim = SimResult(counts, v, np.zeros((4, 1, 3)), {}, {}, None, 0.0)
    assert sim.predictions().tolist() == [2, 1, 0, 1]


def test_a_layer_whose_operations_could_wrap_its_counter_is_refused(tmp_path, monkeypatch):
    """Layers whose neurons' fan-outs differ count their operations per step in a Brian2 integer (int32): a
    layer that could exceed it (every neuron spiking) is refused before anything is written. The limit is
    lowered here to the shipped small conv net's size; uniform fan-outs are counted without that counter."""
    import importlib

    build_mod = importlib.import_module("netspec.brian.build")  # the module, not the function
    spec = load_spec(ROOT / "specs" / "small-conv.yaml")
    plan = build_mod.make_plan(spec)
    varying = {n: int(f.sum()) for n, f in plan.fanout.items() if f.size and not np.all(f == f[0])}
    assert varying, "small-conv needs a layer whose fan-outs differ"
    name, total = max(varying.items(), key=lambda kv: kv[1])
    monkeypatch.setattr(build_mod, "COUNTER_MAX", total - 1)
    with pytest.raises(NetspecError, match=rf"^build: layer '{name}': up to {total:,} synaptic operations per time "
                                           r"step do not fit the per-step operation counter \(int32"):
        build(spec, tmp_path / "b")
    assert not (tmp_path / "b").exists()
    monkeypatch.setattr(build_mod, "COUNTER_MAX", total)
    build(spec, tmp_path / "b")
