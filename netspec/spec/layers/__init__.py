"""Layer kinds of the spec, one dataclass each, registered by their ``type``."""
from .base import LAYER_TYPES, Analog, Layer, Normalization, Role, Shape, ShapeError, TensorRef, conv_geometry
from .linear import Conv2D, Dense, DepthwiseConv2D
from .pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from .structure import Add, Concatenate, Crop2D, Flatten, Input, ZeroPad2D

__all__ = [
    "LAYER_TYPES", "Analog", "Layer", "Role", "Normalization", "Shape", "ShapeError", "TensorRef", "conv_geometry",
    "Conv2D", "Dense", "DepthwiseConv2D", "AvgPool2D", "GlobalAvgPool2D", "MaxPool2D",
    "Add", "Concatenate", "Crop2D", "Flatten", "Input", "ZeroPad2D",
]
