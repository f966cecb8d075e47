"""Tier two: semantic rules. Each rule is a small function that reads the context and reports
diagnostics with a stable code; later rules skip what earlier ones found broken.

One module of some 550 lines: the rules run in one order over one context, and that order (references, then
the graph, then shapes, neurons, normalization and resources) is the module read top to bottom."""
from __future__ import annotations

import difflib
import math
from typing import Any, Callable

import numpy as np

from .context import Context
from .layers import LAYER_TYPES, Analog, Role, ShapeError
from .model import NEURON_DEFAULTS, NeuronParams, hidden_linear, lam_per_neuron, window_members
from .resources import check_indices, check_memory, check_steps, estimate
from .tensors import rule_tensors
from .units import (DIMENSIONLESS, FREQUENCY, TIME, VOLTAGE, Quantity, QuantityError, dimension_word, parse_quantity,
                    steps_in)

#: Layer types the analog input current can be computed for (looking through those that pass it on).
ANALOG_CONSUMERS = tuple(t for t, cls in LAYER_TYPES.items() if cls.analog is Analog.DRIVEN)


# -- graph ---------------------------------------------------------------------------------------
def rule_unique_names(ctx: Context) -> None:
    for i, layer in enumerate(ctx.layers):
        if layer.name in ctx.index:
            first = ctx.index[layer.name]
            ctx.rep.add("NS201", f"layer name '{layer.name}' is already used by layers[{first}]", ("layers", i, "name"))
            ctx.graph_ok = False
        else:
            ctx.index[layer.name] = i


def rule_one_input(ctx: Context) -> None:
    inputs = [i for i, l in enumerate(ctx.layers) if l.role is Role.SOURCE]
    if not inputs:
        ctx.rep.add("NS204", "no layer has type 'input'; the network needs exactly one", ("layers",))
        ctx.graph_ok = False
    elif inputs[0] != 0:
        ctx.rep.add(
            "NS208",
            f"the input layer must be listed first, it is layers[{inputs[0]}] "
            f"(layers[0] '{ctx.layers[0].name}' is {ctx.layers[0].type})",
            ("layers", inputs[0], "type"),
        )
        ctx.graph_ok = False
    for i in inputs[1:]:
        ctx.rep.add("NS204", f"a second input layer (the first is layers[{inputs[0]}]); the network needs exactly one", ("layers", i, "type"))
        ctx.graph_ok = False


def rule_references(ctx: Context) -> None:
    for i, layer in enumerate(ctx.layers):
        for j, ref in enumerate(layer.inputs):
            path = ("layers", i, "inputs", j) if layer.inputs_written else ("layers", i)
            if ref == layer.name and not layer.inputs_written:
                continue  # a repeated name read by default: NS201 says so
            if ref == layer.name:
                ctx.rep.add("NS203", f"layer '{ref}' lists itself as an input", path)
                ctx.graph_ok = False
            elif ref not in ctx.index:
                close = difflib.get_close_matches(ref, list(ctx.index), n=1, cutoff=0.6)
                hint = f"did you mean '{close[0]}'? " if close else ""
                known = ", ".join(sorted(ctx.index))
                ctx.rep.add("NS202", f"unknown layer '{ref}' ({hint}layers are: {known})", path)
                ctx.graph_ok = False


def rule_arity(ctx: Context) -> None:
    for i, layer in enumerate(ctx.layers):
        lo, hi = layer.arity
        n = len(layer.inputs)
        if lo <= n and (hi is None or n <= hi):
            continue
        ctx.graph_ok = False
        if n == 0:
            continue  # only the first layer reads nothing by default: NS204 or NS208 says why
        if hi == lo:
            ctx.rep.add("NS206", f"{layer.type} takes exactly {lo} input, got {n}: {list(layer.inputs)}", ("layers", i, "inputs"))
        else:
            ctx.rep.add("NS206", f"{layer.type} takes at least {lo} inputs, got {n}: {list(layer.inputs)}", ("layers", i, "inputs"))


def rule_acyclic(ctx: Context) -> None:
    if not ctx.graph_ok:
        return
    pending = {l.name: set(l.inputs) for l in ctx.layers}
    order: list[str] = []
    ready = [l.name for l in ctx.layers if not pending[l.name]]
    while ready:
        name = ready.pop(0)
        order.append(name)
        for consumer in ctx.consumers(name):
            deps = pending[consumer.name]
            if name in deps:
                deps.discard(name)
                if not deps:
                    ready.append(consumer.name)
    if len(order) == len(ctx.layers):
        ctx.order = order
        return
    stuck = [l.name for l in ctx.layers if l.name not in order]
    # walk back along inputs from the first stuck layer until a name repeats: that is a cycle
    walk, name = [], stuck[0]
    while name not in walk:
        walk.append(name)
        name = next(i for i in ctx.layer(name).inputs if i in stuck)
    cycle = walk[walk.index(name):] + [name]
    ctx.rep.add("NS203", "the layers form a cycle: " + " <- ".join(f"'{n}'" for n in cycle), ctx.lpath(cycle[0], "inputs"))
    ctx.graph_ok = False


def rule_one_output(ctx: Context) -> None:
    if ctx.order is None:
        return
    sinks = [l for l in ctx.layers if not ctx.consumers(l.name)]
    if len(sinks) > 1:
        out = sinks[-1]
        for layer in sinks[:-1]:
            ctx.rep.add(
                "NS205",
                f"layer '{layer.name}' feeds no other layer, so it never reaches the output '{out.name}'",
                ctx.lpath(layer.name),
            )
        ctx.order = None
        return
    # the output last, so spec.order[-1] names it
    out = sinks[0]
    ctx.order.remove(out.name)
    ctx.order.append(out.name)
    if out.role is not Role.POPULATION:
        kinds = ", ".join(t for t, cls in LAYER_TYPES.items() if cls.role is Role.POPULATION)
        ctx.rep.add("NS209", f"the output layer '{out.name}' is {out.type}, which has no neurons to read out; end the "
                    f"network with a layer that has them ({kinds})", ctx.lpath(out.name, "type"))


def _rule_clip(ctx: Context, layer, output: str) -> None:
    """``clip`` and ``levels`` qualify the relu of a hidden layer; ``levels`` needs ``clip``."""
    for key in ("clip", "levels"):
        if getattr(layer, key) is None:
            continue
        path = ctx.lpath(layer.name, key)
        if layer.name == output:
            ctx.rep.add("NS207", f"{key} applies to the relu of a hidden layer; the output layer '{output}' is read out, "
                        "not clipped", path)
        elif layer.activation != "relu":
            ctx.rep.add("NS207", f"{key} needs activation relu (the layer's activation is {layer.activation or 'none'})", path)
        elif key == "clip" and not (isinstance(layer.clip, (int, float)) and math.isfinite(layer.clip) and layer.clip > 0):
            ctx.rep.add("NS207", f"clip must be a finite number > 0, got {layer.clip}", path)
        elif key == "levels" and layer.clip is None:
            ctx.rep.add("NS207", "levels needs clip: the quantized activation has levels steps between 0 and clip",
                        path)
        else:
            continue
        return


def rule_activations(ctx: Context) -> None:
    if ctx.order is None:
        return
    output = ctx.order[-1]
    for layer in ctx.layers:
        _rule_clip(ctx, layer, output)
        act = layer.activation
        if act is None or layer.name == output:
            continue
        path = ctx.lpath(layer.name, "activation")
        if act == "softmax":
            ctx.rep.add("NS207", f"softmax is only allowed on the output layer '{output}'", path)
        elif hidden_linear(layer, output):
            bad = [c.name for c in ctx.consumers(layer.name) if not c.sums_inputs]
            if layer.sums_inputs or bad:
                ctx.rep.add(
                    "NS207",
                    "a hidden layer with linear activation has no neurons of its own and may only feed add layers"
                    + (f" (it feeds '{bad[0]}')" if bad else " (an add layer itself must use relu)"),
                    path,
                )
            elif layer.neuron:
                adds = ", ".join(f"'{c.name}'" for c in ctx.consumers(layer.name))
                ctx.rep.add(
                    "NS508",
                    f"neuron parameters do not apply here: a hidden linear layer has no neurons (set them on {adds})",
                    ctx.lpath(layer.name, "neuron"),
                )


# -- parameters ----------------------------------------------------------------------------------
def _quantity(ctx: Context, raw: Any, path: tuple, dims: tuple[str, ...], what: str) -> Quantity | None:
    try:
        q = parse_quantity(raw)
    except QuantityError as exc:
        ctx.rep.add("NS501", str(exc), path)
        return None
    if q.dim not in dims:
        want = " or ".join(dimension_word(d) for d in dims)
        ctx.rep.add("NS502", f"{what} must be {want}, got {raw!r} ({dimension_word(q.dim)})", path)
        return None
    return q


def rule_simulation(ctx: Context) -> None:
    sim = ctx.data["simulation"]
    dt = _quantity(ctx, sim["dt"], ("simulation", "dt"), (TIME,), "dt")
    dur = _quantity(ctx, sim["duration"], ("simulation", "duration"), (TIME,), "duration")
    if dt is not None and dt.value <= 0:
        ctx.rep.add("NS505", f"dt must be positive, got {sim['dt']!r}", ("simulation", "dt"))
        dt = None
    if dur is not None and dur.value <= 0:
        ctx.rep.add("NS505", f"duration must be positive, got {sim['duration']!r}", ("simulation", "duration"))
        dur = None
    if dt is not None:
        ctx.dt = dt.value
        if dur is not None and not _whole_steps(dur.value, dt.value):
            ctx.rep.add("NS505", f"duration {sim['duration']!r} is not a whole number of steps of dt {sim['dt']!r}", ("simulation", "duration"))
        elif dur is not None:
            ctx.steps = steps_in(dur, dt)


def _whole_steps(t: float, dt: float) -> bool:
    steps = t / dt
    return abs(steps - round(steps)) <= 1e-6 * max(1.0, abs(steps))


def rule_input(ctx: Context) -> None:
    inp = ctx.data["input"]
    lo, hi = inp["range"]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        ctx.rep.add("NS509", f"range must be two finite numbers, got [{lo}, {hi}]", ("input", "range"))
    elif not lo < hi:
        ctx.rep.add("NS509", f"range low {lo} must be below high {hi}", ("input", "range"))
    if len(inp["shape"]) == 2:
        ctx.rep.add("NS301", f"shape {inp['shape']} is ambiguous: write [H, W, C] (e.g. {inp['shape'] + [1]}) or [N]", ("input", "shape"))
        ctx.input_ok = False
    if inp["encoding"] == "poisson":
        if "max_rate" not in inp:
            ctx.rep.add("NS507", "poisson encoding needs max_rate (e.g. max_rate: '1000 Hz')", ("input",))
            return
        rate = _quantity(ctx, inp["max_rate"], ("input", "max_rate"), (FREQUENCY,), "max_rate")
        if rate is None:
            return
        if rate.value <= 0:
            ctx.rep.add("NS509", f"max_rate must be positive, got {inp['max_rate']!r}", ("input", "max_rate"))
        elif ctx.dt is not None and rate.value * ctx.dt > 1 + 1e-9:
            ctx.rep.add("NS509", f"max_rate {inp['max_rate']!r} is above 1/dt ({1 / ctx.dt:g} Hz): at most one spike per step", ("input", "max_rate"))
        if lo < 0:
            ctx.rep.add("NS509", f"poisson encoding needs non-negative inputs, range starts at {lo}", ("input", "range"))
    else:
        softmax = (ctx.data.get("simulation") or {}).get("readout") == "softmax"
        for key in ("max_rate",) if softmax else ("max_rate", "seed"):
            if key in inp:
                ctx.rep.add("NS508", f"{key} applies to poisson encoding only; this input is analog", ("input", key))


_VOLTAGE_KEYS = ("threshold", "rest", "reset")
_EXAMPLES = {"tau_m": "20 ms", "tau_syn": "5 ms"}
_TIME_KEYS = ("refractory", "tau_m", "tau_syn", "delay")


def rule_neurons(ctx: Context) -> None:
    """Merge defaults and overrides for every layer with neurons and check each parameter once,
    where it is written."""
    defaults = ctx.data.get("neuron", {})
    checked: dict[tuple, bool] = {}

    def where(key: str, override: dict, lpath: tuple) -> tuple:
        if key in override:
            return lpath + ("neuron", key)
        if key in defaults:
            return ("neuron", key)
        return ()

    def check(key: str, raw: Any, path: tuple, dims: tuple[str, ...]) -> Quantity | None:
        if path in checked:
            return parse_quantity(raw) if checked[path] else None
        q = _quantity(ctx, raw, path or ("neuron",), dims, key)
        checked[path] = q is not None
        return q

    targets = [(("neuron",), "defaults", {})] + [
        (ctx.lpath(l.name), l.name, l.neuron or {}) for l in ctx.layers if l.has_neurons
    ]
    for lpath, name, override in targets:
        merged = {**NEURON_DEFAULTS, **defaults, **override}
        ok = True
        volts: dict[str, Quantity] = {}
        for key in _VOLTAGE_KEYS:
            if key == "reset" and merged[key] in ("subtract", "zero"):
                continue
            q = check(key, merged[key], where(key, override, lpath), (DIMENSIONLESS, VOLTAGE))
            if q is None:
                ok = False
            else:
                volts[key] = q
        if len({q.dim for q in volts.values()}) > 1:
            mixed = ", ".join(f"{k}={merged[k]!r}" for k in volts)
            ctx.rep.add("NS506", f"voltages must all be plain numbers or all voltages, got {mixed}", where("threshold", override, lpath) or ("neuron",))
            ok = False
        for key in _TIME_KEYS:
            if key in merged:
                q = check(key, merged[key], where(key, override, lpath), (TIME,))
                if q is None:
                    ok = False
                elif q.value < 0 or (key.startswith("tau") and q.value == 0):
                    ctx.rep.add("NS505", f"{key} must be {'positive' if key.startswith('tau') else 'non-negative'}, got {merged[key]!r}", where(key, override, lpath))
                    ok = False
                elif key == "delay" and ctx.dt is not None and not _whole_steps(q.value, ctx.dt):
                    ctx.rep.add("NS505", f"delay {merged[key]!r} is not a whole number of time steps of dt {ctx.data['simulation']['dt']!r}", where(key, override, lpath))
                    ok = False
        for model_key, needs, value in (("model", "tau_m", "lif"), ("synapse", "tau_syn", "exponential")):
            if merged[model_key] == value and needs not in merged:
                ctx.rep.add("NS507", f"{model_key} '{value}' needs {needs} (e.g. {needs}: '{_EXAMPLES[needs]}')", where(model_key, override, lpath) or lpath)
                ok = False
            elif merged[model_key] != value and needs in merged and (needs in override or name == "defaults"):
                ctx.rep.add("NS508", f"{needs} applies to {model_key} '{value}' only, this is '{merged[model_key]}'", where(needs, override, lpath))
                ok = False
        if check("initial", merged["initial"], where("initial", override, lpath), (DIMENSIONLESS,)) is None:
            ok = False  # the schema checks its range, [0, 1)
        if not ok:
            continue
        params = NeuronParams.from_yaml({**defaults, **override})
        if params.threshold.value <= params.rest.value:
            ctx.rep.add("NS504", f"threshold {merged['threshold']!r} must be above rest {merged['rest']!r}", where("threshold", override, lpath) or lpath)
            continue
        reset = params.reset_value
        if reset is not None and params.threshold.value <= reset:
            ctx.rep.add("NS504", f"threshold {merged['threshold']!r} must be above reset {merged['reset']!r}", where("reset", override, lpath) or lpath)
            continue
        if name != "defaults":
            ctx.neurons[name] = params


def _euler_steps(ctx: Context, layer, params: NeuronParams, where) -> None:
    """Exponential synapses (and a leak beside them) are integrated with forward Euler, which needs each time
    constant longer than dt."""
    if ctx.dt is None or params.synapse != "exponential":
        return
    dt = ctx.data["simulation"]["dt"]
    for key, why in (("tau_syn", "exponential synapses are integrated with forward Euler"),
                     ("tau_m", "a leaky neuron with exponential synapses is integrated with forward Euler")):
        tau = getattr(params, key)
        if key == "tau_m" and params.model != "lif":
            continue
        if not tau.value > ctx.dt:
            path = where(key)
            if path not in ctx.reported:
                ctx.reported.add(path)
                ctx.rep.add("NS513", f"{key} {tau.text!r} must be longer than dt {dt!r} ({why})"
                            + ("" if path[:1] == ("layers",) else f"; layer '{layer.name}' uses it"), path)
            return


def rule_integration(ctx: Context) -> None:
    """What the simulation of each layer of neurons needs of its parameters and dt (forward Euler), and a
    membrane read-out of an output layer that cannot have a refractory period (it does not spike)."""
    if ctx.order is None or ctx.dt is None:
        return
    output = ctx.order[-1]
    defaults = ctx.data.get("neuron", {})
    for layer in ctx.layers:
        params = ctx.neurons.get(layer.name)
        if params is None or hidden_linear(layer, output):
            continue
        override = layer.neuron or {}

        def where(key, override=override, layer=layer):
            return ctx.lpath(layer.name, "neuron", key) if key in override else ("neuron", key) if key in defaults else ctx.lpath(layer.name)

        _euler_steps(ctx, layer, params, where)
        if (layer.name == output and (ctx.data["simulation"].get("readout") == "membrane")
                and steps_in(params.refractory, ctx.dt) > 0):
            path = where("refractory")
            inherited = path[:1] != ("layers",)
            ctx.rep.add("NS508", f"refractory does not apply to the output layer '{output}' with readout membrane: it "
                        "does not spike" + ("; give it refractory: '0 ms' in its own neuron block" if inherited
                                           else "; remove it"), path)


# -- shapes ------------------------------------------------------------------------------------
def rule_shapes(ctx: Context) -> None:
    if ctx.order is None:
        return
    for name in ctx.order:
        layer = ctx.layer(name)
        if layer.role is Role.SOURCE:
            if ctx.input_ok:
                ctx.shapes[name] = tuple(ctx.data["input"]["shape"])
            continue
        if any(i not in ctx.shapes for i in layer.inputs):
            continue  # an input already failed
        in_shapes = [ctx.shapes[i] for i in layer.inputs]
        try:
            ctx.shapes[name] = layer.output_shape(in_shapes)
        except ShapeError as exc:
            names = list(dict.fromkeys(layer.inputs))
            sides = ", ".join(f"'{i}' gives {list(ctx.shapes[i])}" for i in names)
            path = ctx.lpath(name, exc.field) if exc.field is not None and exc.field in ctx.data["layers"][ctx.index[name]] else ctx.lpath(name)
            ctx.rep.add(exc.code, f"{exc} ({'input' if len(names) == 1 else 'inputs:'} {sides})", path)


def rule_resources(ctx: Context) -> None:
    """Steps per sample, 32-bit indices and memory, estimated from the shapes before any tensor is read
    (see :mod:`.resources`)."""
    sim = ctx.data["simulation"]
    if ctx.steps is not None:
        why = check_steps(ctx.steps, ctx.limits)
        if why:
            ctx.rep.add("NS601", f"duration {sim['duration']!r} with dt {sim['dt']!r} is {why}", ("simulation", "duration"))
    if ctx.order is None or any(name not in ctx.shapes for name in ctx.order):
        return
    delayed = {name for name, p in ctx.neurons.items() if p.delay.value > 0}
    est = estimate(ctx.layers, ctx.shapes, ctx.order[-1], ctx.steps, ctx.limits.connectivity, delayed)
    too_big = check_indices(est)
    if too_big:
        name, why = too_big
        where = ("input", "shape") if ctx.layer(name).role is Role.SOURCE else ctx.lpath(name)
        ctx.rep.add("NS603", why, where)
        ctx.resources_ok = False
        return
    why = check_memory(est.network_bytes, ctx.limits, f"the network ({est.describe()})")
    if why:
        name = est.heaviest_projection[0] or est.largest_layer[0]
        ctx.rep.add("NS602", why, ctx.lpath(name))
        ctx.resources_ok = False


def rule_analog_input(ctx: Context) -> None:
    if ctx.order is None or ctx.data["input"]["encoding"] != "analog":
        return
    frontier = [l for l in ctx.layers if l.role is Role.SOURCE]
    while frontier:
        src = frontier.pop()
        for consumer in ctx.consumers(src.name):
            if consumer.analog is Analog.PASSES:
                frontier.append(consumer)
            elif consumer.analog is not Analog.DRIVEN:
                ctx.rep.add(
                    "NS510",
                    f"with analog input, the layers reading the input must be one of {', '.join(ANALOG_CONSUMERS)}; "
                    f"'{consumer.name}' is {consumer.type} (use poisson encoding)",
                    ctx.lpath(consumer.name, "type"),
                )


def rule_normalization(ctx: Context) -> None:
    # lambda > 0 is in the schema too; this catches specs built in memory
    for layer in ctx.layers:
        lam = None if layer.normalization is None else layer.normalization.lam
        for k, v in enumerate(lam if isinstance(lam, tuple) else () if lam is None else (lam,)):
            if not (v > 0 and math.isfinite(v)):
                where = ("normalization", "lambda") + ((k,) if isinstance(lam, tuple) else ())
                ctx.rep.add("NS503", f"lambda must be a finite number > 0, got {v}", ctx.lpath(layer.name, *where))
                break


def rule_bias_correction(ctx: Context) -> None:
    """``normalization.bias_correction``: finite numbers, one or one per output channel, on a layer with neurons
    of its own (a hidden linear layer has none; its add gets the correction)."""
    output = ctx.order[-1] if ctx.order else None
    for layer in ctx.layers:
        corr = None if layer.normalization is None else layer.normalization.bias_correction
        if corr is None:
            continue
        where = ctx.lpath(layer.name, "normalization", "bias_correction")
        if layer.role is not Role.POPULATION or (output is not None and hidden_linear(layer, output)):
            what = "a hidden linear layer has no neurons (correct the add it feeds)" if layer.role is Role.POPULATION \
                else f"a {layer.type} layer has no neurons"
            ctx.rep.add("NS514", f"bias_correction: {what}", where)
            continue
        values = corr if isinstance(corr, tuple) else (corr,)
        bad = [k for k, v in enumerate(values) if not math.isfinite(v)]
        if bad:
            ctx.rep.add("NS514", f"bias_correction must be finite numbers, got {values[bad[0]]}",
                        where + ((bad[0],) if isinstance(corr, tuple) else ()))
            continue
        if isinstance(corr, tuple) and layer.name in ctx.shapes and len(corr) != ctx.shapes[layer.name][-1]:
            ctx.rep.add("NS514", f"bias_correction has {len(corr)} values, the layer has {ctx.shapes[layer.name][-1]} "
                        "channels (give one number, or one per channel)", where)


def rule_channel_lambdas(ctx: Context) -> None:
    """Per-channel factors: one per output channel; a max-pooling window's members share one factor. Kernels
    and average pooling take every source neuron's own (average pooling holds one weight per window and
    channel)."""
    if ctx.order is None or any(n not in ctx.shapes for n in ctx.order) or not ctx.resources_ok:
        return
    for layer in ctx.layers:
        lam = None if layer.normalization is None else layer.normalization.lam
        if isinstance(lam, tuple) and layer.name in ctx.shapes:
            channels = ctx.shapes[layer.name][-1]
            if len(lam) != channels:
                ctx.rep.add("NS511", f"lambda has {len(lam)} values, the layer has {channels} channels "
                            "(give one number, or one per channel)", ctx.lpath(layer.name, "normalization", "lambda"))
                return
    # a max-pool gate compares the counts of its window's members, so they must share one factor (a window
    # across branches of different factors concatenated along a spatial axis has none); every other layer
    # takes each neuron's factor (the builder scales per source neuron, or per channel of each source node)
    per = {}
    for name in ctx.order:
        layer = ctx.layer(name)
        if layer.role is not Role.GATE:
            continue
        src = layer.inputs[0]
        if src not in per:
            per[src] = lam_per_neuron(ctx.layer(src), ctx.layer, ctx.shapes, pad=np.nan).reshape(ctx.shapes[src])
        if not np.fmax.reduce(per[src], axis=None) > np.fmin.reduce(per[src], axis=None):
            continue  # one factor throughout
        taps = window_members(per[src], layer)
        lo, hi = np.fmin.reduce(taps, axis=0), np.fmax.reduce(taps, axis=0)
        bad = np.argwhere(lo < hi)
        if bad.size:
            r, c, k = (int(v) for v in bad[0])
            ctx.rep.add("NS512", f"the pooling window at row {r}, column {c}, channel {k} reads neurons of '{src}' with "
                        f"different lambdas ({lo[r, c, k]:g} and {hi[r, c, k]:g}); max pooling compares their spike "
                        "counts (a concatenation along a spatial axis of branches with different lambdas)",
                        ctx.lpath(name, "inputs"))
            return


#: The rules in the order they run.
RULES: tuple[Callable[[Context], None], ...] = (
    rule_unique_names,
    rule_one_input,
    rule_references,
    rule_arity,
    rule_acyclic,
    rule_one_output,
    rule_activations,
    rule_simulation,
    rule_input,
    rule_analog_input,
    rule_neurons,
    rule_integration,
    rule_shapes,
    rule_resources,
    rule_tensors,
    rule_normalization,
    rule_channel_lambdas,
    rule_bias_correction,
)
