"""``netspec inspect``: one row per layer (type, output shape, neurons, synapses, parameters, lambda)."""
from __future__ import annotations

import numpy as np

from .spec import Spec
from .spec.layers import Role


def rows(spec: Spec) -> list[dict]:
    """Per-layer facts: neurons counts spiking neurons only; synapses are unrolled connections;
    parameters are the stored tensor elements."""
    out = []
    for name in spec.order:
        layer = spec.layer(name)
        shape = spec.shapes[name]
        has_neurons = spec.is_population(layer)
        synapses = 0 if layer.role is Role.SOURCE else layer.connections(spec.in_shapes(layer))
        if layer.sums_inputs:
            # a hidden linear input has no neurons: its projection is counted on its own row, not again here
            spiking = sum(not spec.is_hidden_linear(i) for i in layer.inputs)
            synapses = synapses // len(layer.inputs) * spiking
        params = sum(int(np.size(spec.array(layer, f))) for f in layer.tensors())
        lam = _lam_text(spec, layer)
        out.append({
            "name": name,
            "type": layer.type,
            "shape": list(shape),
            "neurons": int(np.prod(shape)) if has_neurons else 0,
            "synapses": synapses,
            "parameters": params,
            "lambda": lam if layer.normalization is not None or layer.role is not Role.SOURCE else "1",
            "inputs": list(layer.inputs),
        })
    return out


def _lam_text(spec: Spec, layer) -> str:
    """The layer's lambda; where it has one per branch (a concatenate, or what only re-indexes one),
    the branches' joined by '/'."""
    try:
        lam = spec.lam(layer)
        if hasattr(lam, "size"):  # one per channel
            return f"{lam.min():g}..{lam.max():g} ({lam.size} ch)"
        return f"{lam:g}"
    except ValueError:
        source = layer
        while len(source.inputs) == 1:  # a relay of one input carries the factors of what it reads
            source = spec.layer(source.inputs[0])
        return "/".join(_lam_text(spec, spec.layer(i)) for i in source.inputs)


def table(spec: Spec) -> str:
    data = rows(spec)
    header = ("layer", "type", "output shape", "neurons", "synapses", "parameters", "lambda", "inputs")
    lines = [
        (r["name"], r["type"], "x".join(map(str, r["shape"])), f"{r['neurons']:,}", f"{r['synapses']:,}",
         f"{r['parameters']:,}", r["lambda"], ", ".join(r["inputs"]))
        for r in data
    ]
    totals = ("total", "", "", f"{sum(r['neurons'] for r in data):,}", f"{sum(r['synapses'] for r in data):,}",
              f"{sum(r['parameters'] for r in data):,}", "", "")
    widths = [max(len(str(row[c])) for row in [header, *lines, totals]) for c in range(len(header))]
    right = {3, 4, 5}

    def fmt(row):
        return "  ".join(str(v).rjust(w) if c in right else str(v).ljust(w) for c, (v, w) in enumerate(zip(row, widths))).rstrip()

    sim = spec.simulation
    head = [
        f"{spec.name}: {len(spec.layers)} layers, input {list(spec.input.shape)} ({spec.input.encoding}), "
        f"dt {sim.dt.text}, {sim.steps} steps per sample",
        fmt(header),
        fmt(tuple("-" * w for w in widths)),
    ]
    return "\n".join(head + [fmt(r) for r in lines] + [fmt(tuple("-" * w for w in widths)), fmt(totals)])
