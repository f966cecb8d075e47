"""Batch normalization that cannot be folded into the layer before it, made an exact per-channel layer.

Pre-activation networks (DenseNet) apply BatchNormalization and a ReLU to a tensor that other layers read as
it is: a concatenation, a max pool, a relu output. Folding such a BN back into the layer before it would change
what the other readers see. When a ReLU follows the BN, the translator makes the pair one spiking layer of
its own: a 1x1 depthwise convolution with BN's per-channel scale as kernel and its shift as bias, and the
ReLU's activation (``relu(s·x + t)`` per channel, exact). Such a layer is marked ``affine``.

That layer needs spikes to read. DenseNet's concatenations are not all spikes: its 3x3 convolutions enter
the concatenation without an activation, and a transition's 1x1 convolution enters an average pool before
it. :func:`split_affine` rewrites every affine layer that reads such linear values, channel range by channel
range of what it reads (concatenations taken apart into their branches):

* a linear convolution gets a copy of itself with this BN folded into it (exact: a BN after a convolution,
  :mod:`.fold`) and the relu;
* a valid average pool over a linear 1x1 convolution is first composed into one convolution (pool-sized
  kernel, the pool's strides, the 1x1 kernel divided by the window size in every tap: exact, both linear);
* a branch of spikes (a population or a relay of populations) gets a 1x1 depthwise slice of the affine layer.

The parts are concatenated under the affine layer's own name, so its readers are unchanged; layers nothing
reads any more (the linear convolutions and the concatenations of linear values) are dropped. The cost: each
reader of a linear branch has its own copy of the branch's convolution (DenseNet121: some 500 copies of
32-filter convolutions), in the ANN reference and in the SNN alike.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import NetspecError
from ..spec.layers import AvgPool2D, Concatenate
from .fold import fold_bn
from .translate import SpecLayer

#: A callback that names a spec layer's Keras layer in an error: ``refuse(layer, why) -> NetspecError``.
Refuse = Callable[[SpecLayer, str], NetspecError]


def linear_form(layer: SpecLayer, by_name: dict[str, SpecLayer], refuse: Refuse) -> dict | None:
    """The weighted layer a branch computes, if it is linear (no activation): ``type``, ``fields``, ``kernel``,
    ``bias`` (or None), ``inputs`` and ``keras``; None for a branch of spikes."""
    if "kernel" in layer.kind.tensor_fields and layer.is_linear:
        return {"type": layer.type, "fields": dict(layer.fields), "kernel": layer.tensors["kernel"],
                "bias": layer.tensors.get("bias"), "inputs": list(layer.inputs), "keras": list(layer.keras)}
    if issubclass(layer.kind, AvgPool2D) and not layer.nonneg:
        src = linear_form(by_name[layer.inputs[0]], by_name, refuse)
        if src is None:
            return None
        pool = [int(v) for v in layer.fields["pool_size"]]
        strides = [int(v) for v in layer.fields.get("strides", pool)]
        one_by_one = (src["type"] == "conv2d" and list(src["fields"]["kernel_size"]) == [1, 1]
                      and list(src["fields"].get("strides", [1, 1])) == [1, 1])
        if layer.fields.get("padding", "valid") != "valid" or not one_by_one:
            raise refuse(layer, "a batch normalization reads this average pool of a linear layer; netspec composes "
                                "only a 'valid' average pool over a linear 1x1 convolution")
        k = np.asarray(src["kernel"], dtype=np.float64)
        kernel = np.broadcast_to(k / (pool[0] * pool[1]), (pool[0], pool[1], *k.shape[2:])).astype(np.float32)
        fields = {"filters": int(k.shape[3]), "kernel_size": pool, "padding": "valid"}
        if strides != [1, 1]:
            fields["strides"] = strides
        return {"type": "conv2d", "fields": fields, "kernel": kernel, "bias": src["bias"], "inputs": src["inputs"],
                "keras": src["keras"] + list(layer.keras)}
    return None


def branches(name: str, by_name: dict[str, SpecLayer]) -> list[SpecLayer]:
    """The layers a tensor is the channel concatenation of, in channel order (itself if not a concatenation)."""
    layer = by_name[name]
    if not issubclass(layer.kind, Concatenate):
        return [layer]
    return [leaf for i in layer.inputs for leaf in branches(i, by_name)]


def split_affine(layers: list[SpecLayer], channels: dict[str, int], unique: Callable[[str], str],
                 refuse: Refuse) -> list[SpecLayer]:
    """``layers`` with every affine layer that reads linear values rewritten (see the module docstring) and the
    layers nothing reads any more removed; ``channels`` (layer name -> output channels) is updated."""
    out: list[SpecLayer] = []
    by_name: dict[str, SpecLayer] = {}
    for layer in layers:
        by_name[layer.name] = layer
        if not layer.affine:
            out.append(layer)
            continue
        leaves = branches(layer.inputs[0], by_name)
        forms = [linear_form(leaf, by_name, refuse) for leaf in leaves]
        if all(f is None for f in forms):
            out.append(layer)
            continue
        scale = np.asarray(layer.tensors["kernel"], dtype=np.float64).reshape(-1)
        shift = np.asarray(layer.tensors["bias"], dtype=np.float64)
        parts, start = [], 0
        for leaf, form in zip(leaves, forms):
            n = channels[leaf.name]
            s, t = scale[start:start + n], shift[start:start + n]
            start += n
            part = _part(layer, leaf, form, s, t, unique)
            channels[part.name] = n
            by_name[part.name] = part
            parts.append(part)
            out.append(part)
        if start != scale.size:
            raise NetspecError(f"internal error: '{layer.name}' has {scale.size} channels, its branches {start}; please report this")
        joined = SpecLayer(layer.name, "concatenate", [p.name for p in parts], keras=list(layer.keras), nonneg=True)
        if len(parts) == 1:  # one branch: the part is the layer (under its name)
            part = parts[0]
            out.pop()
            del by_name[part.name], channels[part.name]
            part.name = layer.name
            joined = part
        by_name[layer.name] = joined
        out.append(joined)
    return _live(out)


def _part(affine: SpecLayer, leaf: SpecLayer, form: dict | None, s: np.ndarray, t: np.ndarray,
          unique: Callable[[str], str]) -> SpecLayer:
    """The affine layer's channels that come from ``leaf``: a copy of its linear convolution with the BN folded
    in, or a 1x1 depthwise slice over its spikes."""
    name = unique(f"{affine.name}_{leaf.name}")
    fields = {"clip": affine.fields["clip"]} if "clip" in affine.fields else {}
    if form is None:
        kernel = s.reshape(1, 1, -1, 1).astype(np.float32)
        return SpecLayer(name, "depthwise_conv2d", [leaf.name], fields={"kernel_size": [1, 1], "padding": "valid", **fields},
                         activation=affine.activation, tensors={"kernel": kernel, "bias": t.astype(np.float32)},
                         keras=list(affine.keras), nonneg=affine.nonneg)
    kernel, bias = fold_bn(form["type"], form["kernel"], form["bias"], s, t)
    return SpecLayer(name, form["type"], form["inputs"], fields={**form["fields"], **fields}, activation=affine.activation,
                     tensors={"kernel": kernel, "bias": bias}, keras=form["keras"] + list(affine.keras),
                     nonneg=affine.nonneg)


def _live(layers: list[SpecLayer]) -> list[SpecLayer]:
    """The layers the output (the last one) depends on, in the same order."""
    by_name = {layer.name: layer for layer in layers}
    need, stack = set(), [layers[-1].name]
    while stack:
        name = stack.pop()
        if name not in need:
            need.add(name)
            stack.extend(by_name[name].inputs)
    return [layer for layer in layers if layer.name in need]
