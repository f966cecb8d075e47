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

Metadata netspec writes (and reads back, so that its own graphs come back exactly): on the graph,
``netspec`` (a group: version, name, dt, duration, input encoding and range); on every node it writes,
``netspec_layer`` (the spec layer); on a depthwise convolution, ``depth_multiplier``; on neuron nodes, ``reset_mode`` (``subtract``, ``zero`` or ``value``)
and, for what NIR cannot express and ``--approximate`` left out, ``refractory_s``, ``delay_s`` and
``bias_path = "membrane"``.
"""
from __future__ import annotations

import math

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

