"""Resource bounds: what a spec (and a run of it) will cost, estimated before anything big is allocated.

Validation estimates the network's neurons, synapses, time steps per sample and memory from the inferred
shapes alone (no weights read, nothing unrolled) and refuses, with a stable code, what exceeds the limits:

* ``NS601``: more time steps per sample than ``Limits.max_steps`` (default 1,000,000; ``--max-steps``);
* ``NS602``: more memory than ``Limits.max_memory`` (default half the physical memory; ``--max-memory``);
* ``NS603``: a layer or projection beyond what 32-bit indices address (Brian2's synapse and neuron indices
  are int32); no option lifts this one.

The memory figures are deliberately rough upper bounds (bytes per synapse and per neuron as the builder
and Brian2 store them, plus what a run records per sample); they exist to refuse what cannot fit, not to
predict use. :func:`layer_synapses` is the one place that says how many synapses a layer becomes, and
:func:`layer_kernel` what a projection simulated from its kernel holds instead: with the builder's default
connectivity (``kernel``) a weighted layer costs its kernel and one index per source neuron, whatever its
connections; with ``synapses`` (``--connectivity synapses``) every connection is a Brian2 synapse. The
connectivity the estimate assumes travels in :class:`Limits` (the build's and the run's ``--connectivity``).
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Collection, Iterable, Mapping

from .layers import Layer, Role, Shape

#: Default limit on time steps per sample.
DEFAULT_MAX_STEPS = 1_000_000
#: Default memory limit, as a fraction of the machine's physical memory.
MEMORY_FRACTION = 0.5
#: Bytes one unrolled synapse costs at its peak: int32 pre/post and float64 weight in the plan and in
#: arrays.npz, Brian2's own copies and index structures.
BYTES_PER_SYNAPSE = 64
#: Bytes one neuron (or max-pool gate) costs: its state variables, bias, counters.
BYTES_PER_NEURON = 64
#: Bytes per input value per sample held by the builder (the analog drive, float64).
BYTES_PER_INPUT = 8
#: Bytes one kernel value (weight, bias, average-pool factor) of a kernel projection costs: float64 in the
#: plan, in arrays.npz and in the simulation.
BYTES_PER_KERNEL_VALUE = 32
#: Bytes one source neuron of a kernel projection costs: its int32 position map and fan-out, copied alike.
BYTES_PER_KERNEL_INDEX = 16
#: Samples a build simulates side by side when not told (``netspec build --batch``): at most this many, ...
BATCH_MAX = 8
#: ... or this many where the kernels hold over BATCH_BIG_KERNELS values (16 MB in float32, half this project's
#: machine's 32 MB L3 cache: they are read from memory every step, once for all the samples side by side; VGG-16 at
#: 32x32x3, 15 M values, batch 16 against 8: its deep layers' projections 20-25 % less time per event, one profiled
#: run each, tools/bench_sim.py vgg16 --profile), ...
BATCH_BIG = 16
BATCH_BIG_KERNELS = 4_000_000
#: ... and no more than whose copies of the network's neurons (BYTES_PER_NEURON each) fit this many bytes.
BATCH_BUDGET = 512 * 2**20
#: The builder's connectivities (``netspec build --connectivity``); the first is the default.
CONNECTIVITIES = ("kernel", "synapses")
#: Largest count a 32-bit index can address.
INDEX_LIMIT = 2**31 - 1


def physical_memory() -> int | None:
    """The machine's physical memory in bytes, or None where the system does not say."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * size if pages > 0 and size > 0 else None


def default_max_memory() -> int | None:
    total = physical_memory()
    return None if total is None else int(total * MEMORY_FRACTION)


@dataclass(frozen=True)
class Limits:
    """What validation, build and run refuse to go beyond. None: not checked (``netspec inspect``).
    ``connectivity`` is the build's (``--connectivity``), which the memory estimate assumes."""

    max_steps: int | None = DEFAULT_MAX_STEPS
    max_memory: int | None = field(default_factory=default_max_memory)
    connectivity: str = CONNECTIVITIES[0]

    @classmethod
    def unchecked(cls) -> "Limits":
        return cls(None, None)


_BYTES_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)(?:[eE](\d+))?\s*([kKmMgGtT]?)(i?)[bB]?\s*$")
_SCALE = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_bytes(text: str) -> int:
    """``'8G'``, ``'500 MB'``, ``'2GiB'``, ``'1e9'`` -> bytes (K, M, G, T are powers of 1024). ValueError when
    the text is not such a size or is not positive."""
    match = _BYTES_RE.match(str(text))
    if not match:
        raise ValueError(f"expected a size such as '8G' or '500M', got {text!r}")
    number, exp, unit, _ = match.groups()
    value = float(number) * (10 ** int(exp) if exp else 1) * 1024 ** _SCALE[unit.lower()]
    if not (math.isfinite(value) and value >= 1):
        raise ValueError(f"expected a positive size such as '8G', got {text!r}")
    return int(value)


def parse_count(text: str) -> int:
    """``'1000000'``, ``'1e7'`` -> a positive integer; ValueError otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a positive whole number such as 1000000 or 1e7, got {text!r}") from None
    if not (math.isfinite(value) and value >= 1 and value == int(value)):
        raise ValueError(f"expected a positive whole number such as 1000000 or 1e7, got {text!r}")
    return int(value)


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def from_kernel(layer: Layer, connectivity: str, delayed: bool = False) -> bool:
    """Whether the builder simulates the projection into ``layer`` from its kernel: every weighted kind
    (a population, hidden linear layers included) with ``kernel`` connectivity, unless its neurons have a
    synaptic delay (a kernel scatter has no spike queue). Max-pool gates elect through unrolled memberships."""
    return connectivity == "kernel" and layer.role is Role.POPULATION and not delayed


def layer_synapses(layer: Layer, in_shapes: list[Shape], connectivity: str = "synapses", delayed: bool = False) -> int:
    """Synapses (Brian2 synapses, unrolled connections) the builder creates for one layer: one per
    multiply-accumulate and one membership per max-pool window member, none for a projection simulated from
    its kernel (:func:`from_kernel`). The one place this is decided."""
    if layer.role is Role.SOURCE or layer.role is Role.RELAY or from_kernel(layer, connectivity, delayed):
        return 0
    return int(layer.connections(in_shapes))


def layer_kernel(layer: Layer, in_shapes: list[Shape], out_shape: Shape, connectivity: str = "kernel",
                 delayed: bool = False) -> tuple[int, int]:
    """(kernel values, source indices) of the projection into ``layer`` when it is simulated from its kernel,
    else (0, 0): its tensors (or, for average pooling, one factor per output position) and one index per
    neuron of its inputs, upper bounds of what ``netspec.brian.kernels`` stores."""
    if not from_kernel(layer, connectivity, delayed):
        return 0, 0
    tensors = sum(math.prod(shape) for shape in layer.tensor_shapes(in_shapes).values())
    values = tensors or math.prod(out_shape)  # a kind without tensors (pooling): one factor per output at most
    return int(values), int(sum(math.prod(shape) for shape in in_shapes))


def layer_units(layer: Layer, shape: Shape) -> int:
    """Neurons (or max-pool gates) the layer becomes; index-only layers have none."""
    if layer.role in (Role.POPULATION, Role.GATE):
        return math.prod(shape)
    return 0


@dataclass(frozen=True)
class Estimate:
    """The size of a network: ``neurons`` (populations and max-pool gates, upper bound), ``synapses`` (as
    built), ``kernel_values`` and ``kernel_indices`` (of the projections simulated from their kernels),
    ``inputs`` and ``outputs`` (values per sample), ``steps`` per sample, the largest layer and projection
    (name, count) and the projection that costs the most memory (name, bytes), for messages."""

    neurons: int
    synapses: int
    inputs: int
    outputs: int
    steps: int | None
    largest_layer: tuple[str, int]
    largest_projection: tuple[str, int]
    kernel_values: int = 0
    kernel_indices: int = 0
    heaviest_projection: tuple[str, int] = ("", 0)
    #: layers whose spikes and operations a run records at every step (populations and max-pool gates)
    recorded_layers: int = 0

    @property
    def network_bytes(self) -> int:
        """Memory of the built network (build and simulation, without the data)."""
        return (self.neurons * BYTES_PER_NEURON + self.synapses * BYTES_PER_SYNAPSE + self.inputs * BYTES_PER_INPUT
                + self.kernel_values * BYTES_PER_KERNEL_VALUE + self.kernel_indices * BYTES_PER_KERNEL_INDEX)

    def describe(self) -> str:
        """``'N neurons and S synapses'``, ``'N neurons, S synapses and K kernel values'``: what the memory is for."""
        parts = [f"{self.neurons:,} neurons"]
        if self.synapses or not self.kernel_values:
            parts.append(f"{self.synapses:,} synapses")
        if self.kernel_values:
            parts.append(f"{self.kernel_values:,} kernel values")
        return ", ".join(parts[:-1]) + " and " + parts[-1]

    def run_bytes(self, samples: int, steps: int | None = None, input_bytes: int | None = None, batch: int = 1) -> int:
        """Memory of a run over ``samples`` samples: the network (its neurons ``batch`` times: samples side by
        side), the data (float32, or ``input_bytes`` when known from the file), the per-step output counts a run
        records (uint16, [samples, steps, outputs]) and the per-step spikes and operations of every recorded layer
        (two int64 [samples, steps] each)."""
        steps = self.steps if steps is None else steps
        data = samples * self.inputs * 4 if input_bytes is None else input_bytes
        per_step = samples * (steps or 0) * (self.outputs * 2 + self.recorded_layers * 16)
        copies = (batch - 1) * self.neurons * BYTES_PER_NEURON
        return self.network_bytes + copies + data + per_step

    @property
    def default_batch(self) -> int:
        """Samples side by side when a build is not told: :data:`BATCH_MAX` (:data:`BATCH_BIG` for kernels of over
        :data:`BATCH_BIG_KERNELS` values), fewer where that many copies of the neurons would pass
        :data:`BATCH_BUDGET` (one for networks of over 8 M neurons), at least one."""
        most = BATCH_BIG if self.kernel_values > BATCH_BIG_KERNELS else BATCH_MAX
        return max(1, min(most, BATCH_BUDGET // max(1, self.neurons * BYTES_PER_NEURON)))


def estimate(layers: Iterable[Layer], shapes: Mapping[str, Shape], output: str, steps: int | None,
             connectivity: str = "kernel", delayed: Collection[str] = ()) -> Estimate:
    """Estimate a network from its layers and inferred shapes (every layer's shape must be known), built
    with ``connectivity`` (``'kernel'`` or ``'synapses'``); ``delayed`` names the layers whose neurons have
    a synaptic delay (their projections stay unrolled synapses)."""
    if connectivity not in CONNECTIVITIES:
        raise ValueError(f"connectivity must be one of {', '.join(CONNECTIVITIES)}, not {connectivity!r}")
    neurons = synapses = inputs = values = indices = recorded = 0
    big_layer, big_proj, heaviest = ("", 0), ("", 0), ("", 0)
    for layer in layers:
        shape = shapes[layer.name]
        size = math.prod(shape)
        if layer.role is Role.SOURCE:
            inputs = size
        in_shapes = [shapes[i] for i in layer.inputs]
        late = layer.name in delayed
        n = layer_units(layer, shape)
        s = layer_synapses(layer, in_shapes, connectivity, late)
        v, i = layer_kernel(layer, in_shapes, shape, connectivity, late)
        neurons += n
        recorded += n > 0
        synapses += s
        values += v
        indices += i
        if max(n, size) > big_layer[1]:
            big_layer = (layer.name, max(n, size))
        if s > big_proj[1]:
            big_proj = (layer.name, s)
        cost = s * BYTES_PER_SYNAPSE + v * BYTES_PER_KERNEL_VALUE + i * BYTES_PER_KERNEL_INDEX
        if cost > heaviest[1]:
            heaviest = (layer.name, cost)
    return Estimate(neurons, synapses, inputs, math.prod(shapes[output]), steps, big_layer, big_proj, values, indices,
                    heaviest, recorded)


def check_steps(steps: int, limits: Limits) -> str | None:
    """Why ``steps`` per sample are refused, or None."""
    if limits.max_steps is not None and steps > limits.max_steps:
        return (f"{steps:,} time steps per sample, above the limit of {limits.max_steps:,} "
                f"(a shorter duration or a larger dt; --max-steps raises the limit)")
    return None


def check_memory(need: int, limits: Limits, what: str) -> str | None:
    """Why ``need`` bytes for ``what`` are refused, or None."""
    if limits.max_memory is not None and need > limits.max_memory:
        return (f"{what} needs about {human_bytes(need)}, above the memory limit of {human_bytes(limits.max_memory)} "
                f"(--max-memory raises the limit)")
    return None


def check_indices(est: Estimate) -> tuple[str, str] | None:
    """(layer name, why) when the network cannot be indexed with 32 bits, or None."""
    name, n = est.largest_layer
    if n > INDEX_LIMIT:
        return name, f"layer '{name}' has {n:,} values, more than 32-bit indices address ({INDEX_LIMIT:,})"
    name, s = est.largest_projection
    if s > INDEX_LIMIT:
        return name, f"layer '{name}' has {s:,} synapses, more than 32-bit indices address ({INDEX_LIMIT:,})"
    return None
