"""C++ standalone builds (need a compiler: ``pytest -m cpp``).

One analog network with every layer kind and neuron feature is compiled once (module fixture): it must give
exactly the runtime mode's spikes, and new inputs must reuse the compiled binary through run_args without
recompiling. A small poisson network checks the seeding of the binary's random numbers.
"""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np
import pytest

from netspec.brian import BuildOptions, build, simulate
from netspec.errors import NetspecError
from netspec.spec import load_spec, load_spec_data
from test_brian_support import assert_same_results, calibrated, spec_data

pytestmark = pytest.mark.cpp

STEPS = 40


def _layers(rng):
    def r(*shape, scale=0.4, shift=0.0):
        return rng.normal(shift, scale, shape).round(4).tolist()

    return [
        {"name": "c1", "type": "conv2d", "filters": 3, "kernel_size": 3, "padding": "same", "kernel": r(3, 3, 1, 3, shift=0.1),
         "bias": r(3, scale=0.05), "activation": "relu", "neuron": {"refractory": "1 ms"}},
        {"name": "mp", "type": "maxpool2d", "pool_size": 2},
        {"name": "dw", "type": "depthwise_conv2d", "inputs": ["c1"], "kernel_size": 2, "strides": 2, "kernel": r(2, 2, 3, 1, shift=0.1),
         "activation": "relu", "neuron": {"model": "lif", "tau_m": "15 ms"}},
        {"name": "cat", "type": "concatenate", "inputs": ["mp", "dw"]},
        {"name": "zp", "type": "zeropad2d", "padding": [[1, 0], [0, 1]]},
        {"name": "ap", "type": "avgpool2d", "pool_size": 2, "strides": 1, "neuron": {"synapse": "exponential", "tau_syn": "3 ms"}},
        {"name": "f", "type": "flatten"},
        {"name": "a", "type": "dense", "units": 5, "kernel": r(3 * 3 * 6, 5, shift=0.05), "bias": r(5, scale=0.05), "activation": "relu"},
        {"name": "lin", "type": "dense", "inputs": ["a"], "units": 5, "kernel": r(5, 5), "activation": "linear"},
        {"name": "sum", "type": "add", "inputs": ["a", "lin"], "activation": "relu", "neuron": {"delay": "2 ms"}},
        {"name": "out", "type": "dense", "units": 3, "kernel": r(5, 3, shift=0.1), "activation": "softmax"},
    ]


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sa")
    x = np.random.default_rng(4).uniform(0, 1, (8, 6, 6, 1))
    return calibrated(spec_data("everything", (6, 6, 1), _layers(np.random.default_rng(3)), steps=STEPS), x, folder)


@pytest.fixture(scope="module")
def standalone(spec, tmp_path_factory):
    return build(spec, tmp_path_factory.mktemp("sa-build") / "b", BuildOptions(standalone=True, samples_per_run=3, batch=1))


@pytest.fixture(scope="module")
def runtime(spec, tmp_path_factory):
    return build(spec, tmp_path_factory.mktemp("rt-build") / "b", BuildOptions(samples_per_run=3))


def test_standalone_matches_runtime(standalone, runtime, tmp_path):
    x = np.random.default_rng(5).uniform(0, 1, (5, 6, 6, 1))  # two runs of 3, the last one padded (the runtime build: 8 side by side)
    done = []
    a = simulate(standalone, x, results_dir=tmp_path / "res", progress=done.append)
    b = simulate(runtime, x)
    assert done == [3, 5]
    assert a.counts.sum() > 10 and all(v.sum() > 0 for v in a.layer_spikes.values())
    assert_same_results(a, b)
    assert (tmp_path / "res" / "TA_c1.values").exists()


def _fingerprint(folder):
    cpp = folder / "cpp"
    objects = sorted(cpp.rglob("*.o"))
    return (hashlib.sha256((cpp / "main").read_bytes()).hexdigest(), (cpp / "main").stat().st_mtime_ns,
            [(str(p), p.stat().st_mtime_ns) for p in objects])


def test_new_inputs_reuse_the_binary(standalone, runtime, spec, tmp_path):
    before = _fingerprint(standalone.dir)
    x1 = np.random.default_rng(6).uniform(0, 1, (3, 6, 6, 1))
    x2 = np.random.default_rng(7).uniform(0, 1, (4, 6, 6, 1))
    simulate(standalone, x1)
    again = build(spec, standalone.dir, standalone.options)
    assert not again.rebuilt and again.seconds < 5
    second = simulate(again, x2, results_dir=tmp_path / "r2")
    assert _fingerprint(standalone.dir) == before  # no compiler ran: binary and object files untouched
    fresh = simulate(runtime, x2)  # what a fresh build gives on these inputs
    assert_same_results(second, fresh)


def test_threads_option_reaches_the_script(spec, tmp_path):
    text = build(spec, tmp_path / "t", BuildOptions(threads=2, float32=True)).script.read_text()
    assert "THREADS = 2" in text and "FLOAT_DTYPE = np.float32" in text


def test_poisson_seeds_in_the_binary(tmp_path):
    layers = [{"name": "out", "type": "dense", "units": 2, "kernel": [[0.5, 0.0], [0.0, 0.5], [0.25, 0.25]],
               "activation": "softmax", "normalization": {"lambda": 1.0}}]
    doc = spec_data("poisson_sa", (3,), layers, steps=200, encoding="poisson", extra_input={"max_rate": "400 Hz", "seed": 5})
    built = build(load_spec_data(doc, tmp_path), tmp_path / "p", BuildOptions(standalone=True, samples_per_run=2))
    x = np.array([[1.0, 0.5, 0.0]] * 4)
    a = simulate(built, x)
    b = simulate(built, x)
    c = simulate(built, x, seed=6)
    np.testing.assert_array_equal(a.layer_spikes["x"], b.layer_spikes["x"])
    assert not np.array_equal(a.layer_spikes["x"], c.layer_spikes["x"])
    # chunk 0 and chunk 1 get their own seeds: sample 0 and sample 2 differ
    assert not np.array_equal(a.layer_spikes["x"][0], a.layer_spikes["x"][2])
    rate = a.layer_spikes["x"].sum(axis=1) / 200
    assert np.all(np.abs(rate - 0.4 * 1.5) < 0.2)


def test_a_failing_compiler_is_one_error_with_its_own_messages(tmp_path, monkeypatch):
    """The project is compiled through netspec.mk (a precompiled header first): when the compiler fails, build
    says so with the compiler's command and make's message, without a Python traceback, and leaves no build."""
    monkeypatch.setenv("CXX", "false")  # make's $(CXX): a compiler that always fails
    spec = load_spec(Path(__file__).parents[1] / "specs" / "tiny-dense.yaml")
    with pytest.raises(NetspecError) as info:
        build(spec, tmp_path / "b", BuildOptions(standalone=True))
    text = str(info.value)
    assert text.startswith("build: compiling the standalone project")
    assert "false -c" in text and "netspec_pch.h" in text and "Error 1" in text
    assert "Traceback" not in text and "Brian 2 encountered" not in text
    assert not (tmp_path / "b").exists()


def test_a_compile_killed_by_a_signal_says_so(tmp_path, monkeypatch):
    """When the compiling process dies of SIGKILL (what the kernel does when memory runs out), build says it was
    killed and by what, in one line, instead of an empty 'failed:'."""
    compiler = tmp_path / "cc.sh"  # a "compiler" that kills the process that compiles (network.py --compile)
    compiler.write_text('#!/bin/sh\np=$$\nwhile [ "$p" -gt 1 ]; do\n'
                        '  if grep -q "network.py" /proc/$p/cmdline 2>/dev/null; then kill -9 $p; exit 1; fi\n'
                        "  p=$(awk '{print $4}' /proc/$p/stat)\ndone\nexit 1\n")
    compiler.chmod(0o755)
    monkeypatch.setenv("CXX", str(compiler))
    spec = load_spec(Path(__file__).parents[1] / "specs" / "tiny-dense.yaml")
    with pytest.raises(NetspecError) as info:
        build(spec, tmp_path / "b", BuildOptions(standalone=True))
    first = str(info.value).splitlines()[0]
    assert first.startswith("build: compiling the standalone project in ")
    assert first.endswith("failed: the compiling process was killed by SIGKILL (the kernel kills the largest process "
                          "when memory runs out)")
    assert not (tmp_path / "b").exists()


def test_profiled_build_times_every_code_object(tmp_path):
    """BuildOptions(profile=True): each run of the binary writes the seconds of every Brian2 code object to
    profiling_info.txt in its results folder (tools/bench_sim.py --profile); a default build writes none.
    Profiling does not change the results."""
    spec = load_spec(Path(__file__).parents[1] / "specs" / "tiny-dense.yaml")
    x = np.random.default_rng(0).uniform(0, 1, (4, *spec.input.shape))
    plain = simulate(build(spec, tmp_path / "a", BuildOptions(standalone=True)), x, results_dir=tmp_path / "ra")
    timed = simulate(build(spec, tmp_path / "b", BuildOptions(standalone=True, profile=True)), x, results_dir=tmp_path / "rb")
    assert_same_results(plain, timed)
    assert not (tmp_path / "ra" / "profiling_info.txt").exists()
    rows = dict(line.split("\t") for line in (tmp_path / "rb" / "profiling_info.txt").read_text().splitlines())
    assert "S_out_0_pre_codeobject" in rows and "L_hidden_stateupdater_codeobject" in rows
    assert all(float(v) >= 0 for v in rows.values()) and sum(float(v) for v in rows.values()) > 0


def _code_object(cpp_dir, name, value, extra_header=""):
    """A code object of Brian2's form: includes, support code in an anonymous namespace (the same helper and
    macro in every file), and the functions its header declares."""
    (cpp_dir / "code_objects" / f"{name}.h").write_text(
        f"#ifndef _INCLUDED_{name}\n#define _INCLUDED_{name}\n\nvoid _run_{name}();\n{extra_header}\n#endif\n")
    (cpp_dir / "code_objects" / f"{name}.cpp").write_text(
        f'#include "code_objects/{name}.h"\n#include <cstdio>\n\nnamespace {{\n'
        f"    static inline int helper() {{ return {value}; }}\n}}\n#define HASH_DEFINE {value}\n\n"
        f'void _run_{name}()\n{{\n    std::printf("{name} %d %d\\n", helper(), HASH_DEFINE);\n}}\n')


def test_unity_units_keep_each_code_objects_own_support_code(tmp_path):
    """Code objects compiled 32 to a translation unit: two files that define the same helper and macro each
    keep their own, the global functions their headers declare call them, and a file of another form (a header
    declaring anything else) is left to compile on its own."""
    from netspec.brian.runner.standalone import unity_sources

    (tmp_path / "code_objects").mkdir()
    _code_object(tmp_path, "a_codeobject", 1)
    _code_object(tmp_path, "b_codeobject", 2)
    _code_object(tmp_path, "c_codeobject", 3, extra_header="int other(int x);")
    sources = unity_sources(tmp_path, ["main.cpp", *(f"code_objects/{n}_codeobject.cpp" for n in "abc")])
    assert sources == ["main.cpp", "code_objects/c_codeobject.cpp", "code_objects/netspec_unit_0000.cpp"]
    (tmp_path / "main.cpp").write_text('#include "code_objects/a_codeobject.h"\n#include "code_objects/b_codeobject.h"\n'
                                       "int main() { _run_a_codeobject(); _run_b_codeobject(); return 0; }\n")
    subprocess.run(["g++", "-w", "-I.", "main.cpp", "code_objects/netspec_unit_0000.cpp", "-o", "prog"], cwd=tmp_path,
                   check=True)
    out = subprocess.run(["./prog"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert out == "a_codeobject 1 1\nb_codeobject 2 2\n"


def test_a_standalone_build_compiles_its_code_objects_in_units(tmp_path):
    spec = load_spec(Path(__file__).parents[1] / "specs" / "tiny-dense.yaml")
    built = build(spec, tmp_path / "b", BuildOptions(standalone=True))
    objects = sorted(p.name for p in (built.home / "cpp" / "code_objects").glob("*.o"))
    assert objects and all(name.startswith("netspec_unit_") for name in objects), objects
