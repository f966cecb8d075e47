"""Generated small Keras models, exported end to end (issue 22): within the supported layers, with batch
normalization wherever the exporter folds it (after every Conv2D, DepthwiseConv2D and Dense, before its
activation), branches joined by Concatenate or Add (one branch possibly linear, a residual) and pooling
after the join, every model exports, validates, builds (runtime), and the exported spec's numpy reference
reproduces Keras's own outputs."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from graphs import CASES, examples
from netspec.brian import build
from netspec.errors import NetspecError
from netspec.export import export_model
from netspec.reference import forward
from netspec.spec import load_spec

pytestmark = pytest.mark.keras

_post = st.sampled_from(["bn-relu", "relu-arg", "bn-activation", "relu-layer"])


@st.composite
def keras_recipes(draw):
    """A model as plain data: input shape and a list of steps (built by :func:`make_model`)."""
    shape = (draw(st.integers(5, 8)), draw(st.integers(5, 8)), draw(st.integers(1, 2)))
    steps = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["conv", "dwconv", "pool", "zeropad", "branches", "branches"]))
        if kind == "conv":
            steps.append(("conv", draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 2)),
                          draw(st.sampled_from(["same", "valid"])), draw(st.booleans()), draw(_post)))
        elif kind == "dwconv":
            steps.append(("dwconv", draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(_post)))
        elif kind == "pool":
            steps.append(("pool", draw(st.sampled_from(["max", "avg"])), draw(st.integers(1, 2)),
                          draw(st.sampled_from(["same", "valid"]))))
        elif kind == "zeropad":
            steps.append(("zeropad", draw(st.integers(0, 1)), draw(st.integers(1, 2))))
        else:
            join = draw(st.sampled_from(["concat", "add"]))
            n = draw(st.integers(2, 3))
            posts = [draw(_post) for _ in range(n)]
            if join == "add" and draw(st.booleans()):
                posts[-1] = "bn-linear"  # a residual branch: BN folded, no activation, summed into the Add
            steps.append(("branches", join, draw(st.integers(1, 3)), posts,
                          draw(st.sampled_from([None, "max", "avg"]))))
    head = draw(st.sampled_from(["flatten", "global"]))  # global average pooling after a join ends many
    hidden = draw(st.sampled_from([0, 3]))
    return shape, steps, head, hidden, draw(st.integers(0, 2**16))


def make_model(keras, recipe):
    L = keras.layers
    shape, steps, head, hidden, seed = recipe
    count = iter(range(1000))

    def name(kind):
        return f"{kind}{next(count)}"

    def finish(t, post):
        if post in ("bn-relu", "bn-activation", "bn-linear"):
            t = L.BatchNormalization(name=name("bn"))(t)
        if post == "bn-activation":
            return L.Activation("relu", name=name("act"))(t)
        if post in ("bn-relu", "relu-layer"):
            return L.ReLU(name=name("relu"))(t)
        return t

    inp = keras.Input(shape)
    t = inp
    for step in steps:
        size = min(t.shape[1], t.shape[2])
        if step[0] == "conv":
            _, filters, k, s, pad, bias, post = step
            bias = bias or not post.startswith("bn")  # without bias and BN a conv could be dead everywhere
            k = min(k, size)
            t = finish(L.Conv2D(filters, k, strides=s, padding=pad, use_bias=bias, name=name("conv"),
                                activation="relu" if post == "relu-arg" else None)(t), post)
        elif step[0] == "dwconv":
            _, k, s, mult, post = step
            t = finish(L.DepthwiseConv2D(min(k, size), strides=s, depth_multiplier=mult, padding="same", name=name("dw"),
                                         activation="relu" if post == "relu-arg" else None)(t), post)
        elif step[0] == "pool":
            _, kind, p, pad = step
            cls = L.MaxPooling2D if kind == "max" else L.AveragePooling2D
            t = cls(min(p, size), strides=1 if p == 1 else None, padding=pad, name=name("pool"))(t)
        elif step[0] == "zeropad":
            t = L.ZeroPadding2D(((step[1], 0), (0, step[2])), name=name("pad"))(t)
        else:
            _, join, filters, posts, pool = step
            heads = [finish(L.Conv2D(filters, 1 + k % 3, padding="same", name=name("conv"),
                                     activation="relu" if post == "relu-arg" else None)(t), post)
                     for k, post in enumerate(posts)]
            if join == "concat":
                t = L.Concatenate(name=name("cat"))(heads)
            else:
                t = L.ReLU(name=name("relu"))(L.Add(name=name("add"))(heads))
            if pool is not None:  # InceptionV3's pattern: a 3x3, stride 1, same pool over the joined branches
                cls = L.MaxPooling2D if pool == "max" else L.AveragePooling2D
                t = cls(3, strides=1, padding="same", name=name("pool"))(t)
    t = L.Flatten(name=name("flat"))(t) if head == "flatten" else L.GlobalAveragePooling2D(name=name("gap"))(t)
    if hidden:
        t = L.ReLU(name=name("relu"))(L.BatchNormalization(name=name("bn"))(L.Dense(hidden, name=name("dense"))(t)))
    out = L.Softmax(name=name("softmax"))(L.Dense(3, name=name("dense"))(t))
    model = keras.Model(inp, out)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, c).astype(np.float32))
            layer.beta.assign(rng.uniform(0.1, 0.5, c).astype(np.float32))  # a positive shift: no layer dead on
            # every calibration sample (the exporter refuses such a layer, as it should, naming it)
            layer.moving_mean.assign(rng.normal(0, 0.3, c).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.3, 2.0, c).astype(np.float32))
        elif getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.uniform(0.05, 0.3, layer.bias.shape).astype(np.float32))
    return model


@settings(max_examples=examples(0.03))
@given(keras_recipes())
def test_generated_keras_models_export_validate_build_and_match_keras(keras_lib, recipe):
    keras = keras_lib
    model = make_model(keras, recipe)
    x = np.random.default_rng(recipe[-1]).uniform(0, 1, (6, *recipe[0])).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model.save(tmp / "m.keras")
        np.savez(tmp / "cal.npz", x=x)
        try:
            path = export_model(tmp / "m.keras", tmp / "net.yaml", tmp / "cal.npz", progress=False)
        except NetspecError as exc:
            # a random ReLU layer can be silent on every calibration sample: the exporter refuses it by name,
            # as it should; such a model says nothing about the conversion
            assume("has no non-zero activation on the" not in str(exc))
            raise
        spec = load_spec(path)
        CASES["keras-export"] += 1
        assert build(spec, tmp / "b").script.exists()
        want = np.asarray(model.predict(x, verbose=0), dtype=np.float64)
        got = forward(spec, x)[spec.order[-1]]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
