"""Loading a spec: YAML -> schema check -> semantic rules -> typed :class:`Spec`.

``check_file`` returns every diagnostic; ``load_spec`` returns the :class:`Spec` or raises
:class:`SpecError`; ``load_spec_data`` does the same for a document already in memory (the exporter
checks what it is about to write this way).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .diagnostics import Diagnostic, Reporter, SpecError
from .layers import LAYER_TYPES, Layer
from .model import InputSpec, Simulation, Spec, WeightsFile
from .context import Context
from .resources import Limits
from .rules import RULES
from .schema import check_schema
from .units import parse_quantity
from .yamlsrc import Document, YamlError, read_document


def check_file(path: str | Path, limits: Limits | None = None) -> tuple[Spec | None, list[Diagnostic]]:
    """Read and validate a spec file. Returns (spec or None, diagnostics). ``limits``: the resource limits
    (default :class:`Limits`: 1,000,000 steps per sample, half the physical memory)."""
    try:
        doc = read_document(path, str(path))
    except YamlError as exc:
        return None, [exc.diagnostic]
    return check_document(doc, Path(path).parent, Path(path), limits)


def check_document(doc: Document, base: Path, path: Path | None = None,
                   limits: Limits | None = None) -> tuple[Spec | None, list[Diagnostic]]:
    rep = Reporter(doc.file, doc.data, doc.marks, doc.key_marks)
    if check_schema(doc.data, rep):
        return None, rep.items
    layers = _typed_layers(doc.data["layers"])
    ctx = Context(doc.data, rep, base, layers, limits=limits if limits is not None else Limits())
    for rule in RULES:
        rule(ctx)
    if rep.items:
        return None, rep.items
    return _build(doc.data, ctx, path), []


def load_spec(path: str | Path, limits: Limits | None = None) -> Spec:
    """Load and validate a spec file; raise :class:`SpecError` listing every problem."""
    spec, diagnostics = check_file(path, limits)
    if spec is None:
        raise SpecError(diagnostics)
    return spec


def load_spec_data(data: dict[str, Any], base: str | Path, file: str = "<memory>", limits: Limits | None = None) -> Spec:
    """Validate a spec given as plain data (weights resolved relative to ``base``)."""
    doc = Document(file, data, {}, {})
    spec, diagnostics = check_document(doc, Path(base), None, limits)
    if spec is None:
        raise SpecError(diagnostics)
    return spec


def _typed_layers(raw_layers: list[dict]) -> list[Layer]:
    layers: list[Layer] = []
    for i, raw in enumerate(raw_layers):
        # a layer without `inputs` reads the one listed before it; the input layer reads nothing
        default = (raw_layers[i - 1]["name"],) if i > 0 and raw["type"] != "input" else ()
        layers.append(LAYER_TYPES[raw["type"]].from_yaml(raw, default))
    return layers


def _build(data: dict, ctx: Context, path: Path | None) -> Spec:
    inp, sim = data["input"], data["simulation"]
    weights = data.get("weights")
    return Spec(
        path=path,
        name=data["name"],
        description=data.get("description"),
        source=data.get("source"),
        weights=WeightsFile(weights["file"], weights["sha256"]) if weights else None,
        input=InputSpec(
            shape=tuple(inp["shape"]),
            range=(float(inp["range"][0]), float(inp["range"][1])),
            encoding=inp["encoding"],
            max_rate=parse_quantity(inp["max_rate"]) if "max_rate" in inp else None,
            seed=inp.get("seed"),
        ),
        simulation=Simulation(parse_quantity(sim["dt"]), parse_quantity(sim["duration"]), sim.get("readout"),
                              sim.get("timing")),
        neuron_defaults=dict(data.get("neuron", {})),
        layers=tuple(ctx.layers),
        order=tuple(ctx.order or ()),
        shapes=dict(ctx.shapes),
        arrays=dict(ctx.arrays),
        neurons=dict(ctx.neurons),
        version=data["netspec"],
    )
