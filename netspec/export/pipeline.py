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

Bias calibration (:mod:`.calibrate`, with ``calibrate_bias``; analog input): the normalized document is validated
once more and its SNN stepped in numpy on the first ``bias_samples`` calibration samples for ``bias_steps``
steps; each population's ``normalization.bias_correction`` and ``source.normalization.bias_correction``
(steps, samples) are written.

The written spec: ``input.range`` is ``[min(0, data min), data max]`` of the calibration data; the
encoding, duration and read-out from the options, poisson input at :data:`POISSON`; :data:`DT` steps;
:data:`NEURON` for every layer, with ``initial`` from the options where it is not 0.
"""
from __future__ import annotations

import os
import sys
import time
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
from .writer import commit, file_sha256, layer_entries, written, spec_name, staging, tensors_of, with_normalization, write_npz

__all__ = ["export", "export_model", "ExportResult", "schema_pointer"]

#: npz keys tried for calibration inputs, in order (training data before test data, as the paper).
CALIBRATION_KEYS = ("x_norm", "x_train", "x", "x_test")
#: Calibration samples the reference is checked against the Keras model on.
CHECK_SAMPLES = 32
#: Activation elements (float64) of the samples checked against Keras at once (the reference keeps every layer's).
_FORWARD_ELEMENTS = 4_000_000
#: Largest tolerated difference between reference and Keras outputs, relative to the largest output.
CHECK_TOLERANCE = 1e-3
#: Fraction of the check samples whose outputs may differ when the model has quantized layers (float32 rounding
#: at a quantization step's edge, see :func:`_check_against_keras`).
QUANTIZED_MISMATCH = 0.1
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
    clipped : tuple[str, ...]
        The quantized layers, whose λ is their trained clip (not computed from the calibration data).
    """

    spec_path: Path
    weights_path: Path
    layers: int
    lambdas: Mapping[str, float]
    samples: int
    options: ExportOptions
    clipped: tuple[str, ...] = ()
    #: bias calibration: (steps, samples, seconds), or None without it
    calibration: tuple[int, int, float] | None = None

    def summary(self) -> str:
        """One line for the command line."""
        lams = ", ".join((f"{name} {lam:.4g}" if np.ndim(lam) == 0 else f"{name} {min(lam):.4g}..{max(lam):.4g}")
                         + (" (clip)" if name in self.clipped else "") for name, lam in self.lambdas.items())
        bias = ""
        if self.calibration is not None:
            steps, samples, seconds = self.calibration
            bias = f"; biases calibrated at T = {steps} on {samples} samples ({seconds:.1f} s)"
        return (f"wrote {self.spec_path} and {self.weights_path.name}: {self.layers} layers, lambda "
                f"({self.options.describe()} over {self.samples} samples): {lams}{bias}")


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
    expected = keras_output(model, data.x[:CHECK_SAMPLES])
    del model  # the graph holds the weights: the Keras model's memory is not needed beside the reference's
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
        _check_against_keras(spec, data.x[:CHECK_SAMPLES], expected)
        report = stderr_progress(f"netspec export: calibrating on {data.source}") if options.progress else None
        norms = compute_lambdas(spec, data.x, method=options.method, percentile=options.percentile, progress=report)
        calibration = None
        if options.calibrate_bias:
            t0 = time.perf_counter()
            norms, doc = _calibrated(doc, norms, tmp, spec_path, data, options)
            bias = doc["source"]["normalization"]["bias_correction"]
            calibration = (bias["steps"], bias["samples"], time.perf_counter() - t0)
        doc = with_normalization(doc, norms)
        staged_yaml = tmp / spec_path.name
        staged_yaml.write_text(_text(doc, spec_path, Path(model_path).name), encoding="utf-8")
        commit([staged_npz, staged_yaml], [npz_path, spec_path])
    lambdas = {name: norm.lam for name, norm in norms.items() if name != spec.input_layer.name}
    clipped = tuple(name for name, norm in norms.items() if norm.method == "clip")
    return ExportResult(spec_path, npz_path, len(spec.layers), lambdas, len(data), options, clipped, calibration)


def _calibrated(doc: dict[str, Any], norms: dict, folder: Path, spec_path: Path, data: Dataset, options: ExportOptions):
    """Bias calibration (:mod:`.calibrate`) of the normalized document: the λs with each population's
    ``bias_correction``, and the document with ``source.normalization.bias_correction`` saying how."""
    import dataclasses

    from .calibrate import calibrate_biases

    spec = _validated(lambda: load_spec_data(with_normalization(doc, norms), folder, str(spec_path)), spec_path)
    x = data.x[:options.bias_samples]
    report = None
    if options.progress:
        def report(done: int, total: int) -> None:
            print(f"netspec export: bias calibration at T = {options.bias_steps} on {len(x)} samples: layer {done}/{total}",
                  file=sys.stderr, flush=True)
    corrections = calibrate_biases(spec, x, options.bias_steps, progress=report, rounds=options.bias_rounds)
    norms = {name: dataclasses.replace(norm, bias_correction=tuple(float(v) for v in corrections[name]))
             if name in corrections else norm for name, norm in norms.items()}
    source = {**doc["source"], "normalization": {**doc["source"]["normalization"],
                                                 "bias_correction": {"steps": options.bias_steps, "samples": len(x),
                                                                     "rounds": options.bias_rounds}}}
    return norms, {**doc, "source": source}


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
        "simulation": {"dt": DT, "duration": options.duration,
                       **({"readout": options.readout} if options.readout != "spike_count" else {})},
        "neuron": {**NEURON, **({"initial": float(options.initial)} if options.initial else {})},
        "layers": _quantized_initial(layer_entries(result.layers), options.quantized_initial),
    }


def _quantized_initial(entries: list[dict[str, Any]], initial: float) -> list[dict[str, Any]]:
    """The layer entries, every quantized one (``levels``) with its neurons starting at ``initial`` of the
    threshold (``neuron.initial``; nothing written for 0)."""
    if not initial:
        return entries
    return [written({**entry, "neuron": {"initial": float(initial)}}) if entry.get("levels") is not None else entry
            for entry in entries]


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
    semantics the translation missed). With quantized layers (``levels``) a pre-activation on the edge of a
    quantization step may round to the other step in float64 than in Keras's float32, which changes that
    sample's output by a step: up to :data:`QUANTIZED_MISMATCH` of the samples may then differ."""
    per_sample = sum(int(np.prod(s)) for s in spec.shapes.values())
    step = int(max(1, min(len(x), _FORWARD_ELEMENTS // max(1, per_sample))))  # every layer's activations are kept
    got = np.concatenate([forward(spec, x[i:i + step])[spec.order[-1]] for i in range(0, len(x), step)])
    got = got.reshape(expected.shape)
    scale = max(float(np.abs(expected).max()), 1e-12)
    per_sample = np.abs(got - expected).reshape(len(x), -1).max(axis=1) / scale
    allowed = int(QUANTIZED_MISMATCH * len(x)) if any(layer.levels is not None for layer in spec.layers) else 0
    bad = int(np.sum(~(per_sample <= CHECK_TOLERANCE)))
    if bad > allowed:
        err = float(np.sort(per_sample)[len(x) - allowed - 1]) if np.all(np.isfinite(per_sample)) else float("nan")
        raise NetspecError(
            f"internal error: the exported spec's output differs from the Keras model's by {err:.2e} (relative) on "
            f"{bad} of {len(x)} calibration samples; nothing was written; please report this with the model"
        )


def _description(model_name: str, graph, result: Translation) -> str:
    parts = [f"Exported from {model_name} ({graph.model_class}, {graph.keras_layers} Keras layers -> {len(result.layers)} spec layers)."]
    if result.folded:
        parts.append("Batch normalization folded: " + ", ".join(f"{bn} -> {into}" for bn, into in result.folded) + ".")
    if result.affine:
        parts.append("Batch normalization before a ReLU made per-channel layers (not foldable into the layer before): "
                     + ", ".join(result.affine) + ".")
    quantized = [layer.name for layer in result.layers if layer.fields.get("levels") is not None]
    if quantized:
        parts.append("Quantized activation (netspec.keras.QuantizedClip; lambda = the trained clip): " + ", ".join(quantized) + ".")
    return " ".join(parts)[:4000]
