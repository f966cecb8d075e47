"""NIR (the Neuromorphic Intermediate Representation): spec -> NIR graph, and NIR graph -> spec.

``netspec nir SPEC -o GRAPH.nir`` writes a spec's spiking network with the ``nir`` package's own API
(:mod:`.writer`); ``netspec export GRAPH.nir -o SPEC.yaml`` reads a graph into a spec and its weights
(:mod:`.reader`). :mod:`.convention` states how NIR's continuous-time equations, units and channels-first
layouts map onto netspec's normalized, stepped, channels-last network. The ``nir`` package is an optional
dependency (``pip install 'netspec[nir]'``), imported only when a command needs it.
"""
from .commands import import_command, is_nir_file, nir_command
from .reader import ImportOptions, import_graph, read_graph, translate
from .writer import HANDLERS, Written, build_graph, write_graph

__all__ = ["import_command", "is_nir_file", "nir_command", "ImportOptions", "import_graph", "read_graph", "translate",
           "HANDLERS", "Written", "build_graph", "write_graph"]
