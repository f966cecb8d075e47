"""What the semantic rules share while they check one document: the raw data, the reporter, the typed
layers and what earlier rules derived (order, shapes, tensors, neuron parameters)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .diagnostics import Reporter
from .layers import Layer, Shape
from .model import NeuronParams
from .resources import Limits


@dataclass
class Context:
    """What the rules share: the raw document, the typed layers and what earlier rules derived."""

    data: dict
    rep: Reporter
    base: Path
    layers: list[Layer]
    index: dict[str, int] = field(default_factory=dict)
    order: list[str] | None = None
    shapes: dict[str, Shape] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    neurons: dict[str, NeuronParams] = field(default_factory=dict)
    dt: float | None = None
    steps: int | None = None  # time steps per sample, once dt and duration are known
    limits: Limits = field(default_factory=Limits)
    resources_ok: bool = True  # the network fits the limits (otherwise its tensors are not read)
    graph_ok: bool = True
    input_ok: bool = True  # the input block can be used to infer shapes
    reported: set = field(default_factory=set)  # paths a rule already reported, where several layers share one

    def lpath(self, name: str, *rest) -> tuple:
        return ("layers", self.index[name], *rest)

    def consumers(self, name: str) -> list[Layer]:
        return [l for l in self.layers if name in l.inputs]

    def layer(self, name: str) -> Layer:
        return self.layers[self.index[name]]
