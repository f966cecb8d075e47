"""``netspec export``: a trained Keras model and calibration data -> spec YAML + sidecar weights .npz.

The entry point is :func:`export` (model, spec path, :class:`ExportOptions`) -> :class:`ExportResult`;
:func:`export_model` is the same with the options as keyword arguments. Stages, one module each:

1. :mod:`.keras_reader` loads the ``.keras``/``.h5`` file and lists its layer graph (TensorFlow is
   imported only here, lazily);
2. :mod:`.translate` maps Keras layers to spec layers, folding batch normalization (:mod:`.fold`) and
   activations into the layer before them, and refuses anything it cannot convert exactly;
3. :mod:`.pipeline` builds the spec document once, without normalization, writes the .npz, validates the
   document into a :class:`netspec.spec.Spec` (the format wants a λ on every layer with neurons: the
   validator is shown them at 1, the network's own scale, never written) and checks its numpy reference
   against the Keras model;
4. :mod:`.normalize` computes each layer's λ on the calibration data with that Spec;
5. :mod:`.writer` adds the λs to the document and writes the YAML; only then are both files moved into
   place, so a failed export writes nothing.

:mod:`.options` holds every default; it imports nothing heavy, and the pipeline is imported on first use,
so the command line can show the defaults without loading the exporter.
"""
from __future__ import annotations

from .options import ENCODINGS, METHODS, ExportOptions

__all__ = ["ENCODINGS", "METHODS", "ExportOptions", "ExportResult", "export", "export_model"]


def __getattr__(name: str):
    if name in ("ExportResult", "export", "export_model"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
