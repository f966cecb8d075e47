"""``netspec export``: a trained Keras model and calibration data -> spec YAML + sidecar weights .npz.

Stages, one module each:

1. :mod:`.keras_reader` loads the ``.keras``/``.h5`` file and lists its layer graph (TensorFlow is
   imported only here, lazily);
2. :mod:`.translate` maps Keras layers to spec layers, folding batch normalization (:mod:`.fold`) and
   activations into the layer before them, and refuses anything it cannot convert exactly;
3. :mod:`.normalize` computes each layer's λ on the calibration data with the numpy reference;
4. :mod:`.writer` writes the .npz and the YAML into a temporary folder, the spec is validated with
   :func:`netspec.spec.load_spec`, the reference is checked against the Keras model on a few
   calibration samples, and only then are both files moved into place.

Normalization rules (the paper's data-based normalization with the robust percentile; details in
:mod:`.normalize`): λ = p-th percentile (default 99.9) of a layer's non-zero activations over the
calibration samples, for every layer with neurons (dense/conv/depthwise, avgpool, global avgpool, add);
the output layer's from its non-negative logits; ``max``: their maximum. Max pooling, flatten and zero
padding carry their input's λ (no entry); concatenate has none (each branch keeps its own); the input
layer's λ is 1; a hidden linear layer (residual branch) gets its add's λ. Weights are written as the ANN
has them (after BN folding); the builder applies W·λ_in/λ_out and b/λ_out.

The written spec: ``input.range`` is ``[min(0, data min), data max]`` of the calibration data; analog
encoding, or poisson with ``max_rate: 1000 Hz`` and ``seed: 0``; ``simulation.dt`` is ``1 ms``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import __version__
from ..datasets import load_dataset
from ..errors import NetspecError
from ..paths import check_export_outputs
from ..reference import forward
from ..spec import SpecError, load_spec, load_spec_data, parse_quantity, spec_yaml
from ..spec.units import TIME
from .normalize import compute_lambdas, stderr_progress
from .translate import Translation, translate_graph
from .writer import commit, file_sha256, layer_entries, spec_name, staging, tensors_of, write_npz

__all__ = ["export_model", "export_command"]

#: npz keys tried for calibration inputs, in order (training data before test data, as the paper).
CALIBRATION_KEYS = ("x_norm", "x_train", "x", "x_test")
#: Calibration samples the reference is checked against the Keras model on.
CHECK_SAMPLES = 32
#: Largest tolerated difference between reference and Keras outputs, relative to the largest output.
CHECK_TOLERANCE = 1e-3


def export_model(
    model_path: str | Path,
    spec_path: str | Path,
    calibration: str | Path,
    *,
    percentile: float = 99.9,
    method: str = "percentile",
    samples: int | None = None,
    encoding: str = "analog",
    duration: str = "100 ms",
    progress: bool = True,
) -> Path:
    """Export a Keras model to ``spec_path`` (YAML) and ``spec_path`` with suffix ``.npz``.

    Parameters
    ----------
    model_path : str | Path
        ``.keras`` (Keras 3) or legacy ``.h5`` file.
    spec_path : str | Path
        The spec to write; the weights go next to it, same stem, ``.npz``.
    calibration : str | Path
        Calibration data (see :func:`netspec.datasets.load_dataset`; labels are not needed). From an
        npz the first of ``x_norm``, ``x_train``, ``x``, ``x_test``; from an MNIST folder the train files.
    percentile : float
        p in (0, 100] for ``method="percentile"``.
    method : {"percentile", "max"}
    samples : int | None
        Use the first ``samples`` calibration samples (default all).
    encoding : {"analog", "poisson"}
    duration : str
        Presentation time per sample written to the spec.
    progress : bool
        Report calibration progress on stderr.

    Returns
    -------
    Path
        The written spec.

    Raises
    ------
    NetspecError
        Bad arguments, unreadable model or data, an unsupported layer; nothing is written then.
    """
    spec_path = Path(spec_path)
    _check_args(spec_path, method, percentile, samples, encoding, duration)
    check_export_outputs(model_path, spec_path, calibration)
    data = load_dataset(calibration, require_labels=False, limit=samples, keys=CALIBRATION_KEYS, prefer=("train", "t10k"))
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
    if encoding == "poisson" and lo < 0:
        raise NetspecError(f"{data.source}: poisson encoding needs non-negative inputs, the calibration data goes down to {lo:g}")

    npz_path = spec_path.with_suffix(".npz")
    n = len(data)
    norm_info = {"method": method, **({"percentile": float(percentile)} if method == "percentile" else {}), "samples": n}
    doc = {
        "netspec": 1,
        "name": spec_name(spec_path.stem),
        "description": _description(Path(model_path).name, graph, result),
        "source": {
            "model": Path(model_path).name,
            "framework": graph.framework,
            "exporter": f"netspec {__version__}",
            "calibration": {"data": Path(data.source).name, "samples": n, "sha256": file_sha256(Path(data.source))},
            "normalization": norm_info,
        },
        "weights": {"file": npz_path.name, "sha256": ""},
        "input": {"shape": list(in_shape), "range": [lo, hi], "encoding": encoding,
                  **({"max_rate": "1000 Hz", "seed": 0} if encoding == "poisson" else {})},
        "simulation": {"dt": "1 ms", "duration": duration},
        "neuron": {"model": "if", "threshold": 1.0, "reset": "subtract"},
        "layers": layer_entries(result.layers, None),
    }
    with staging(spec_path) as tmp:
        staged_npz = tmp / npz_path.name
        doc["weights"]["sha256"] = write_npz(staged_npz, tensors_of(result.layers))
        spec = _validated(lambda: load_spec_data(doc, tmp, str(spec_path)), spec_path)
        report = stderr_progress(f"netspec export: calibrating on {data.source}") if progress else None
        lams = compute_lambdas(spec, data.x, method=method, percentile=percentile, progress=report)
        entries = {name: {"lambda": lam, **norm_info} for name, lam in lams.items()}
        entries[spec.input_layer.name] = {"lambda": 1.0}
        doc["layers"] = layer_entries(result.layers, entries)
        staged_yaml = tmp / spec_path.name
        header = f"# Exported by netspec {__version__} from {Path(model_path).name}. Edit freely; `netspec validate` checks it.\n"
        pointer, body = spec_yaml(doc, schema_pointer(spec_path)).split("\n", 1)
        staged_yaml.write_text(pointer + "\n" + header + body, encoding="utf-8")
        spec = _validated(lambda: load_spec(staged_yaml), spec_path)
        _check_against_keras(spec, data.x[:CHECK_SAMPLES], keras_output(model, data.x[:CHECK_SAMPLES]))
        commit([staged_npz, staged_yaml], [npz_path, spec_path])
    return spec_path


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


def export_command(args) -> int:
    """The ``netspec export`` command: map the parsed arguments onto :func:`export_model`."""
    method = args.normalization or "percentile"
    percentile = 99.9 if args.percentile is None else args.percentile
    out = export_model(
        args.model, args.output, args.calibration,
        percentile=percentile, method=method, samples=args.samples,
        encoding=args.input_encoding, duration=args.duration or "100 ms", progress=True,
    )
    spec = load_spec(out)
    how = f"the {percentile:g}th percentile" if method == "percentile" else "the maximum"
    lams = ", ".join(f"{l.name} {l.normalization.lam:.4g}" for l in spec.layers if l.normalization is not None and l.type != "input")
    print(f"wrote {out} and {out.with_suffix('.npz').name}: {len(spec.layers)} layers, lambda ({how} "
          f"over {spec.source['calibration']['samples']} samples): {lams}")
    return 0


# -- helpers ----------------------------------------------------------------------------------------
def _check_args(spec_path: Path, method, percentile, samples, encoding, duration) -> None:
    if method not in ("percentile", "max"):
        raise NetspecError(f"--normalization: expected percentile or max, got {method!r}", 2)
    if method == "percentile" and not (0 < percentile <= 100):
        raise NetspecError(f"--percentile: must be in (0, 100], got {percentile:g}", 2)
    if samples is not None and samples < 1:
        raise NetspecError(f"--samples: must be at least 1, got {samples}", 2)
    if encoding not in ("analog", "poisson"):
        raise NetspecError(f"--input-encoding: expected analog or poisson, got {encoding!r}", 2)
    try:
        q = parse_quantity(duration)
    except ValueError as exc:
        raise NetspecError(f"--duration: {exc}", 2) from exc
    if q.dim != TIME or not q.value > 0:
        raise NetspecError(f"--duration: expected a positive time such as '100 ms', got {duration!r}", 2)
    if spec_path.suffix.lower() == ".npz":
        raise NetspecError(f"{spec_path}: the spec is YAML; its weights go to the .npz next to it (give e.g. {spec_path.with_suffix('.yaml')})", 2)
    if not spec_path.parent.is_dir():
        raise NetspecError(f"{spec_path}: the folder {spec_path.parent} does not exist", 2)


def _validated(load, spec_path: Path):
    try:
        return load()
    except SpecError as exc:
        first = exc.diagnostics[0] if exc.diagnostics else None
        if first is not None and (first.code == "NS510" or first.code.startswith("NS6")):  # a choice the user can change
            raise NetspecError(f"{spec_path}: {first.message}") from exc
        raise NetspecError(f"{spec_path}: internal error: the exported spec does not validate ({exc}); please report this") from exc


def _check_against_keras(spec, x: np.ndarray, expected: np.ndarray) -> None:
    """The numpy reference of the written spec must reproduce the Keras model (a safety net against
    any Keras semantics the translation missed)."""
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


