"""Where each operation of a network runs within a time step: named positions, and a check of the order.

Brian2 runs a step as slots (``start``, ``groups``, ``thresholds``, ``synapses``, ``resets``, ``end``) and, within a
slot, by ``order``. netspec's kernel-form operations (projections, max-pooling elections) are Brian2 functions
that write a target's variables directly, so Brian2 cannot order them by what they read and write: their
order is set here, from names, and :meth:`Schedule.check` verifies it on the objects of the finished network.

**Zero-latency timing** (the default, as in the paper's simulator): the layers run one after another in the
data flow, all in the ``synapses`` slot. The node at position ``k`` of the data flow (``k`` from 1; a layer's
neurons, or a max-pooling layer's gates) owns the orders ``[SPAN*k, SPAN*(k+1))`` and runs, in this order:

========================  ================================================================================
``UPDATE`` (delta)        integrate the drive: ``u += I`` (bias and analog input current)
``ELECT`` (gates)         max-pooling: the members that spiked bid for their windows; the gates then fire
                          (``GATE_FIRE``) and reset (``GATE_RESET``)
``PROJECT + j``           the ``j``-th incoming projection adds the spikes its source fired earlier in this step
``UPDATE_EXPONENTIAL``    exponential synapses: integrate after the charge arrived (it enters in its own step)
``SOFTMAX``               spiking softmax: sum the output membranes' exponentials
``THRESHOLD``             fire: ``u >= 1``
``COUNT``                 (unrolled synapses) count the layer's spikes and operations
========================  ================================================================================

Resets after a spike stay in Brian2's ``resets`` slot (nothing reads a membrane later in the step; the gates read
the members' counts before the reset adds this step's spike).

**One step per layer**: neurons use Brian2's default slots (integrate in ``groups``, fire in ``thresholds``,
projections in ``synapses``, after every threshold, so each layer adds one step of latency); the gates of
max-pooling stage ``s`` (a gate reading gates has the next stage) elect, fire and reset in the ``synapses`` slot
from order ``GATES + STAGE * s``, before any projection carries their spikes on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ZERO_LATENCY, ONE_STEP_PER_LAYER = "zero-latency", "one-step-per-layer"
TIMINGS = (ZERO_LATENCY, ONE_STEP_PER_LAYER)

#: Zero-latency: the orders owned by one node of the data flow, and the offsets of its operations.
SPAN = 1000
UPDATE, ELECT, GATE_FIRE, GATE_RESET, PROJECT = 0, 0, 1, 2, 10
UPDATE_EXPONENTIAL, SOFTMAX, THRESHOLD, COUNT = 950, 955, 960, 970
#: Most incoming projections of one node (they must fit between PROJECT and UPDATE_EXPONENTIAL).
MAX_PROJECTIONS = UPDATE_EXPONENTIAL - PROJECT
#: One step per layer: the orders of max-pooling gates in the 'synapses' slot, by stage.
GATES, STAGE = -100, 10


@dataclass(frozen=True)
class Slot:
    """A place in the step: Brian2's ``when`` and ``order``; ``schedule`` records what runs there (for
    :meth:`Schedule.check`)."""

    when: str
    order: int
    schedule: "Schedule | None" = field(default=None, compare=False, repr=False)

    def declare(self, name: str, operation: Any, reads: Any, writes: Any) -> None:
        """Record that ``operation`` (placed here) reads the spikes of ``reads`` and writes variables of ``writes``."""
        if self.schedule is not None:
            self.schedule.declare(name, operation, reads, writes)


@dataclass
class _Declared:
    """An operation and what it reads and writes (for :meth:`Schedule.check`)."""

    name: str
    operation: Any  # a Brian2 object with ``when`` and ``order`` (a code-running object)
    reads: Any  # the group whose spikes it reads
    writes: Any  # the group whose variables it writes


@dataclass
class Schedule:
    """The places of a network's operations (see the module docstring); one per ``make_network`` call."""

    timing: str = ZERO_LATENCY
    declared: list[_Declared] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.timing not in TIMINGS:
            raise ValueError(f"timing must be one of {', '.join(TIMINGS)}, not {self.timing!r}")

    @property
    def zero_latency(self) -> bool:
        return self.timing == ZERO_LATENCY

    def node(self, position: int, stage: int = 1) -> "Node":
        """The places of the node at ``position`` (from 1) of the data flow; ``stage``: a max-pooling layer's stage
        (used with one step per layer)."""
        if position < 1:
            raise ValueError(f"data-flow positions start at 1, got {position}")
        return Node(self, position, stage)

    def declare(self, name: str, operation: Any, reads: Any, writes: Any) -> None:
        """Record that ``operation`` reads the spikes of ``reads`` and writes variables of ``writes``."""
        self.declared.append(_Declared(name, operation, reads, writes))

    def check(self, schedule: list[str] | None = None) -> None:
        """Verify the declared operations' places in the network as built: each runs after the threshold of the
        group whose spikes it reads and, with zero-latency timing, before the threshold of the group it writes
        (which must see this step's input). Raises ``RuntimeError`` naming the operation and both places."""
        slots = schedule or ["start", "groups", "thresholds", "synapses", "resets", "end"]
        # Brian2's own sort key (Network.sorted_objects): slot, with before_/after_ slots around it; order; name
        rank = {when: 1 + 3 * i for i, when in enumerate(slots)}
        rank.update({f"before_{when}": 3 * i for i, when in enumerate(slots)})
        rank.update({f"after_{when}": 2 + 3 * i for i, when in enumerate(slots)})

        def key(obj):
            return (rank[obj.when], obj.order, obj.name)

        for d in self.declared:
            op = key(d.operation)
            source = _thresholder(d.reads)
            if source is not None and not key(source) < op:
                raise RuntimeError(f"{d.name} runs at {d.operation.when} {d.operation.order}, not after the threshold of "
                                   f"{d.reads.name} ({source.when} {source.order}) whose spikes it reads")
            target = _thresholder(d.writes)
            if self.zero_latency and target is not None and not op < key(target):
                raise RuntimeError(f"{d.name} runs at {d.operation.when} {d.operation.order}, not before the threshold "
                                   f"of {d.writes.name} ({target.when} {target.order}) that must see it in this step")


def _thresholder(group: Any):
    thresholder = getattr(group, "thresholder", None) or {}
    return thresholder.get("spike")


@dataclass(frozen=True)
class Node:
    """The places of one node's operations (see the module docstring)."""

    schedule: Schedule
    position: int
    stage: int = 1

    @property
    def _base(self) -> int:
        return SPAN * self.position

    def _slot(self, when: str, order: int) -> Slot:
        return Slot(when, order, self.schedule)

    def update(self, exponential: bool = False) -> Slot:
        if not self.schedule.zero_latency:
            return self._slot("groups", 0)
        return self._slot("synapses", self._base + (UPDATE_EXPONENTIAL if exponential else UPDATE))

    def threshold(self) -> Slot:
        return self._slot("synapses", self._base + THRESHOLD) if self.schedule.zero_latency else self._slot("thresholds", 0)

    def project(self, j: int) -> Slot:
        """The place of the ``j``-th projection into this node."""
        if not 0 <= j < MAX_PROJECTIONS:
            raise ValueError(f"a layer takes at most {MAX_PROJECTIONS} incoming projections, not {j + 1}")
        return self._slot("synapses", self._base + PROJECT + j) if self.schedule.zero_latency else self._slot("synapses", 0)

    def softmax(self) -> Slot:
        return self._slot("synapses", self._base + SOFTMAX) if self.schedule.zero_latency else self._slot("thresholds", -1)

    def count(self) -> Slot:
        return self._slot("synapses", self._base + COUNT) if self.schedule.zero_latency else self._slot("synapses", 0)

    def _gate(self, offset: int) -> Slot:
        first = self._base + ELECT if self.schedule.zero_latency else GATES + STAGE * self.stage
        return self._slot("synapses", first + offset)

    def elect(self) -> Slot:
        """Max-pooling: where the members bid for their windows."""
        return self._gate(0)

    def gate_fire(self) -> Slot:
        return self._gate(GATE_FIRE)

    def gate_reset(self) -> Slot:
        return self._gate(GATE_RESET)


def place(obj: Any, slot: Slot) -> None:
    """Put a Brian2 code-running object (a state updater, thresholder, resetter, pathway) at ``slot``."""
    obj.when = slot.when
    obj.order = slot.order


def place_neurons(group: Any, node: Node, exponential: bool = False) -> None:
    """Put a layer's state update and threshold at the node's places (zero-latency timing; with one step per layer
    Brian2's default slots stay)."""
    if not node.schedule.zero_latency:
        return
    place(group.state_updater, node.update(exponential))
    if _thresholder(group) is not None:
        place(group.thresholder["spike"], node.threshold())


def place_gates(group: Any, node: Node) -> None:
    """Put a max-pooling layer's gates' threshold and reset at the node's places."""
    place(group.thresholder["spike"], node.gate_fire())
    place(group.resetter["spike"], node.gate_reset())
