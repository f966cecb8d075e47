"""Shared helpers of the spec tests, as fixtures: the path notation of the expectation comments, and
a brute-force count of the window taps that fall inside an input (written with plain loops, on purpose
independent of :func:`netspec.spec.layers.conv_geometry`)."""
from __future__ import annotations

import pytest


def render_path(path: tuple) -> str:
    """``("layers", 3, "kernel")`` -> ``layers[3].kernel``; the empty path -> ``-``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "-"


def keras_pad_before(size: int, k: int, s: int, padding: str) -> tuple[int, int]:
    """(output length, padding before) along one axis, from the Keras/TensorFlow definition:
    'valid' -> floor((n - k) / s) + 1 and no padding; 'same' -> ceil(n / s), total padding
    max((out - 1) * s + k - n, 0) of which the smaller half goes first (top/left)."""
    if padding == "valid":
        return (size - k) // s + 1, 0
    out = (size + s - 1) // s
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2


def brute_taps_2d(h: int, w: int, kh: int, kw: int, sh: int, sw: int, padding: str) -> int:
    """Sum over every output position of the kernel taps that land inside the h x w input."""
    oh, top = keras_pad_before(h, kh, sh, padding)
    ow, left = keras_pad_before(w, kw, sw, padding)
    count = 0
    for i in range(oh):
        for j in range(ow):
            for di in range(kh):
                for dj in range(kw):
                    r, c = i * sh - top + di, j * sw - left + dj
                    if 0 <= r < h and 0 <= c < w:
                        count += 1
    return count


@pytest.fixture
def render():
    """The path notation of the expectation comments: ``layers[3].kernel``."""
    return render_path


@pytest.fixture
def brute():
    """The brute-force helpers, for tests that count synapses by hand."""

    class Brute:
        taps_2d = staticmethod(brute_taps_2d)
        geometry = staticmethod(keras_pad_before)

    return Brute
