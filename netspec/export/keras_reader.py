"""Reading a Keras model: load the file and list its layers as a plain graph (no TensorFlow types leak out).

TensorFlow/Keras is imported here only, lazily, so that commands other than ``export`` never pay for it.
The graph is walked back from the model's output through each tensor's producing layer call, which
works for Sequential and functional models alike; layers that do nothing at inference (dropout, noise,
activity regularization, identity, linear activation) are removed here, their consumers rewired to
their input.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import NetspecError

#: Keras layer classes that are the identity at inference.
NO_OPS = (
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout",
    "AlphaDropout", "ActivityRegularization", "Identity",
)


@dataclass
class KNode:
    """One Keras layer call in the model graph.

    Attributes
    ----------
    name : str
        The Keras layer's name (unique in a model).
    cls : str
        Its class name (``Conv2D``).
    config : dict
        ``layer.get_config()``.
    inputs : list[str]
        Names of the nodes whose outputs it reads, in call order.
    shape : tuple
        Per-sample output shape.
    weights : dict[str, np.ndarray]
        Named variables as numpy (``kernel``, ``bias``, ``gamma``, ``beta``, ``moving_mean``,
        ``moving_variance``; ``clip`` of a :class:`netspec.keras.QuantizedClip`); only those the layer has.
    """

    name: str
    cls: str
    config: dict
    inputs: list[str]
    shape: tuple
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    def describe(self) -> str:
        return f"'{self.name}' ({self.cls})"


@dataclass
class KGraph:
    """The model as nodes in topological order (the input first, the output last)."""

    nodes: list[KNode]
    output: str
    framework: str
    model_class: str
    keras_layers: int

    def node(self, name: str) -> KNode:
        return next(n for n in self.nodes if n.name == name)

    def consumers(self, name: str) -> list[KNode]:
        return [n for n in self.nodes if name in n.inputs]


#: TensorFlow's C++ start-up chatter, printed before its logging reads TF_CPP_MIN_LOG_LEVEL.
_TF_NOISE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)|[IW]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] |To enable the following instructions)")


@contextmanager
def quiet_tf():
    """Hold back TensorFlow's C++ informational lines on stderr (file descriptor 2) while loading it;
    every other line is passed on. Does nothing if the user set TF_CPP_MIN_LOG_LEVEL below 3."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "3":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [l for l in capture.read().decode("utf-8", "replace").splitlines(True) if not _TF_NOISE.match(l)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def import_keras():
    """Import keras quietly; a NetspecError if TensorFlow/Keras is not installed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with quiet_tf():
            import keras  # noqa: F401
    except ImportError as exc:
        raise NetspecError(f"netspec export needs TensorFlow/Keras (pip install 'netspec[keras]'): {exc}", 2) from exc
    return keras


def framework_name(keras) -> str:
    backend = keras.backend.backend()
    try:
        mod = __import__({"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend, backend))
        return f"keras {keras.__version__} ({backend} {mod.__version__})"
    except ImportError:
        return f"keras {keras.__version__} ({backend})"


def load_model(path: str | Path):
    """Load a ``.keras`` or legacy ``.h5`` model without compiling it."""
    p = Path(path)
    if not p.is_file():
        raise NetspecError(f"{path}: model file not found", 2)
    if p.suffix.lower() not in (".keras", ".h5", ".hdf5"):
        raise NetspecError(f"{path}: expected a Keras model file (.keras, or legacy .h5)", 2)
    if p.suffix.lower() == ".keras" and not zipfile.is_zipfile(p):
        # Keras itself answers "File not found" for a corrupt .keras file, which misleads
        raise NetspecError(f"{path}: not a Keras 3 model (a .keras file is a zip archive; this one is corrupt or something else)")
    keras = import_keras()
    with quiet_tf():
        from .. import keras as _netspec_layers  # noqa: F401  (registers netspec's own layers with Keras)
    try:
        with quiet_tf():
            return keras.models.load_model(p, compile=False)
    except Exception as exc:  # Keras raises many types (ValueError, OSError, TypeError, KeyError)
        culprit = unsupported_layer(p) if p.suffix.lower() == ".keras" else None
        if culprit is not None:
            raise NetspecError(f"{path}: {culprit}") from exc
        text = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise NetspecError(f"{path}: cannot load the Keras model: {text}") from exc


#: Keras layer classes that hold Python code (never deserialized: Keras's safe mode refuses them).
CODE_LAYERS = ("Lambda",)


def unsupported_layer(path: Path) -> str | None:
    """Why Keras could not deserialize a ``.keras`` file, read from the archive's ``config.json`` (plain
    JSON, nothing executed): the first layer that holds Python code (a Lambda) or comes from outside Keras
    (a custom class). None when neither is found."""
    import json

    try:
        with zipfile.ZipFile(path) as zf:
            config = json.loads(zf.read("config.json").decode("utf-8"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, UnicodeDecodeError):
        return None
    custom = None
    stack = [config]
    while stack:
        node = stack.pop(0)
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        cls, cfg = node.get("class_name"), node.get("config")
        if isinstance(cls, str) and isinstance(cfg, dict):
            name = cfg.get("name", "?")
            if cls in CODE_LAYERS:
                return (f"layer '{name}' is a {cls} layer: not supported (it holds Python code, which netspec never "
                        f"runs; use built-in Keras layers)")
            module = node.get("module")
            if custom is None and isinstance(module, str) and module.split(".")[0] not in ("keras", "tensorflow", "tf_keras", "netspec"):
                custom = f"layer '{name}' is a custom layer ({module}.{cls}): not supported (use built-in Keras layers)"
        stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
    return custom


def read_graph(model) -> KGraph:
    """The model's layer graph, inference no-ops removed."""
    keras = import_keras()
    inputs = list(getattr(model, "inputs", None) or [])
    outputs = list(getattr(model, "outputs", None) or [])
    if not inputs or not outputs:
        raise NetspecError(f"model '{model.name}': its input shape is not defined (build it with keras.Input(shape) before saving)")
    if len(inputs) != 1 or len(outputs) != 1:
        raise NetspecError(f"model '{model.name}': has {len(inputs)} inputs and {len(outputs)} outputs; netspec needs exactly one of each")
    shape = tuple(inputs[0].shape[1:])
    if any(d is None for d in shape):
        raise NetspecError(f"model '{model.name}': the input shape {list(shape)} has undefined dimensions; give a fixed shape")

    nodes: dict[str, KNode] = {}
    calls: dict[str, int] = {}
    order: list[str] = []

    def visit(tensor) -> str:
        op, node_index, _ = tensor._keras_history
        name = op.name
        if name in calls:
            if calls[name] != node_index:
                raise NetspecError(f"layer '{name}' ({type(op).__name__}) is called more than once (shared layers are not supported)")
            return name
        calls[name] = node_index
        if not isinstance(op, keras.layers.Layer):
            raise NetspecError(
                f"operation '{name}' ({type(op).__name__}) is a backend op, not a Keras layer; use the layer "
                f"(e.g. keras.layers.Add, keras.layers.ReLU) so that the model can be exported"
            )
        if isinstance(op, keras.Model):
            raise NetspecError(f"layer '{name}' ({type(op).__name__}) is a nested model; flatten it into one model before exporting")
        node = op._inbound_nodes[node_index]
        parents = [visit(t) for t in node.input_tensors]
        out_shape = tuple(node.output_tensors[0].shape[1:]) if node.output_tensors else ()
        if len(node.output_tensors) != 1:
            raise NetspecError(f"layer '{name}' ({type(op).__name__}) has {len(node.output_tensors)} outputs; netspec needs one per layer")
        nodes[name] = KNode(name, type(op).__name__, op.get_config(), parents, out_shape, _weights(keras, op))
        order.append(name)
        return name

    out = visit(outputs[0])
    graph = KGraph([nodes[n] for n in order], out, framework_name(keras), type(model).__name__, len(order))
    return _drop_no_ops(graph)


#: Variables read from a layer, by attribute name (``clip``: netspec's QuantizedClip only).
WEIGHT_ATTRS = ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance")


def _weights(keras, layer) -> dict[str, np.ndarray]:
    out = {}
    from ..keras import QuantizedClip

    attrs = WEIGHT_ATTRS + (("clip",) if isinstance(layer, QuantizedClip) else ())
    for attr in attrs:
        if getattr(layer, "quantization_mode", None) and attr == "kernel":
            continue  # refused by the translator, which names the layer
        try:
            value = getattr(layer, attr, None)
        except Exception:  # a property that needs a built or unquantized layer
            value = None
        if value is not None:
            out[attr] = np.asarray(keras.ops.convert_to_numpy(value))  # as Keras holds them (float32: VGG16's 0.5 GB)
    return out


def _is_no_op(node: KNode) -> bool:
    if node.cls in NO_OPS:
        return True
    return node.cls == "Activation" and node.config.get("activation") == "linear"


def _drop_no_ops(graph: KGraph) -> KGraph:
    alias: dict[str, str] = {}
    kept: list[KNode] = []
    for node in graph.nodes:
        node.inputs = [alias.get(i, i) for i in node.inputs]
        if _is_no_op(node) and len(node.inputs) == 1:
            alias[node.name] = node.inputs[0]
        else:
            kept.append(node)
    output = alias.get(graph.output, graph.output)
    return KGraph(kept, output, graph.framework, graph.model_class, graph.keras_layers)


def keras_output(model, x: np.ndarray) -> np.ndarray:
    """The model's output for a small batch, in inference mode (a few samples at a time: large inputs)."""
    keras = import_keras()
    step = 4
    return np.concatenate([np.asarray(keras.ops.convert_to_numpy(model(x[i:i + step], training=False)), dtype=np.float64)
                           for i in range(0, len(x), step)])


def config_value(config: dict, key: str, default: Any = None) -> Any:
    value = config.get(key, default)
    return tuple(value) if isinstance(value, list) else value
