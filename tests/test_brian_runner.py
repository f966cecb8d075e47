"""The runner package (``netspec/brian/runner/``): the code every generated ``network.py`` runs.

Its numpy parts are tested on hand-made arrays; a built network is run in a fresh interpreter where netspec
cannot be imported, from a copy of its build folder, to show that a build folder is self-contained.
"""
from __future__ import annotations

import ast
import builtins
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from netspec.brian import BuildOptions, SimResult, build, runner, simulate
from netspec.brian.build import RUNNER_DIR, _builder_source_hash
from netspec.run import metrics
from netspec.run.evaluate import chunk_seed as run_chunk_seed
from netspec.spec import load_spec, load_spec_data
from test_brian_support import spec_data

build_module = importlib.import_module("netspec.brian.build")  # the module, not the function netspec.brian exports
ROOT = Path(__file__).resolve().parents[1]
RUNNER = ROOT / "netspec" / "brian" / "runner"
RUNNER_FILES = sorted(p for p in RUNNER.iterdir() if p.suffix in (".py", ".h"))


def _model(**changes):
    """A model of 2 samples' worth of steps: layers 'a' (uniform fan-out 3, 4 neurons), 'b' (counted row 0)
    and 'out' (counted row 1, 2 neurons)."""
    fields = dict(script=__file__, standalone=False, threads=1, float_dtype=np.float64, samples_per_run=2, steps=4,
                  dt=0.001, seed=None, input_shape=(3,), n_out=2, layers=("a", "b", "out"), uniform_fanout={"a": 3},
                  counted=("b", "out"), sizes={"a": 4, "b": 5, "out": 2}, input_values=lambda x, a: {},
                  make_network=lambda *args: None)
    fields.update(changes)
    return runner.Model(**fields)


# -- seeds and chunks ----------------------------------------------------------------------------------
def test_chunk_seed_is_the_one_derivation_and_is_stable():
    assert run_chunk_seed is runner.chunk_seed
    assert runner.chunk_seed(None, 3) is None
    # pinned: changing the derivation changes every poisson result ever reported
    assert runner.chunk_seed(7, 3) == 1318712413
    assert runner.chunk_seed(0, 0) == 821328062
    seeds = {runner.chunk_seed(5, k) for k in range(200)}
    assert len(seeds) == 200 and all(0 <= s < 2**31 for s in seeds)
    assert runner.chunk_seed(np.int64(7), np.int32(3)) == 1318712413


def test_chunks_split_samples_into_runs():
    x = np.arange(7 * 2).reshape(7, 2)
    parts = list(runner.chunks(x, 3))
    assert [(i, s, len(c)) for i, s, c in parts] == [(0, 0, 3), (1, 3, 3), (2, 6, 1)]
    np.testing.assert_array_equal(np.concatenate([c for _, _, c in parts]), x)
    assert list(runner.chunks(x[:0], 3)) == []
    assert [len(c) for _, _, c in runner.chunks(x, 100)] == [7]
    with pytest.raises(ValueError, match="at least 1 sample, got 0"):
        list(runner.chunks(x, 0))


# -- the read-out --------------------------------------------------------------------------------------
def test_ranking_is_the_read_out_of_metrics_and_simresult():
    assert metrics.ranking is runner.ranking
    counts = np.array([[3, 5, 5], [2, 2, 2], [0, 0, 0], [1, 4, 0]])
    v = np.array([[0.9, 0.1, 0.4], [0.5, 0.7, 0.7], [0.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    order = runner.ranking(counts, v)
    assert order.dtype == np.int64
    assert order.tolist() == [[2, 1, 0], [1, 2, 0], [0, 1, 2], [1, 0, 2]]
    sim = SimResult(counts.astype(np.int32), v, np.zeros((4, 1, 3)), {}, {}, None, 0.0)
    assert sim.predictions().tolist() == [2, 1, 0, 1] and sim.predictions().dtype == np.int64


def test_ranking_of_no_samples_and_bad_shapes():
    assert runner.ranking(np.zeros((0, 3), np.int32), np.zeros((0, 3))).shape == (0, 3)
    empty = SimResult(np.zeros((0, 3), np.int32), np.zeros((0, 3)), np.zeros((0, 1, 3)), {}, {}, None, 0.0)
    assert empty.predictions().shape == (0,) and empty.predictions().dtype == np.int64
    with pytest.raises(ValueError, match=r"counts \(2, 3\) and v_out \(2, 2\) must both be \[N, C\]"):
        runner.ranking(np.zeros((2, 3)), np.zeros((2, 2)))


def test_ranking_agrees_with_a_sort_of_tuples():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 3, (200, 5))
    v = rng.integers(0, 3, (200, 5)) / 2.0
    order = runner.ranking(counts, v)
    for c, u, o in zip(counts, v, order):
        assert o.tolist() == sorted(range(5), key=lambda k: (-c[k], -u[k], k))


# -- arrays and results --------------------------------------------------------------------------------
def test_load_arrays_reads_the_build_folder(tmp_path):
    np.savez(tmp_path / "arrays.npz", B_a=np.arange(3.0), F_a=np.ones(3, np.int32))
    a = runner.load_arrays(_model(script=str(tmp_path / "network.py")))
    assert sorted(a) == ["B_a", "F_a"] and a["F_a"].dtype == np.int32
    np.testing.assert_array_equal(a["B_a"], [0.0, 1.0, 2.0])
    model = _model(script=str(tmp_path / "network.py"))
    assert model.folder == tmp_path.resolve() and model.cpp_dir == tmp_path.resolve() / "cpp"


def test_summarize_turns_raw_recordings_into_per_sample_results():
    model = _model()
    n, steps = 2, 4
    # output spikes: sample 0 steps 0 and 3 (neuron 1), sample 1 step 1 (neuron 0); one in the extra step
    raw = {
        "out_i": np.array([1, 1, 0, 0]),
        "out_t": np.array([0.0, 0.003, 0.005, 0.008]),
        # output membrane at each sample start (the end state of the sample before), n + 1 rows
        "v": np.array([[0.0, 0.0], [0.25, 0.5], [0.75, -0.5]]),
        # 'a': 4 neurons, population rate per step = spikes / (4 * dt)
        "rate_a": np.array([0, 1, 2, 0, 4, 0, 0, 1, 3]) / (4 * 0.001),
        # counter rows ('b', 'out') per step
        "spikes": np.arange(2 * 9).reshape(9, 2),
        "ops": 10 * np.arange(2 * 9).reshape(9, 2),
    }
    r = runner.summarize(model, raw, n)
    assert r.counts.dtype == np.int32 and r.counts.tolist() == [[0, 2], [1, 0]]
    assert r.out_steps.dtype == np.uint16 and r.out_steps.shape == (n, steps, 2)
    assert r.out_steps[0, :, 1].tolist() == [1, 0, 0, 1] and r.out_steps[1, :, 0].tolist() == [0, 1, 0, 0]
    np.testing.assert_array_equal(r.v_out, [[0.25, 0.5], [0.75, -0.5]])
    assert r.layer_spikes["a"].tolist() == [[0, 1, 2, 0], [4, 0, 0, 1]]
    assert r.layer_ops["a"].tolist() == [[0, 3, 6, 0], [12, 0, 0, 3]]
    assert r.layer_spikes["b"].tolist() == [[0, 2, 4, 6], [8, 10, 12, 14]]
    assert r.layer_ops["out"].tolist() == [[10, 30, 50, 70], [90, 110, 130, 150]]
    assert r.v_steps is None and r.neuron_counts is None
    # results.npz holds them flat, under the keys of netspec_runner/keys.py
    assert set(r.arrays()) == {"counts", "v_out", "out_steps", "spikes_a", "ops_a", "spikes_b", "ops_b", "spikes_out",
                               "ops_out"}
    assert r.arrays()[runner.keys.spikes("b")] is r.layer_spikes["b"]


def test_summarize_drops_the_padding_of_a_short_run():
    model = _model(layers=("out",), uniform_fanout={"out": 0}, counted=())
    raw = {"out_i": np.array([0, 1]), "out_t": np.array([0.002, 0.006]), "v": np.arange(6.0).reshape(3, 2),
           "rate_out": np.ones(9) / (2 * 0.001)}
    r = runner.summarize(model, raw, 1)  # a run of 2 samples of which the second was padding
    assert r.counts.tolist() == [[1, 0]] and r.v_out.tolist() == [[2.0, 3.0]]
    assert r.layer_spikes["out"].tolist() == [[1, 1, 1, 1]] and r.layer_ops["out"].tolist() == [[0, 0, 0, 0]]
    merged = runner.Results.concat([r, r])
    assert merged.counts.tolist() == [[1, 0], [1, 0]] and merged.out_steps.shape == (2, 4, 2)
    assert merged.layer_spikes["out"].shape == (2, 4)


# -- the command line ----------------------------------------------------------------------------------
def test_main_refuses_missing_arguments_and_wrong_shapes(tmp_path, capsys):
    model = _model()
    with pytest.raises(SystemExit) as stop:
        runner.main(model, ["--out", str(tmp_path / "r.npz")])
    assert stop.value.code == 2 and "--inputs and --out are required" in capsys.readouterr().err
    np.save(tmp_path / "x.npy", np.zeros((2, 4)))
    with pytest.raises(SystemExit) as stop:
        runner.main(model, ["--inputs", str(tmp_path / "x.npy"), "--out", str(tmp_path / "r.npz")], description="net")
    assert stop.value.code == 2 and "inputs have shape [2, 4], expected [N, 3]" in capsys.readouterr().err
    assert not (tmp_path / "r.npz").exists()


# -- a build folder is self-contained ------------------------------------------------------------------
def test_runner_imports_nothing_but_the_standard_library_numpy_and_brian2_with_its_jinja2():
    names = set()
    for path in RUNNER_FILES:
        if path.suffix != ".py":
            continue
        tree = ast.parse(path.read_text())
        names |= {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                  for alias in node.names}
        # within the package: relative imports only (the build folder holds it under another name)
        names |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and not node.level}
    # jinja2: Brian2's own template engine (a requirement of brian2), for the thresholds' template
    assert names - set(sys.stdlib_module_names) == {"numpy", "brian2", "jinja2"}
    # loading the package from its folder does not load Brian2 (netspec's stages use its numpy helpers)
    code = ("import importlib.util, sys; s = importlib.util.spec_from_file_location('r', sys.argv[1] + '/__init__.py', "
            "submodule_search_locations=[sys.argv[1]]); m = importlib.util.module_from_spec(s); sys.modules['r'] = m; "
            "s.loader.exec_module(m); print('brian2' in sys.modules, 'netspec' in sys.modules, m.chunk_seed(7, 3))")
    done = subprocess.run([sys.executable, "-c", code, str(RUNNER)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "False", "1318712413"]


def test_build_folder_holds_the_runner_and_the_key_covers_it(tmp_path, monkeypatch):
    built = build(load_spec(ROOT / "specs" / "tiny-dense.yaml"), tmp_path / "t")
    copied = sorted(p.name for p in (built.dir / RUNNER_DIR).iterdir() if p.is_file())
    assert copied == [p.name for p in RUNNER_FILES] and "netspec_kernels.h" in copied
    for path in RUNNER_FILES:
        assert (built.dir / RUNNER_DIR / path.name).read_bytes() == path.read_bytes()
    # a missing runner file means the folder is not up to date
    (built.dir / RUNNER_DIR / "schedule.py").unlink()
    assert build(built.spec, built.dir).rebuilt and (built.dir / RUNNER_DIR / "schedule.py").exists()
    # the builder's source hash reads the runner package: another runner, another key
    copy = tmp_path / "pkg"
    shutil.copytree(RUNNER.parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    fake = SimpleNamespace(files=lambda package: copy)
    monkeypatch.setattr(build_module, "resources", fake)
    monkeypatch.setattr(importlib.import_module("netspec.brian.codegen"), "resources", fake)
    before = _builder_source_hash()
    (copy / "runner" / "netspec_kernels.h").write_text((RUNNER / "netspec_kernels.h").read_text() + "\n// changed\n")
    assert _builder_source_hash() != before


def _undefined_names(source: str) -> set[str]:
    """Names a script reads but never imports, defines, assigns or gets from builtins (a small pyflakes)."""
    tree = ast.parse(source)
    defined = set(dir(builtins)) | {"__file__"}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            defined |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - defined


def test_generated_scripts_read_only_names_they_define_or_import(tmp_path):
    """Every template branch: poisson input, max pooling, counters, physical units, LIF, refractoriness,
    reset to a value, exponential synapses, delays; and the shipped specs."""
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
    doc = spec_data("rich", (5, 5, 1), layers, encoding="poisson", neuron=neuron,
                    extra_input={"max_rate": "200 Hz", "seed": 3})
    scripts = [build(load_spec_data(doc, tmp_path), tmp_path / "rich", BuildOptions(standalone=False)).script]
    scripts += [build(load_spec(path), tmp_path / path.stem).script for path in sorted((ROOT / "specs").glob("*.yaml"))]
    texts = {script: script.read_text() for script in scripts}
    for fragment in ("rand() < p", "E_p_0", "counters", "*volt", "u = u_reset", "q_post", "delay="):
        assert fragment in texts[scripts[0]], fragment
    for script, text in texts.items():
        assert _undefined_names(text) == set(), script


def _without_netspec(tmp_path):
    """An environment in which ``import netspec`` fails (netspec is installed in this virtualenv, so a package of
    that name that refuses to load is put first on the path)."""
    poison = tmp_path / "poison" / "netspec"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise ImportError('netspec is not installed here')\n")
    env = dict(os.environ, PYTHONPATH=str(poison.parent))
    check = subprocess.run([sys.executable, "-c", "import netspec"], env=env, cwd=tmp_path, capture_output=True,
                           text=True, check=False)
    assert check.returncode != 0 and "netspec is not installed here" in check.stderr
    return env


def _run_copy(built, tmp_path, x, *extra):
    """Copy the build folder elsewhere and run ``python network.py`` there without netspec."""
    env = _without_netspec(tmp_path)
    copy = tmp_path / "shared" / built.dir.name
    shutil.copytree(built.dir, copy)
    np.save(tmp_path / "x.npy", x)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, str(copy / "network.py"), "--inputs", str(tmp_path / "x.npy"), "--out",
                           str(tmp_path / "r.npz"), *extra], env=env, cwd=elsewhere, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    with np.load(tmp_path / "r.npz") as r:
        return {key: r[key] for key in r.files}


def _same_as(results, sim):
    np.testing.assert_array_equal(results["counts"], sim.counts)
    np.testing.assert_array_equal(results["v_out"], sim.v_out)
    np.testing.assert_array_equal(results["out_steps"], sim.out_steps)
    for name in sim.layer_spikes:
        np.testing.assert_array_equal(results["spikes_" + name], sim.layer_spikes[name])
        np.testing.assert_array_equal(results["ops_" + name], sim.layer_ops[name])


def test_a_copied_build_folder_runs_without_netspec(tmp_path):
    built = build(load_spec(ROOT / "specs" / "tiny-dense.yaml"), tmp_path / "b" / "tiny",
                  BuildOptions(samples_per_run=2))
    x = np.random.default_rng(0).uniform(0, 1, (3, 4))
    results = _run_copy(built, tmp_path, x)
    sim = simulate(built, x)
    assert sim.counts.sum() > 0
    _same_as(results, sim)


@pytest.mark.cpp
def test_a_copied_standalone_build_runs_its_binary_without_netspec(tmp_path):
    built = build(load_spec(ROOT / "specs" / "tiny-dense.yaml"), tmp_path / "b" / "tiny",
                  BuildOptions(standalone=True, samples_per_run=2))
    x = np.random.default_rng(1).uniform(0, 1, (3, 4))
    results = _run_copy(built, tmp_path, x)
    # the copy ran the binary it came with (copytree keeps modification times; compiling would change it)
    binary = built.dir / "cpp" / "main"
    assert (tmp_path / "shared" / "tiny" / "cpp" / "main").stat().st_mtime_ns == binary.stat().st_mtime_ns
    _same_as(results, simulate(built, x))
