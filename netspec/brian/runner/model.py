"""The code that every generated ``network.py`` runs: chunking, seeding, the read-out, and the runners.

``netspec build`` copies this file into every build folder as ``netspec_runner.py``, next to ``network.py``,
so that a build runs (``python network.py --inputs x.npy --out results.npz``) and can be shared without
netspec installed. It therefore imports only the standard library, numpy and Brian2, never netspec; and
Brian2 only inside the functions that simulate, so that netspec's own stages can use the numpy helpers
(:func:`chunk_seed`, :func:`ranking`) without loading Brian2.

What varies per network (its groups, synapses and constants) is written in ``network.py``, which describes
itself to the runner as a :class:`Model`. The runner splits the inputs into runs of ``samples_per_run``
samples (:func:`chunks`), seeds each run (:func:`chunk_seed`), simulates them in Brian2's runtime mode
(:func:`run_runtime`) or with the compiled standalone binary (:func:`run_standalone`, after
:func:`compile_standalone`), and turns the raw recordings of each run into per-sample results
(:func:`summarize`); :func:`main` is the command line of ``network.py``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # Brian2 is imported only by the functions that simulate
    from brian2 import Network, Quantity, TimedArray

#: GCC flags: Brian2's defaults without -ffast-math, so runtime (cython) and standalone round alike.
COMPILE_ARGS = ["-w", "-O3", "-march=native", "-std=c++11"]
#: Standalone: C++ run before the simulation, letting NETSPEC_SEED reseed the random number generators.
SEED_FROM_ENVIRONMENT = ('{ const char* _seed = std::getenv("NETSPEC_SEED"); if (_seed) '
                         'for (size_t _k = 0; _k < brian::_random_generators.size(); _k++) '
                         'brian::_random_generators[_k].seed(std::strtoul(_seed, NULL, 10) + _k); }')

Arrays = Mapping[str, np.ndarray]
Results = dict[str, np.ndarray]
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
        Samples simulated per run of the network (compiled in for standalone).
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


def project(x: np.ndarray, pre: np.ndarray, post: np.ndarray, w: np.ndarray, n: int) -> np.ndarray:
    """For every sample, the sum of ``w * x[pre]`` into ``n`` targets.

    Parameters
    ----------
    x : ndarray, [N, M]
        Flat inputs.
    pre, post, w : ndarray, [K]
        The projection: input index, target index and weight of each connection.
    n : int
        Targets.

    Returns
    -------
    ndarray, float64 [N, n]
        Computed as a matrix product when the projection is dense enough, else per sample.
    """
    if pre.size * 4 >= x.shape[1] * n:
        matrix = np.zeros((x.shape[1], n))
        np.add.at(matrix, (pre, post), w)
        return x @ matrix
    out = np.empty((x.shape[0], n))
    for s in range(x.shape[0]):
        out[s] = np.bincount(post, weights=w * x[s, pre], minlength=n)
    return out


# -- kernel projections ------------------------------------------------------------------------------
# A piece (see netspec/brian/kernels.py, which writes them): [mode, H, W, C, OH, OW, KH, KW, SY, SX, PT, PL, F]
# and the arrays <prefix>_<k>_pos (source neuron -> flat position in the layer's input [H, W, C], -1: none)
# and <prefix>_<k>_w (the kernel [KH, KW, C, F] for 'full' and 'depth'; for 'pool' [OH, OW, C]: 1/taps of the
# window times the channel's lambda_in/lambda_out).
Piece = Sequence[Any]


def _piece_targets(spikes: np.ndarray, piece: Piece, pos: np.ndarray, w: np.ndarray):
    """For the spiking sources ``spikes`` (ascending): (spike rank, target, weight) of every connection."""
    mode, h, wd, c, oh, ow, kh, kw, sy, sx, pt, pl, f = piece
    p = pos[spikes]
    rank = np.flatnonzero(p >= 0)
    p = p[rank].astype(np.int64)
    ch, ix, iy = p % c, (p // c) % wd, p // (c * wd)
    ty = iy[:, None] + pt - np.arange(kh)[None, :]
    tx = ix[:, None] + pl - np.arange(kw)[None, :]
    oky = (ty >= 0) & (ty % sy == 0) & (ty // sy < oh)
    okx = (tx >= 0) & (tx % sx == 0) & (tx // sx < ow)
    n_i, ky_i, kx_i = np.nonzero(oky[:, :, None] & okx[:, None, :])
    o = (ty[n_i, ky_i] // sy) * ow + tx[n_i, kx_i] // sx
    cc = ch[n_i]
    if mode == "pool":
        return rank[n_i], o * c + cc, w[o * c + cc]
    rows = w.reshape(kh * kw * c, f)[(ky_i * kw + kx_i) * c + cc]
    first = o * f if mode == "full" else o * (c * f) + cc * f
    tgt = first[:, None] + np.arange(f)[None, :]
    return np.repeat(rank[n_i], f), tgt.ravel(), rows.ravel()


def _piece_cpp(k: int, piece: Piece, prefix: str, target: str, refractory: str | None) -> str:
    """The C++ loop that adds piece ``k`` of a projection for the spiking source ``_s`` (numbers only)."""
    mode, h, wd, c, oh, ow, kh, kw, sy, sx, pt, pl, f = (piece[0], *map(int, piece[1:]))
    gate = (lambda i: f" * {refractory}[{i}]") if refractory else (lambda i: "")
    if mode == "pool":
        add = f"{target}[_o * {c} + _c] += {prefix}_w[_o * {c} + _c]{gate(f'_o * {c} + _c')};"
    else:
        first = f"_o * {f}" if mode == "full" else f"_o * {c * f} + _c * {f}"
        add = (f"const int32_t _t0 = {first}; const int32_t _w0 = ((_ky * {kw} + _kx) * {c} + _c) * {f};\n"
               f"                    for (int32_t _f = 0; _f < {f}; _f++) "
               f"{target}[_t0 + _f] += {prefix}_w[_w0 + _f]{gate('_t0 + _f')};")
    return f"""        {{  // piece {k}: [{h}x{wd}x{c}] -> [{oh}x{ow}], {kh}x{kw} window, stride {sy}x{sx}, {mode}
            const int32_t _p = {prefix}_pos[_s];
            if (_p >= 0) {{
                const int32_t _c = _p % {c}, _ix = (_p / {c}) % {wd}, _iy = _p / {c * wd};
                for (int32_t _ky = 0; _ky < {kh}; _ky++) {{
                    const int32_t _ty = _iy + {pt} - _ky;
                    if (_ty < 0 || _ty % {sy} != 0 || _ty / {sy} >= {oh}) continue;
                    for (int32_t _kx = 0; _kx < {kw}; _kx++) {{
                    const int32_t _tx = _ix + {pl} - _kx;
                    if (_tx < 0 || _tx % {sx} != 0 || _tx / {sx} >= {ow}) continue;
                    const int32_t _o = (_ty / {sy}) * {ow} + _tx / {sx};
                    {add}
                    }}
                }}
            }}
        }}
"""


class UnsupportedTarget(ValueError):
    """A code generation target that a part of the network has no implementation for."""


def _unsupported(target: str, what: str) -> UnsupportedTarget:
    return UnsupportedTarget(
        f"runtime target {target!r}: {what} has numpy and C++ (standalone) implementations only; use --target "
        "numpy, the standalone binary, or a build with --connectivity synapses")


def _check_target(what: str) -> None:
    """Refuse runtime targets other than numpy: ``what`` (a kernel-form operation) has no other implementation."""
    from brian2 import get_device, prefs
    from brian2.devices.cpp_standalone.device import CPPStandaloneDevice

    if not isinstance(get_device(), CPPStandaloneDevice) and prefs.codegen.target != "numpy":
        raise _unsupported(prefs.codegen.target, what)


def _array(var: Any) -> str:
    """The C++ name of a Brian2 array variable in standalone code."""
    from brian2 import get_device

    return "brian::" + get_device().get_array_name(var)


def _step_operation(name: str, fname: str, func: Any, clock: Any, order: int) -> Any:
    """A one-element ``NeuronGroup`` named ``name`` whose operation ``<name>_pre`` calls ``fname(t)`` (the
    ``Function`` ``func``) once per step in the 'synapses' slot at ``order``: where Brian2 runs the pathway of
    ``Synapses`` named ``name``, so it takes that pathway's place in the schedule."""
    from brian2 import NeuronGroup

    group = NeuronGroup(1, "dummy : 1", clock=clock, name=name, namespace={fname: func})
    group.run_regularly(f"dummy = {fname}(t)", when="synapses", order=order, name=name + "_pre", clock=clock)
    return group


def kernel_projection(name: str, source: Any, target: Any, var: str, refractory: bool, pieces: Sequence[Piece],
                      a: Arrays, clock: Any, order: int = 0) -> Any:
    """A projection simulated from its kernels: a one-element ``NeuronGroup`` named ``name`` whose operation
    ``<name>_pre`` (slot 'synapses', order 0: where Brian2 runs the pathway of ``Synapses`` named ``name``)
    calls ``scatter_<name>(t)`` (``order``: another place in the slot, for zero-latency timing). For every neuron of ``source`` that spiked this step, in ascending index,
    and every piece in order, it adds the neuron's kernel slice to ``var`` of its targets in ``target``
    (only where ``not_refractory`` when ``refractory``): the additions of Brian2's synapses, in their order.
    Implementations: numpy (runtime) and C++ (standalone), the arrays as static arrays of the function."""
    from brian2 import Function, get_device, second
    from brian2.codegen.generators.cpp_generator import c_data_type
    from brian2.devices.cpp_standalone.device import CPPStandaloneDevice

    _check_target(f"the kernel projection {name}")

    tv = target.variables[var]
    ss = source.variables["_spikespace"]
    nr = target.variables["not_refractory"] if refractory else None
    pos = [np.ascontiguousarray(a[f"{name}_{k}_pos"], dtype=np.int32) for k in range(len(pieces))]
    w = [np.ascontiguousarray(a[f"{name}_{k}_w"], dtype=tv.dtype) for k in range(len(pieces))]
    fname = "scatter_" + name

    def scatter(t):
        space = ss.get_value()
        spikes = space[:space[-1]]
        if spikes.size:
            parts = [_piece_targets(spikes, p, pos[k], w[k]) for k, p in enumerate(pieces)]
            rank = np.concatenate([r for r, _, _ in parts])
            order = np.argsort(rank, kind="stable")  # by spike, then piece
            tgt = np.concatenate([t_ for _, t_, _ in parts])[order]
            val = np.concatenate([v for _, _, v in parts])[order]
            if nr is not None:
                val = val * nr.get_value()[tgt]
            np.add.at(tv.get_value(), tgt, val)
        return 0.0

    func = Function(scatter, arg_units=[second], return_unit=1, arg_types=["float"], return_type="float",
                    stateless=False, auto_vectorise=False)
    device = get_device()
    if isinstance(device, CPPStandaloneDevice):
        ctype = c_data_type(tv.dtype)
        gate = None
        lines = []
        if nr is not None:
            gate = "_nr"
            lines.append(f"    const {c_data_type(nr.dtype)}* _nr = {_array(nr)};")
        body = "".join(_piece_cpp(k, p, f"_namespace_{name}_{k}", "_tgt", gate) for k, p in enumerate(pieces))
        code = (f"// {name}: a spike of {source.name} adds its kernel slice to {var} of {target.name}\n"
                f"double {fname}(double t) {{\n"
                f"    const int32_t* _ss = {_array(ss)};\n"
                f"    {ctype}* _tgt = {_array(tv)};\n" + "".join(l + "\n" for l in lines) +
                f"    const int32_t _n = _ss[{int(source.N)}];\n"
                f"    for (int32_t _k = 0; _k < _n; _k++) {{\n"
                f"        const int32_t _s = _ss[_k];\n{body}    }}\n    return 0.0;\n}}\n")
        namespace = {}
        for k in range(len(pieces)):
            namespace[f"_{name}_{k}_pos"] = pos[k]
            namespace[f"_{name}_{k}_w"] = w[k]
        func.implementations.add_implementation("cpp", code, name=fname, namespace=namespace)
    return _step_operation(name, fname, func, clock, order)


def pool_election(name: str, source: Any, gate: Any, relay_source: bool, members: int, a: Arrays, clock: Any,
                  order: int) -> Any:
    """The max-pooling election of the members in ``source`` for their gates in ``gate``, without synapses.

    A one-element ``NeuronGroup`` named ``name`` whose operation ``<name>_pre`` (slot 'synapses', ``order``:
    where Brian2 runs the pathway of the ``Synapses`` named ``name``) calls ``elect_<name>(t)``. For every
    neuron of ``source`` that spiked this step and every window it belongs to (``a['<name>_i/_j/_key']``), it
    computes the bid ``int(count >= best)*(K - key + K*int(key == winner))`` (``count``: the member's spikes
    in this sample before this step; ``best - 1`` for a gate of gates) and keeps the largest bid in ``cand``
    of the window: what the ``on_pre`` of those synapses does (a maximum, so the order of the spikes is
    irrelevant). ``members``: K, the most members of a window."""
    from brian2 import Function, get_device, second
    from brian2.codegen.generators.cpp_generator import c_data_type
    from brian2.devices.cpp_standalone.device import CPPStandaloneDevice

    _check_target(f"the max-pooling election {name}")
    pre = np.asarray(a[f"{name}_i"], dtype=np.int64)
    order_ = np.argsort(pre, kind="stable")
    offsets = np.zeros(source.N + 1, dtype=np.int32)
    np.cumsum(np.bincount(pre, minlength=source.N), out=offsets[1:])
    window = np.ascontiguousarray(np.asarray(a[f"{name}_j"])[order_], dtype=np.int32)
    key = np.ascontiguousarray(np.asarray(a[f"{name}_key"])[order_], dtype=np.float64)
    ss = source.variables["_spikespace"]
    count = source.variables["best" if relay_source else "count"]
    best, winner, cand = (gate.variables[v] for v in ("best", "winner", "cand"))
    k_ = float(members)
    fname = "elect_" + name

    def elect(t):
        space = ss.get_value()
        spikes = space[:space[-1]]
        if spikes.size:
            first, last = offsets[spikes], offsets[spikes + 1]
            member = np.repeat(spikes, last - first)
            m = np.arange(len(member)) - np.repeat(np.cumsum(last - first) - (last - first), last - first) + \
                np.repeat(first, last - first)
            c = count.get_value()[member] - (1 if relay_source else 0)
            j, kk = window[m], key[m]
            bid = (c >= best.get_value()[j]) * (k_ - kk + k_ * (kk == winner.get_value()[j]))
            np.maximum.at(cand.get_value(), j, bid.astype(cand.dtype))
        return 0.0

    func = Function(elect, arg_units=[second], return_unit=1, arg_types=["float"], return_type="float",
                    stateless=False, auto_vectorise=False)
    if isinstance(get_device(), CPPStandaloneDevice):
        ct = c_data_type(cand.dtype)
        minus = " - 1" if relay_source else ""
        code = (f"// {name}: a spike of {source.name} bids for its max-pooling windows in {gate.name}\n"
                f"double {fname}(double t) {{\n"
                f"    const int32_t* _ss = {_array(ss)};\n"
                f"    const {c_data_type(count.dtype)}* _count = {_array(count)};\n"
                f"    const {ct}* _best = {_array(best)};\n"
                f"    const {ct}* _winner = {_array(winner)};\n"
                f"    {ct}* _cand = {_array(cand)};\n"
                f"    const int32_t* _off = _namespace_{name}_off;\n"
                f"    const int32_t* _win = _namespace_{name}_win;\n"
                f"    const double* _key = _namespace_{name}_key;\n"
                f"    const int32_t _n = _ss[{int(source.N)}];\n"
                f"    for (int32_t _k = 0; _k < _n; _k++) {{\n"
                f"        const int32_t _s = _ss[_k];\n"
                f"        const double _c = _count[_s]{minus};\n"
                f"        for (int32_t _m = _off[_s]; _m < _off[_s + 1]; _m++) {{\n"
                f"            const int32_t _j = _win[_m];\n"
                f"            const double _w = _winner[_j], _key_m = _key[_m];\n"
                f"            const {ct} _bid = (_c >= _best[_j]) ? {k_!r} - _key_m + {k_!r} * (_key_m == _w) : 0.0;\n"
                f"            if (_bid > _cand[_j]) _cand[_j] = _bid;\n"
                f"        }}\n    }}\n    return 0.0;\n}}\n")
        func.implementations.add_implementation("cpp", code, name=fname, namespace={
            f"_{name}_off": offsets, f"_{name}_win": window, f"_{name}_key": key})
    return _step_operation(name, fname, func, clock, order)


def spike_counters(group: Any, layers: Sequence[Any], a: Arrays, clock: Any) -> None:
    """Count, every step, the spikes and synaptic operations of ``layers`` into the rows of ``group``
    (``spikes`` and ``ops``, integer), without synapses: an operation of ``group`` at the end of the step
    (before any monitor there) calls ``spikes_<group>(i)`` and ``ops_<group>(i)``, which read row ``i``'s
    layer's spikes of this step and sum their fan-outs ``a['F_<layer>']`` (the layer's name without ``L_``)."""
    from brian2 import Function, get_device
    from brian2.devices.cpp_standalone.device import CPPStandaloneDevice

    _check_target(f"the spike counters {group.name}")
    spaces = [layer.variables["_spikespace"] for layer in layers]
    fanouts = [np.ascontiguousarray(a["F_" + layer.name[2:]], dtype=np.int32) for layer in layers]
    fs, fo = f"spikes_{group.name}", f"ops_{group.name}"

    def spikes(i):
        return np.array([spaces[r].get_value()[-1] for r in np.asarray(i, dtype=np.int64)], dtype=np.int32)

    def ops(i):
        out = []
        for r in np.asarray(i, dtype=np.int64):
            space = spaces[r].get_value()
            out.append(int(fanouts[r][space[:space[-1]]].sum(dtype=np.int64)))
        return np.array(out, dtype=np.int32)

    f_spikes = Function(spikes, arg_units=[1], return_unit=1, arg_types=["integer"], return_type="integer",
                        stateless=False)
    f_ops = Function(ops, arg_units=[1], return_unit=1, arg_types=["integer"], return_type="integer", stateless=False)
    if isinstance(get_device(), CPPStandaloneDevice):
        cases_s = "".join(f"        case {r}: return {_array(s)}[{int(layer.N)}];  // {layer.name}\n"
                          for r, (s, layer) in enumerate(zip(spaces, layers)))
        cases_o = "".join(f"        case {r}: _ss = {_array(s)}; _f = _namespace_F_{group.name}_{r}; "
                          f"_n = {int(layer.N)}; break;  // {layer.name}\n"
                          for r, (s, layer) in enumerate(zip(spaces, layers)))
        f_spikes.implementations.add_implementation("cpp", (
            f"// {fs}(i): spikes in this step of the layer of row i\n"
            f"int32_t {fs}(int32_t i) {{\n    switch (i) {{\n{cases_s}    }}\n    return 0;\n}}\n"), name=fs)
        f_ops.implementations.add_implementation("cpp", (
            f"// {fo}(i): synaptic operations in this step of the layer of row i (the fan-outs of its spikes)\n"
            f"int32_t {fo}(int32_t i) {{\n    const int32_t* _ss = 0; const int32_t* _f = 0; int32_t _n = 0;\n"
            f"    switch (i) {{\n{cases_o}        default: return 0;\n    }}\n    int64_t _sum = 0;\n"
            f"    for (int32_t _k = 0; _k < _ss[_n]; _k++) _sum += _f[_ss[_k]];\n    return (int32_t)_sum;\n}}\n"),
            name=fo, namespace={f"_F_{group.name}_{r}": f for r, f in enumerate(fanouts)})
    group.namespace.update({fs: f_spikes, fo: f_ops})
    group.run_regularly(f"spikes = {fs}(i)\nops = {fo}(i)", when="end", order=-1, name=group.name + "_count",
                        clock=clock)


def kernel_drive(x: np.ndarray, pieces: Sequence[Piece], a: Arrays, prefix: str, n: int) -> np.ndarray:
    """The analog input drive ``W.x`` of ``n`` neurons for every sample of ``x [N, M]``, from the kernels.

    Summed tap by tap (window row, column, channel) with elementwise numpy, so a sample's drive does not
    depend on the other samples of its run (no BLAS blocking), in runtime and standalone alike."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    out = np.zeros((len(x), n))
    for k, piece in enumerate(pieces):
        mode, h, wd, c, oh, ow, kh, kw, sy, sx, pt, pl, f = piece
        pos = a[f"{prefix}_{k}_pos"]
        w = np.asarray(a[f"{prefix}_{k}_w"], dtype=np.float64)
        keep = pos >= 0
        flat = np.zeros((len(x), h * wd * c))
        flat[:, pos[keep]] = x[:, keep]
        hp, wp = max(h + pt, (oh - 1) * sy + kh), max(wd + pl, (ow - 1) * sx + kw)
        padded = np.zeros((len(x), hp, wp, c))
        padded[:, pt:pt + h, pl:pl + wd] = flat.reshape(len(x), h, wd, c)
        shape = {"full": (oh, ow, f), "depth": (oh, ow, c, f), "pool": (oh, ow, c)}[mode]
        acc = np.zeros((len(x), *shape))
        kernel = w.reshape(kh, kw, c, f) if mode != "pool" else None
        for ky in range(kh):
            for kx in range(kw):
                patch = padded[:, ky:ky + (oh - 1) * sy + 1:sy, kx:kx + (ow - 1) * sx + 1:sx, :]
                if mode == "pool":
                    acc += patch
                elif mode == "depth":
                    acc += patch[..., None] * kernel[ky, kx]
                else:
                    for ci in range(c):
                        acc += patch[..., ci, None] * kernel[ky, kx, ci]
        if mode == "pool":
            acc *= w.reshape(1, oh, ow, c)
        out += acc.reshape(len(x), -1)
    return out


def load_arrays(model: Model) -> dict[str, np.ndarray]:
    """The connectivity and parameters in the build's ``arrays.npz``.

    Keys: ``S_<target>_<k>_i/_j/_w`` (synapses, normalized weights) or ``S_<target>_<k>_<p>_pos/_w`` (kernel
    pieces), ``B_<layer>`` (bias per neuron and step), ``D_<layer>_<p>_pos/_w`` (analog input projection), ``E_<pool>_<k>_i/_j/_key`` (max-pooling
    windows), ``F_<layer>`` (fan-out per neuron).
    """
    with np.load(model.folder / "arrays.npz") as data:
        return {key: data[key] for key in data.files}


def summarize(model: Model, raw: Mapping[str, np.ndarray], n: int) -> Results:
    """Per-sample results of one run of ``n`` samples from its raw recordings.

    Runtime and standalone runs record the same raw arrays, so they give the same results.

    Parameters
    ----------
    model : Model
        The network.
    raw : mapping of str to ndarray
        ``out_i``, ``out_t`` (output spikes: neuron, time in seconds; absent for a non-spiking output),
        ``v_steps`` (the membrane read-out's output membrane at the end of every step), ``v`` (output membrane at every
        sample start, the end state of the previous sample), ``rate_<layer>`` (population rate per step, for
        layers in ``model.uniform_fanout``), ``spikes`` and ``ops`` (the counter group's rows per step, when
        ``model.counted``).
    n : int
        Samples in the run (a padded standalone run recorded more; they are dropped).

    Returns
    -------
    dict of str to ndarray
        ``counts`` int32 [n, n_out], ``v_out`` float64 [n, n_out], ``out_steps`` uint16 [n, T, n_out], and
        per layer ``spikes_<layer>`` and ``ops_<layer>`` int64 [n, T]; with the membrane read-out also
        ``v_steps`` float64 [n, T, n_out].
    """
    steps, dt = model.steps, model.dt
    out_steps = np.zeros((n, steps, model.n_out), dtype=np.uint16)
    if "out_t" in raw:  # a spiking output
        step = np.rint(raw["out_t"] / dt).astype(np.int64)
        keep = step < n * steps
        np.add.at(out_steps, (step[keep] // steps, step[keep] % steps, raw["out_i"][keep].astype(np.int64)), 1)
    v = np.asarray(raw["v"], dtype=np.float64).reshape(-1, model.n_out)
    results = {"counts": out_steps.sum(axis=1, dtype=np.int32), "v_out": v[1:n + 1], "out_steps": out_steps}
    if "v_steps" in raw:  # membrane read-out: the output membrane at the end of every step
        v_steps = np.asarray(raw["v_steps"], dtype=np.float64).reshape(-1, model.n_out)[:n * steps]
        results["v_steps"] = v_steps.reshape(n, steps, model.n_out)
    counted = list(model.counted)
    if counted:
        spikes = np.asarray(raw["spikes"], dtype=np.int64).reshape(-1, len(counted))[:n * steps]
        ops = np.asarray(raw["ops"], dtype=np.int64).reshape(-1, len(counted))[:n * steps]
    for name in model.layers:
        if name not in model.uniform_fanout and name not in counted:  # a non-spiking output
            results["spikes_" + name] = results["ops_" + name] = np.zeros((n, steps), dtype=np.int64)
        elif name in model.uniform_fanout:  # rate = spikes / (neurons * dt)
            count = np.rint(np.asarray(raw["rate_" + name])[:n * steps] * model.sizes[name] * dt).astype(np.int64)
            results["spikes_" + name] = count.reshape(n, steps)
            results["ops_" + name] = count.reshape(n, steps) * model.uniform_fanout[name]
        else:
            row = counted.index(name)
            results["spikes_" + name] = spikes[:, row].reshape(n, steps)
            results["ops_" + name] = ops[:, row].reshape(n, steps)
    return results


def concat(parts: Sequence[Mapping[str, np.ndarray]]) -> Results:
    """The results of consecutive runs, concatenated along the samples."""
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


# -- simulation (Brian2) ---------------------------------------------------------------------------
def _preferences(model: Model, target: str | None = None) -> None:
    from brian2 import prefs

    prefs.core.default_float_dtype = model.float_dtype
    prefs.codegen.cpp.extra_compile_args_gcc = COMPILE_ARGS
    if target is not None:
        prefs.codegen.target = target


def run_length(model: Model, n_samples: int) -> Quantity:
    """The duration of a run of ``n_samples`` samples.

    One step longer than the samples: in that step the last sample's end state is recorded.
    """
    from brian2 import second

    return (n_samples * model.steps + 1) * model.dt * second


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
        Also count every neuron's spikes per sample (``neurons_<layer>`` int32 [N, neurons]).
    progress : callable, optional
        Called with the number of samples done after each run.

    Returns
    -------
    dict of str to ndarray
        The results of :func:`summarize`, for all N samples.
    """
    from brian2 import seed, set_device

    set_device("runtime")
    a = load_arrays(model)
    kernel = sorted(k[:-len("_0_pos")] for k in a if k.startswith("S_") and k.endswith("_0_pos"))
    if kernel and target != "numpy":  # checked before any Brian2 object exists
        raise _unsupported(target, f"the kernel projection {kernel[0]}")
    _preferences(model, target)
    parts = []
    for index, start, chunk in chunks(x, model.samples_per_run):
        n = len(chunk)
        if seed_value is not None:
            seed(chunk_seed(seed_value, index))
        net, rec, _ = model.make_network(model.input_values(chunk, a), n, a, record_neurons)
        net.run(run_length(model, n), namespace={})
        raw = {"v": rec["v"].u_[:].T}
        if "out" in rec:
            raw.update(out_i=rec["out"].i[:], out_t=rec["out"].t_[:])
        if "v_steps" in rec:
            raw["v_steps"] = rec["v_steps"].u_[:].T
        raw.update({"rate_" + name: rec["rate_" + name].rate_[:] for name in model.uniform_fanout})
        if model.counted:
            raw.update(spikes=rec["counters"].spikes[:].T, ops=rec["counters"].ops[:].T)
        results = summarize(model, raw, n)
        if record_neurons:
            for name in model.layers:
                mon = rec["neurons_" + name]
                size = mon.source.N
                sample = np.rint(mon.t_[:] / model.dt).astype(np.int64) // model.steps
                keep = sample < n
                flat = np.bincount(sample[keep] * size + mon.i[:][keep], minlength=n * size)
                results["neurons_" + name] = flat.reshape(n, size).astype(np.int32)
        parts.append(results)
        del net, rec
        if progress is not None:
            progress(start + n)
    return concat(parts)


#: Compiling Brian2's project: every code object includes the same headers (``objects.h`` declares every array
#: of the network), which take most of a file's compile time. They are compiled once into a precompiled header
#: (GCC's ``.gch``, same flags) that every file includes first, and the dependency file (``make.deps``, only
#: for rebuilding a changed project, which a build never is) is not generated.
PCH = "netspec_pch.h"
PCH_HEADERS = ("objects.h", "brianlib/common_math.h", "brianlib/stdint_compat.h", "<cmath>", "<ctime>",
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
    _preferences(model)
    prefs.devices.cpp_standalone.openmp_threads = model.threads if model.threads > 1 else 0
    prefs.devices.cpp_standalone.extra_make_args_unix = [f"-j{os.cpu_count() or 1}"]
    if model.seed is not None:
        seed(model.seed)
    device.insert_code("main", SEED_FROM_ENVIRONMENT)
    a = load_arrays(model)
    values: dict[str, np.ndarray] = {name: np.zeros((model.samples_per_run, v.shape[1]), dtype=model.float_dtype)
                                     for name, v in model.input_values(np.zeros((1, *model.input_shape)), a).items()}
    net, rec, inputs = model.make_network(values, model.samples_per_run, a)
    net.run(run_length(model, model.samples_per_run), namespace={}, profile=model.profile)
    device.build(directory=str(cpp_dir), compile=False, run=False, clean=False, with_output=False)
    make(cpp_dir)
    recorded = {"v": rec["v"].variables["u"]}
    if "out" in rec:
        recorded.update(out_i=rec["out"].variables["i"], out_t=rec["out"].variables["t"])
    if "v_steps" in rec:
        recorded["v_steps"] = rec["v_steps"].variables["u"]
    recorded.update({"rate_" + name: rec["rate_" + name].variables["rate"] for name in model.uniform_fanout})
    if model.counted:
        recorded.update(spikes=rec["counters"].variables["spikes"], ops=rec["counters"].variables["ops"])
    manifest = {
        "inputs": {name: {"dtype": np.dtype(ta.values.dtype).name, "shape": list(ta.values.shape)}
                   for name, ta in inputs.items()},
        "outputs": {key: {"file": device.get_array_filename(var), "dtype": np.dtype(var.dtype).name}
                    for key, var in recorded.items()},
    }
    (cpp_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask the kernel to SIGKILL this process when its parent dies (Linux; elsewhere nothing): a binary never
    outlives the process that started it."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


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

    Returns
    -------
    dict of str to ndarray
        The results of :func:`summarize`, for all N samples.

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
                if list(v.shape) != expect["shape"]:
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
    return concat(parts)


def main(model: Model, argv: Sequence[str] | None = None, description: str | None = None) -> int:
    """The command line of ``network.py``: ``--inputs x.npy --out results.npz``, or ``--compile``.

    Parameters
    ----------
    model : Model
        The network.
    argv : sequence of str, optional
        Arguments (default: ``sys.argv[1:]``).
    description : str, optional
        The first line of the help text.

    Returns
    -------
    int
        The exit status (argument errors exit with status 2, as argparse does).
    """
    shape = ", ".join(map(str, model.input_shape))
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--inputs", help=f".npy file of raw inputs [N, {shape}]")
    parser.add_argument("--out", help=".npz file for the results")
    parser.add_argument("--seed", type=int, default=None, help="seed of the poisson input (default: the spec's)")
    parser.add_argument("--runtime", action="store_true",
                        help="simulate in runtime mode even if this is a standalone build")
    parser.add_argument("--target", default="numpy", choices=("numpy", "cython"),
                        help="runtime code generation: numpy (starts at once) or cython (compiles once, faster)")
    parser.add_argument("--compile", action="store_true", help="generate and compile the standalone C++ project")
    args = parser.parse_args(argv)
    if args.compile:
        try:
            compile_standalone(model)
        except RuntimeError as exc:  # the compiler's own messages, without a traceback
            print(f"{parser.prog}: error: {exc}", file=sys.stderr)
            return 1
        return 0
    if not args.inputs or not args.out:
        parser.error("--inputs and --out are required")
    x = np.load(args.inputs)
    if tuple(x.shape[1:]) != tuple(model.input_shape):
        parser.error(f"inputs have shape {list(x.shape)}, expected [N, {shape}]")
    seed_value = args.seed if args.seed is not None else model.seed
    t0 = time.perf_counter()
    if model.standalone and not args.runtime:
        if not (model.cpp_dir / "main").exists():
            compile_standalone(model)
        results = run_standalone(model, x, seed_value=seed_value)
    else:
        try:
            results = run_runtime(model, x, seed_value, target=args.target)
        except UnsupportedTarget as exc:
            parser.exit(2, f"{parser.prog}: error: {exc}\n")
    np.savez(args.out, **results)  # type: ignore[arg-type]  # numpy's stubs take a ** array for allow_pickle
    print(f"{len(x)} samples in {time.perf_counter() - t0:.2f} s -> {args.out}")
    return 0
