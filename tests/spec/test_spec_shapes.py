"""Shape inference per layer kind against shapes known from Keras's conventions, and connection
(synapse) counts against brute-force counts made with explicit loops over outputs and kernel taps."""
from __future__ import annotations

import itertools

import pytest

from netspec.spec.layers import (
    Add, AvgPool2D, Concatenate, Conv2D, Dense, DepthwiseConv2D, Flatten, GlobalAvgPool2D, MaxPool2D,
    ShapeError, ZeroPad2D, conv_geometry,
)


def conv(k, s=None, padding=None, filters=3):
    return Conv2D("c", ("x",), kernel_size=k, strides=s, padding=padding, filters=filters)


# -- shapes -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "in_shape, layer, out_shape",
    [
        # conv2d, as keras.layers.Conv2D: 'same' -> ceil(n / s), 'valid' -> floor((n - k) / s) + 1
        ((7, 7, 1), conv((3, 3), (2, 2), "same", 4), (4, 4, 4)),
        ((28, 28, 1), conv((5, 5), None, "valid", 8), (24, 24, 8)),
        ((28, 28, 1), conv((5, 5), None, None, 8), (24, 24, 8)),  # padding defaults to valid
        ((28, 28, 3), conv((3, 3), (2, 2), "valid", 2), (13, 13, 2)),
        ((10, 9, 2), conv((3, 2), (1, 3), "same"), (10, 3, 3)),
        ((10, 9, 2), conv((3, 2), (2, 3), "valid"), (4, 3, 3)),
        ((5, 5, 1), conv((5, 5), None, "valid"), (1, 1, 3)),
        ((2, 2, 1), conv((4, 4), None, "same"), (2, 2, 3)),  # 'same' allows a kernel larger than the input
        # depthwise: channels * depth_multiplier
        ((8, 8, 3), DepthwiseConv2D("d", ("x",), kernel_size=(3, 3), depth_multiplier=2), (6, 6, 6)),
        ((8, 8, 3), DepthwiseConv2D("d", ("x",), kernel_size=(3, 3), padding="same", strides=(2, 2)), (4, 4, 3)),
        # pooling: strides default to the pool size
        ((5, 5, 2), AvgPool2D("p", ("x",), pool_size=(3, 3), strides=(2, 2), padding="same"), (3, 3, 2)),
        ((5, 5, 2), MaxPool2D("p", ("x",), pool_size=(3, 3), strides=(2, 2), padding="valid"), (2, 2, 2)),
        ((24, 24, 6), MaxPool2D("p", ("x",), pool_size=(2, 2)), (12, 12, 6)),
        ((7, 7, 6), MaxPool2D("p", ("x",), pool_size=(2, 2)), (3, 3, 6)),
        ((7, 7, 6), AvgPool2D("p", ("x",), pool_size=(2, 2), padding="same"), (4, 4, 6)),
        ((7, 5, 6), GlobalAvgPool2D("g", ("x",)), (6,)),
        # re-indexing
        ((4, 5, 2), ZeroPad2D("z", ("x",), padding=((1, 2), (0, 3))), (7, 8, 2)),
        ((4, 5, 2), Flatten("f", ("x",)), (40,)),
        ((40,), Flatten("f", ("x",)), (40,)),
        ((40,), Dense("d", ("x",), units=7), (7,)),
    ],
    ids=lambda v: None if isinstance(v, tuple) else type(v).__name__,
)
def test_output_shape(in_shape, layer, out_shape):
    assert layer.output_shape([in_shape]) == out_shape


def test_concatenate_joins_on_the_chosen_axis():
    cat = Concatenate("c", ("a", "b"))
    assert cat.output_shape([(4, 4, 3), (4, 4, 5)]) == (4, 4, 8)  # default axis -1
    assert Concatenate("c", ("a", "b"), axis=0).output_shape([(2, 4, 3), (5, 4, 3)]) == (7, 4, 3)
    assert Concatenate("c", ("a", "b"), axis=-2).output_shape([(4, 1, 3), (4, 2, 3)]) == (4, 3, 3)
    assert Concatenate("c", ("a", "b", "c"), axis=0).output_shape([(2,), (3,), (4,)]) == (9,)
    with pytest.raises(ShapeError) as info:
        cat.output_shape([(4, 4, 3), (2, 2, 3)])
    assert (info.value.code, info.value.field) == ("NS303", "inputs")
    with pytest.raises(ShapeError) as info:
        cat.output_shape([(4, 4, 3), (48,)])
    assert info.value.code == "NS303"
    with pytest.raises(ShapeError) as info:
        Concatenate("c", ("a", "b"), axis=3).output_shape([(4, 4, 3), (4, 4, 3)])
    assert (info.value.code, info.value.field) == ("NS305", "axis")


def test_add_needs_equal_shapes():
    assert Add("s", ("a", "b")).output_shape([(3, 3, 2), (3, 3, 2)]) == (3, 3, 2)
    with pytest.raises(ShapeError) as info:
        Add("s", ("a", "b")).output_shape([(3, 3, 2), (3, 3, 1)])
    assert info.value.code == "NS304"


@pytest.mark.parametrize(
    "layer, in_shape, code, field",
    [
        (conv((3, 3)), (2, 5, 1), "NS302", "kernel_size"),
        (MaxPool2D("p", ("x",), pool_size=(3, 3)), (5, 2, 1), "NS302", "pool_size"),
        (conv((1, 1)), (9,), "NS301", None),
        (Dense("d", ("x",), units=2), (3, 3, 1), "NS301", None),
        (GlobalAvgPool2D("g", ("x",)), (9,), "NS301", None),
        (ZeroPad2D("z", ("x",), padding=((1, 1), (1, 1))), (9,), "NS301", None),
    ],
)
def test_shape_errors(layer, in_shape, code, field):
    with pytest.raises(ShapeError) as info:
        layer.output_shape([in_shape])
    assert (info.value.code, info.value.field) == (code, field)


@pytest.mark.parametrize(
    "size, k, s, padding",
    [(n, k, s, p) for n in (1, 4, 5, 7, 28) for k in (1, 2, 3, 5) for s in (1, 2, 3) for p in ("same", "valid") if p == "same" or k <= n],
)
def test_conv_geometry_matches_keras_definition(size, k, s, padding, brute):
    out, before = brute.geometry(size, k, s, padding)
    got_out, got_before, got_after = conv_geometry(size, k, s, padding)
    assert (got_out, got_before) == (out, before)
    if padding == "same":
        # Keras: the extra row/column of an odd total padding goes after (bottom/right)
        assert got_after - got_before in (0, 1)
        assert (out - 1) * s + k <= size + got_before + got_after
    else:
        assert got_after == 0 and (out - 1) * s + k <= size


def test_tensor_shapes_follow_keras_layouts():
    assert Dense("d", ("x",), units=5).tensor_shapes([(12,)]) == {"kernel": (12, 5), "bias": (5,)}
    assert conv((3, 2), filters=4).tensor_shapes([(9, 9, 3)]) == {"kernel": (3, 2, 3, 4), "bias": (4,)}
    dw = DepthwiseConv2D("d", ("x",), kernel_size=(3, 3), depth_multiplier=2)
    assert dw.tensor_shapes([(9, 9, 3)]) == {"kernel": (3, 3, 3, 2), "bias": (6,)}


# -- connection counts --------------------------------------------------------------------------------
CONV_CASES = [
    # (h, w, cin, kernel, strides, padding)
    (5, 5, 1, (3, 3), (1, 1), "same"),
    (5, 5, 2, (3, 3), (1, 1), "valid"),
    (7, 6, 2, (3, 2), (2, 2), "same"),
    (6, 7, 1, (2, 2), (2, 1), "same"),  # even kernel: the padding is uneven
    (4, 4, 3, (5, 5), (1, 1), "same"),  # kernel larger than the input
    (9, 8, 1, (4, 3), (3, 2), "valid"),
    (10, 10, 1, (3, 3), (1, 1), "same"),  # small-conv's conv1
]


@pytest.mark.parametrize("h, w, cin, k, s, padding", CONV_CASES)
def test_conv_connections_by_brute_force(h, w, cin, k, s, padding, brute):
    filters = 3
    layer = Conv2D("c", ("x",), kernel_size=k, strides=s, padding=padding, filters=filters)
    oh, top = brute.geometry(h, k[0], s[0], padding)
    ow, left = brute.geometry(w, k[1], s[1], padding)
    count = 0
    # one synapse per (output neuron, input neuron) pair that a kernel tap inside the input joins
    for i, j, f in itertools.product(range(oh), range(ow), range(filters)):
        for di, dj, c in itertools.product(range(k[0]), range(k[1]), range(cin)):
            r, col = i * s[0] - top + di, j * s[1] - left + dj
            if 0 <= r < h and 0 <= col < w:
                count += 1
    assert layer.output_shape([(h, w, cin)]) == (oh, ow, filters)
    assert layer.connections([(h, w, cin)]) == count
    if padding == "same" and k != (1, 1):
        # padded taps do not count: fewer than every output position times the whole kernel
        assert count < oh * ow * filters * k[0] * k[1] * cin


@pytest.mark.parametrize("h, w, cin, k, s, padding", CONV_CASES)
@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_connections_by_brute_force(h, w, cin, k, s, padding, multiplier, brute):
    layer = DepthwiseConv2D("d", ("x",), kernel_size=k, strides=s, padding=padding, depth_multiplier=multiplier)
    # each output channel c*m+q reads input channel c only
    assert layer.connections([(h, w, cin)]) == brute.taps_2d(h, w, *k, *s, padding) * cin * multiplier


@pytest.mark.parametrize("kind", [AvgPool2D, MaxPool2D])
@pytest.mark.parametrize(
    "h, w, c, pool, s, padding",
    [(6, 6, 2, (2, 2), None, "valid"), (5, 5, 1, (3, 3), (2, 2), "same"), (7, 5, 3, (2, 3), (1, 2), "same"), (7, 7, 1, (3, 3), (2, 2), "valid")],
)
def test_pool_connections_by_brute_force(kind, h, w, c, pool, s, padding, brute):
    layer = kind("p", ("x",), pool_size=pool, strides=s, padding=padding)
    stride = s or pool
    assert layer.connections([(h, w, c)]) == brute.taps_2d(h, w, *pool, *stride, padding) * c


def test_other_connection_counts():
    assert Dense("d", ("x",), units=7).connections([(12,)]) == 12 * 7
    assert GlobalAvgPool2D("g", ("x",)).connections([(3, 4, 5)]) == 3 * 4 * 5
    assert Add("s", ("a", "b", "c")).connections([(2, 2, 3)] * 3) == 3 * 12
    assert Flatten("f", ("x",)).connections([(3, 3, 2)]) == 0
    assert ZeroPad2D("z", ("x",), padding=((1, 1), (1, 1))).connections([(3, 3, 2)]) == 0
    assert Concatenate("c", ("a", "b")).connections([(3,), (4,)]) == 0


def test_brute_force_counter_itself(brute):
    """The reference counter on cases small enough to count on paper: a 3x3 kernel 'same' on a 3x3
    input sees 4 cells from a corner, 6 from an edge, 9 from the centre: 4*4 + 4*6 + 9 = 49."""
    assert brute.taps_2d(3, 3, 3, 3, 1, 1, "same") == 49
    assert brute.taps_2d(3, 3, 3, 3, 1, 1, "valid") == 9
    assert brute.taps_2d(4, 4, 2, 2, 2, 2, "valid") == 16
    # 'same' with an even kernel pads after: 4 outputs over 4 cells, kernel 2, the last sees 1 cell
    assert brute.taps_2d(1, 4, 1, 2, 1, 1, "same") == 7
