"""What a netspec network means in NIR, in one place: time steps, units, layouts, metadata keys.

NIR (the Neuromorphic Intermediate Representation) describes networks in continuous time; netspec
simulates in steps of ``dt``. Both directions use the convention of the PyTorch libraries that step NIR
graphs (snnTorch writes ``r = tau/dt`` for exactly this reason):

* **a spike is a pulse of height 1 lasting one step** (area ``dt``), and an analog input value ``x`` is a
  pulse of height ``x`` in every step; an Affine node's bias ``b`` is a constant current;
* so in one step an **IF** node (``dv/dt = r*I``) gains ``dt*r*I`` and a **LIF** node
  (``tau*dv/dt = v_leak - v + r*I``) gains ``dt*r*I/tau``; a **CubaLIF**'s synaptic current, fed by ``w_in*I``,
  delivers ``dt*r*w_in*I/tau_mem`` in total;
* netspec's membrane is normalized, ``u = (v - v_leak)/(v_threshold - v_leak)`` (``v_leak = 0`` for IF), so
  the factor ``kappa = dt*r*w_in/(tau*(v_threshold - v_leak))`` (``tau = 1``, ``w_in = 1`` where the node
  has none) turns a graph's weights and biases into netspec's per-step weights, and
  ``(v_reset - v_leak)/(v_threshold - v_leak)`` is the reset value of ``u``.

netspec writes graphs in that normalized unit: ``v_threshold = 1``, ``v_leak = 0``, ``r = kappa*tau/dt``
(``kappa = 1`` where the weights carry the normalization; for average pooling, which has no weights,
``kappa = lambda_in/lambda_out``). Differences that remain between NIR's equations and netspec's
simulation: NIR fires when ``v > v_threshold``, netspec when ``u >= 1``; netspec delivers a spike's charge
at once; LIF with delta synapses is integrated exactly, exponential synapses with forward Euler.

Layouts: NIR tensors are channels-first as in PyTorch (``[C, H, W]``, Conv2d weight ``[out, in, kh, kw]``,
Affine weight ``[out, in]``); netspec's are channels-last (``[H, W, C]``, kernel ``[kh, kw, in, out]``,
dense kernel ``[in, out]``). A flattened ``[C, H, W]`` tensor is ordered ``c, h, w`` in NIR and ``h, w, c``
in netspec, so the dense layer after a flatten has its rows permuted (:func:`chw_order`).

Graphs written by the libraries follow their library's step, not NIR's equations: :data:`CONVENTIONS` holds one
:class:`Convention` per library (``--convention``), each stating the step it reads and the library files it was
learned from, and :func:`fingerprint` recognises the parameters that only one library writes.

Metadata netspec writes (and reads back, so that its own graphs come back exactly): on the graph,
``netspec`` (a group: version, name, dt, duration, input encoding and range); on every node it writes,
``netspec_layer`` (the spec layer); on a depthwise convolution, ``depth_multiplier``; on neuron nodes, ``reset_mode`` (``subtract``, ``zero`` or ``value``)
and, for what NIR cannot express and ``--approximate`` left out, ``refractory_s``, ``delay_s`` and
``bias_path = "membrane"``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import NetspecError

#: Graph metadata group written by netspec.
GRAPH_KEY = "netspec"
#: Node metadata: the spec layer a node was written for.
LAYER_KEY = "netspec_layer"
#: Node metadata on neuron nodes: how the membrane resets (NIR 1.0.8 can only say "to v_reset").
RESET_KEY = "reset_mode"
#: Node metadata on neuron nodes: refractory period and delay in seconds, left out of the NIR dynamics.
REFRACTORY_KEY = "refractory_s"
DELAY_KEY = "delay_s"
#: Node metadata on neuron nodes: where the membrane starts every sample (netspec's ``neuron.initial``, a fraction
#: of the threshold), left out of the NIR dynamics (NIR 1.0.8 neurons start at v = 0).
INITIAL_KEY = "initial_u"
#: Node metadata on Conv2d nodes: a depthwise convolution written with groups 1 (zeros between channels).
DEPTHWISE_KEY = "depth_multiplier"
#: Node metadata on CubaLIF nodes: the bias enters the membrane directly, not through the synaptic current.
BIAS_KEY = "bias_path"

#: Relative tolerance for "this factor is 1" and "these parameters are equal across a layer": NIR files
#: usually hold float32, whose rounding is about 6e-8.
RTOL = 1e-6


def require_nir():
    """The ``nir`` package, or a :class:`NetspecError` that says how to install it."""
    try:
        import nir
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise NetspecError("NIR support needs the nir package: pip install 'netspec[nir]' (nir>=1.0.8)", 2) from exc
    return nir


def chw_order(h: int, w: int, c: int) -> np.ndarray:
    """For every position of a flattened ``[C, H, W]`` tensor, the index of the same element in the
    flattened ``[H, W, C]`` tensor."""
    return np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).ravel()


def to_nir_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A netspec tensor shape as NIR writes it (``[H, W, C]`` -> ``[C, H, W]``; others unchanged)."""
    return (shape[2], shape[0], shape[1]) if len(shape) == 3 else tuple(shape)


def from_nir_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A NIR tensor shape as netspec writes it (``[C, H, W]`` -> ``[H, W, C]``; others unchanged)."""
    return (shape[1], shape[2], shape[0]) if len(shape) == 3 else tuple(shape)


def seconds_text(value: float) -> str:
    """A duration in seconds as a spec quantity, shortest exact text: 0.02 -> '20 ms'."""
    if not math.isfinite(value):
        raise ValueError(f"not a finite duration: {value!r}")
    ms = np.format_float_positional(value * 1e3, unique=True, trim="-")
    if float(ms) * 1e-3 == value and len(ms) <= 12:
        return f"{ms} ms"
    return f"{np.format_float_scientific(value, unique=True, trim='-')} s"



# -- how libraries step their neuron nodes ---------------------------------------------------------------
# NIR's equations are continuous; every library that writes NIR graphs steps them in its own way, and its
# writer leaves out what its own reader assumes. A convention says, for one library, what one time step of
# each neuron node does, in that library's own terms (``Stepping``), from the node's parameters. netspec's
# step (zero-latency timing, delta synapses) is
#
#     u <- a*u + drive (exactly integrated: drive I gives I*(tau_m/dt)*(1 - a));  u += w (each input spike);
#     spike where u >= 1;  reset (to a value, or u -= 1 by subtraction)
#
# with a = exp(-dt/tau_m) (IF: a = 1, drive I gives I). A library step v <- A*v + G*(W*s + b), fire where
# v > theta (or >=), is the same function when a = A, the per-spike weight is G*W/theta and the per-step
# drive (bias, and the weights from an analog input) is c*G*(W*x + b)/theta, c = dt/(tau_m*(1 - a)) =
# -ln(A)/(1 - A) (1 for IF).


@dataclass(frozen=True)
class Stepping:
    """One time step of a neuron node in a library's own terms, per neuron (arrays of the node's shape).

    ``decay`` is A (1 for no leak), ``gain`` G (the membrane's change per unit of input), ``span`` the
    threshold above rest (theta - v_leak), ``reset`` the reset: ``"subtract"``, or ``u_reset`` (the value of
    u = (v - v_leak)/span after a spike, 0 for rest).
    """

    decay: np.ndarray
    gain: np.ndarray
    span: np.ndarray
    reset: str | np.ndarray


@dataclass(frozen=True)
class Convention:
    """How one library steps NIR neuron nodes, and what netspec cannot reproduce of it.

    Attributes
    ----------
    name : str
        ``--convention`` value.
    library : str
        The library (and version read) whose writer and simulator this follows.
    dt : str
        Default ``--dt`` (the step the library assumes; under a library convention it only names the
        length of one step: the graph's time constants are read in the library's steps).
    fires : str
        ``">"`` or ``">="``: the library's threshold comparison (netspec fires at ``u >= 1``).
    timing : str | None
        The spec's ``simulation.timing`` that reproduces the library's order of updates.
    shift : int
        Steps by which netspec's spikes come earlier than the library's (Spyx: 1).
    learned : str
        Where the conventions were read (the library's files).
    stepped : bool
        The library steps a discrete map (``v <- A*v + G*input``), so the drive netspec integrates exactly
        is corrected by ``c`` (False for NIR's continuous equations, where netspec's exact integration is
        the equation's).
    """

    name: str
    library: str
    dt: str
    fires: str
    timing: str | None
    shift: int
    learned: str
    stepped: bool = True

    def gaps(self, kind: str, step: "Stepping") -> list[str]:
        """What netspec simulates differently from the library for a node of NIR class ``kind``."""
        return []

    def stepping(self, kind: str, arrays: dict[str, np.ndarray], dt: float, reset: str | None) -> Stepping:
        """The library's step of a neuron node of NIR class ``kind`` (arrays of its parameters, broadcast to
        its neurons), for netspec's step ``dt`` in seconds; ``reset`` overrides the library's reset
        (``"zero"`` or ``"subtract"``). Raises ValueError for what the library does not write or read."""
        raise NotImplementedError


def _span(arrays, leak: bool = True) -> np.ndarray:
    span = arrays["v_threshold"] - (arrays.get("v_leak", 0.0) if leak else 0.0)
    if np.any(span <= 0):
        raise ValueError("v_threshold must lie above v_leak (0 for IF)")
    return span


def _reset_to(arrays, span, leak: bool = True) -> np.ndarray:
    return (arrays["v_reset"] - (arrays.get("v_leak", 0.0) if leak else 0.0)) / span


def _decay(value: np.ndarray, what: str) -> np.ndarray:
    if np.any(~np.isfinite(value)) or np.any(value <= 0) or np.any(value > 1):
        raise ValueError(f"{what} gives a decay per step outside (0, 1] ({float(np.min(value)):g} to "
                         f"{float(np.max(value)):g})")
    return value


class _Nir(Convention):
    def stepping(self, kind, arrays, dt, reset):
        span = _span(arrays)
        if kind == "IF":
            step = Stepping(np.ones_like(span), dt * arrays["r"], span, _reset_to(arrays, span))
        else:
            tau = arrays["tau"] if kind == "LIF" else arrays["tau_mem"]
            if np.any(tau <= 0):
                raise ValueError("time constants must be positive")
            step = Stepping(np.exp(-dt / tau), dt * arrays["r"] * arrays.get("w_in", 1.0) / tau, span,
                            _reset_to(arrays, span))
        return _override(step, reset)


def _override(step: Stepping, reset: str | None) -> Stepping:
    if reset is None:
        return step
    return Stepping(step.decay, step.gain, step.span, "subtract" if reset == "subtract" else np.zeros_like(step.span))


class _SnnTorch(Convention):
    #: snnTorch's export step: tau = dt/(1 - beta), r = tau/dt (snntorch/export_nir.py, dt = 1e-4)
    DT = 1e-4

    def stepping(self, kind, arrays, dt, reset):
        if kind != "LIF":
            raise ValueError(f"snnTorch writes Leaky neurons as LIF nodes only; it does not write {kind} nodes the way "
                             "netspec can read them (--convention nir reads them by NIR's equations)")
        if np.any(np.abs(arrays["v_leak"]) > 0):
            raise ValueError("v_leak is not 0: snnTorch's Leaky has no leak potential (its reader refuses it too)")
        tau = arrays["tau"]
        beta = _decay(1.0 - self.DT / tau, "snnTorch's beta = 1 - 0.1 ms/tau")
        span = _span(arrays)
        # snnTorch's reader puts r*dt/tau into the threshold (vthr / w_scale): the same as a gain
        # beta = 1 (no leak) is written tau = r = inf: a gain of 1 as for every other beta
        gain = np.where(np.isinf(tau) & np.isinf(arrays["r"]), 1.0, arrays["r"] * self.DT / tau)
        step = Stepping(beta, gain, span, "subtract")
        return _override(step, reset)

    def gaps(self, kind, step):
        if isinstance(step.reset, str) and np.any(step.decay < 1):
            return ["snnTorch's Leaky subtracts the threshold after the decay (mem = beta*mem + input - theta), netspec "
                    "before it (beta*(mem - theta) + input): netspec's neurons keep (1 - beta)*theta more after each spike "
                    "and fire more often; the same with Leaky(reset_mechanism='zero') and --reset zero"]
        return []


class _Norse(Convention):
    #: Norse's export step (norse/torch/utils/export_nir.py, dt = 0.001)
    DT = 1e-3

    def stepping(self, kind, arrays, dt, reset):
        span = _span(arrays)
        if kind == "IF":
            # IAFCell: v <- v + input (r is 1 in every graph Norse writes; its reader warns on others)
            step = Stepping(np.ones_like(span), arrays["r"], span, _reset_to(arrays, span))
        elif kind == "LIF":
            # LIFBoxCell: v <- v + dt*tau_mem_inv*(v_leak - v + input), exported as tau = dt/tau_mem_inv
            k = self.DT * self.DT / arrays["tau"]
            step = Stepping(_decay(1.0 - k, "Norse's 1 - dt*tau_mem_inv (tau_mem_inv = tau/dt**2)"), k * arrays["r"], span,
                            _reset_to(arrays, span))
        else:
            raise ValueError(f"Norse's {kind} (LIFCell: its synaptic current jumps by the input after the membrane "
                             "step) has no netspec synapse model that steps the same way")
        return _override(step, reset)


class _Sinabs(Convention):
    def stepping(self, kind, arrays, dt, reset):
        span = _span(arrays)
        if kind == "IF":
            # IAF(Squeeze): v <- v + input, spikes trunc(v/theta) for v > 0, v -= spikes*theta
            step = Stepping(np.ones_like(span), arrays["r"], span, "subtract")
        elif kind == "LIF":
            # LIF(Squeeze) as sinabs' reader builds it: tau in steps, v <- exp(-1/tau)*v + input (norm_input off)
            step = Stepping(_decay(np.exp(-1.0 / arrays["tau"]), "sinabs' exp(-1/tau) (tau in steps)"), arrays["r"], span,
                            "subtract")
        else:
            raise ValueError(f"sinabs does not read or write {kind} nodes")
        return _override(step, reset)

    def gaps(self, kind, step):
        return ["sinabs' default spike function (MultiSpike, from_model's default) emits trunc(v/theta) spikes in one "
                "step, netspec one, and from_model's min_v_mem (-1; sinabs' reader: -v_threshold) floors the membrane, "
                "netspec's does not: the same for spike_fn=SingleSpike, min_v_mem=None"]


class _Spyx(Convention):
    def stepping(self, kind, arrays, dt, reset):
        span = _span(arrays)
        if kind == "IF":
            # IF: spikes = H(V - theta) of the previous V; V <- V + x - spikes*theta (r is written 1, not read)
            step = Stepping(np.ones_like(span), np.ones_like(span), span, "subtract")
        elif kind == "LIF":
            # LIF: beta = 1 - dt/tau with spyx's dt = 1 step; r holds beta (written, not read)
            step = Stepping(_decay(1.0 - 1.0 / arrays["tau"], "Spyx's beta = 1 - 1/tau (tau in steps)"), np.ones_like(span),
                            span, "subtract")
        else:
            raise ValueError(f"Spyx's {kind} (CuBaLIF) has no netspec synapse model that steps the same way")
        return _override(step, reset)

    def gaps(self, kind, step):
        out = ["Spyx fires from the membrane of the step before: with one-step-per-layer timing netspec's spikes are "
               "Spyx's one step earlier (netspec's first T-1 steps give Spyx's T)"]
        if kind == "LIF":
            out.append("Spyx's LIF also subtracts the threshold after the decay and tests the membrane before it: LIF "
                       "layers spike only approximately as in Spyx")
        return out


#: Every convention netspec reads, by ``--convention`` name.
CONVENTIONS: dict[str, Convention] = {c.name: c for c in (
    _Nir("nir", "NIR 1.0.8's continuous-time equations (netspec's own graphs)", "1 ms", ">", None, 0,
         "nir/ir/neuron.py (the node equations)", stepped=False),
    _SnnTorch("snntorch", "snnTorch 1.0.0 (Leaky, reset by subtraction unless --reset zero)", "0.1 ms", ">", None, 0,
              "snntorch/export_nir.py, import_nir.py, _neurons/leaky.py, _neurons/neurons.py"),
    _Norse("norse", "Norse 1.1.0 (IAFCell, LIFBoxCell)", "1 ms", ">", None, 0,
           "norse/torch/utils/export_nir.py, import_nir.py, functional/iaf.py, lif_box.py, threshold.py, heaviside.py"),
    _Sinabs("sinabs", "sinabs 2.0.3 (IAF, IAFSqueeze as from_model makes them; LIF)", "1 ms", ">=", None, 0,
            "sinabs/nir.py, from_torch.py, layers/functional/lif.py, activation/spike_generation.py, reset_mechanism.py"),
    _Spyx("spyx", "Spyx 1.0.0 (IF, LIF)", "1 ms", ">", "one-step-per-layer", 1,
          "spyx/nir.py (to_nir, from_nir), spyx/nn.py (IF, LIF), spyx/axn.py (heaviside)"),
)}


def fingerprint(graph) -> tuple[str, str]:
    """The convention a graph's neuron nodes were written in, recognised from their parameters, and why:
    ``(name, reason)``. Only what one library writes and no other is recognised; anything else is read
    by NIR's equations (``"nir"``)."""
    meta = getattr(graph, "metadata", None)
    if isinstance(meta, dict) and GRAPH_KEY in meta:
        return "nir", "netspec's own graph (metadata 'netspec')"
    kinds: dict[str, list] = {}
    for node in graph.nodes.values():
        kinds.setdefault(type(node).__name__, []).append(node)
    lifs = kinds.get("LIF", [])
    if not lifs or kinds.get("CubaLIF"):
        return "nir", ""

    def close(a, b):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        same = (a == b) | (np.abs(a - b) <= 1e-5 * np.abs(b))  # inf == inf: snnTorch's beta = 1
        return (a.shape == b.shape or a.size == 1 or b.size == 1) and bool(np.all(same))

    def every(test):
        try:
            return all(bool(test(n)) for n in lifs)
        except (TypeError, ValueError, AttributeError, ZeroDivisionError, FloatingPointError):
            return False

    with np.errstate(all="ignore"):
        if not kinds.get("IF") and every(lambda n: close(np.asarray(n.r) * _SnnTorch.DT, n.tau)
                                         and not np.any(np.asarray(n.v_leak)) and not np.any(np.asarray(n.v_reset))):
            return "snntorch", "LIF nodes with r = tau/0.1 ms (snnTorch's export of Leaky)"
        if every(lambda n: np.all(np.asarray(n.tau) > 1) and close(n.r, 1.0 - 1.0 / np.asarray(n.tau, dtype=np.float64))
                 and not np.any(np.asarray(n.v_leak))):
            return "spyx", "LIF nodes with r = beta = 1 - 1/tau (Spyx's export)"
    return "nir", ""
