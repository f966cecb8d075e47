"""Pooling layers: avgpool2d and global_avgpool2d (neurons), maxpool2d (spike gating, no neurons)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Analog, Layer, Role, ShapeError, conv_geometry, one_spatial, pair, register, taps_per_axis


@dataclass(frozen=True)
class _Pool(Layer):
    pool_size: tuple[int, int] = (1, 1)
    strides: tuple[int, int] | None = None
    padding: str | None = None

    @classmethod
    def convert(cls, key: str, value: Any) -> Any:
        return pair(value) if key in ("pool_size", "strides") else value

    @property
    def stride(self) -> tuple[int, int]:
        return self.strides or self.pool_size

    @property
    def pad(self) -> str:
        return self.padding or "valid"

    def output_shape(self, in_shapes):
        h, w, c = one_spatial(in_shapes, self.type)
        try:
            oh = conv_geometry(h, self.pool_size[0], self.stride[0], self.pad)[0]
            ow = conv_geometry(w, self.pool_size[1], self.stride[1], self.pad)[0]
        except ShapeError as exc:
            raise ShapeError(
                "NS302", f"pool {list(self.pool_size)} is larger than the input {[h, w]} with padding 'valid'", "pool_size"
            ) from exc
        return (oh, ow, c)

    def connections(self, in_shapes):
        h, w, c = in_shapes[0]
        return taps_per_axis(h, self.pool_size[0], self.stride[0], self.pad) * taps_per_axis(
            w, self.pool_size[1], self.stride[1], self.pad
        ) * c


@register
@dataclass(frozen=True)
class AvgPool2D(_Pool):
    """Mean over each pool (padded positions excluded, as Keras)."""

    type = "avgpool2d"
    role = Role.POPULATION
    macs = True
    analog = Analog.DRIVEN


@register
@dataclass(frozen=True)
class MaxPool2D(_Pool):
    """Max over each pool; in the SNN, the pool passes the spikes of its most active input so far."""

    type = "maxpool2d"
    role = Role.GATE


@register
@dataclass(frozen=True)
class GlobalAvgPool2D(Layer):
    """[H, W, C] -> [C], mean over rows and columns."""

    type = "global_avgpool2d"
    role = Role.POPULATION
    macs = True
    analog = Analog.DRIVEN

    def output_shape(self, in_shapes):
        return (one_spatial(in_shapes, self.type)[2],)

    def connections(self, in_shapes):
        h, w, c = in_shapes[0]
        return h * w * c
