"""Keras layers shipped by netspec for training networks that convert to spiking networks with few time steps.

:class:`QuantizedClip` is the quantization-clip-floor-shift activation (QCFS) of Bu et al., "Optimal ANN-SNN
conversion for high-accuracy and ultra-low-latency spiking neural networks" (ICLR 2022)::

    y = clip / levels * min(max(floor(x * levels / clip + 1/2), 0), levels)

with a trainable ``clip`` (λ) and ``levels`` (L) steps between 0 and ``clip``. Used in place of ReLU, it
trains the network on activations that an integrate-and-fire neuron with threshold λ, reset by subtraction
and a membrane starting at λ/2 reproduces in about L time steps; ``netspec export`` converts it with
λ = the trained clip (no percentile), writes ``clip`` and ``levels`` on the layer and starts its neurons at
``initial: 0.5``.

This module imports Keras (TensorFlow); the rest of netspec never imports it, so ``import netspec`` works
without TensorFlow and ``import netspec.keras`` is what needs it. Importing it registers the layer with Keras,
so that ``keras.models.load_model`` reads a model that uses it (``netspec export`` imports it itself).
"""
from __future__ import annotations

import math

import keras
from keras import ops

__all__ = ["QuantizedClip", "SHIFT"]

#: The shift φ of the clip-floor-shift activation: 1/2, the value the paper shows makes the expected
#: conversion error zero (with membranes starting at half the threshold).
SHIFT = 0.5
#: The smallest value the trainable clip is kept at (a clip of 0 would divide by zero).
MIN_CLIP = 1e-3


class _AtLeast(keras.constraints.Constraint):
    """Keeps a weight at or above ``floor`` after every update (the clip must stay positive)."""

    def __init__(self, floor: float):
        self.floor = float(floor)

    def __call__(self, w):
        return ops.maximum(w, self.floor)

    def get_config(self):
        return {"floor": self.floor}


def _floor_ste(z):
    """floor(z) in the forward pass, the identity in the backward pass (straight-through estimator)."""
    return z + ops.stop_gradient(ops.floor(z) - z)


@keras.saving.register_keras_serializable(package="netspec")
class QuantizedClip(keras.layers.Layer):
    """The QCFS activation: ``clip / levels * clip(floor(x * levels / clip + 1/2), 0, levels)``, elementwise.

    Parameters
    ----------
    levels : int
        L, the number of quantization steps between 0 and ``clip`` (the paper uses 4 to 16; the SNN
        reproduces the activation in about L time steps). An integer >= 1.
    initial_clip : float
        The starting value of the trainable clip λ (> 0). It should be of the order of the layer's largest
        activations (on MNIST with inputs in [0, 1], 1 to 4).
    **kwargs
        Keras layer arguments (``name``, ``dtype``, ...).

    Notes
    -----
    The floor has a straight-through gradient (the identity) and the clip to ``[0, levels]`` is applied to the
    floored value, as in the paper's implementation: where that value is within ``[0, levels]`` the gradient
    with respect to ``x`` is 1 and with respect to ``clip`` it is ``q - x / clip`` (``q`` the quantized value
    over ``clip``); above, 0 and 1; below, 0 and 0. The clip is one
    trainable scalar per layer, kept at least ``MIN_CLIP``.
    """

    def __init__(self, levels: int = 8, initial_clip: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise ValueError(f"QuantizedClip '{self.name}': levels must be an integer >= 1, got {levels!r}")
        initial_clip = float(initial_clip)
        if not (math.isfinite(initial_clip) and initial_clip > 0):
            raise ValueError(f"QuantizedClip '{self.name}': initial_clip must be a finite number > 0, got {initial_clip!r}")
        self.levels = levels
        self.initial_clip = initial_clip

    def build(self, input_shape):
        self.clip = self.add_weight(name="clip", shape=(), initializer=keras.initializers.Constant(self.initial_clip),
                                    trainable=True, constraint=_AtLeast(MIN_CLIP))

    def call(self, x):
        clip = ops.cast(self.clip, x.dtype)
        q = _floor_ste(x * (self.levels / clip) + SHIFT) / self.levels
        return clip * ops.clip(q, 0.0, 1.0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "levels": self.levels, "initial_clip": self.initial_clip}
