"""The standalone build: generating and compiling Brian2's C++ project, and running its binary on new inputs.

:func:`compile_standalone` generates the project in ``cpp/`` and compiles it once (:func:`make`);
:func:`run_standalone` feeds every run of samples to the binary through Brian2's ``run_args`` (the input
``TimedArray`` values from files), so new inputs never recompile.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
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
# the project's set-up runs once per process (allocating, loading and writing every array; main's list of
# operations), and GCC optimizes objects.cpp's functions of some 40,000 lines each for tens of minutes
# (DenseNet121: over 10 CPU minutes at -O3 or -O1, under 2 at -O0): compiled without optimization
objects.o main.o: CXXFLAGS += -O0
"""

#: Code objects per translation unit. Even with the precompiled header, loading it is two thirds of the compile
#: time of a code object (a big network's header is tens of MB: DenseNet121 has 5,000 code objects), so the code
#: objects are compiled UNITY at a time, each in a namespace of its own (:func:`unity_sources`).
UNITY = 32
#: A code object's functions, as its header declares them (Brian2's templates: ``void _run_<name>();`` and
#: ``void _after_run_<name>();``), and as its source defines them.
_DECLARED = re.compile(r"^\s*void\s+(\w+)\(\s*\);\s*$", re.M)
_DEFINED = re.compile(r"^void\s+(\w+)\(\s*\)\s*$", re.M)
_MACRO = re.compile(r"^\s*#\s*define\s+(\w+)", re.M)
_OPENS_BRIAN = re.compile(r"^\s*namespace\s+brian\s*\{", re.M)  # a definition in brian:: (not "using namespace")


def _wrapped(source: Path, unit: str) -> str | None:
    """The code object ``source`` as part of a unity translation unit: its includes as they are, the rest (support
    code in an anonymous namespace, its functions) inside ``namespace unit``, the macros it defines undefined after
    it, and global functions of the names its header declares, each calling its own. None where the file is not
    of that form (it is then compiled on its own, as Brian2 would)."""
    header = source.with_suffix(".h")
    if not header.is_file():
        return None
    head_text = header.read_text()
    declared = _DECLARED.findall(head_text)
    if not declared or head_text.count("(") != len(declared):  # anything else declared: leave the file alone
        return None
    lines = source.read_text().splitlines()
    n = 0
    while n < len(lines) and (not lines[n].strip() or lines[n].lstrip().startswith("#include")):
        n += 1
    rest = "\n".join(lines[n:])
    if "#include" in rest or _OPENS_BRIAN.search(rest) or not set(declared) <= set(_DEFINED.findall(rest)):
        return None
    undefine = "".join(f"#undef {m}\n" for m in dict.fromkeys(_MACRO.findall(rest)))
    forward = "".join(f"void {f}() {{ {unit}::{f}(); }}\n" for f in declared)
    return "\n".join(lines[:n]) + f"\nnamespace {unit} {{\n{rest}\n}}  // namespace {unit}\n{undefine}{forward}"


def unity_sources(cpp_dir: Path, sources: list[str], per_unit: int = UNITY) -> list[str]:
    """Brian2's list of sources with the code objects (``code_objects/*.cpp``) merged, ``per_unit`` at a time, into
    ``code_objects/netspec_unit_<k>.cpp`` (see :func:`_wrapped`; a file not of that form stays on its own)."""
    merged: list[str] = []
    out = []
    for src in sources:
        text = _wrapped(cpp_dir / src, f"netspec_unit_{len(merged)}") if src.startswith("code_objects/") else None
        if text is None:
            out.append(src)
        else:
            merged.append(text)
    for k in range(0, len(merged), per_unit):
        name = f"code_objects/netspec_unit_{k // per_unit:04d}.cpp"
        (cpp_dir / name).write_text("\n".join(merged[k:k + per_unit]))
        out.append(name)
    return out


def write_headers(cpp_dir: Path) -> None:
    """netspec's own headers in the project ``cpp_dir``: the kernels (:data:`HEADER`) and the header that is
    precompiled (:data:`PCH`, the :data:`PCH_HEADERS` every code object includes)."""
    shutil.copyfile(Path(__file__).with_name(HEADER), cpp_dir / HEADER)
    (cpp_dir / PCH).write_text("#pragma once\n" + "".join(
        f"#include {h}\n" if h.startswith("<") else f'#include "{h}"\n' for h in PCH_HEADERS))


def make(cpp_dir: Path) -> None:
    """Compile the C++ project that Brian2 generated in ``cpp_dir`` (what ``device.build(compile=True)`` does,
    faster: see :data:`PCH` and :data:`UNITY`), then remove the precompiled header (tens of MB; nothing reads it
    later)."""
    from brian2 import prefs

    write_headers(cpp_dir)
    (cpp_dir / "netspec.mk").write_text(PCH_MAKEFILE)
    brian_sources = re.search(r"^SRCS = (.*)$", (cpp_dir / "makefile").read_text(), re.M)
    sources = unity_sources(cpp_dir, brian_sources.group(1).split()) if brian_sources else None
    deps = cpp_dir / "make.deps"
    deps.write_text("# not generated: this project is compiled once\n")
    newest = max(f.stat().st_mtime for f in cpp_dir.rglob("*") if f.is_file())
    os.utime(deps, (newest, newest))  # not older than any source: make does not regenerate it
    argv = [prefs.devices.cpp_standalone.make_cmd_unix, "-f", "netspec.mk",
            *prefs.devices.cpp_standalone.extra_make_args_unix]
    if sources is not None and len(" ".join(sources)) < 100_000:  # one argument: Linux takes up to 128 kB
        argv.append("SRCS=" + " ".join(sources))  # a command-line variable: Brian2's makefile builds OBJS from it
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
