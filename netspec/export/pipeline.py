"""The export pipeline: a Keras model and calibration data -> spec YAML + sidecar weights .npz.

The spec is built once. The document is assembled without normalization, the .npz is written next to it
in a temporary folder, and the document is validated into a :class:`netspec.spec.Spec` (schema, semantic
rules, weights). The format requires a λ on every layer with neurons, and λ is what calibration is about to
compute, so this validation sees the network at its own scale, every such λ 1 (:func:`_unnormalized`):
λ does not enter the ANN reference, and that form of the document is never written. The Spec's numpy
reference is checked against the Keras model on a few calibration samples, then computes each layer's λ
(:mod:`.normalize`). The λs go into the document, which is written once as YAML (read back and checked
against the schema) and moved into place with the .npz. Nothing is written anywhere else, and nothing at
all when any step fails.

Normalization rules (the paper's data-based normalization with the robust percentile; details in
:mod:`.normalize`): λ = the p-th percentile (:attr:`ExportOptions.percentile`) of a layer's non-zero
activations over the calibration samples, for every layer with neurons (dense/conv/depthwise, avgpool,
global avgpool, add); the output layer's from its non-negative logits; ``max``: their maximum. Max
pooling, flatten and zero padding carry their input's λ (no entry); concatenate has none (each branch
keeps its own); the input layer's λ is 1; a hidden linear layer (residual branch) gets its add's λ.
Weights are written as the ANN has them (after BN folding); the builder applies W·λ_in/λ_out and b/λ_out.

How the λs were obtained (method, percentile; calibration data, samples and hash) is written once, in
``source``; a layer's ``normalization`` holds its ``lambda`` only, unless that layer was normalized
differently (:func:`.writer.normalization_entry`).

The written spec: ``input.range`` is ``[min(0, data min), data max]`` of the calibration data; the
encoding and duration from the options, poisson input at :data:`POISSON`; :data:`DT` steps;
:data:`NEURON` for every layer.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import __version__
from ..datasets import Dataset, load_dataset
from ..errors import NetspecError
from ..paths import check_export_outputs
from ..reference import forward
from ..spec import SpecError, load_spec_data, spec_yaml
from ..spec.diagnostics import Reporter
from ..spec.dump import SCHEMA_COMMENT
from ..spec.layers import LAYER_TYPES
from ..spec.schema import check_schema
from ..spec.yamlsrc import parse_document
from .normalize import compute_lambdas, stderr_progress
from .options import ExportOptions
from .translate import Translation, translate_graph
from .writer import commit, file_sha256, layer_entries, spec_name, staging, tensors_of, with_normalization, write_npz

__all__ = ["export", "export_model", "ExportResult", "schema_pointer"]

#: npz keys tried for calibration inputs, in order (training data before test data, as the paper).
CALIBRATION_KEYS = ("x_norm", "x_train", "x", "x_test")
#: Calibration samples the reference is checked against the Keras model on.
CHECK_SAMPLES = 32
#: Largest tolerated difference between reference and Keras outputs, relative to the largest output.
CHECK_TOLERANCE = 1e-3
#: The time step of every exported spec.
DT = "1 ms"
#: The poisson input of an exported spec (``input.max_rate``, ``input.seed``).
POISSON = {"max_rate": "1000 Hz", "seed": 0}
#: The neuron defaults of an exported spec: the paper's IF neuron, threshold 1, reset by subtraction.
NEURON = {"model": "if", "threshold": 1.0, "reset": "subtract"}


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote.

    Attributes
    ----------
    spec_path, weights_path : Path
        The spec and its weights.
    layers : int
        Spec layers written.
    lambdas : Mapping[str, float]
        λ computed for each layer (the input's, 1, left out), in the spec's layer order.
    samples : int
        Calibration samples the λs were computed on.
    options : ExportOptions
        The options the export ran with.
    """

    spec_path: Path
    weights_path: Path
    layers: int
    lambdas: Mapping[str, float]
    samples: int
    options: ExportOptions

    def summary(self) -> str:
        """One line for the command line."""
        lams = ", ".join(f"{name} {lam:.4g}" if np.ndim(lam) == 0 else f"{name} {min(lam):.4g}..{max(lam):.4g}"
                         for name, lam in self.lambdas.items())
        return (f"wrote {self.spec_path} and {self.weights_path.name}: {self.layers} layers, lambda "
                f"({self.options.describe()} over {self.samples} samples): {lams}")


def export(model_path: str | Path, spec_path: str | Path, options: ExportOptions) -> ExportResult:
    """Export a Keras model to ``spec_path`` (YAML) and ``spec_path`` with suffix ``.npz``.

    Parameters
    ----------
    model_path : str | Path
        ``.keras`` (Keras 3) or legacy ``.h5`` file.
    spec_path : str | Path
        The spec to write; the weights go next to it, same stem, ``.npz``.
    options : ExportOptions
        Calibration data, normalization method, input encoding, duration.

    Returns
    -------
    ExportResult

    Raises
    ------
    NetspecError
        A bad target, unreadable model or data, an unsupported layer, a layer λ cannot be computed for;
        nothing is written then.
    """
    spec_path = Path(spec_path)
    _check_target(spec_path)
    check_export_outputs(model_path, spec_path, options.calibration)
    data = load_dataset(options.calibration, require_labels=False, limit=options.samples, keys=CALIBRATION_KEYS,
                        prefer=("train", "t10k"))
    from .keras_reader import keras_output, load_model, read_graph

    model = load_model(model_path)
    graph = read_graph(model)
    result = translate_graph(graph)
    in_shape = tuple(int(d) for d in graph.nodes[0].shape)
    if data.sample_shape != in_shape:
        raise NetspecError(f"{data.source}: samples have shape {list(data.sample_shape)}, the model '{Path(model_path).name}' expects {list(in_shape)}")
    lo, hi = min(0.0, float(data.x.min())), float(data.x.max())
    if not hi > lo:
        raise NetspecError(f"{data.source}: every calibration value is {hi:g}; the data cannot calibrate the network")
    if options.encoding == "poisson" and lo < 0:
        raise NetspecError(f"{data.source}: poisson encoding needs non-negative inputs, the calibration data goes down to {lo:g}")

    npz_path = spec_path.with_suffix(".npz")
    with staging(spec_path) as tmp:
        staged_npz = tmp / npz_path.name
        weights = {"file": npz_path.name, "sha256": write_npz(staged_npz, tensors_of(result.layers))}
        doc = _document(spec_path, Path(model_path).name, graph, result, data, (lo, hi), weights, options)
        spec = _validated(lambda: load_spec_data(_unnormalized(doc), tmp, str(spec_path)), spec_path)
        _check_against_keras(spec, data.x[:CHECK_SAMPLES], keras_output(model, data.x[:CHECK_SAMPLES]))
        report = stderr_progress(f"netspec export: calibrating on {data.source}") if options.progress else None
        norms = compute_lambdas(spec, data.x, method=options.method, percentile=options.percentile, progress=report)
        doc = with_normalization(doc, norms)
        staged_yaml = tmp / spec_path.name
        staged_yaml.write_text(_text(doc, spec_path, Path(model_path).name), encoding="utf-8")
        commit([staged_npz, staged_yaml], [npz_path, spec_path])
    lambdas = {name: norm.lam for name, norm in norms.items() if name != spec.input_layer.name}
    return ExportResult(spec_path, npz_path, len(spec.layers), lambdas, len(data), options)


def export_model(model_path: str | Path, spec_path: str | Path, calibration: str | Path, **options: Any) -> Path:
    """:func:`export` with the :class:`ExportOptions` fields (other than ``calibration``) as keyword
    arguments; returns the written spec's path."""
    return export(model_path, spec_path, ExportOptions(calibration, **options)).spec_path


def schema_pointer(spec_path: Path) -> str:
    """Where the spec's first line points editors for the schema: the nearest ``schemas/`` folder above
    the spec (a project's own copy), else the copy inside the installed package; relative to the spec."""
    folder = Path(spec_path).resolve().parent
    for parent in (folder, *folder.parents):
        candidate = parent / "schemas" / "netspec.schema.json"
        if candidate.is_file():
            return Path(os.path.relpath(candidate, folder)).as_posix()
    packaged = Path(__file__).resolve().parent.parent / "schemas" / "netspec.schema.json"
    return Path(os.path.relpath(packaged, folder)).as_posix()


# -- helpers ----------------------------------------------------------------------------------------
def _check_target(spec_path: Path) -> None:
    if spec_path.suffix.lower() == ".npz":
        raise NetspecError(f"{spec_path}: the spec is YAML; its weights go to the .npz next to it (give e.g. {spec_path.with_suffix('.yaml')})", 2)
    if not spec_path.parent.is_dir():
        raise NetspecError(f"{spec_path}: the folder {spec_path.parent} does not exist", 2)


def _document(spec_path: Path, model_name: str, graph, result: Translation, data: Dataset, value_range: tuple[float, float],
              weights: dict, options: ExportOptions) -> dict[str, Any]:
    """The spec document, every layer without normalization. Provenance (model, calibration data, how λ
    is computed) is recorded here once; files by name only, so no local path leaks into the spec."""
    return {
        "netspec": 1,
        "name": spec_name(spec_path.stem),
        "description": _description(model_name, graph, result),
        "source": {
            "model": model_name,
            "framework": graph.framework,
            "exporter": f"netspec {__version__}",
            "calibration": {"data": Path(data.source).name, "samples": len(data), "sha256": file_sha256(Path(data.source))},
            "normalization": options.provenance,
        },
        "weights": weights,
        "input": {"shape": list(data.sample_shape), "range": list(value_range), "encoding": options.encoding,
                  **(POISSON if options.encoding == "poisson" else {})},
        "simulation": {"dt": DT, "duration": options.duration},
        "neuron": dict(NEURON),
        "layers": layer_entries(result.layers),
    }


def _unnormalized(doc: dict[str, Any]) -> dict[str, Any]:
    """The document as the validator accepts it before calibration: λ = 1 on every layer kind with a λ of
    its own (the ANN's own scale). For validation and the reference only; never written."""
    layers = [{**entry, "normalization": {"lambda": 1.0}} if LAYER_TYPES[entry["type"]].own_lambda else entry
              for entry in doc["layers"]]
    return {**doc, "layers": layers}


def _text(doc: dict[str, Any], spec_path: Path, model_name: str) -> str:
    """The spec file: the schema pointer, a comment saying where it came from, the document. The text is
    read back and must give the document, its λ entries valid by the schema."""
    header = f"# Exported by netspec {__version__} from {model_name}. Edit freely; `netspec validate` checks it.\n"
    text = SCHEMA_COMMENT.format(schema_pointer(spec_path)) + header + spec_yaml(doc, schema_ref=None)
    written = parse_document(text, str(spec_path))
    rep = Reporter(written.file, written.data, written.marks, written.key_marks)
    if written.data != doc or check_schema(written.data, rep):
        problem = rep.items[0].text() if rep.items else "it reads back differently"
        raise NetspecError(f"{spec_path}: internal error: the spec text to write is wrong ({problem}); nothing was written; please report this")
    return text


def _validated(load, spec_path: Path):
    try:
        return load()
    except SpecError as exc:
        first = exc.diagnostics[0] if exc.diagnostics else None
        # a choice the user can change: the encoding, the limits, what the model ends with
        if first is not None and (first.code in ("NS209", "NS510") or first.code.startswith("NS6")):
            raise NetspecError(f"{spec_path}: {first.message}") from exc
        raise NetspecError(f"{spec_path}: internal error: the exported spec does not validate ({exc}); please report this") from exc


def _check_against_keras(spec, x: np.ndarray, expected: np.ndarray) -> None:
    """The numpy reference of the spec must reproduce the Keras model (a safety net against any Keras
    semantics the translation missed)."""
    got = forward(spec, x)[spec.order[-1]]
    scale = max(float(np.abs(expected).max()), 1e-12)
    err = float(np.abs(got.reshape(expected.shape) - expected).max()) / scale
    if not err <= CHECK_TOLERANCE:
        raise NetspecError(
            f"internal error: the exported spec's output differs from the Keras model's by {err:.2e} (relative) on "
            f"{len(x)} calibration samples; nothing was written; please report this with the model"
        )


def _description(model_name: str, graph, result: Translation) -> str:
    parts = [f"Exported from {model_name} ({graph.model_class}, {graph.keras_layers} Keras layers -> {len(result.layers)} spec layers)."]
    if result.folded:
        parts.append("Batch normalization folded: " + ", ".join(f"{bn} -> {into}" for bn, into in result.folded) + ".")
    return " ".join(parts)[:4000]
