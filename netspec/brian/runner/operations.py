"""The kernel-form operations of a network, as Brian2 objects: projections, max-pooling elections, counters.

Each is a Brian2 ``Function`` with two implementations, numpy (runtime mode) and C++ (standalone: a call of a
template of ``netspec_kernels.h``, instantiated with the network's geometry; only integers and checked names are
written into it), called once per time step by a one-element group at its place in the step (see
:mod:`.schedule`). Its arrays (index maps, kernels) are the function's namespace, which Brian2 writes as static
arrays of the standalone project. Both implementations make the same additions in the same order as Brian2's
synapses would, so a kernel build spikes like an unrolled one, and runtime like standalone.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import keys
from .geometry import Filters, Window
from .schedule import Slot

Arrays = Mapping[str, np.ndarray]
#: The header the C++ implementations call (copied into the standalone project by the compile step).
HEADER = "netspec_kernels.h"
#: Input rows per block of ``netspec::scatter_by_tap`` (a grouped projection walks a block's taps one by one).
ROWS = 2
#: ... which a grouped projection uses where a tap's kernel slice (input channels x filters) holds at least this many
#: values; smaller ones walk pixel by pixel (``scatter_grouped``). tools/bench_scatter.cpp, float, batch 8, best of 7:
#: VGG-16's convolutions (64x64 and more) 1.04-1.58x faster by tap, LeNet's conv2 (16x32, 5x5) 2.5x slower.
BY_TAP_SLICE = 64 * 64


class UnsupportedTarget(ValueError):
    """A code generation target that a part of the network has no implementation for."""


def unsupported(target: str, what: str) -> UnsupportedTarget:
    return UnsupportedTarget(
        f"runtime target {target!r}: {what} has numpy and C++ (standalone) implementations only; use --target "
        "numpy, the standalone binary, or a build with --connectivity synapses")


def _standalone(what: str) -> bool:
    """Whether Brian2's device is the C++ standalone one; refuses runtime targets other than numpy for ``what``."""
    from brian2 import get_device, prefs
    from brian2.devices.cpp_standalone.device import CPPStandaloneDevice

    if isinstance(get_device(), CPPStandaloneDevice):
        return True
    if prefs.codegen.target != "numpy":
        raise unsupported(prefs.codegen.target, what)
    return False


class _ElectionOrderFilter(logging.Filter):
    """Drops Brian2's warning that the unrolled max-pooling election's outcome may depend on the order of
    execution: it keeps the maximum of the bids (``cand_post = clip(..., cand_post, inf)``), which does not."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not ("depend on the order of execution" in text and "cand_post" in text)


@contextlib.contextmanager
def quiet_election_warnings():
    """While generating code (``net.run``, ``device.build``): without the warning :class:`_ElectionOrderFilter`
    drops; every other message passes (Brian2's own logger, only for this duration)."""
    logger = logging.getLogger("brian2.codegen.generators.base")
    election = _ElectionOrderFilter()
    logger.addFilter(election)
    try:
        yield
    finally:
        logger.removeFilter(election)


def _array(var: Any) -> str:
    """The C++ name of a Brian2 array variable in standalone code."""
    from brian2 import get_device

    return "brian::" + get_device().get_array_name(var)


def _function(impl, name: str, cpp: str | None, namespace: dict[str, np.ndarray], *, arg_unit, arg_type: str,
              return_type: str):
    """A Brian2 Function ``name`` with the numpy implementation ``impl`` and, in standalone mode, the C++ ``cpp``."""
    from brian2 import Function

    func = Function(impl, arg_units=[arg_unit], return_unit=1, arg_types=[arg_type], return_type=return_type,
                    stateless=False, auto_vectorise=False)
    if cpp is not None:
        func.implementations.add_implementation("cpp", cpp, name=name, namespace=namespace,
                                                compiler_kwds={"headers": [f'"{HEADER}"']})
    return func


def _step_operation(name: str, fname: str, func: Any, clock: Any, slot: Slot, reads: Any, writes: Any) -> Any:
    """A one-element ``NeuronGroup`` named ``name`` whose operation ``<name>_pre`` calls ``fname(t)`` (the Function
    ``func``) once per step at ``slot`` (where Brian2 would run the pathway of ``Synapses`` named ``name``),
    declared to the schedule as reading the spikes of ``reads`` and writing ``writes``."""
    from brian2 import NeuronGroup

    group = NeuronGroup(1, "dummy : 1", clock=clock, name=name, namespace={fname: func})
    operation = group.run_regularly(f"dummy = {fname}(t)", when=slot.when, order=slot.order, name=name + "_pre",
                                    clock=clock)
    slot.declare(name, operation, reads, writes)
    return group


def grouped(windows: Sequence[Window], pos: Sequence[np.ndarray]) -> bool:
    """Whether a projection's C++ scatter may group the spikes of this step by input pixel (netspec_kernels.h's
    ``scatter_grouped``, ``scatter_by_tap``): one :class:`~.geometry.Filters` window, read through an index map that ascends with the
    source index, so that a pixel's spikes are consecutive and the order of every target's additions is kept."""
    if len(windows) != 1 or not isinstance(windows[0], Filters):
        return False
    valid = pos[0][pos[0] >= 0]
    return bool(np.all(np.diff(valid) > 0))


def kernel_projection(*, name: str, source: Any, target: Any, adds_to: str, only_where_not_refractory: bool,
                      windows: Sequence[Window], arrays: Arrays, clock: Any, at: Slot, batch: int = 1) -> Any:
    """A projection simulated from its kernels.

    For every neuron of ``source`` that spiked in this step (ascending index) and every window (piece) in order,
    it adds the neuron's kernel slice to ``adds_to`` of its targets in ``target`` (only where ``not_refractory``
    when ``only_where_not_refractory``): the additions of Brian2's synapses, in their order. The arrays of window
    ``p`` are ``arrays[keys.piece(name, p) + POS / W]``. A one-element group named ``name`` calls it at ``at``. The
    C++ groups the spikes by input pixel where it may (:func:`grouped`; ``scatter_by_tap``, :data:`ROWS` input rows
    at a time, where a tap's kernel slice holds :data:`BY_TAP_SLICE` values or more). With ``batch`` samples side by side, the
    spikes of sample b (source neurons ``b*size ..``) reach sample b's copy of the targets.
    """
    standalone = _standalone(f"the kernel projection {name}")
    tv = target.variables[adds_to]
    ss = source.variables["_spikespace"]
    nr = target.variables["not_refractory"] if only_where_not_refractory else None
    pos = [np.ascontiguousarray(arrays[keys.piece(name, p) + keys.POS], dtype=np.int32) for p in range(len(windows))]
    w = [np.ascontiguousarray(arrays[keys.piece(name, p) + keys.W], dtype=tv.dtype) for p in range(len(windows))]
    n_source, n_target = len(pos[0]), int(np.prod(windows[0].output)) * windows[0].channels_out
    if source.N != batch * n_source or target.N != batch * n_target:
        raise ValueError(f"{name}: groups of {source.N} and {target.N} neurons are not {batch} copies of {n_source} and "
                         f"{n_target}")
    fname = "scatter_" + name

    def scatter(t):
        space = ss.get_value()
        spikes = space[:space[-1]]
        if spikes.size:
            copy, local = spikes // n_source, spikes % n_source
            parts = [win.targets(local, pos[p], w[p]) for p, win in enumerate(windows)]
            rank = np.concatenate([r for r, _, _ in parts])
            order = np.argsort(rank, kind="stable")  # by spike, then piece
            tgt = np.concatenate([t_ + copy[r] * n_target for r, t_, _ in parts])[order]
            val = np.concatenate([v for _, _, v in parts])[order]
            if nr is not None:
                val = val * nr.get_value()[tgt]
            np.add.at(tv.get_value(), tgt, val)
        return 0.0

    cpp = None
    namespace: dict[str, np.ndarray] = {}
    if standalone:
        from brian2.codegen.generators.cpp_generator import c_data_type

        ctype = c_data_type(tv.dtype)
        gtype = c_data_type(nr.dtype) if nr is not None else "char"
        gated = "true" if nr is not None else "false"
        lines = [f"// {name}: a spike of {source.name} adds its kernel slice to {adds_to} of {target.name}",
                 f"double {fname}(double t) {{",
                 f"    const int32_t* _ss = {_array(ss)};",
                 f"    const int32_t _n = _ss[{int(source.N)}];",
                 f"    {ctype}* _u = {_array(tv)};",
                 f"    const {gtype}* _gate = {_array(nr) if nr is not None else '0'};"]
        for p, win in enumerate(windows):
            namespace[f"_{name}_{p}_pos"], namespace[f"_{name}_{p}_w"] = pos[p], w[p]
            lines.append(f"    static const {ctype}* _w{p} = netspec::resident(_namespace_{name}_{p}_w, {int(w[p].size)});")
        if grouped(windows, pos):
            geometry = ", ".join(str(int(v)) for v in windows[0].template_arguments())
            win = windows[0]
            if win.input[2] * win.filters >= BY_TAP_SLICE:
                lines.append(f"    netspec::scatter_by_tap<{ctype}, {geometry}, {gated}, {gtype}, {n_source}, {n_target}, "
                             f"{ROWS}>(_ss, _n, _namespace_{name}_0_pos, _w0, _u, _gate);")
            else:
                lines.append(f"    netspec::scatter_grouped<{ctype}, {geometry}, {gated}, {gtype}, {n_source}, {n_target}>(_ss, "
                             f"_n, _namespace_{name}_0_pos, _w0, _u, _gate);")
        else:
            lines += ["    for (int32_t _k = 0; _k < _n; _k++) {",
                      f"        const int32_t _copy = _ss[_k] / {n_source}, _s = _ss[_k] % {n_source};",
                      f"        {ctype}* _t = _u + _copy * {n_target};",
                      f"        const {gtype}* _g = _gate ? _gate + _copy * {n_target} : _gate;"]
            for p, win in enumerate(windows):
                geometry = ", ".join(str(int(v)) for v in win.template_arguments())
                lines.append(f"        netspec::scatter_one<{ctype}, {win.cpp_mode}, {geometry}, {gated}>(_s, "
                             f"_namespace_{name}_{p}_pos, _w{p}, _t, _g);")
            lines.append("    }")
        lines += ["    return 0.0;", "}", ""]
        cpp = "\n".join(lines)
    from brian2 import second

    func = _function(scatter, fname, cpp, namespace, arg_unit=second, arg_type="float", return_type="float")
    return _step_operation(name, fname, func, clock, at, source, target)


def pool_election(*, name: str, source: Any, gates: Any, of_gates: bool, members: int, arrays: Arrays, clock: Any,
                  at: Slot, batch: int = 1) -> Any:
    """The max-pooling election of the members in ``source`` for their windows in ``gates``, without synapses.

    For every neuron of ``source`` that spiked in this step and every window it belongs to (``arrays[keys.election
    prefix + PRE / POST / KEY]``, the name being ``name``), the bid ``int(count >= best)*(K - key + K*int(key ==
    winner))`` (``count``: the member's spikes in this sample before this step; ``best - 1`` for a gate of gates,
    ``of_gates``) is kept in ``cand`` of the window when it is the largest: what the ``on_pre`` of the synapses of
    an unrolled build does (a maximum, so the order of the spikes is irrelevant). ``members``: K, the most members
    of a window. A one-element group named ``name`` calls it at ``at``. With ``batch`` samples side by side, sample
    b's members bid for sample b's copy of the windows."""
    standalone = _standalone(f"the max-pooling election {name}")
    pre = np.asarray(arrays[name + keys.PRE], dtype=np.int64)
    n_source, n_gates = source.N // batch, gates.N // batch
    by_member = np.argsort(pre, kind="stable")
    offsets = np.zeros(n_source + 1, dtype=np.int32)
    np.cumsum(np.bincount(pre, minlength=n_source), out=offsets[1:])
    window = np.ascontiguousarray(np.asarray(arrays[name + keys.POST])[by_member], dtype=np.int32)
    key = np.ascontiguousarray(np.asarray(arrays[name + keys.KEY])[by_member], dtype=np.float64)
    ss = source.variables["_spikespace"]
    count = source.variables["best" if of_gates else "count"]
    best, winner, cand = (gates.variables[v] for v in ("best", "winner", "cand"))
    k_ = float(members)
    fname = "elect_" + name

    def elect(t):
        space = ss.get_value()
        spikes = space[:space[-1]]
        if spikes.size:
            local = spikes % n_source
            first, last = offsets[local], offsets[local + 1]
            member = np.repeat(spikes, last - first)
            m = np.arange(len(member)) - np.repeat(np.cumsum(last - first) - (last - first), last - first) + \
                np.repeat(first, last - first)
            c = count.get_value()[member] - (1 if of_gates else 0)
            j, kk = window[m] + (member // n_source) * n_gates, key[m]
            bid = (c >= best.get_value()[j]) * (k_ - kk + k_ * (kk == winner.get_value()[j]))
            np.maximum.at(cand.get_value(), j, bid.astype(cand.dtype))
        return 0.0

    cpp = None
    if standalone:
        cpp = "\n".join([
            f"// {name}: a spike of {source.name} bids for its max-pooling windows in {gates.name}",
            f"double {fname}(double t) {{",
            f"    const int32_t* _ss = {_array(ss)};",
            f"    netspec::elect<{n_source}, {n_gates}>(_ss, _ss[{int(source.N)}], {_array(count)}, "
            f"{'true' if of_gates else 'false'}, {_array(best)}, {_array(winner)}, {_array(cand)}, _namespace_{name}_off, "
            f"_namespace_{name}_win, _namespace_{name}_key, {k_!r});",
            "    return 0.0;", "}", ""])
    from brian2 import second

    func = _function(elect, fname, cpp, {f"_{name}_off": offsets, f"_{name}_win": window, f"_{name}_key": key},
                     arg_unit=second, arg_type="float", return_type="float")
    return _step_operation(name, fname, func, clock, at, source, gates)


def spike_counters(group: Any, layers: Sequence[Any], fanouts: Sequence[np.ndarray], batch: int, clock: Any) -> None:
    """Count, every step, the spikes and synaptic operations of ``layers`` into the rows of ``group`` (``spikes``
    and ``ops``, integer), without synapses: an operation of ``group`` at the end of the step (before any monitor
    there) calls ``spikes_<group>(i)`` and ``ops_<group>(i)``, which read the spikes of this step of row ``i``'s
    layer ``i // batch``, sample ``i % batch`` (its ``batch`` copies side by side), and sum their fan-outs
    (``fanouts[r]``, one per neuron of a copy of ``layers[r]``)."""
    standalone = _standalone(f"the spike counters {group.name}")
    spaces = [layer.variables["_spikespace"] for layer in layers]
    fanouts = [np.ascontiguousarray(f, dtype=np.int32) for f in fanouts]
    fs, fo = f"spikes_{group.name}", f"ops_{group.name}"
    sizes = [layer.N // batch for layer in layers]

    def _copy(i):
        """Row i's spikes of this step (neuron indices within its copy)."""
        layer, copy = divmod(int(i), batch)
        space = spaces[layer].get_value()
        spikes = space[:space[-1]]
        lo, hi = np.searchsorted(spikes, [copy * sizes[layer], (copy + 1) * sizes[layer]])
        return layer, spikes[lo:hi] - copy * sizes[layer]

    def spikes(i):
        return np.array([len(_copy(r)[1]) for r in np.asarray(i, dtype=np.int64)], dtype=np.int32)

    def ops(i):
        out = []
        for r in np.asarray(i, dtype=np.int64):
            layer, own = _copy(r)
            out.append(int(fanouts[layer][own].sum(dtype=np.int64)))
        return np.array(out, dtype=np.int32)

    cpp_s = cpp_o = None
    if standalone:
        cases_s = [f"        case {r}: _ss = {_array(s)}; _size = {size}; break;  // {layer.name}"
                   for r, (s, layer, size) in enumerate(zip(spaces, layers, sizes))]
        cases_o = [f"        case {r}: _ss = {_array(s)}; _size = {size}; _f = _namespace_F_{group.name}_{r}; break;  // "
                   f"{layer.name}" for r, (s, layer, size) in enumerate(zip(spaces, layers, sizes))]
        head = ["    const int32_t* _ss = 0; const int32_t* _f = 0; int32_t _size = 0;", f"    switch (i / {batch}) {{"]
        cpp_s = "\n".join([f"// {fs}(i): spikes in this step of row i (layer i / {batch}, sample i % {batch})",
                           f"int32_t {fs}(int32_t i) {{", *head, *cases_s, "        default: return 0;", "    }",
                           f"    return netspec::copy_spikes(_ss, _size, {batch}, i % {batch});", "}", ""])
        cpp_o = "\n".join([f"// {fo}(i): synaptic operations in this step of row i (the fan-outs of its spikes)",
                           f"int32_t {fo}(int32_t i) {{", *head, *cases_o, "        default: return 0;", "    }",
                           f"    return netspec::copy_operations(_ss, _size, {batch}, i % {batch}, _f);", "}", ""])
    f_spikes = _function(spikes, fs, cpp_s, {}, arg_unit=1, arg_type="integer", return_type="integer")
    f_ops = _function(ops, fo, cpp_o, {f"_F_{group.name}_{r}": f for r, f in enumerate(fanouts)}, arg_unit=1,
                      arg_type="integer", return_type="integer")
    group.namespace.update({fs: f_spikes, fo: f_ops})
    group.run_regularly(f"spikes = {fs}(i)\nops = {fo}(i)", when="end", order=-1, name=group.name + "_count",
                        clock=clock)


def kernel_drive(x: np.ndarray, windows: Sequence[Window], arrays: Arrays, prefix: str, n: int) -> np.ndarray:
    """The analog input drive ``W.x`` of ``n`` neurons for every sample of ``x [N, ...]``, from the kernels of the
    windows (pieces) ``arrays[keys.piece(prefix, p) + POS / W]``."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    out = np.zeros((len(x), n))
    for p, win in enumerate(windows):
        out += win.drive(x, arrays[keys.piece(prefix, p) + keys.POS], arrays[keys.piece(prefix, p) + keys.W])
    return out


__all__ = ["UnsupportedTarget", "kernel_projection", "pool_election", "spike_counters", "kernel_drive"]
