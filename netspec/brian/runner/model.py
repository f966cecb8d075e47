"""A generated network as the runner sees it, its arrays and its results; chunking, seeding and the read-out.

``network.py`` declares its network as a :class:`Model`. Its raw recordings of a run of samples become
:class:`Results` (:func:`summarize`). Everything here is numpy and the standard library: netspec's own stages use
:func:`chunk_seed` and :func:`ranking` without loading Brian2.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import keys

if TYPE_CHECKING:  # Brian2 is imported only by the functions that simulate
    from brian2 import Network, TimedArray

Arrays = Mapping[str, np.ndarray]
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Model:
    """A generated network as the runner sees it: ``network.py`` declares one, ``MODEL``.

    Attributes
    ----------
    script : str
        Path of ``network.py``; its folder holds ``arrays.npz`` and, for standalone builds, ``cpp/``.
    standalone : bool
        Whether the build runs the compiled binary ``cpp/main`` by default.
    threads : int
        OpenMP threads of the standalone binary.
    float_dtype : numpy floating type
        Brian2's default float type (``np.float64`` or ``np.float32``).
    samples_per_run : int
        Samples simulated per run of the network (compiled in for standalone); a multiple of ``batch``.
    steps : int
        Time steps per sample.
    dt : float
        Seconds per time step.
    seed : int or None
        Default seed of the random numbers (poisson input).
    input_shape : tuple of int
        Shape of one raw input sample.
    n_out : int
        Output neurons.
    layers : sequence of str
        Every spiking layer, in the spec's order.
    uniform_fanout : mapping of str to int
        Layers whose neurons share one fan-out (spikes counted by a PopulationRateMonitor): name -> fan-out.
    counted : sequence of str
        Layers whose fan-outs differ, in the row order of the counter group.
    sizes : mapping of str to int
        Neurons per layer.
    input_values : callable
        ``input_values(x, arrays)``: the per-sample rows of the input TimedArrays, name -> float [N, ...].
    make_network : callable
        ``make_network(values, n_samples, arrays, record_neurons)``: the Brian2 ``Network`` for
        ``n_samples`` samples, its recorders (name -> monitor) and its input TimedArrays (name -> TimedArray).
    readout : str
        ``'spike_count'``, ``'softmax'`` (both record the output's spikes) or ``'membrane'`` (the output does
        not spike; its membrane is recorded every step).
    profile : bool
        Brian2's profiling: the standalone binary times every code object and writes the seconds per code
        object to ``profiling_info.txt`` in its results folder.
    batch : int
        Samples simulated side by side: every group holds ``batch`` copies of its layer (sample b's neurons at
        ``b*size .. (b+1)*size - 1``), and a run of ``n`` samples lasts ``ceil(n/batch)`` sample durations.
    """

    script: str
    standalone: bool
    threads: int
    float_dtype: type
    samples_per_run: int
    steps: int
    dt: float
    seed: int | None
    input_shape: tuple[int, ...]
    n_out: int
    layers: Sequence[str]
    uniform_fanout: Mapping[str, int]
    counted: Sequence[str]
    sizes: Mapping[str, int]
    input_values: Callable[[np.ndarray, Arrays], dict[str, np.ndarray]]
    make_network: Callable[..., tuple[Network, dict[str, Any], dict[str, TimedArray]]]
    readout: str = "spike_count"
    profile: bool = False
    batch: int = 1

    def rounds(self, n_samples: int) -> int:
        """Sample durations a run of ``n_samples`` takes (``batch`` samples side by side in each)."""
        return -(-n_samples // self.batch)

    @property
    def folder(self) -> Path:
        """The build folder (where ``network.py`` lies)."""
        return Path(self.script).resolve().parent

    @property
    def cpp_dir(self) -> Path:
        """The standalone C++ project (``cpp/``), with the binary ``main`` and ``manifest.json``."""
        return self.folder / "cpp"


# -- numpy helpers (no Brian2) ---------------------------------------------------------------------
def chunk_seed(seed: int | None, index: int) -> int | None:
    """The seed of chunk ``index`` of a simulation seeded with ``seed``.

    The one derivation of per-chunk seeds: ``network.py`` seeds its run ``index`` with it, and ``netspec
    run`` its chunk ``index``, so results do not depend on how samples are split among workers.

    Parameters
    ----------
    seed : int or None
        The base seed; None (no seed) stays None.
    index : int
        The chunk (or run) number, from 0.

    Returns
    -------
    int or None
        A seed in ``[0, 2**31)``, a function of ``(seed, index)`` only.
    """
    if seed is None:
        return None
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0] & 0x7FFFFFFF)


def chunks(x: np.ndarray, size: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Consecutive runs of at most ``size`` samples of ``x``.

    Parameters
    ----------
    x : ndarray, [N, ...]
        Samples.
    size : int
        Samples per run (at least 1).

    Yields
    ------
    index : int
        Run number, from 0.
    start : int
        Index in ``x`` of the run's first sample.
    chunk : ndarray, [n, ...]
        The run's samples, ``x[start:start + size]`` (the last one may be shorter).
    """
    if size < 1:
        raise ValueError(f"runs must hold at least 1 sample, got {size}")
    for index, start in enumerate(range(0, len(x), size)):
        yield index, start, x[start:start + size]


def ranking(counts: np.ndarray, v_out: np.ndarray) -> np.ndarray:
    """Classes of every sample ordered best first by the read-out rule.

    The read-out rule: most output spikes; ties broken by the higher output membrane at the end of the
    sample, then by the lower index.

    Parameters
    ----------
    counts : ndarray, [N, C]
        Output spikes per sample and class.
    v_out : ndarray, [N, C]
        Output membrane potential at the end of each sample (tie-breaker).

    Returns
    -------
    ndarray, int64 [N, C]
        ``ranking[i, 0]`` is the predicted class of sample i; ties in counts go to the higher membrane
        potential, then to the lower index.
    """
    counts = np.asarray(counts)
    v_out = np.asarray(v_out, dtype=np.float64)
    if counts.shape != v_out.shape or counts.ndim != 2:
        raise ValueError(f"counts {counts.shape} and v_out {v_out.shape} must both be [N, C]")
    index = np.broadcast_to(np.arange(counts.shape[1]), counts.shape)
    # np.lexsort sorts by the last key first
    order: np.ndarray = np.lexsort((index, -v_out, -counts.astype(np.int64)), axis=-1).astype(np.int64)
    return order


def load_arrays(model: Model) -> dict[str, np.ndarray]:
    """The connectivity and parameters in the build's ``arrays.npz`` (keys: :mod:`.keys`)."""
    with np.load(model.folder / "arrays.npz") as data:
        return {key: data[key] for key in data.files}


@dataclass
class Results:
    """What a simulation of N samples recorded, per sample.

    Attributes
    ----------
    counts : int32 [N, n_out]
        Output spikes per sample.
    v_out : float64 [N, n_out]
        Output membrane at the end of each sample, normalized (0 at rest, 1 at threshold): the tie-breaker.
    out_steps : uint16 [N, T, n_out]
        Output spikes per time step.
    layer_spikes, layer_ops : dict of str to int64 [N, T]
        Per spiking layer (populations, the poisson input, max-pooling gates), in the spec's order: spikes per
        time step summed over the layer, and synaptic operations per time step (each spike times its fan-out).
    v_steps : float64 [N, T, n_out] or None
        The membrane read-out only: the output membrane at the end of every step (the output does not spike).
    neuron_counts : dict of str to int32 [N, neurons] or None
        Every neuron's spikes per sample (channels-last order), only when neurons were recorded.
    """

    counts: np.ndarray
    v_out: np.ndarray
    out_steps: np.ndarray
    layer_spikes: dict[str, np.ndarray]
    layer_ops: dict[str, np.ndarray]
    v_steps: np.ndarray | None = None
    neuron_counts: dict[str, np.ndarray] | None = field(default=None)

    def arrays(self) -> dict[str, np.ndarray]:
        """Flat, as ``results.npz`` holds them: ``counts``, ``v_out``, ``out_steps``, ``v_steps`` (if any) and per
        layer :func:`keys.spikes`, :func:`keys.ops`, :func:`keys.neurons`."""
        out = {"counts": self.counts, "v_out": self.v_out, "out_steps": self.out_steps}
        if self.v_steps is not None:
            out["v_steps"] = self.v_steps
        for name in self.layer_spikes:
            out[keys.spikes(name)], out[keys.ops(name)] = self.layer_spikes[name], self.layer_ops[name]
        for name, counts in (self.neuron_counts or {}).items():
            out[keys.neurons(name)] = counts
        return out

    @staticmethod
    def concat(parts: Sequence["Results"]) -> "Results":
        """The results of consecutive runs, concatenated along the samples."""
        def join(dicts):
            return {k: np.concatenate([d[k] for d in dicts]) for k in dicts[0]}

        first = parts[0]
        return Results(
            counts=np.concatenate([p.counts for p in parts]), v_out=np.concatenate([p.v_out for p in parts]),
            out_steps=np.concatenate([p.out_steps for p in parts]),
            layer_spikes=join([p.layer_spikes for p in parts]), layer_ops=join([p.layer_ops for p in parts]),
            v_steps=None if first.v_steps is None else np.concatenate([p.v_steps for p in parts]),
            neuron_counts=None if first.neuron_counts is None else join([p.neuron_counts for p in parts]))


def side_by_side(values: np.ndarray, batch: int) -> np.ndarray:
    """Per-sample rows ``[n, size]`` as the rows of a group holding ``batch`` copies of a layer: ``[n/batch,
    batch*size]``, sample ``r*batch + b`` in row ``r`` at ``b*size`` (the same bytes: sample-major)."""
    values = np.asarray(values)
    if len(values) % batch:
        raise ValueError(f"{len(values)} samples do not fill rows of {batch} side by side")
    return values.reshape(len(values) // batch, batch * values.shape[1])


def copies(index: np.ndarray, size: int, batch: int) -> np.ndarray:
    """Indices into one copy of a group of ``size`` neurons, for all ``batch`` copies side by side (copy b offset by
    ``b*size``), copy after copy."""
    index = np.asarray(index)
    return (index[None, :] + size * np.arange(batch, dtype=index.dtype)[:, None]).ravel()


def _samples_first(a: np.ndarray, rounds: int, steps: int | None, batch: int, width: int) -> np.ndarray:
    """Recordings of ``rounds`` sample durations, ``steps`` rows each (None: one row per duration), of groups
    holding ``batch`` copies of ``width`` columns each: per sample, ``[rounds*batch, (steps,) width]``."""
    a = np.asarray(a)
    if steps is None:
        return a[:rounds].reshape(rounds * batch, width)
    a = a[:rounds * steps].reshape(rounds, steps, batch, width)
    return a.transpose(0, 2, 1, 3).reshape(rounds * batch, steps, width)


def summarize(model: Model, raw: Mapping[str, np.ndarray], n: int) -> Results:
    """The :class:`Results` of one run of ``n`` samples from its raw recordings.

    Runtime and standalone runs record the same raw arrays, so they give the same results.

    Parameters
    ----------
    model : Model
        The network.
    raw : mapping of str to ndarray
        ``out_i``, ``out_t`` (output spikes: neuron, time in seconds; absent for a non-spiking output),
        ``v_steps`` (the membrane read-out's output membrane at the end of every step), ``v`` (output membrane at
        every sample start, the end state of the previous sample), ``rate_<layer>`` (population rate per step, for
        layers in ``model.uniform_fanout``), ``spikes`` and ``ops`` (the counter group's rows per step, when
        ``model.counted``: row ``r*batch + b`` is layer ``r``, sample ``b``). Neurons of the groups holding
        ``batch`` samples side by side are numbered sample after sample.
    n : int
        Samples in the run (a padded run recorded more; they are dropped).
    """
    steps, dt, batch, n_out = model.steps, model.dt, model.batch, model.n_out
    rounds = model.rounds(n)
    out_steps = np.zeros((rounds * batch, steps, n_out), dtype=np.uint16)
    if "out_t" in raw:  # a spiking output
        step = np.rint(raw["out_t"] / dt).astype(np.int64)
        keep = step < rounds * steps
        neuron = raw["out_i"][keep].astype(np.int64)
        sample = (step[keep] // steps) * batch + neuron // n_out
        np.add.at(out_steps, (sample, step[keep] % steps, neuron % n_out), 1)
    out_steps = out_steps[:n]
    v = np.asarray(raw["v"], dtype=np.float64).reshape(-1, batch * n_out)
    v_out = _samples_first(v[1:], rounds, None, batch, n_out)[:n]
    v_steps = None
    if "v_steps" in raw:  # membrane read-out: the output membrane at the end of every step
        v_steps = np.asarray(raw["v_steps"], dtype=np.float64).reshape(-1, batch * n_out)
        v_steps = _samples_first(v_steps, rounds, steps, batch, n_out)[:n]
    counted = list(model.counted)
    if counted:
        rows = len(counted)
        spikes = np.asarray(raw["spikes"], dtype=np.int64).reshape(-1, rows * batch)
        ops = np.asarray(raw["ops"], dtype=np.int64).reshape(-1, rows * batch)
        spikes = _samples_first(spikes, rounds, steps, 1, rows * batch).reshape(rounds, steps, rows, batch)
        ops = _samples_first(ops, rounds, steps, 1, rows * batch).reshape(rounds, steps, rows, batch)
    layer_spikes, layer_ops = {}, {}
    for name in model.layers:
        if name not in model.uniform_fanout and name not in counted:  # a non-spiking output
            layer_spikes[name] = layer_ops[name] = np.zeros((n, steps), dtype=np.int64)
        elif name in model.uniform_fanout:  # rate = spikes / (neurons * dt); one sample at a time
            count = np.rint(np.asarray(raw[keys.rate(name)])[:n * steps] * model.sizes[name] * dt).astype(np.int64)
            layer_spikes[name] = count.reshape(n, steps)
            layer_ops[name] = count.reshape(n, steps) * model.uniform_fanout[name]
        else:
            row = counted.index(name)
            layer_spikes[name] = spikes[:, :, row, :].transpose(0, 2, 1).reshape(rounds * batch, steps)[:n]
            layer_ops[name] = ops[:, :, row, :].transpose(0, 2, 1).reshape(rounds * batch, steps)[:n]
    return Results(counts=out_steps.sum(axis=1, dtype=np.int32), v_out=v_out, out_steps=out_steps,
                   layer_spikes=layer_spikes, layer_ops=layer_ops, v_steps=v_steps)
