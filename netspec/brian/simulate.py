"""Running a build on inputs and reading its results.

:func:`simulate` imports the build's own ``network.py`` and its own copy of the runner,
``netspec_runner/`` (so the numbers come from exactly the code a user can read and run), and calls the
runner on the network: for standalone builds ``run_standalone`` writes the input rows and starts the
compiled binary once per ``samples_per_run`` samples, with Brian2's ``run_args`` on its command line and
its own results directory, so any number of processes can use one build at once; for runtime builds
``run_runtime`` simulates in this process.
"""
from __future__ import annotations

import importlib.util
import sys
import zipfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable

import numpy as np

from ..errors import NetspecError
from .build import RUNNER_DIR, Build, check_build
from .codegen import RUNNER_MODULE
from .runner import Results, ranking

_MODULES: dict[tuple[str, str], ModuleType] = {}


@dataclass
class SimResult:
    """What a simulation of N samples recorded.

    Attributes
    ----------
    counts : int32 [N, n_out]
        Output spikes per sample.
    v_out : float [N, n_out]
        Output membrane at the end of each sample, normalized (0 at rest, 1 at threshold).
    out_steps : uint16 [N, T, n_out]
        Output spikes per time step.
    layer_spikes, layer_ops : dict[str, int64 [N, T]]
        Per spiking layer (populations, the poisson input, max-pooling gates): spikes per time step summed
        over the layer, and synaptic operations per time step (every spike times its neuron's fan-out).
    neuron_counts : dict[str, int32 [N, n_neurons]] | None
        Per-neuron spike counts per sample (channels-last order), only with ``record_neurons``.
    seconds : float
        Wall time of the simulation.
    v_steps : float [N, T, n_out] | None
        The membrane read-out only: the output membrane at the end of every step (the output does not spike).
    """

    counts: np.ndarray
    v_out: np.ndarray
    out_steps: np.ndarray
    layer_spikes: dict[str, np.ndarray]
    layer_ops: dict[str, np.ndarray]
    neuron_counts: dict[str, np.ndarray] | None
    seconds: float
    v_steps: np.ndarray | None = None

    def predictions(self) -> np.ndarray:
        """Class per sample: most output spikes; ties broken by the higher membrane, then the lowest index
        (the read-out rule, :func:`netspec.brian.runner.ranking`)."""
        return ranking(self.counts, self.v_out)[:, 0]


def _import_file(name: str, path: Path, package: bool = False) -> ModuleType:
    """Import ``path`` as the module ``name`` (``package``: ``path`` is a package folder)."""
    init = path / "__init__.py" if package else path
    module_spec = importlib.util.spec_from_file_location(name, init,
                                                         submodule_search_locations=[str(path)] if package else None)
    if module_spec is None or module_spec.loader is None or not init.exists():
        raise NetspecError(f"simulate: {path} not found (build again)", 2)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


def load_network(b: Build) -> ModuleType:
    """The build's ``network.py`` as a module (imported once per process and build key).

    Its ``import netspec_runner`` gets the build folder's own copy of the runner, imported under a name of
    its own (``sys.modules['netspec_runner']`` is restored afterwards), so builds made by different netspec
    versions can be loaded side by side. The module's ``runner`` and ``MODEL`` are what :func:`simulate` calls.
    """
    cache_key = (str(b.script.resolve()), b.key)
    if cache_key not in _MODULES:
        runner = _import_file(f"{RUNNER_MODULE}_{b.key[:16]}", b.folder / RUNNER_DIR, package=True)
        saved = sys.modules.get(RUNNER_MODULE)
        sys.modules[RUNNER_MODULE] = runner
        try:
            _MODULES[cache_key] = _import_file(f"netspec_network_{b.key[:16]}", b.script)
        finally:
            if saved is None:
                del sys.modules[RUNNER_MODULE]
            else:
                sys.modules[RUNNER_MODULE] = saved
    return _MODULES[cache_key]


def simulate(build: Build, x: np.ndarray, *, results_dir: str | Path | None = None, seed: int | None = None,
             record_neurons: bool = False, progress: Callable[[int], None] | None = None,
             target: str = "numpy") -> SimResult:
    """Simulate raw inputs ``x [N, *spec.input.shape]`` on a build.

    Parameters
    ----------
    results_dir : path, optional
        Where the standalone binary writes its files (default: a temporary folder).
    seed : int, optional
        Seed of the poisson input (default the spec's); the run of samples ``k*samples_per_run...`` uses
        ``chunk_seed(seed, k)``. Analog networks use no random numbers.
    record_neurons : bool
        Also count every neuron's spikes per sample. This simulates in runtime mode (spike monitors on
        every layer); it is meant for a few samples.
    progress : callable, optional
        Called with the number of samples done after each run of ``samples_per_run`` samples.
    target : str
        Code generation target of runtime simulations: ``"numpy"`` (no compilation) or ``"cython"``.
    """
    spec = build.spec
    x = np.asarray(x)
    want = tuple(spec.input.shape)
    if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want:
        raise NetspecError(f"simulate: inputs have shape {list(x.shape)}, the spec '{spec.name}' expects "
                           f"[N, {', '.join(map(str, want))}]")
    if not np.all(np.isfinite(x)):
        raise NetspecError("simulate: inputs contain NaN or Inf")
    if target not in ("numpy", "cython"):
        raise NetspecError(f"simulate: target must be 'numpy' or 'cython', got {target!r}", 2)
    seed = spec.input.seed if seed is None else seed
    t0 = time.perf_counter()
    if len(x) == 0:
        raw = None
    else:
        if build.home is not None:  # every file that runs, as it was when the build completed (sizes, times)
            reason = check_build(build.home, build.key)
            if reason is not None:
                raise NetspecError(f"simulate: the build in {build.home} cannot be used: {reason}; "
                                   f"run 'netspec build' again (it rebuilds it)", 2)
        net = load_network(build)
        try:
            if record_neurons or not build.options.standalone:
                try:
                    raw = net.runner.run_runtime(net.MODEL, x, seed, target=target, record_neurons=record_neurons,
                                                 progress=progress)
                except net.runner.UnsupportedTarget as exc:
                    raise NetspecError(f"simulate: {exc}", 2) from None
            else:
                raw = net.runner.run_standalone(net.MODEL, x, results_dir=results_dir, seed_value=seed,
                                                progress=progress)
        except (OSError, RuntimeError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise NetspecError(f"simulate: {exc} (if the build in {build.folder} is damaged, "
                               "run 'netspec build --force')") from None
    return _result(build, raw, len(x), record_neurons, time.perf_counter() - t0)


def _result(build: Build, raw: Results | None, n: int, record_neurons: bool, seconds: float) -> SimResult:
    order = list(build.fanout)  # every spiking layer, in the spec's order
    n_out = int(np.prod(build.spec.shapes[build.spec.order[-1]]))
    if raw is None:
        empty = np.zeros((0, build.steps), dtype=np.int64)
        return SimResult(np.zeros((0, n_out), np.int32), np.zeros((0, n_out)), np.zeros((0, build.steps, n_out), np.uint16),
                         {k: empty for k in order}, {k: empty for k in order}, {} if record_neurons else None, seconds)
    return SimResult(
        counts=raw.counts.astype(np.int32),
        v_out=raw.v_out.astype(np.float64),
        out_steps=raw.out_steps,
        layer_spikes={k: raw.layer_spikes[k] for k in order},
        layer_ops={k: raw.layer_ops[k] for k in order},
        neuron_counts={k: raw.neuron_counts[k] for k in order} if record_neurons else None,
        seconds=seconds,
        v_steps=raw.v_steps,
    )
