"""Layers that only route: input, flatten, zeropad2d, crop2d, concatenate, and add (which sums into neurons)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import Analog, Layer, Role, ShapeError, one_spatial, register


@register
@dataclass(frozen=True)
class Input(Layer):
    """The network input; shape, range and encoding come from the spec's top-level ``input``."""

    type = "input"
    role = Role.SOURCE
    arity = (0, 0)

    def output_shape(self, in_shapes):
        raise RuntimeError("the input layer's shape comes from the spec's input block")


@register
@dataclass(frozen=True)
class Flatten(Layer):
    """Channels-last row-major flatten (as Keras)."""

    type = "flatten"
    analog = Analog.PASSES

    def output_shape(self, in_shapes):
        n = 1
        for d in in_shapes[0]:
            n *= d
        return (n,)

    def sources(self, in_shapes):
        return [np.arange(int(np.prod(in_shapes[0])), dtype=np.int64)]


@register
@dataclass(frozen=True)
class ZeroPad2D(Layer):
    """[[top, bottom], [left, right]] rows/columns of zeros."""

    type = "zeropad2d"
    analog = Analog.PASSES
    padding: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))

    @classmethod
    def convert(cls, key: str, value: Any) -> Any:
        return tuple(tuple(int(v) for v in row) for row in value) if key == "padding" else value

    def output_shape(self, in_shapes):
        h, w, c = one_spatial(in_shapes, self.type)
        (t, b), (l, r) = self.padding
        return (h + t + b, w + l + r, c)

    def sources(self, in_shapes):
        h, w, c = in_shapes[0]
        (t, b), (l, r) = self.padding
        src = np.full((h + t + b, w + l + r, c), -1, dtype=np.int64)
        src[t:t + h, l:l + w, :] = np.arange(h * w * c).reshape(h, w, c)
        return [src.ravel()]


@register
@dataclass(frozen=True)
class Crop2D(Layer):
    """Drops [[top, bottom], [left, right]] rows/columns at the edges (Keras Cropping2D)."""

    type = "crop2d"
    analog = Analog.PASSES
    cropping: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))

    @classmethod
    def convert(cls, key: str, value: Any) -> Any:
        return tuple(tuple(int(v) for v in row) for row in value) if key == "cropping" else value

    def output_shape(self, in_shapes):
        h, w, c = one_spatial(in_shapes, self.type)
        (t, b), (l, r) = self.cropping
        if t + b >= h or l + r >= w:
            raise ShapeError("NS301", f"cropping {[list(p) for p in self.cropping]} leaves nothing of a {h}x{w} image",
                             "cropping")
        return (h - t - b, w - l - r, c)

    def sources(self, in_shapes):
        h, w, c = in_shapes[0]
        (t, b), (l, r) = self.cropping
        return [np.arange(h * w * c, dtype=np.int64).reshape(h, w, c)[t:h - b, l:w - r, :].ravel()]


@register
@dataclass(frozen=True)
class Concatenate(Layer):
    """Join inputs along ``axis`` of the per-sample shape (default -1, channels)."""

    type = "concatenate"
    analog = Analog.PASSES
    arity = (2, None)
    axis: int | None = None

    def resolved_axis(self, rank: int) -> int:
        axis = -1 if self.axis is None else self.axis
        if not -rank <= axis < rank:
            raise ShapeError("NS305", f"axis {axis} is out of range for inputs of rank {rank}", "axis")
        return axis % rank

    def output_shape(self, in_shapes):
        ranks = {len(s) for s in in_shapes}
        if len(ranks) != 1:
            raise ShapeError("NS303", "cannot concatenate inputs of different ranks", "inputs")
        axis = self.resolved_axis(len(in_shapes[0]))
        rest = {tuple(d for i, d in enumerate(s) if i != axis) for s in in_shapes}
        if len(rest) != 1:
            raise ShapeError(
                "NS303",
                f"cannot concatenate on axis {axis}: the inputs differ on another axis",
                "inputs",
            )
        out = list(in_shapes[0])
        out[axis] = sum(s[axis] for s in in_shapes)
        return tuple(out)

    def sources(self, in_shapes):
        axis = self.resolved_axis(len(in_shapes[0]))
        out = self.output_shape(in_shapes)
        parts, start = [], 0
        for shape in in_shapes:
            src = np.full(out, -1, dtype=np.int64)
            where = [slice(None)] * len(out)
            where[axis] = slice(start, start + shape[axis])
            src[tuple(where)] = np.arange(int(np.prod(shape))).reshape(shape)
            parts.append(src.ravel())
            start += shape[axis]
        return parts


@register
@dataclass(frozen=True)
class Add(Layer):
    """Element-wise sum of equal shapes, then the activation; one population receives every projection."""

    type = "add"
    role = Role.POPULATION
    sums_inputs = True
    analog = Analog.DRIVEN
    macs = True
    takes_activation = True
    arity = (2, None)

    def output_shape(self, in_shapes):
        if len(set(in_shapes)) != 1:
            raise ShapeError("NS304", "cannot add inputs of different shapes", "inputs")
        return in_shapes[0]

    def connections(self, in_shapes):
        n = 1
        for d in in_shapes[0]:
            n *= d
        return n * len(in_shapes)
