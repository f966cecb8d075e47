"""Metrics of a run, computed from plain arrays: accuracy, agreement, error vs time, operations, spikes.

Every function here is pure numpy on the arrays a simulation returns (see ``netspec.brian.SimResult``),
so each is unit-testable on hand-made arrays. Two read-out rules appear:

- the *read-out* (:func:`ranking`): classes ordered by output spike count, ties broken by the higher
  output membrane potential, then the lower index. It gives the reported top-1/top-5 accuracy and equals
  ``SimResult.predictions()``.
- the *error-vs-time rule* (:func:`error_vs_time`): at step t the prediction is the argmax of the output
  counts accumulated up to t, ties to the lowest index, and a sample whose output has not spiked yet
  counts as an error. No membrane potential is needed, so it is defined at every step (the paper's curve).
  Its last point is :func:`count_error` of the final counts.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..brian.runner import ranking  # noqa: F401  (the read-out rule: one definition, shared with build folders)
from ..spec.layers import Analog


def top_k_accuracy(order: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of samples whose label is among the first ``k`` classes of ``order`` (from :func:`ranking`
    or any score ordering). NaN for zero samples."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return float("nan")
    hit = (order[:, :k] == labels[:, None]).any(axis=1)
    return float(hit.mean())


def score_ranking(scores: np.ndarray) -> np.ndarray:
    """Classes ordered best first by a score (the ANN's output activations), ties to the lower index."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.argsort(-scores, axis=-1, kind="stable").astype(np.int64)


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of samples where two prediction vectors are equal (NaN for zero samples)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"predictions of different lengths: {a.shape} and {b.shape}")
    return float((a == b).mean()) if len(a) else float("nan")


def count_correct(counts: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per sample: is the argmax of ``counts`` (ties to the lowest index) the label, with at least one
    spike? ``counts`` is [..., N, C]; returns bool [..., N]."""
    counts = np.asarray(counts)
    labels = np.asarray(labels)
    return (counts.argmax(axis=-1) == labels) & (counts.max(axis=-1) > 0)


def count_error(counts: np.ndarray, labels: np.ndarray) -> float:
    """Error of the final counts under the error-vs-time rule (no spike = error, ties to lowest index)."""
    return float(1.0 - count_correct(counts, labels).mean()) if len(labels) else float("nan")


def error_vs_time(out_steps: np.ndarray, labels: np.ndarray, block: int = 1024) -> np.ndarray:
    """The error rate after every time step.

    Parameters
    ----------
    out_steps : ndarray, [N, T, C]
        Output spikes per sample, step and class.
    labels : ndarray, int [N]
    block : int
        Samples processed at once (bounds the memory of the cumulative sums).

    Returns
    -------
    ndarray, float64 [T]
        ``error[t]``: fraction of samples misclassified by the argmax (ties to the lowest index) of the
        output counts accumulated over steps ``0..t``; samples with no output spike yet are errors.
    """
    out_steps = np.asarray(out_steps)
    labels = np.asarray(labels)
    n, steps = out_steps.shape[:2]
    if n == 0:
        return np.full(steps, np.nan)
    correct = np.zeros(steps, dtype=np.int64)
    for start in range(0, n, block):
        cum = np.cumsum(out_steps[start:start + block], axis=1, dtype=np.int32)  # [b, T, C]
        ok = count_correct(np.swapaxes(cum, 0, 1), labels[start:start + block])  # [T, b]
        correct += ok.sum(axis=1)
    return 1.0 - correct / n


def membrane_error_vs_time(v_steps: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The error rate after every time step for the membrane read-out: ``v_steps`` [N, T, C] is the output
    membrane at the end of every step; the class at step t is its argmax (ties to the lowest index).
    Returns float64 [T]."""
    v_steps = np.asarray(v_steps)
    n, steps = v_steps.shape[:2]
    if n == 0:
        return np.full(steps, np.nan)
    wrong = np.argmax(v_steps, axis=2) != np.asarray(labels)[:, None]  # [N, T]
    return wrong.mean(axis=0)


def ann_macs(spec) -> dict[str, int]:
    """Multiply-accumulates per sample of the ANN, per layer: the unrolled connections
    (``layer.connections(in_shapes)``) of every layer that computes a weighted sum or an average
    (max-pooling, flatten, padding and concatenation are not counted)."""
    out: dict[str, int] = {}
    for name in spec.order:
        layer = spec.layer(name)
        if not layer.macs:
            continue
        n = int(layer.connections(spec.in_shapes(layer)))
        if n:
            out[name] = n
    return out


def analog_input_macs(spec) -> int:
    """Multiply-accumulates of the constant input current of an analog-input network, once per sample: the
    connections that read the input's values, in the layers the input drives (through flatten, zero padding and
    concatenation; of a layer that also reads spiking branches, only its connections from the input). 0 for
    poisson input, whose spikes are counted as synaptic operations by the simulation itself."""
    if spec.input.encoding != "analog":
        return 0
    from ..brian.kernels import kernel_projection

    inp = spec.input_layer.name
    # per layer the input reaches, which elements of its output carry the input's values
    carries = {inp: np.ones(int(np.prod(spec.shapes[inp])), dtype=bool)}
    total = 0
    for name in spec.order:
        layer = spec.layer(name)
        if name == inp or not any(i in carries for i in layer.inputs):
            continue
        masks = [carries.get(i, np.zeros(int(np.prod(spec.shapes[i])), dtype=bool)) for i in layer.inputs]
        in_shapes = spec.in_shapes(layer)
        if layer.analog is Analog.PASSES:
            sources = layer.sources(in_shapes)
            if sources is None:
                out = masks[0]
            else:  # an index-only kind: each element carries what the element it copies carries
                out = np.zeros(int(np.prod(spec.shapes[name])), dtype=bool)
                copied = np.zeros(out.size, dtype=bool)
                for mask, src in zip(masks, sources):
                    hit = src >= 0
                    out[hit] = mask[src[hit]]
                    copied |= hit
                # zero padding's zeros count as the input's where all of it is the input's
                out[~copied] = all(m.all() for m in masks)
            carries[name] = out
        elif layer.analog is Analog.DRIVEN:
            if layer.sums_inputs:  # one connection per element of every input
                total += int(sum(m.sum() for m in masks))
            else:
                fan = kernel_projection(layer, in_shapes[0], spec).fanout_per_position()
                total += int(fan[masks[0]].sum())
    return total


def operations_per_step(spec, layer_ops: Mapping[str, np.ndarray], n: int, steps: int) -> dict[str, np.ndarray]:
    """Synaptic operations per sample and step by source layer: the simulation's spikes x fan-out, plus, for
    analog input, :func:`analog_input_macs` under the input layer's name at the first step (the input
    current is constant over a sample, so it is computed once)."""
    out = dict(layer_ops)
    macs = analog_input_macs(spec)
    if macs:
        first = np.zeros((n, steps), dtype=np.int64)
        first[:, 0] = macs
        out[spec.input_layer.name] = first
    return out


def per_sample_means(per_step: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Mean over samples of the total over steps of each layer's [N, T] array (spikes or operations)."""
    return {name: float(np.asarray(a, dtype=np.float64).sum(axis=1).mean()) if len(a) else float("nan")
            for name, a in per_step.items()}


def cumulative_mean(per_step: Mapping[str, np.ndarray], steps: int) -> np.ndarray:
    """Mean over samples of the running total over steps, summed over layers: [T] (zeros if no layer)."""
    total = np.zeros(steps, dtype=np.float64)
    for a in per_step.values():
        a = np.asarray(a, dtype=np.float64)
        if len(a):
            total += np.cumsum(a.mean(axis=0))
    return total


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equally long vectors (NaN when either is constant)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


# -- the paper's accounting (Rueckauer et al. 2017, as their SNN Toolbox counts) ---------------------------
#: The two accountings of operations, as the report names and documents them.
ACCOUNTING_NETSPEC = ("netspec (strict): the ANN costs 1 operation per multiply-accumulate; the SNN costs its "
                      "synaptic events (spikes x fan-out) plus, for analog input, the multiply-accumulates of the "
                      "input current once per sample")
ACCOUNTING_PAPER = ("paper (Rueckauer et al. 2017, SNN Toolbox): the ANN costs 2 operations per multiply-accumulate "
                    "plus 1 per bias addition; the SNN costs its synaptic events (spikes x fan-out) only, the analog "
                    "input current not counted")


def ann_paper_ops(spec) -> dict[str, int]:
    """The paper's ANN operations per sample, per layer: 2 per multiply-accumulate (:func:`ann_macs`) plus one
    addition per output neuron of every layer with a bias."""
    out = {name: 2 * n for name, n in ann_macs(spec).items()}
    for name in spec.order:
        if spec.array(name, "bias") is not None:
            out[name] = out.get(name, 0) + int(np.prod(spec.shapes[name]))
    return out


def snn_paper_ops(spec, layer_ops: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The paper's SNN operations per sample and step by source layer: the synaptic events of the simulation
    (spikes x fan-out); the analog input's current is not counted (poisson input spikes are events)."""
    return dict(layer_ops)


def error_at_budget(error: np.ndarray, cumulative_ops: np.ndarray, budget: float) -> tuple[float | None, int | None]:
    """The error at the last step whose mean accumulated operations stay within ``budget``, and that step
    (1-based: the number of steps simulated); (None, None) when even the first step costs more."""
    error = np.asarray(error, dtype=np.float64)
    within = np.flatnonzero(np.asarray(cumulative_ops, dtype=np.float64) <= budget)
    if within.size == 0:
        return None, None
    t = int(within[-1])
    return float(error[t]), t + 1
