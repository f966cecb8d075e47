"""Rendering the generated Brian2 script from a :class:`~netspec.brian.plan.Plan`.

Everything that reaches the script is produced here from fixed fragments: equations, threshold, reset and
synaptic code are assembled from the strings in this module; names come from validated layer names with a
prefix (``L_conv1``, ``S_conv2_0``); numbers are written with ``repr(float(...))`` or ``int(...)``; units are
written from a quantity's SI value and dimension (``0.02*second``). Free text from the spec (description,
source) never reaches the script. The template (``templates/network.py.j2``) only lays the pieces out; it
is rendered with ``StrictUndefined``, ``trim_blocks`` and ``lstrip_blocks``. The code that runs every network
(the kernel-form operations and their C++, the schedule, chunking, seeding, the read-out, the runners) is not
generated: it is the package ``netspec.brian.runner``, which the build copies next to the script.
"""
from __future__ import annotations

import ast
import functools
import re
from importlib import resources

import jinja2
import numpy as np

from .. import __version__
from ..errors import NetspecError
from ..spec import Quantity
from ..spec.units import DIMENSIONLESS, FREQUENCY, TIME, VOLTAGE, steps_in
from .plan import MEMBRANE, SOFTMAX, Plan, Population, Relay
from .runner import keys
from .runner.geometry import KINDS, Window
from .runner.schedule import MAX_PROJECTIONS, ONE_STEP_PER_LAYER, ZERO_LATENCY

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_SPEC_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_UNIT_OF_DIM = {TIME: "second", VOLTAGE: "volt", FREQUENCY: "hertz"}

#: The name under which ``network.py`` imports the runner (the package ``netspec.brian.runner``, copied next to it
#: by the build).
RUNNER_MODULE = "netspec_runner"


def ident(name: str) -> str:
    """A layer name, checked again before it becomes part of a Python/Brian2 identifier."""
    if not (isinstance(name, str) and _NAME_RE.match(name) and name.isidentifier()):
        raise NetspecError(f"layer name {name!r} is not a valid identifier (letters, digits, '_'; a letter first)")
    return name


def num(value) -> str:
    """A float as Python source, exactly (``repr`` round-trips)."""
    value = float(value)
    if not np.isfinite(value):
        raise NetspecError(f"cannot write the non-finite number {value!r} into the generated code")
    return repr(value)


def qty(q: Quantity) -> str:
    """A quantity as Python source: plain numbers as such, others as ``value*unit`` in SI base units."""
    if q.dim == DIMENSIONLESS:
        return num(q.value)
    if q.dim not in _UNIT_OF_DIM:
        raise NetspecError(f"quantity {q.value!r} of dimension {q.dim}: the builder has no unit for it")
    return f"{num(q.value)}*{_UNIT_OF_DIM[q.dim]}"


def lam_text(lam: np.ndarray) -> str:
    """Factors per neuron for a comment: the number when they are all equal, else their range."""
    lam = np.asarray(lam, dtype=np.float64).ravel()
    if lam.size and np.all(lam == lam[0]):
        return num(lam[0])
    return f"per channel, {num(lam.min())} to {num(lam.max())}"


def show(q: Quantity) -> str:
    """A quantity for a comment, written from its parsed value (never the spec's text): '20 ms', '-65 mV'."""
    if q.dim == TIME:
        return f"{q.value * 1e3:g} ms"
    if q.dim == VOLTAGE:
        return f"{q.value * 1e3:g} mV"
    if q.dim == FREQUENCY:
        return f"{q.value:g} Hz"
    return f"{q.value:g}"


# -- fragments ---------------------------------------------------------------------------------------
def _population(plan: Plan, pop: Population) -> dict:
    p = pop.params
    name = ident(pop.name)
    dt = plan.spec.simulation.dt.value
    exp = p.synapse == "exponential"
    lif = p.model == "lif"
    ref_steps = steps_in(p.refractory, dt)
    unless = " (unless refractory)" if ref_steps > 0 else ""
    drive = "(I + q)/dt" if exp else "I/dt"
    rhs = f"-u/tau_m + {drive}" if lif else drive
    eqs = [(f"du/dt = {rhs} : 1{unless}", "membrane, normalized: 0 at rest, 1 at threshold")]
    if exp:
        eqs.append(("dq/dt = -q/tau_syn : 1", "synaptic charge entering the membrane per time step"))
    analog = pop.drive is not None
    eqs.append(("I : 1" if analog else "I : 1 (constant)",
                "drive per time step: bias" + (" + analog input (set per sample)" if analog else "")))
    physical = p.threshold.dim == VOLTAGE
    if physical:
        eqs.append(("v = v_rest + u*(v_thr - v_rest) : volt", "membrane potential"))
    if plan_counted(plan, pop.name):
        eqs.append(("count : integer", "spikes in this sample (read by the max-pooling gates)"))
    output = pop.name == plan.output
    softmax = output and plan.readout == SOFTMAX
    spiking = not (output and plan.readout == MEMBRANE)
    if softmax:
        eqs.append(("Z : 1", "sum over the outputs j of exp(u_j - u): this neuron's softmax is 1/Z"))
    reset_value = p.reset_value
    if p.reset == "subtract":
        reset = ["u -= 1"]
        reset_text = "reset by subtraction"
    elif p.reset == "zero":
        reset = ["u = 0"]
        reset_text = "reset to rest"
    else:
        reset = ["u = u_reset"]
        reset_text = f"reset to {show(p.reset)}"
    if plan_counted(plan, pop.name):
        reset.append("count += 1")
    namespace = []
    if lif:
        namespace.append(("tau_m", qty(p.tau_m)))
    if exp:
        namespace.append(("tau_syn", qty(p.tau_syn)))
    if physical:
        namespace += [("v_rest", qty(p.rest)), ("v_thr", qty(p.threshold))]
    if p.reset not in ("subtract", "zero"):
        namespace.append(("u_reset", num((reset_value - p.rest.value) / p.scale)))
    sample_reset = [f"u = {num(p.initial_u)}" if p.initial_u else "u = 0"]
    if exp:
        sample_reset.append("q = 0")
    if plan_counted(plan, pop.name):
        sample_reset.append("count = 0")
    # the refractory state is reset first, by its own operation: Brian2 writes variables marked
    # (unless refractory) only where not_refractory holds, in any code
    refractory_reset = ["lastspike = -1e4*second", "not_refractory = True"] if ref_steps > 0 else []
    if analog:
        sample_reset.append(f"I = {keys.timed_input(name)}(t, i)")
        namespace.append((keys.timed_input(name), keys.timed_input(name)))
    threshold = "u >= 1"
    if softmax:
        threshold = "rand() < 1.0/Z"
        reset, reset_text = [], "spiking softmax, no reset"
    elif not spiking:
        threshold, reset, reset_text = None, [], "membrane read-out, does not spike"
    if p.clamp and threshold is not None:
        threshold = f"({threshold}) and timestep(t, dt) % {int(plan.steps)} >= {int(p.clamp)}"
    model = "LIF" if lif else "IF"
    parts = [model, reset_text]
    if p.initial_u:
        parts.append(f"starts at {p.initial_u:g} of threshold")
    if p.clamp and threshold is not None:
        parts.append(f"clamped for the first {int(p.clamp)} steps")
    if ref_steps:
        parts.append(f"refractory {show(p.refractory)}")
    if exp:
        parts.append(f"exponential synapses ({show(p.tau_syn)})")
    if steps_in(p.delay, dt):
        parts.append(f"delay {show(p.delay)}")
    return {
        "name": name,
        "var": keys.group(name),
        "size": pop.size,
        "kind": pop.layer_type,
        "shape": "x".join(map(str, pop.shape)),
        "lam": lam_text(pop.lam),
        "what": ", ".join(parts),
        "equations": _align(eqs),
        "threshold": threshold,
        "reset": reset,
        "softmax": _softmax(pop) if softmax else None,
        "v_steps": output and not spiking,
        "method": "exact" if lif and not exp else "euler",
        "refractory": ref_steps + 1 if ref_steps > 0 else None,
        "ref_text": show(p.refractory),
        "namespace": namespace,
        "sample_reset": sample_reset,
        "refractory_reset": refractory_reset,
        "analog": analog,
        "drive": [_window(piece.window) for piece in pop.drive] if analog else None,
        "has_bias": bool(np.any(pop.bias)) and not analog,
        "output": output,
        "exponential": exp,
    }


def _softmax(pop: Population) -> dict:
    """The spiking softmax: all-to-all synapses within the output that sum Z_i = sum_j exp(u_j - u_i) (so
    softmax(u)_i = 1/Z_i without overflow), after the membranes integrated this step and before the threshold."""
    return {"var": f"Z_{ident(pop.name)}", "n": pop.size}


def plan_counted(plan: Plan, name: str) -> bool:
    return name in plan.counted


def _align(eqs: list[tuple[str, str]]) -> list[str]:
    width = max(len(e) for e, _ in eqs)
    return [f"{e.ljust(width)}  # {c}" for e, c in eqs]


def _projection(plan: Plan, proj) -> dict:
    target = plan.populations[proj.target]
    if proj.index >= MAX_PROJECTIONS:
        raise NetspecError(f"layer '{proj.target}': {proj.index + 1} incoming projections; a layer takes at most "
                           f"{MAX_PROJECTIONS}")
    p = target.params
    dt = plan.spec.simulation.dt.value
    delay = steps_in(p.delay, dt)
    weight = "w"
    if delay:
        # spikes still in flight when a new sample starts belong to the previous sample: drop them
        weight = f"w*int(timestep(t, dt) % {plan.steps} >= {delay})"
    refractory = p.synapse != "exponential" and steps_in(p.refractory, dt) > 0
    if p.synapse == "exponential":  # the plan made the weights charges, (w*dt)/tau_syn
        on_pre = f"q_post += {weight}"
    elif refractory:
        on_pre = f"u_post += {weight}*int(not_refractory_post)"
    else:
        on_pre = f"u_post += {weight}"
    kernel = None
    if proj.pieces is not None:
        kernel = {
            "var": "q" if p.synapse == "exponential" else "u",
            "refractory": refractory,
            "windows": [_window(piece.window) for piece in proj.pieces],
            "text": "; ".join(piece.window.describe() for piece in proj.pieces),
        }
    return {
        "kernel": kernel,
        "var": proj.name,
        "index": proj.index,
        "source": keys.group(ident(proj.source)),
        "source_name": proj.source,
        "source_size": plan.size(proj.source),
        "target": keys.group(ident(proj.target)),
        "target_name": proj.target,
        "count": int(proj.count),
        "on_pre": on_pre,
        "delay": delay,
        "delay_text": show(p.delay),
    }


def _window(win: Window) -> str:
    """A window as the keyword constructor the generated script calls (a known class and integers only)."""
    kind = type(win).__name__
    if KINDS.get(kind) is not type(win):
        raise NetspecError(f"internal error: window kind {kind!r}")
    ints = {k: tuple(int(v) for v in getattr(win, k)) for k in ("input", "output", "kernel", "stride", "padding")}
    return (f"runner.{kind}(input={ints['input']}, output={ints['output']}, kernel={ints['kernel']}, "
            f"stride={ints['stride']}, padding={ints['padding']}, filters={int(win.filters)})")


def _relay(plan: Plan, relay: Relay) -> dict:
    name = ident(relay.name)
    elections = []
    for e in relay.elections:
        count = "(best_pre - 1)" if e.source in plan.relays else "count_pre"
        elections.append({
            "var": e.name,
            "source": keys.group(ident(e.source)),
            "source_name": e.source,
            "count": int(e.pre.size),
            "source_size": plan.size(e.source),
            "of_gates": e.source in plan.relays,
            "on_pre": f"cand_post = clip(int({count} >= best_post)*(K - key + K*int(key == winner_post)), cand_post, inf)",
        })
    return {
        "name": name,
        "var": keys.group(name),
        "size": relay.size,
        "shape": "x".join(map(str, relay.shape)),
        "K": relay.members_max,
        "elections": elections,
        "stage": relay.stage,
        "lam": lam_text(relay.lam),
    }


def context(plan: Plan, key: str, spec_hash: str, options) -> dict:
    """Everything the template needs, as plain strings, numbers and lists: one entry per node of the data flow
    (``plan.order``: the poisson input, layers of neurons, max-pooling gates), each with what it receives."""
    spec = plan.spec
    if not _SPEC_NAME_RE.match(spec.name):
        raise NetspecError(f"spec name {spec.name!r} is not a valid network name")
    inp = spec.input
    nodes = []
    rows = 0
    for position, n in enumerate(plan.order, start=1):
        fan = plan.fanout[n]
        # side by side, every layer's spikes are counted per sample (a PopulationRateMonitor counts all BATCH)
        uniform = bool(fan.size == 0 or np.all(fan == fan[0])) and options.batch == 1
        spiking = not (n == plan.output and plan.readout == MEMBRANE)
        node = {"position": position, "name": ident(n), "var": keys.group(ident(n)), "size": plan.size(n),
                "fanout": int(fan[0]) if uniform and fan.size else 0, "uniform": uniform and spiking, "row": None,
                "spiking": spiking, "population": None, "gate": None, "poisson": None, "projections": []}
        if not uniform:
            node["row"], rows = rows, rows + 1
        if n in plan.populations:
            node["population"] = _population(plan, plan.populations[n])
            node["projections"] = [_projection(plan, proj) for proj in plan.populations[n].inputs]
        elif n in plan.relays:
            node["gate"] = _relay(plan, plan.relays[n])
        else:
            node["poisson"] = {
                "p_scale": num(inp.max_rate.value * spec.simulation.dt.value / inp.range[1]),
                "max_rate": qty(inp.max_rate),
                "counted": plan.input_name in plan.counted,
            }
        nodes.append(node)
    out = plan.populations[plan.output]
    return {
        "version": __version__,
        "runner_module": RUNNER_MODULE,
        "keys": keys,
        "spec_name": spec.name,
        "spec_hash": spec_hash,
        "key": key,
        "standalone": bool(options.standalone),
        "threads": int(options.threads),
        "float32": bool(options.float32),
        "profile": bool(options.profile),
        "zero_latency": bool(spec.simulation.zero_latency),
        "timing": ZERO_LATENCY if spec.simulation.zero_latency else ONE_STEP_PER_LAYER,
        "connectivity": plan.connectivity,
        "samples_per_run": int(-(-options.samples_per_run // options.batch) * options.batch),  # a multiple of it
        "batch": int(options.batch),
        "steps": int(plan.steps),
        "dt": num(spec.simulation.dt.value),
        "dt_text": show(spec.simulation.dt),
        "seed": None if inp.seed is None else int(inp.seed),
        "input_shape": list(map(int, inp.shape)),
        "input_size": plan.input_size,
        "encoding": inp.encoding,
        "input_lam": lam_text(spec.lam_per_neuron(spec.input_layer)),
        "nodes": nodes,
        "counted_nodes": [n for n in nodes if not n["uniform"] and n["spiking"]],
        "readout": plan.readout,
        "drives": [n["population"] for n in nodes if n["population"] and n["population"]["analog"]],
        "output": {"name": ident(out.name), "var": keys.group(ident(out.name)), "size": out.size,
                   "spiking": plan.readout != MEMBRANE},
    }


def _template_source(name: str) -> str:
    return resources.files("netspec.brian").joinpath("templates", name).read_text("utf-8")


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    """One environment per process, so that the template is compiled once (some 0.4 s each time), not per build;
    a template whose file changed is compiled again."""
    def load(name: str):
        text = _template_source(name)
        return text, None, lambda: _template_source(name) == text

    loader = jinja2.FunctionLoader(load)
    return jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True, autoescape=False)


def template_text() -> str:
    """The template source (part of the build key, so editing it rebuilds)."""
    return resources.files("netspec.brian").joinpath("templates", "network.py.j2").read_text("utf-8")


def runner_files() -> list[tuple[str, bytes]]:
    """The runner package's files (name, content), copied into the build folder as ``netspec_runner/`` (part of
    the build key)."""
    pkg = resources.files("netspec.brian").joinpath("runner")
    return sorted((f.name, f.read_bytes()) for f in pkg.iterdir() if f.is_file() and f.name.endswith((".py", ".h")))


#: The Brian2 names a generated script may use; it imports those it does.
BRIAN2_NAMES = ("Clock", "Network", "NeuronGroup", "PopulationRateMonitor", "SpikeMonitor", "StateMonitor", "Synapses",
                "TimedArray", "hertz", "second", "volt")


def render(plan: Plan, key: str, spec_hash: str, options) -> str:
    """The generated ``network.py``, importing exactly the Brian2 names it uses."""
    template = _environment().get_template("network.py.j2")
    marker = "NETSPEC_BRIAN2_IMPORTS"
    text = template.render(**context(plan, key, spec_hash, options), imports=[marker])
    used = {node.id for node in ast.walk(ast.parse(text)) if isinstance(node, ast.Name)}
    names = [n for n in BRIAN2_NAMES if n in used]
    return text.replace(marker, ", ".join(names), 1)
