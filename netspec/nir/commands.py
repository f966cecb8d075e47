"""The NIR commands: ``netspec nir`` (spec -> graph) and the NIR branch of ``netspec export`` (graph -> spec).

They map parsed arguments onto :func:`~netspec.nir.writer.write_graph` and
:func:`~netspec.nir.reader.import_graph` and print what was written; nothing else.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import NetspecError

#: First bytes of every HDF5 file (NIR files are HDF5, and so are legacy Keras .h5 models).
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def is_nir_file(path: str | Path) -> bool:
    """Whether ``path`` is a NIR graph: a ``.nir`` file, or an HDF5 file laid out as NIR writes them (a
    ``version`` and a ``node`` entry, no Keras ``model_config``)."""
    path = Path(path)
    if path.suffix.lower() == ".nir":
        return True
    try:
        with open(path, "rb") as fh:
            if fh.read(8) != HDF5_MAGIC:
                return False
        import h5py

        with h5py.File(path, "r") as f:
            return "node" in f and "version" in f and "model_config" not in f.attrs
    except (OSError, ImportError):
        return False


def nir_command(spec, output: str | Path, approximate: bool = False) -> int:
    """``netspec nir SPEC -o GRAPH.nir [--approximate]``."""
    from .writer import write_graph

    written = write_graph(spec, output, approximate=approximate)
    import nir

    print(f"wrote {written.path}: {written.nodes} NIR nodes, {written.edges} edges (nir {nir.__version__}; "
          "read back by nir.read)")
    width = max(len(r[0]) for r in written.rows)
    kind = max(len(r[1]) for r in written.rows)
    for name, layer_type, nodes in written.rows:
        print(f"  {name.ljust(width)}  {layer_type.ljust(kind)}  {nodes}")
    for note in written.notes:
        print(f"note: {note}")
    return 0


def import_command(model: str | Path, output: str | Path, options) -> int:
    """``netspec export GRAPH.nir -o SPEC.yaml [--dt DT] [--duration T] [--input-encoding E] [--approximate]``;
    ``options`` is an :class:`~netspec.nir.reader.ImportOptions`."""
    from ..spec import load_spec
    from .reader import import_graph

    path, notes = import_graph(model, output, options)
    spec = load_spec(path)
    print(f"wrote {path} and {path.with_suffix('.npz').name}: {len(spec.layers)} layers, {spec.neuron_count()} neurons, "
          f"dt {spec.simulation.dt.text}, every lambda 1 (the graph is already spiking)")
    for note in notes:
        print(note if note.startswith("warning: ") else f"note: {note}")
    return 0
