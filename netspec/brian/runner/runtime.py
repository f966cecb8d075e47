"""Simulating in Brian2's runtime mode (numpy, or cython code generation for unrolled builds)."""
from __future__ import annotations

import numpy as np

from . import keys
from .model import Model, Progress, Results, chunk_seed, chunks, load_arrays, summarize
from .operations import quiet_election_warnings, unsupported

#: GCC flags: Brian2's defaults without -ffast-math, so runtime (cython) and standalone round alike.
COMPILE_ARGS = ["-w", "-O3", "-march=native", "-std=c++11"]


def preferences(model: Model, target: str | None = None) -> None:
    """Brian2's preferences for the model: its float type and compiler flags (and the code generation target)."""
    from brian2 import prefs

    from .names import install

    install()  # unique names in time that does not grow with the network
    prefs.core.default_float_dtype = model.float_dtype
    prefs.codegen.cpp.extra_compile_args_gcc = COMPILE_ARGS
    if target is not None:
        prefs.codegen.target = target


def run_length(model: Model, n_samples: int):
    """The duration of a run of ``n_samples`` samples (``batch`` of them side by side): one step longer than the
    samples (in that step the last sample's end state is recorded)."""
    from brian2 import second

    return (model.rounds(n_samples) * model.steps + 1) * model.dt * second


def run_runtime(model: Model, x: np.ndarray, seed_value: int | None = None, *, target: str = "numpy",
                record_neurons: bool = False, progress: Progress | None = None) -> Results:
    """Simulate ``x`` in Brian2's runtime mode, one network per run of ``samples_per_run`` samples.

    Parameters
    ----------
    model : Model
        The network.
    x : ndarray, [N, *input_shape]
        Raw inputs.
    seed_value : int, optional
        Base seed: run k is seeded with ``chunk_seed(seed_value, k)``; None leaves Brian2 unseeded.
    target : str
        Brian2's code generation target: ``'numpy'`` or ``'cython'``.
    record_neurons : bool
        Also count every neuron's spikes per sample (``Results.neuron_counts``).
    progress : callable, optional
        Called with the number of samples done after each run.
    """
    from brian2 import seed, set_device

    set_device("runtime")
    a = load_arrays(model)
    kernel = sorted(k[:-len("_0" + keys.POS)] for k in a if k.startswith(keys.PROJECTION) and k.endswith("_0" + keys.POS))
    if kernel and target != "numpy":  # checked before any Brian2 object exists
        raise unsupported(target, f"the kernel projection {kernel[0]}")
    preferences(model, target)
    parts = []
    for index, start, chunk in chunks(x, model.samples_per_run):
        n = len(chunk)
        if seed_value is not None:
            seed(chunk_seed(seed_value, index))
        padded = np.zeros((model.rounds(n) * model.batch, *chunk.shape[1:]))  # whole rows of samples side by side
        padded[:n] = chunk
        net, rec, _ = model.make_network(model.input_values(padded, a), len(padded), a, record_neurons)
        # errstate: Brian2's after-run check compares float32 state with 1e50, a cast numpy reports as overflow
        # (its own warning on NaN or huge values stays)
        with quiet_election_warnings(), np.errstate(over="ignore"):
            net.run(run_length(model, n), namespace={})
        raw = {"v": rec["v"].u_[:].T}
        if "out" in rec:
            raw.update(out_i=rec["out"].i[:], out_t=rec["out"].t_[:])
        if "v_steps" in rec:
            raw["v_steps"] = rec["v_steps"].u_[:].T
        raw.update({keys.rate(name): rec[keys.rate(name)].rate_[:] for name in model.uniform_fanout})
        if model.counted:
            raw.update(spikes=rec["counters"].spikes[:].T, ops=rec["counters"].ops[:].T)
        results = summarize(model, raw, n)
        if record_neurons:
            results.neuron_counts = {}
            for name in model.layers:
                if keys.neurons(name) not in rec:  # an output read by its membrane does not spike
                    results.neuron_counts[name] = np.zeros((n, model.sizes[name]), dtype=np.int32)
                    continue
                mon = rec[keys.neurons(name)]
                size = model.sizes[name]
                neuron = mon.i[:].astype(np.int64)
                sample = (np.rint(mon.t_[:] / model.dt).astype(np.int64) // model.steps) * model.batch + neuron // size
                keep = sample < n
                flat = np.bincount(sample[keep] * size + neuron[keep] % size, minlength=n * size)
                results.neuron_counts[name] = flat.reshape(n, size).astype(np.int32)
        parts.append(results)
        del net, rec
        if progress is not None:
            progress(start + n)
    return Results.concat(parts)
