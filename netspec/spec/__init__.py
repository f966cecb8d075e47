"""Load and validate netspec network specs.

Public entry points: :func:`load_spec` (file -> :class:`Spec`, or :class:`SpecError`), :func:`check_file`
(file -> spec and diagnostics), :func:`load_spec_data` (plain data -> :class:`Spec`) and :func:`dump_spec`.
"""
from .diagnostics import CODES, Diagnostic, SpecError
from .dump import dump_spec, spec_yaml
from .layers import LAYER_TYPES, Layer, Normalization, ShapeError, TensorRef
from .load import check_file, load_spec, load_spec_data
from .resources import Limits
from .model import InputSpec, NeuronParams, Simulation, Spec, WeightsFile
from .schema import schema, schema_text
from .units import Quantity, parse_quantity

__all__ = [
    "CODES", "Diagnostic", "SpecError", "dump_spec", "spec_yaml", "LAYER_TYPES", "Layer", "Normalization",
    "ShapeError", "TensorRef", "check_file", "load_spec", "load_spec_data", "InputSpec", "NeuronParams",
    "Simulation", "Spec", "Limits", "WeightsFile", "schema", "schema_text", "Quantity", "parse_quantity",
]
