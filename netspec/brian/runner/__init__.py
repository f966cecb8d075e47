"""The code every generated ``network.py`` runs, one module per job.

``netspec build`` copies this package into every build folder as ``netspec_runner/``, next to ``network.py``, so
that a build runs (``python network.py --inputs x.npy --out results.npz``) and can be shared without netspec
installed. It imports only the standard library, numpy and Brian2, never netspec; and Brian2 only inside the
functions that simulate, so that netspec's own stages use its numpy parts without loading Brian2. What varies
per network (its groups, projections and constants) is written in ``network.py``.

============================  =======================================================================
:mod:`.model`                 :class:`Model` (what ``network.py`` declares), :class:`Results`, chunking,
                              seeding, the read-out rule (:func:`ranking`)
:mod:`.keys`                  the names shared by ``network.py``, ``arrays.npz`` and the results
:mod:`.geometry`              windows (:class:`Filters`, :class:`Depthwise`, :class:`Average`): a kernel's
                              geometry and its window arithmetic
:mod:`.schedule`              where each operation runs within a time step, and a check of the order
:mod:`.operations`            kernel-form projections, max-pooling elections, counters, the analog drive
``netspec_kernels.h``         their C++ (templates instantiated by :mod:`.operations`)
:mod:`.thresholds`            standalone thresholds without a branch per neuron (a Brian2 template)
:mod:`.runtime`               simulating in Brian2's runtime mode
:mod:`.standalone`            compiling the C++ project; running the binary on new inputs
:mod:`.processes`             a child never outlives its parent
:mod:`.cli`                   the command line of ``network.py``
============================  =======================================================================
"""
from . import keys
from .geometry import Average, Depthwise, Filters, Window
from .model import Model, Results, chunk_seed, chunks, copies, load_arrays, ranking, side_by_side, summarize
from .operations import UnsupportedTarget, kernel_drive, kernel_projection, pool_election, spike_counters
from .runtime import run_runtime
from .schedule import Schedule, place, place_gates, place_neurons
from .standalone import compile_standalone, run_standalone
from .cli import main


__all__ = ["keys", "Window", "Filters", "Depthwise", "Average", "Model", "Results", "chunk_seed", "chunks", "copies",
           "load_arrays", "ranking", "side_by_side", "summarize", "UnsupportedTarget", "kernel_drive", "kernel_projection",
           "pool_election", "spike_counters", "Schedule", "place", "place_gates", "place_neurons", "run_runtime",
           "compile_standalone", "run_standalone", "main"]
