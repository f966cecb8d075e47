"""Layers with learned weights: dense, conv2d, depthwise_conv2d."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Analog, Layer, Role, Shape, ShapeError, TensorRef, conv_geometry, one_spatial, pair, register, taps_per_axis


@register
@dataclass(frozen=True)
class Dense(Layer):
    """y = act(x @ kernel + bias). kernel: [inputs, units]; bias: [units]."""

    type = "dense"
    role = Role.POPULATION
    macs = True
    analog = Analog.DRIVEN
    takes_activation = True
    tensor_fields = ("kernel", "bias")
    tensor_layouts = {"kernel": "[inputs, units]", "bias": "[units]"}

    units: int = 0
    kernel: TensorRef | None = None
    bias: TensorRef | None = None

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        if len(in_shapes[0]) != 1:
            flat = 1
            for d in in_shapes[0]:
                flat *= d
            raise ShapeError("NS301", f"dense needs a flat input [N]; a flatten layer before it would give [{flat}]")
        return (self.units,)

    def tensor_shapes(self, in_shapes):
        return {"kernel": (in_shapes[0][0], self.units), "bias": (self.units,)}

    def connections(self, in_shapes):
        return in_shapes[0][0] * self.units


@dataclass(frozen=True)
class _Conv(Layer):
    role = Role.POPULATION
    macs = True
    analog = Analog.DRIVEN
    takes_activation = True
    tensor_fields = ("kernel", "bias")

    kernel_size: tuple[int, int] = (1, 1)
    strides: tuple[int, int] | None = None
    padding: str | None = None
    kernel: TensorRef | None = None
    bias: TensorRef | None = None

    @classmethod
    def convert(cls, key: str, value: Any) -> Any:
        return pair(value) if key in ("kernel_size", "strides") else value

    @property
    def stride(self) -> tuple[int, int]:
        return self.strides or (1, 1)

    @property
    def pad(self) -> str:
        return self.padding or "valid"

    def spatial(self, in_shapes: list[Shape]) -> tuple[int, int]:
        h, w, _ = one_spatial(in_shapes, self.type)
        try:
            oh = conv_geometry(h, self.kernel_size[0], self.stride[0], self.pad)[0]
            ow = conv_geometry(w, self.kernel_size[1], self.stride[1], self.pad)[0]
        except ShapeError as exc:
            raise ShapeError(
                "NS302", f"kernel {list(self.kernel_size)} is larger than the input {[h, w]} with padding 'valid'", "kernel_size"
            ) from exc
        return oh, ow

    def taps(self, in_shapes: list[Shape]) -> int:
        h, w, _ = in_shapes[0]
        return taps_per_axis(h, self.kernel_size[0], self.stride[0], self.pad) * taps_per_axis(
            w, self.kernel_size[1], self.stride[1], self.pad
        )


@register
@dataclass(frozen=True)
class Conv2D(_Conv):
    """Cross-correlation as Keras. kernel: [kh, kw, in_channels, filters]; bias: [filters]."""

    type = "conv2d"
    tensor_layouts = {"kernel": "[rows, columns, input channels, filters]", "bias": "[filters]"}
    filters: int = 0

    def output_shape(self, in_shapes):
        return (*self.spatial(in_shapes), self.filters)

    def tensor_shapes(self, in_shapes):
        cin = in_shapes[0][2]
        return {"kernel": (*self.kernel_size, cin, self.filters), "bias": (self.filters,)}

    def connections(self, in_shapes):
        return self.taps(in_shapes) * in_shapes[0][2] * self.filters


@register
@dataclass(frozen=True)
class DepthwiseConv2D(_Conv):
    """Per-channel convolution as Keras. kernel: [kh, kw, in_channels, depth_multiplier];
    output channel c*depth_multiplier + m; bias: [in_channels*depth_multiplier]."""

    type = "depthwise_conv2d"
    tensor_layouts = {
        "kernel": "[rows, columns, input channels, depth_multiplier]",
        "bias": "[input channels * depth_multiplier]",
    }
    depth_multiplier: int | None = None

    @property
    def multiplier(self) -> int:
        return self.depth_multiplier or 1

    def output_shape(self, in_shapes):
        return (*self.spatial(in_shapes), in_shapes[0][2] * self.multiplier)

    def tensor_shapes(self, in_shapes):
        cin = in_shapes[0][2]
        return {"kernel": (*self.kernel_size, cin, self.multiplier), "bias": (cin * self.multiplier,)}

    def connections(self, in_shapes):
        return self.taps(in_shapes) * in_shapes[0][2] * self.multiplier
