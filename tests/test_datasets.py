"""netspec.datasets: npz and MNIST IDX loading, the scaling rule, and every bad-input message."""
from __future__ import annotations

import gzip
import struct
from types import SimpleNamespace

import numpy as np
import pytest

from netspec.datasets import check_fits, load_dataset, read_idx
from netspec.errors import NetspecError


def idx_bytes(arr: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array, written independently of the reader."""
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_mnist(folder, prefix="t10k", n=5, gz=True, labels=True, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 4, 3), dtype=np.uint8)
    ys = rng.integers(0, 10, n, dtype=np.uint8)
    suffix = ".gz" if gz else ""
    write = (lambda p, b: p.write_bytes(gzip.compress(b))) if gz else (lambda p, b: p.write_bytes(b))
    img_path = folder / f"{prefix}-images-idx3-ubyte{suffix}"
    write(img_path, idx_bytes(images))
    if labels:
        write(folder / f"{prefix}-labels-idx1-ubyte{suffix}", idx_bytes(ys))
    return img_path, images, ys


def message(excinfo) -> str:
    return str(excinfo.value)


# -- npz ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("xkey,ykey", [("x", "y"), ("x_test", "y_test"), ("x_train", "y_train")])
def test_npz_keys_and_labels(tmp_path, xkey, ykey):
    x = np.arange(24, dtype=np.float64).reshape(4, 3, 2)
    y = np.array([3, 0, 2, 1], dtype=np.uint8)
    np.savez(tmp_path / "d.npz", **{xkey: x, ykey: y})
    ds = load_dataset(tmp_path / "d.npz", require_labels=True)
    assert ds.x.dtype == np.float32 and ds.x.shape == (4, 3, 2)
    np.testing.assert_array_equal(ds.x, x.astype(np.float32))  # used as given, no scaling
    assert ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.y, [3, 0, 2, 1])
    assert ds.source == str(tmp_path / "d.npz")


def test_npz_key_priority_and_limit(tmp_path):
    np.savez(tmp_path / "d.npz", x_train=np.ones((6, 2)), y_train=np.arange(6), x_test=np.zeros((3, 2)), y_test=[0, 1, 2])
    ds = load_dataset(tmp_path / "d.npz", require_labels=True, limit=2)
    np.testing.assert_array_equal(ds.x, np.zeros((2, 2)))
    np.testing.assert_array_equal(ds.y, [0, 1])
    ds = load_dataset(tmp_path / "d.npz", require_labels=False, keys=("x_train",))
    assert ds.x.shape == (6, 2)


def test_npz_one_hot_and_float_labels(tmp_path):
    onehot = np.eye(4)[[2, 0, 3]]
    np.savez(tmp_path / "a.npz", x=np.zeros((3, 5)), y=onehot)
    np.testing.assert_array_equal(load_dataset(tmp_path / "a.npz", require_labels=True).y, [2, 0, 3])
    np.savez(tmp_path / "b.npz", x=np.zeros((3, 5)), y=np.array([1.0, 2.0, 0.0]))
    np.testing.assert_array_equal(load_dataset(tmp_path / "b.npz", require_labels=True).y, [1, 2, 0])


def test_x_norm_has_no_labels(tmp_path):
    np.savez(tmp_path / "n.npz", x_norm=np.ones((2, 3)))
    assert load_dataset(tmp_path / "n.npz", require_labels=False).y is None
    with pytest.raises(NetspecError) as e:
        load_dataset(tmp_path / "n.npz", require_labels=True)
    assert message(e).startswith(f"{tmp_path / 'n.npz'}: no labels")


@pytest.mark.parametrize("arrays,expected", [
    ({"images": np.zeros((2, 3))}, "no input array; expected one of the keys x, x_test, x_train, x_norm (the file has: images)"),
    ({"x": np.zeros((3, 2)), "y": [0, 1]}, "'y': 2 labels for 3 samples in 'x'"),
    ({"x": np.zeros((3, 2)), "y": [0.5, 1, 2]}, "'y': labels are not whole numbers"),
    ({"x": np.zeros((2, 2)), "y": [[0.5, 0.5], [1, 0]]}, "'y': labels of shape [2, 2] are not one-hot"),
    ({"x": np.zeros((2, 2)), "y": ["a", "b"]}, "'y': labels have dtype <U1; expected integers or one-hot rows"),
    ({"x": np.zeros((2, 2)), "y": [0, -1]}, "'y': labels must be class indices >= 0, found -1"),
    ({"x": np.zeros((2, 2))}, "no labels: expected 'y' next to 'x'"),
    ({"x": np.zeros((0, 2)), "y": np.zeros(0)}, "'x' holds no samples"),
    ({"x": np.zeros(4)}, "'x' has shape [4]; expected [samples, ...]"),
])
def test_npz_errors(tmp_path, arrays, expected):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(NetspecError) as e:
        load_dataset(tmp_path / "bad.npz", require_labels=True)
    assert message(e).startswith(f"{tmp_path / 'bad.npz'}: ")
    assert expected in message(e)


def test_nan_is_refused(tmp_path):
    x = np.zeros((3, 2))
    x[1, 1] = np.nan
    x[2, 0] = np.inf
    np.savez(tmp_path / "nan.npz", x=x)
    with pytest.raises(NetspecError) as e:
        load_dataset(tmp_path / "nan.npz", require_labels=False)
    assert message(e) == f"{tmp_path / 'nan.npz'}: 2 NaN or Inf value(s) in the inputs (first in sample 1)"


def test_corrupt_and_missing_npz(tmp_path):
    (tmp_path / "c.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(NetspecError) as e:
        load_dataset(tmp_path / "c.npz", require_labels=False)
    assert message(e).startswith(f"{tmp_path / 'c.npz'}: not a readable .npz file (")
    # a zip whose member is cut short
    np.savez(tmp_path / "t.npz", x=np.ones((50, 50)))
    blob = (tmp_path / "t.npz").read_bytes()
    (tmp_path / "t.npz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(NetspecError) as e:
        load_dataset(tmp_path / "t.npz", require_labels=False)
    assert "t.npz: " in message(e) and ("corrupt" in message(e) or "not a readable" in message(e))
    with pytest.raises(NetspecError) as e:
        load_dataset(tmp_path / "missing.npz", require_labels=False)
    assert message(e) == f"{tmp_path / 'missing.npz'}: file not found" and e.value.exit_code == 2


def test_object_arrays_are_refused(tmp_path):
    np.savez(tmp_path / "o.npz", x=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(NetspecError) as e:
        load_dataset(tmp_path / "o.npz", require_labels=False)
    assert "'x' cannot be read without pickle" in message(e)


# -- IDX ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
def test_idx_scaling_rule_and_labels(tmp_path, gz):
    path, images, ys = write_mnist(tmp_path, gz=gz)
    ds = load_dataset(path, require_labels=True)
    assert ds.x.shape == (5, 4, 3, 1) and ds.x.dtype == np.float32
    np.testing.assert_allclose(ds.x[..., 0], images / 255.0, rtol=1e-7)
    assert ds.x.max() <= 1.0 and ds.x.min() >= 0.0
    np.testing.assert_array_equal(ds.y, ys)
    assert ds.source == str(path)


def test_folder_prefers_test_files(tmp_path):
    write_mnist(tmp_path, "train", n=7, seed=1)
    _, images, _ = write_mnist(tmp_path, "t10k", n=5, seed=2)
    ds = load_dataset(tmp_path, require_labels=True, limit=3)
    assert len(ds) == 3 and ds.y.shape == (3,)
    np.testing.assert_allclose(ds.x[..., 0], images[:3] / 255.0, rtol=1e-7)
    assert len(load_dataset(tmp_path, require_labels=True, prefer=("train", "t10k"))) == 7
    only_train = tmp_path / "tr"
    only_train.mkdir()
    write_mnist(only_train, "train", n=7, gz=False)
    assert len(load_dataset(only_train, require_labels=True)) == 7
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NetspecError) as e:
        load_dataset(empty, require_labels=False)
    assert message(e).startswith(f"{empty}: no MNIST images file in the folder")


def test_idx_errors(tmp_path):
    path, images, _ = write_mnist(tmp_path, gz=False)
    blob = path.read_bytes()
    bad = tmp_path / "trunc-images-idx3-ubyte"
    bad.write_bytes(blob[:-7])
    with pytest.raises(NetspecError) as e:
        load_dataset(bad, require_labels=False)
    assert message(e) == f"{bad}: truncated IDX file: the header says 5x4x3 values (60 bytes), the file holds 53 bytes of data"
    bad.write_bytes(b"\x00\x00")
    with pytest.raises(NetspecError) as e:
        load_dataset(bad, require_labels=False)
    assert "shorter than the 4-byte magic number" in message(e)
    bad.write_bytes(b"\x12\x34\x08\x03" + blob[4:])
    with pytest.raises(NetspecError) as e:
        load_dataset(bad, require_labels=False)
    assert message(e).startswith(f"{bad}: not an IDX file: wrong magic number 0x12340803")
    bad.write_bytes(blob[:10])
    with pytest.raises(NetspecError) as e:
        load_dataset(bad, require_labels=False)
    assert "truncated IDX header" in message(e)
    gzbad = tmp_path / "x-images-idx3-ubyte.gz"
    gzbad.write_bytes(gzip.compress(blob)[:30])
    with pytest.raises(NetspecError) as e:
        load_dataset(gzbad, require_labels=False)
    assert message(e).startswith(f"{gzbad}: corrupt gzip data")


def test_idx_labels_problems(tmp_path):
    path, _, _ = write_mnist(tmp_path, labels=False)
    assert load_dataset(path, require_labels=False).y is None
    with pytest.raises(NetspecError) as e:
        load_dataset(path, require_labels=True)
    assert message(e) == f"{path}: no labels file next to it (expected t10k-labels-idx1-ubyte.gz)"
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.arange(4)))
    with pytest.raises(NetspecError) as e:
        load_dataset(path, require_labels=True)
    assert message(e) == f"{tmp_path / 't10k-labels-idx1-ubyte'}: 4 labels for 5 images in t10k-images-idx3-ubyte.gz"


def test_labels_file_given_as_images(tmp_path):
    write_mnist(tmp_path, gz=False)
    with pytest.raises(NetspecError) as e:
        load_dataset(tmp_path / "t10k-labels-idx1-ubyte", require_labels=False)
    assert "IDX images must have 3 axes [samples, rows, columns], got 1 (this looks like a labels file" in message(e)


def test_read_idx_other_types(tmp_path):
    arr = np.arange(6, dtype=">i4").reshape(2, 3)
    p = tmp_path / "ints.idx"
    p.write_bytes(bytes([0, 0, 0x0C, 2]) + struct.pack(">II", 2, 3) + arr.tobytes())
    np.testing.assert_array_equal(read_idx(p), arr)
    with pytest.raises(NetspecError) as e:
        load_dataset(p, require_labels=False)
    assert "IDX element type >i4 is not supported" in message(e)


def test_bad_limit(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((2, 2)))
    with pytest.raises(NetspecError):
        load_dataset(tmp_path / "d.npz", require_labels=False, limit=0)


# -- check_fits ---------------------------------------------------------------------------------
def fake_spec(shape, lo=0.0, hi=1.0):
    return SimpleNamespace(name="lenet", input=SimpleNamespace(shape=shape, range=(lo, hi)))


def test_check_fits(tmp_path):
    np.savez(tmp_path / "data.npz", x=np.full((2, 28, 28), 0.5))
    ds = load_dataset(tmp_path / "data.npz", require_labels=False)
    ds.source = "data.npz"
    with pytest.raises(NetspecError) as e:
        check_fits(ds, fake_spec((28, 28, 1)))
    assert message(e) == "data.npz: samples have shape [28, 28], the spec 'lenet' expects [28, 28, 1]"
    check_fits(ds, fake_spec((28, 28)))
    ds.x[1, 3, 3] = 1.5
    ds.x[0, 0, 0] = -0.25
    with pytest.raises(NetspecError) as e:
        check_fits(ds, fake_spec((28, 28)))
    assert message(e).startswith("data.npz: values range from -0.25 to 1.5, outside the spec 'lenet' input range [0, 1]")
    check_fits(ds, fake_spec((28, 28), -1.0, 2.0))
