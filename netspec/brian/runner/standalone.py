"""The standalone build: generating and compiling Brian2's C++ project, and running its binary on new inputs.

:func:`compile_standalone` generates the project in ``cpp/`` and compiles it once (:func:`make`);
:func:`run_standalone` feeds every run of samples to the binary through Brian2's ``run_args`` (the input
``TimedArray`` values from files), so new inputs never recompile.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from . import keys
from .model import Model, Progress, Results, chunk_seed, chunks, load_arrays, summarize
from .operations import HEADER, quiet_election_warnings
from .processes import die_with_parent
from .runtime import preferences, run_length
from .thresholds import use_packed_thresholds

#: C++ run before the simulation, letting NETSPEC_SEED reseed the random number generators.
SEED_FROM_ENVIRONMENT = ('{ const char* _seed = std::getenv("NETSPEC_SEED"); if (_seed) '
                         'for (size_t _k = 0; _k < brian::_random_generators.size(); _k++) '
                         'brian::_random_generators[_k].seed(std::strtoul(_seed, NULL, 10) + _k); }')

#: Compiling Brian2's project: every code object includes the same headers (``objects.h`` declares every array
#: of the network), which take most of a file's compile time. They are compiled once into a precompiled header
#: (GCC's ``.gch``, same flags) that every file includes first, and the dependency file (``make.deps``, only
#: for rebuilding a changed project, which a build never is) is not generated.
PCH = "netspec_pch.h"
PCH_HEADERS = ("objects.h", "brianlib/common_math.h", "brianlib/stdint_compat.h", HEADER, "<cmath>", "<ctime>",
               "<iostream>", "<fstream>", "<climits>")
PCH_MAKEFILE = f"""# netspec: Brian2's makefile, with every file compiled after the precompiled header {PCH}.gch
include makefile
NETSPEC_PCH = -include {PCH}
CXXFLAGS += $(NETSPEC_PCH)
{PCH}.gch: {PCH} objects.h makefile
\t$(CXX) $(filter-out $(NETSPEC_PCH),$(CXXFLAGS)) -x c++-header {PCH} -o $@
$(OBJS): {PCH}.gch
"""


def make(cpp_dir: Path) -> None:
    """Compile the C++ project that Brian2 generated in ``cpp_dir`` (what ``device.build(compile=True)`` does,
    faster: see :data:`PCH`), then remove the precompiled header (tens of MB; nothing reads it later)."""
    from brian2 import prefs

    shutil.copyfile(Path(__file__).with_name(HEADER), cpp_dir / HEADER)
    (cpp_dir / PCH).write_text("#pragma once\n" + "".join(
        f"#include {h}\n" if h.startswith("<") else f'#include "{h}"\n' for h in PCH_HEADERS))
    (cpp_dir / "netspec.mk").write_text(PCH_MAKEFILE)
    deps = cpp_dir / "make.deps"
    deps.write_text("# not generated: this project is compiled once\n")
    newest = max(f.stat().st_mtime for f in cpp_dir.rglob("*") if f.is_file())
    os.utime(deps, (newest, newest))  # not older than any source: make does not regenerate it
    argv = [prefs.devices.cpp_standalone.make_cmd_unix, "-f", "netspec.mk",
            *prefs.devices.cpp_standalone.extra_make_args_unix]
    done = subprocess.run(argv, cwd=cpp_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    (cpp_dir / (PCH + ".gch")).unlink(missing_ok=True)
    if done.returncode != 0:
        raise RuntimeError(f"compiling the C++ project failed (make exit {done.returncode}): "
                           + "\n".join(done.stdout.strip().splitlines()[-20:]))


def compile_standalone(model: Model) -> None:
    """Generate the C++ project in ``cpp/``, compile it, and write ``cpp/manifest.json``.

    The manifest says where the binary reads its inputs (the TimedArrays' value files, with their dtype and
    shape) and writes its results (the recorded variables' files), for :func:`run_standalone`. Brian2's
    standalone device is process-global: call this in a process of its own.
    """
    from brian2 import device, prefs, seed, set_device

    cpp_dir = model.cpp_dir
    set_device("cpp_standalone", directory=str(cpp_dir), build_on_run=False)
    preferences(model)
    prefs.devices.cpp_standalone.openmp_threads = model.threads if model.threads > 1 else 0
    prefs.devices.cpp_standalone.extra_make_args_unix = [f"-j{os.cpu_count() or 1}"]
    if model.seed is not None:
        seed(model.seed)
    device.insert_code("main", SEED_FROM_ENVIRONMENT)
    a = load_arrays(model)
    values: dict[str, np.ndarray] = {name: np.zeros((model.samples_per_run, v.shape[1]), dtype=model.float_dtype)
                                     for name, v in model.input_values(np.zeros((1, *model.input_shape)), a).items()}
    net, rec, inputs = model.make_network(values, model.samples_per_run, a)
    use_packed_thresholds(net)  # the same spikes as Brian2's threshold, without a branch per neuron
    with quiet_election_warnings():
        net.run(run_length(model, model.samples_per_run), namespace={}, profile=model.profile)
        device.build(directory=str(cpp_dir), compile=False, run=False, clean=False, with_output=False)
    make(cpp_dir)
    recorded = {"v": rec["v"].variables["u"]}
    if "out" in rec:
        recorded.update(out_i=rec["out"].variables["i"], out_t=rec["out"].variables["t"])
    if "v_steps" in rec:
        recorded["v_steps"] = rec["v_steps"].variables["u"]
    recorded.update({keys.rate(name): rec[keys.rate(name)].variables["rate"] for name in model.uniform_fanout})
    if model.counted:
        recorded.update(spikes=rec["counters"].variables["spikes"], ops=rec["counters"].variables["ops"])
    manifest = {
        "inputs": {name: {"dtype": np.dtype(ta.values.dtype).name, "shape": list(ta.values.shape)}
                   for name, ta in inputs.items()},
        "outputs": {key: {"file": device.get_array_filename(var), "dtype": np.dtype(var.dtype).name}
                    for key, var in recorded.items()},
    }
    (cpp_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def run_standalone(model: Model, x: np.ndarray, results_dir: str | Path | None = None, *,
                   seed_value: int | None = None, progress: Progress | None = None) -> Results:
    """Simulate ``x`` with the compiled binary ``cpp/main``.

    Per run of ``samples_per_run`` samples (the last one padded with zeros): write the input rows, start the
    binary with them as Brian2 ``run_args`` (no recompiling) and read its results.

    Parameters
    ----------
    model : Model
        The network (compiled by :func:`compile_standalone`).
    x : ndarray, [N, *input_shape]
        Raw inputs.
    results_dir : path, optional
        Where the binary reads its inputs and writes its results (default: a temporary folder), so that any
        number of processes can use one build at once.
    seed_value : int, optional
        Base seed: run k gets ``NETSPEC_SEED=chunk_seed(seed_value, k)``; None keeps the compiled-in seed.
    progress : callable, optional
        Called with the number of samples done after each run.

    Raises
    ------
    ValueError
        If the input rows do not have the shape the binary was compiled for.
    RuntimeError
        If the binary fails or reports an error.
    """
    cpp_dir = model.cpp_dir
    manifest = json.loads((cpp_dir / "manifest.json").read_text())
    a = load_arrays(model)
    # a temporary folder only when no results folder is given (a killed process cannot remove it)
    scratch_dir = tempfile.TemporaryDirectory(prefix="netspec-") if results_dir is None else contextlib.nullcontext()
    with scratch_dir as scratch:
        results = Path(results_dir).resolve() if results_dir is not None else Path(scratch)
        results.mkdir(parents=True, exist_ok=True)
        parts = []
        for index, start, chunk in chunks(x, model.samples_per_run):
            n = len(chunk)
            padded = np.zeros((model.samples_per_run, *chunk.shape[1:]))
            padded[:n] = chunk
            args = [str(cpp_dir / "main"), "--results_dir", str(results) + os.sep]
            for name, v in model.input_values(padded, a).items():
                expect = manifest["inputs"][name]
                if v.size != int(np.prod(expect["shape"])):  # per-sample rows; the binary holds batch of them a row
                    raise ValueError(f'input {name}: shape {list(v.shape)}, the binary expects {expect["shape"]}')
                path = results / (name + ".values")
                np.ascontiguousarray(v, dtype=expect["dtype"]).tofile(path)
                args.append(f"{name}.values={path}")
            env = dict(os.environ)
            if seed_value is not None:
                env["NETSPEC_SEED"] = str(chunk_seed(seed_value, index))
            # subprocess.run kills the binary if this process is interrupted; die_with_parent if it is killed
            done = subprocess.run(args, cwd=cpp_dir, env=env, capture_output=True, text=True, check=False,
                                  preexec_fn=die_with_parent)
            # the binary reports unreadable inputs or unwritable results without failing: any error fails
            if done.returncode != 0 or done.stderr.strip() or "Error" in done.stdout:
                message = (done.stderr + done.stdout).strip()[-2000:]
                raise RuntimeError(f'{cpp_dir / "main"} failed (exit {done.returncode}): {message}')
            raw = {key: np.fromfile(results / entry["file"], dtype=entry["dtype"])
                   for key, entry in manifest["outputs"].items()}
            parts.append(summarize(model, raw, n))
            if progress is not None:
                progress(start + n)
    return Results.concat(parts)
