"""The names shared by a build's files: Brian2 object names, ``arrays.npz`` keys and result keys, in one place.

netspec's builder writes ``arrays.npz`` and ``network.py`` with these names; the runner reads them back. Layer
names are validated identifiers (letters, digits, ``_``), so every name here is one too.

``arrays.npz`` (float64 unless said):

======================================  =====================================================================
``bias(layer)``                         bias per neuron and step, normalized (``b / lambda``)
``drive(layer, p) + POS / W``           piece ``p`` of the analog input projection into ``layer``: the input
                                        position of every input value (int32, -1: not read) and the kernel
``piece(projection(t, k), p) + POS/W``  piece ``p`` of the kernel-form projection ``k`` into ``t``
``projection(t, k) + PRE/POST/W``       the unrolled synapses of projection ``k`` into ``t`` (int32, int32)
``election(pool, k) + PRE/POST/KEY``    max-pooling window membership of the pool's source ``k``
``fanout(layer)``                       outgoing synapses of every neuron (int32)
======================================  =====================================================================
"""
from __future__ import annotations

#: Suffixes of the arrays of a piece, of unrolled synapses and of an election.
POS, W = "_pos", "_w"
PRE, POST, KEY = "_i", "_j", "_key"


def group(layer: str) -> str:
    """The Brian2 ``NeuronGroup`` of a layer (its neurons, or a max-pooling layer's gates)."""
    return f"L_{layer}"


#: What every projection's name starts with.
PROJECTION = "S_"


def projection(target: str, k: int) -> str:
    """Projection ``k`` into ``target`` (Brian2 object name; prefix of its arrays)."""
    return f"{PROJECTION}{target}_{k}"


def piece(prefix: str, p: int) -> str:
    """Piece ``p`` of a kernel-form projection or drive named ``prefix``."""
    return f"{prefix}_{p}"


def drive(layer: str) -> str:
    """The analog input projection into ``layer`` (prefix of its pieces)."""
    return f"D_{layer}"


def election(pool: str, k: int) -> str:
    """The election of the max-pooling layer ``pool``'s source ``k`` (Brian2 object name; prefix of its arrays)."""
    return f"E_{pool}_{k}"


def bias(layer: str) -> str:
    return f"B_{layer}"


def fanout(layer: str) -> str:
    return f"F_{layer}"


def timed_input(layer: str) -> str:
    """The ``TimedArray`` carrying each sample's input of ``layer`` (analog drive or poisson probability)."""
    return f"TA_{layer}"


def rate(layer: str) -> str:
    """Recorder key of the layer's PopulationRateMonitor (spikes per step, for layers of one fan-out)."""
    return f"rate_{layer}"


# -- results (per sample) ------------------------------------------------------------------------------
def spikes(layer: str) -> str:
    """Result key: spikes per time step, summed over the layer, int64 [N, T]."""
    return f"spikes_{layer}"


def ops(layer: str) -> str:
    """Result key: synaptic operations per time step (every spike times its neuron's fan-out), int64 [N, T]."""
    return f"ops_{layer}"


def neurons(layer: str) -> str:
    """Result key: spikes of every neuron per sample, int32 [N, neurons] (only when neurons are recorded)."""
    return f"neurons_{layer}"
