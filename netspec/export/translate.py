"""Keras layer graph -> spec layers: one spec layer per neuron population or routing step.

Rules (each refusal names the Keras layer and its class):

* Dense, Conv2D and DepthwiseConv2D become dense/conv2d/depthwise_conv2d layers with their kernel and bias.
* A BatchNormalization directly after such a layer, whose output nothing else reads and that has no
  activation yet, is folded into its weights (:mod:`netspec.export.fold`). Any other BatchNormalization
  followed by a ReLU (pre-activation: DenseNet) becomes a per-channel layer of its own (:mod:`.preact`).
* An activation (ReLU, Softmax, Activation, ``activation=`` arguments) is set on the layer before it under
  the same condition; a ReLU on values that are already non-negative (after pooling, flatten, padding or
  concatenation of ReLU outputs) is the identity and dropped. Hidden layers may use relu only; softmax
  only on the output; a hidden layer left linear may only feed Add layers (a residual branch). A ReLU with
  ``max_value`` (ReLU6, ``relu6``) is relu with ``clip`` on the layer's relu; λ then never exceeds the clip
  (it is computed from the clipped values), so the spiking neuron, which saturates at λ, clips where Keras does.
* netspec's own :class:`netspec.keras.QuantizedClip` (QCFS) is set on the layer before it like a relu, under
  the same condition, with its trained ``clip`` and its ``levels``; it must directly follow a layer with an
  activation slot (Dense, Conv2D, DepthwiseConv2D, possibly through a folded BN, or Add) that is still linear
  (or applies relu, which the quantized activation subsumes), and may not be the model's output (which is read
  out, not quantized). A quantized layer is never dropped as an identity.
* GlobalAveragePooling2D(keepdims=True) gives a [1, 1, C] tensor that the spec holds as [C]: a Conv2D on it is a
  dense layer, a Reshape between [1, 1, C] and [C] or a Flatten nothing (MobileNet's head). A Reshape to [N]
  is a flatten; other reshapes are refused.
* MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, Flatten, ZeroPadding2D, Cropping2D, Concatenate (channel
  axis) and Add map one to one.

Names: Keras names sanitized into ``^[A-Za-z][A-Za-z0-9_]{0,63}$`` and made unique; a folded chain
(conv -> BN -> ReLU) keeps the name of its first layer.

One module of some 500 lines: each Keras class has its handler here, and the handlers share one walk's
state (which spec layer computes each Keras tensor, what may still be merged into it); the pre-activation
rewrite that needs the whole translated graph is apart, in ``preact.py``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import NetspecError
from ..spec.layers import LAYER_TYPES, Layer, Role
from ..spec.model import hidden_linear
from .fold import bn_scale_shift, fold_bn
from .keras_reader import KGraph, KNode, config_value

SUPPORTED = (
    "InputLayer, Dense, Conv2D, DepthwiseConv2D, BatchNormalization (after Dense/Conv2D/DepthwiseConv2D, or "
    "before a ReLU), ReLU (max_value allowed), netspec.keras.QuantizedClip (hidden), Softmax (output), Activation "
    "(relu, relu6, softmax, linear), MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, Flatten, Reshape (to "
    "[N]; [1, 1, C] <-> [C]), ZeroPadding2D, Cropping2D, Concatenate (channel axis), Add, and inference no-ops "
    "(Dropout, SpatialDropout, GaussianNoise, GaussianDropout, AlphaDropout, ActivityRegularization, Identity)"
)
_WEIGHTED = {"Dense": "dense", "Conv2D": "conv2d", "DepthwiseConv2D": "depthwise_conv2d"}
_POOLS = {"MaxPooling2D": "maxpool2d", "AveragePooling2D": "avgpool2d"}
#: Keras classes that may read a [1, 1, C] tensor netspec holds as [C] (see ``_Translator.flat``), and those
#: whose output is then held flat too (element-wise, or per channel).
_READS_FLAT = ("Conv2D", "Dense", "Reshape", "Flatten", "BatchNormalization", "ReLU", "Activation", "Softmax", "Add",
               "Concatenate")
_KEEPS_FLAT = ("Conv2D", "Dense", "BatchNormalization", "ReLU", "Activation", "Softmax", "Add", "Concatenate")
_NAME_OK = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


@dataclass
class SpecLayer:
    """A spec layer being assembled: its YAML fields (no normalization yet), tensors, provenance."""

    name: str
    type: str
    inputs: list[str]
    fields: dict = field(default_factory=dict)
    activation: str | None = None
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    keras: list[str] = field(default_factory=list)  # the Keras layers merged into it
    nonneg: bool = False  # its output can never be negative
    affine: bool = False  # a batch normalization made a layer of its own (see :mod:`.preact`)

    @property
    def kind(self) -> type[Layer]:
        """The spec's layer class of this layer's type: what it is (role, activation slot, tensors)."""
        return LAYER_TYPES[self.type]

    @property
    def has_activation(self) -> bool:
        return self.kind.takes_activation

    @property
    def is_linear(self) -> bool:
        """Whether it applies no activation (yet), as the spec layer it becomes would say."""
        return self.as_spec_layer().is_linear

    def as_spec_layer(self) -> Layer:
        """The spec layer this becomes, as far as its role goes (name, inputs, activation; no shapes or
        tensors): what the spec's own rules, such as :func:`netspec.spec.model.hidden_linear`, ask."""
        return self.kind(name=self.name, inputs=tuple(self.inputs), activation=self.activation)


@dataclass
class Translation:
    layers: list[SpecLayer]
    folded: list[tuple[str, str]]  # (BN layer, spec layer it was folded into)
    dropped: list[str]  # Keras layers that became nothing
    affine: list[str] = field(default_factory=list)  # BN layers made per-channel layers of their own


def refuse(node: KNode, why: str) -> NetspecError:
    return NetspecError(f"layer {node.describe()}: {why}. Supported: {SUPPORTED}")


class _Translator:
    def __init__(self, graph: KGraph):
        self.g = graph
        self.layers: list[SpecLayer] = []
        self.of: dict[str, SpecLayer] = {}  # Keras node -> the spec layer that computes its output
        self.names: set[str] = set()
        self.folded: list[tuple[str, str]] = []
        self.dropped: list[str] = []
        self.affine: list[str] = []
        #: Keras nodes whose output is [1, 1, C] in Keras and [C] in the spec (GlobalAveragePooling2D with
        #: keepdims=True and what reads it, as MobileNet's head: its 1x1 convolutions become dense layers)
        self.flat: set[str] = set()

    # -- helpers ------------------------------------------------------------------------------
    def unique(self, keras_name: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_]", "_", keras_name)
        if not base or not base[0].isalpha():
            base = "l_" + base
        base = base[:64]
        name, k = base, 2
        while name in self.names:
            suffix = f"_{k}"
            name, k = base[: 64 - len(suffix)] + suffix, k + 1
        assert _NAME_OK.match(name)
        self.names.add(name)
        return name

    def new(self, node: KNode, kind: str, **kw) -> SpecLayer:
        inputs = [self.of[i].name for i in node.inputs]
        layer = SpecLayer(self.unique(node.name), kind, inputs, keras=[node.name], **kw)
        self.layers.append(layer)
        self.of[node.name] = layer
        return layer

    def sole_reader(self, node: KNode) -> tuple[SpecLayer, str | None]:
        """The spec layer before ``node`` and, if ``node`` cannot be merged into it, why not."""
        src = node.inputs[0]
        prev = self.of[src]
        readers = [c.name for c in self.g.consumers(src) if c.name != node.name]
        if src == self.g.output:
            readers.append("the model output")
        if readers:
            return prev, f"the output of '{src}' is also read by {', '.join(repr(r) for r in readers)}"
        if prev.keras[-1] != src:
            return prev, f"'{src}' is not the last step of spec layer '{prev.name}'"
        return prev, None

    def check_format(self, node: KNode) -> None:
        if node.config.get("data_format", "channels_last") != "channels_last":
            raise refuse(node, f"data_format '{node.config['data_format']}' is not supported (netspec is channels-last)")

    def check_flat_inputs(self, node: KNode) -> None:
        held = [i for i in node.inputs if i in self.flat]
        if not held:
            return
        if node.cls not in _READS_FLAT:
            raise refuse(node, f"it reads '{held[0]}', a [1, 1, C] tensor that netspec holds as [C] (after "
                               "GlobalAveragePooling2D(keepdims=True)); only Conv2D, Dense, Reshape, Flatten, "
                               "BatchNormalization, activations, Add and Concatenate may read it")
        if len(held) != len(node.inputs):
            other = next(i for i in node.inputs if i not in self.flat)
            raise refuse(node, f"it joins '{held[0]}', a [1, 1, C] tensor that netspec holds as [C], with '{other}', "
                               "which it does not; not supported")

    def alias(self, node: KNode) -> None:
        """``node`` changes nothing in the spec's layout: its output is its input's spec layer. Activations may
        merge into that layer later only if ``node`` is its input's sole reader."""
        prev, why = self.sole_reader(node)
        if why is None:
            prev.keras.append(node.name)
        self.of[node.name] = prev
        self.dropped.append(node.name)

    # -- layers -------------------------------------------------------------------------------
    def run(self) -> Translation:
        for node in self.g.nodes:
            handler = getattr(self, f"on_{node.cls}", None)
            if handler is None:
                raise refuse(node, "this layer type is not supported")
            if node.cls != "InputLayer" and not node.inputs:
                raise refuse(node, "it has no input")
            self.check_flat_inputs(node)
            handler(node)
            if node.cls in _KEEPS_FLAT and node.inputs and all(i in self.flat for i in node.inputs):
                self.flat.add(node.name)
        if any(layer.affine for layer in self.layers):
            from .preact import split_affine  # it builds SpecLayers: imported once this module is

            channels = {layer.name: int(self.g.node(layer.keras[-1]).shape[-1]) for layer in self.layers}
            self.layers = split_affine(self.layers, channels, self.unique,
                                       lambda layer, why: refuse(self.g.node(layer.keras[0]), why))
        self.finish()
        return Translation(self.layers, self.folded, self.dropped, self.affine)

    def on_InputLayer(self, node: KNode) -> None:
        if len(node.shape) not in (1, 3):
            raise refuse(node, f"input shape {list(node.shape)} is not supported (use [N] or [H, W, C])")
        self.new(node, "input")

    def activation_of(self, node: KNode) -> tuple[str, float | None]:
        """A layer's ``activation=`` argument: the spec activation and its clip (relu6: relu clipped at 6)."""
        act = node.config.get("activation", "linear")
        if act == "relu6":
            return "relu", 6.0
        if act not in ("relu", "softmax", "linear"):
            raise refuse(node, f"activation {act!r} is not supported (relu, relu6; softmax on the output; linear)")
        return act, None

    def weighted(self, node: KNode) -> None:
        kind = _WEIGHTED[node.cls]
        cfg = node.config
        self.check_format(node)
        if cfg.get("quantization_config") or "kernel" not in node.weights:
            raise refuse(node, "quantized layers are not supported")
        tensors = {"kernel": node.weights["kernel"]}
        if node.inputs[0] in self.flat:
            kind, fields, tensors["kernel"] = self.dense_on_flat(node)
        elif node.cls == "Dense":
            in_shape = self.g.node(node.inputs[0]).shape
            if len(in_shape) != 1:
                raise refuse(node, f"Dense on a {list(in_shape)} input (applied to the last axis) is not supported; put a Flatten before it")
            fields = {"units": int(cfg["units"])}
        else:
            if tuple(config_value(cfg, "dilation_rate", (1, 1))) != (1, 1):
                raise refuse(node, f"dilation_rate {list(config_value(cfg, 'dilation_rate'))} is not supported (only 1)")
            if int(cfg.get("groups", 1)) != 1:
                raise refuse(node, f"groups={cfg['groups']} is not supported (only 1)")
            if cfg["padding"] not in ("valid", "same"):
                raise refuse(node, f"padding '{cfg['padding']}' is not supported (valid, same)")
            fields = {"filters": int(cfg["filters"])} if "filters" in cfg else {}  # Conv2D; DepthwiseConv2D has none
            fields["kernel_size"] = [int(v) for v in config_value(cfg, "kernel_size")]
            strides = [int(v) for v in config_value(cfg, "strides", (1, 1))]
            if strides != [1, 1]:
                fields["strides"] = strides
            fields["padding"] = cfg["padding"]
            if int(cfg.get("depth_multiplier", 1)) != 1:  # DepthwiseConv2D's
                fields["depth_multiplier"] = int(cfg["depth_multiplier"])
        if "bias" in node.weights:
            tensors["bias"] = node.weights["bias"]
        act, clip = self.activation_of(node)
        if act == "softmax" and node.name != self.g.output:
            raise refuse(node, "softmax is only supported as the output layer's activation")
        layer = self.new(node, kind, fields=fields, activation=act, tensors=tensors, nonneg=act in ("relu", "softmax"))
        if clip is not None:
            self.set_clip(node, layer, clip)

    on_Dense = on_Conv2D = on_DepthwiseConv2D = weighted

    def dense_on_flat(self, node: KNode) -> tuple[str, dict, np.ndarray]:
        """A Dense or Conv2D reading a [1, 1, C] tensor held as [C]: a dense layer (a convolution's kernel at the
        tap that meets the one real pixel: the centre under 'same' padding, as Keras pads)."""
        kernel = node.weights["kernel"]
        if node.cls == "Dense":
            return "dense", {"units": int(node.config["units"])}, kernel
        if node.cls != "Conv2D":
            raise refuse(node, "a DepthwiseConv2D on a [1, 1, C] tensor (after GlobalAveragePooling2D(keepdims=True)) "
                               "is not supported")
        if tuple(config_value(node.config, "dilation_rate", (1, 1))) != (1, 1) or int(node.config.get("groups", 1)) != 1:
            raise refuse(node, "dilation or groups on a [1, 1, C] tensor are not supported")
        kh, kw = kernel.shape[:2]
        return "dense", {"units": int(node.config["filters"])}, kernel[(kh - 1) // 2, (kw - 1) // 2]

    def on_BatchNormalization(self, node: KNode) -> None:
        prev, why = self.sole_reader(node)
        if "kernel" not in prev.kind.tensor_fields:
            why = f"it follows {prev.type} layer '{prev.name}'; BN is folded only into a Dense, Conv2D or DepthwiseConv2D layer"
        elif why is None and not prev.is_linear:
            why = f"'{prev.keras[-1]}' already applies activation '{prev.activation}'; BN must come before the activation"
        if why and not self.relu_follows(node):
            raise refuse(node, f"cannot fold this BatchNormalization: {why}")
        axis = node.config.get("axis", -1)
        axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
        rank = len(node.shape) + 1
        if not isinstance(axis, int) or axis % rank != rank - 1:
            raise refuse(node, f"BatchNormalization over axis {axis} is not supported (only the channel axis, -1)")
        w = node.weights
        scale, shift = bn_scale_shift(w.get("gamma"), w.get("beta"), w["moving_mean"], w["moving_variance"], node.config.get("epsilon", 1e-3))
        if why:
            self.affine_bn(node, scale, shift, why)
            return
        prev.tensors["kernel"], prev.tensors["bias"] = fold_bn(prev.type, prev.tensors["kernel"], prev.tensors.get("bias"), scale, shift)
        prev.keras.append(node.name)
        self.of[node.name] = prev
        self.folded.append((node.name, prev.name))

    def set_clip(self, node: KNode, layer: SpecLayer, clip: float) -> None:
        """Clip ``layer``'s relu at ``clip`` (a ReLU(max_value) or relu6 at ``node``); twice: the lower bound."""
        if node.name == self.g.output:
            raise refuse(node, f"a clipped relu (max_value={clip:g}) on the output layer is not supported (the output is "
                               "read out by spike count, not clipped)")
        if not clip > 0:
            raise refuse(node, f"max_value={clip:g} is not supported (a clip must be > 0)")
        old = layer.fields.get("clip")
        layer.fields["clip"] = float(clip) if old is None else min(float(old), float(clip))

    def relu_follows(self, node: KNode) -> bool:
        """Whether the only reader of ``node`` is a ReLU (plain or clipped), ``node`` not the output."""
        readers = self.g.consumers(node.name)
        if node.name == self.g.output or len(readers) != 1:
            return False
        r = readers[0]
        if r.cls == "ReLU":
            return all(r.config.get(k) in (None, 0, 0.0) for k in ("negative_slope", "threshold"))
        return r.cls == "Activation" and r.config.get("activation") in ("relu", "relu6")

    def affine_bn(self, node: KNode, scale: np.ndarray, shift: np.ndarray, why: str) -> None:
        """A BN that cannot be folded back (``why``), a ReLU after it: a 1x1 depthwise layer of its own, kernel
        the scale, bias the shift, which takes the ReLU (see :mod:`.preact`)."""
        src = node.inputs[0]
        if len(node.shape) != 3 or src in self.flat:
            raise refuse(node, f"cannot fold this BatchNormalization: {why} (and on a {list(node.shape)} tensor it "
                               "cannot be a per-channel layer of its own: only on [H, W, C])")
        c = scale.size
        layer = self.new(node, "depthwise_conv2d", fields={"kernel_size": [1, 1], "padding": "valid"}, activation="linear",
                         tensors={"kernel": scale.reshape(1, 1, c, 1).astype(np.float32), "bias": shift.astype(np.float32)})
        layer.affine = True
        self.affine.append(node.name)

    def apply_activation(self, node: KNode, act: str, clip: float | None = None) -> None:
        prev, why = self.sole_reader(node)
        if act == "relu" and clip is not None and prev.activation == "relu" and why is None:
            self.set_clip(node, prev, clip)  # min(relu(x), c) on the layer's relu
            prev.keras.append(node.name)
            self.of[node.name] = prev
            return
        if act == "relu" and clip is None and (prev.nonneg or prev.activation == "relu"):
            self.of[node.name] = prev  # relu of non-negative values: the identity
            self.dropped.append(node.name)
            return
        if act == "relu" and clip is not None and why is None and (prev.nonneg or prev.activation == "relu"):
            why = f"'{prev.name}' ({prev.type}) has no relu of its own to clip"
        if act == "softmax" and node.name != self.g.output:
            raise refuse(node, "softmax is only supported as the output layer's activation")
        if why is None and not prev.has_activation:
            why = f"'{prev.name}' ({prev.type}) has no activation of its own and may be negative"
        elif why is None and not prev.is_linear:
            why = f"'{prev.keras[-1]}' already applies activation '{prev.activation}'"
        if why:
            what = act if clip is None else f"{act} clipped at {clip:g}"
            raise refuse(node, f"cannot apply {what} to the layer before it: {why}")
        prev.activation = act
        prev.nonneg = True
        if clip is not None:
            self.set_clip(node, prev, clip)
        prev.keras.append(node.name)
        self.of[node.name] = prev

    def on_ReLU(self, node: KNode) -> None:
        cfg = node.config
        for key in ("negative_slope", "threshold"):
            value = cfg.get(key)
            if value not in (None, 0, 0.0):
                raise refuse(node, f"ReLU with {key}={value} is not supported (only max(0, x), optionally with max_value)")
        clip = cfg.get("max_value")
        self.apply_activation(node, "relu", None if clip is None else float(clip))

    def on_QuantizedClip(self, node: KNode) -> None:
        """netspec's QCFS activation: relu with ``clip`` (the trained λ) and ``levels`` on the layer before it."""
        levels = node.config.get("levels")
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise NetspecError(f"layer {node.describe()}: levels is {levels!r}; the conversion needs a whole number of "
                               "quantization steps >= 1")
        clip = node.weights.get("clip")
        clip = float(clip) if clip is not None and np.size(clip) == 1 else None
        if clip is None or not (np.isfinite(clip) and clip > 0):
            raise NetspecError(f"layer {node.describe()}: its trained clip is {clip!r}; the conversion needs a finite clip > 0 "
                               "(it becomes the layer's lambda)")
        if node.name == self.g.output:
            raise NetspecError(f"layer {node.describe()}: a quantized activation on the model's output cannot be converted: "
                               "the output layer is read out (its logits), not quantized; use QuantizedClip on hidden layers only")
        prev, why = self.sole_reader(node)
        if why is None and not prev.has_activation:
            why = (f"it follows {prev.type} layer '{prev.name}', which has no neurons of its own to quantize (the spiking "
                   "layer reproduces QCFS only on a weighted sum)")
        elif why is None and prev.fields.get("levels") is not None:
            why = f"'{prev.keras[-1]}' already applies a quantized activation"
        elif why is None and prev.activation not in ("linear", "relu"):
            why = f"'{prev.keras[-1]}' already applies activation '{prev.activation}'"
        if why:
            raise NetspecError(f"layer {node.describe()}: cannot convert this quantized activation: {why}; QuantizedClip must "
                               "directly follow a Dense, Conv2D or DepthwiseConv2D layer (after its BatchNormalization, if "
                               "any) or an Add, whose output nothing else reads")
        prev.activation = "relu"
        prev.fields["clip"] = clip
        prev.fields["levels"] = levels
        prev.nonneg = True
        prev.keras.append(node.name)
        self.of[node.name] = prev

    def on_Softmax(self, node: KNode) -> None:
        axis = node.config.get("axis", -1)
        if axis not in (-1, len(node.shape), [-1]):
            raise refuse(node, f"Softmax over axis {axis} is not supported (only -1)")
        self.apply_activation(node, "softmax")

    def on_Activation(self, node: KNode) -> None:
        act = node.config.get("activation")
        if act == "relu6":
            self.apply_activation(node, "relu", 6.0)
            return
        if act not in ("relu", "softmax"):
            raise refuse(node, f"activation {act!r} is not supported (relu, relu6; softmax on the output; linear)")
        self.apply_activation(node, act)

    def pool(self, node: KNode) -> None:
        self.check_format(node)
        cfg = node.config
        size = [int(v) for v in config_value(cfg, "pool_size")]
        strides = [int(v) for v in config_value(cfg, "strides", None) or size]
        fields = {"pool_size": size}
        if strides != size:
            fields["strides"] = strides
        if cfg.get("padding", "valid") not in ("valid", "same"):
            raise refuse(node, f"padding '{cfg['padding']}' is not supported (valid, same)")
        fields["padding"] = cfg.get("padding", "valid")
        nonneg = self.of[node.inputs[0]].nonneg
        self.new(node, _POOLS[node.cls], fields=fields, nonneg=nonneg)

    on_MaxPooling2D = on_AveragePooling2D = pool

    def on_GlobalAveragePooling2D(self, node: KNode) -> None:
        self.check_format(node)
        self.new(node, "global_avgpool2d", nonneg=self.of[node.inputs[0]].nonneg)
        if node.config.get("keepdims"):
            self.flat.add(node.name)  # [1, 1, C], held as [C]

    def on_Flatten(self, node: KNode) -> None:
        self.check_format(node)
        if node.inputs[0] in self.flat or len(self.g.node(node.inputs[0]).shape) == 1:
            self.alias(node)  # already flat
            return
        self.new(node, "flatten", nonneg=self.of[node.inputs[0]].nonneg)

    def on_Reshape(self, node: KNode) -> None:
        """Reshapes that keep the channels-last row-major order of the elements: to [N] (a flatten) and between
        [1, 1, C] and [C] (MobileNet's head)."""
        src = self.g.node(node.inputs[0])
        target = tuple(int(d) for d in node.shape)
        held = (src.shape[-1],) if src.name in self.flat else tuple(src.shape)
        if len(target) == 1:
            if len(held) == 1:
                self.alias(node)
            else:
                self.new(node, "flatten", nonneg=self.of[src.name].nonneg)
        elif target == (1, 1, held[-1]) and len(held) == 1:
            self.alias(node)
            self.flat.add(node.name)
        elif target == tuple(src.shape):
            self.alias(node)
            if src.name in self.flat:
                self.flat.add(node.name)
        else:
            raise refuse(node, f"Reshape from {list(src.shape)} to {list(target)} is not supported (only to [N], as "
                               "a flatten, and between [1, 1, C] and [C])")

    def on_ZeroPadding2D(self, node: KNode) -> None:
        self.check_format(node)
        pad = [[int(v) for v in row] for row in node.config["padding"]]
        self.new(node, "zeropad2d", fields={"padding": pad}, nonneg=self.of[node.inputs[0]].nonneg)

    def on_Cropping2D(self, node: KNode) -> None:
        self.check_format(node)
        crop = [[int(v) for v in row] for row in node.config["cropping"]]
        self.new(node, "crop2d", fields={"cropping": crop}, nonneg=self.of[node.inputs[0]].nonneg)

    def on_Concatenate(self, node: KNode) -> None:
        rank = len(node.shape) + 1
        axis = int(node.config.get("axis", -1))
        if axis % rank != rank - 1:
            raise refuse(node, f"Concatenate on axis {axis} is not supported (only the channel axis, -1)")
        self.new(node, "concatenate", nonneg=all(self.of[i].nonneg for i in node.inputs))

    def on_Add(self, node: KNode) -> None:
        self.new(node, "add", activation="linear")

    # -- whole-graph checks -------------------------------------------------------------------
    def finish(self) -> None:
        out = self.of[self.g.output]
        if out.kind.role is Role.SOURCE:
            raise NetspecError("the model has no layers between its input and its output")
        for layer in self.layers:
            if not hidden_linear(layer.as_spec_layer(), out.name):
                continue
            readers = [l for l in self.layers if layer.name in l.inputs]
            bad = [r for r in readers if not r.kind.sums_inputs]
            keras_name = layer.keras[-1]
            node = self.g.node(keras_name)
            if layer.kind.sums_inputs:
                raise refuse(node, "a hidden Add must be followed by a ReLU (the add layer gets activation relu)")
            if bad:
                raise refuse(node, f"it has no activation (linear) and feeds {bad[0].type} layer '{bad[0].name}'; "
                                   "a hidden linear layer may only feed Add layers (a residual branch)")
            if len(readers) > 1:
                raise refuse(node, "it has no activation (linear) and feeds several Add layers; only one is supported")


def translate_graph(graph: KGraph) -> Translation:
    """Spec layers for a Keras graph, in topological order, output last; raises NetspecError on anything
    unsupported."""
    return _Translator(graph).run()
