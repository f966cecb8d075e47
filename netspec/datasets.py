"""Loading input data (and labels) for export calibration and for ``netspec run``.

Two formats are read:

* **.npz** (numpy archive). Inputs are the first of ``keys`` present (by default ``x``, ``x_test``,
  ``x_train``, ``x_norm``); they are used as given, converted to float32 (no scaling). The labels are
  the array named like the inputs with ``y`` for ``x`` (``x`` -> ``y``, ``x_test`` -> ``y_test``,
  ``x_train`` -> ``y_train``; ``x_norm`` has none): integers ``[N]``, or one-hot ``[N, classes]``
  (exactly one 1 per row, the rest 0), converted to int64 class indices. Floating-point labels are
  accepted when every value is a whole number.
* **MNIST IDX** files (``t10k-images-idx3-ubyte``, optionally gzipped), or a folder holding them (the
  ``t10k`` test files are preferred, otherwise the ``train`` files; ``prefer`` changes the order). The
  labels file is found next to the images file by name (``images`` -> ``labels``, ``idx3`` -> ``idx1``, with or without ``.gz``).
  **Scaling rule:** IDX images are unsigned bytes; they are divided by 255, giving float32 values in
  [0, 1], and a trailing channel axis is added, so a 28x28 image becomes ``[28, 28, 1]``. Only unsigned-
  byte IDX files (element type 0x08) are read.

Every problem is a :class:`~netspec.errors.NetspecError` naming the file and what is wrong.
"""
from __future__ import annotations

import gzip
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import NetspecError

#: npz input key -> the labels key that goes with it.
LABEL_KEYS = {"x": "y", "x_test": "y_test", "x_train": "y_train"}
#: IDX element type codes (third byte of the magic number) -> numpy big-endian dtype names.
_IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class Dataset:
    """Samples and (optionally) their labels.

    Attributes
    ----------
    x : np.ndarray
        float32, ``[N, *sample_shape]``, channels-last.
    y : np.ndarray | None
        int64 class indices ``[N]``, or None when the data has no labels.
    source : str
        Path of the file the inputs were read from (for messages and provenance hashes).
    """

    x: np.ndarray
    y: np.ndarray | None
    source: str

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x.shape[1:])

    def __len__(self) -> int:
        return int(self.x.shape[0])


def load_dataset(
    path: str | Path,
    *,
    require_labels: bool,
    limit: int | None = None,
    keys: tuple[str, ...] = ("x", "x_test", "x_train", "x_norm"),
    prefer: tuple[str, ...] = ("t10k", "train"),
) -> Dataset:
    """Read a dataset from an .npz file, an MNIST IDX images file or a folder of IDX files.

    Parameters
    ----------
    path : str | Path
        The .npz, the IDX images file (``.gz`` or raw) or the folder holding the IDX files.
    require_labels : bool
        Raise if the data has no labels (``run`` needs them; export calibration does not).
    limit : int | None
        Keep only the first ``limit`` samples.
    keys : tuple of str
        npz keys tried for the inputs, in order.
    prefer : tuple of str
        For a folder: the IDX file prefixes tried, in order (export calibration prefers ``train``).

    Returns
    -------
    Dataset

    Raises
    ------
    NetspecError
        Missing or unreadable file, corrupt data, no known key, labels that do not fit, NaN/Inf values.
    """
    if limit is not None and limit < 1:
        raise NetspecError(f"{path}: the sample limit must be at least 1, got {limit}", 2)
    p = Path(path)
    if not p.exists():
        raise NetspecError(f"{path}: file not found", 2)
    if p.is_dir():
        images = _idx_in_folder(p, prefer)
        ds = _load_idx(images, require_labels, limit)
    elif _is_npz(p):
        ds = _load_npz(p, str(path), require_labels, limit, keys)
    else:
        ds = _load_idx(p, require_labels, limit)
    _check_finite(ds)
    return ds


def check_fits(dataset: Dataset, spec) -> None:
    """Check that the data can be fed to a spec: same sample shape, values inside ``spec.input.range``.

    Raises
    ------
    NetspecError
        ``data.npz: samples have shape [28, 28], the spec 'lenet' expects [28, 28, 1]``, or the observed
        minimum/maximum when values fall outside the range.
    """
    want = tuple(spec.input.shape)
    if dataset.sample_shape != want:
        raise NetspecError(
            f"{dataset.source}: samples have shape {list(dataset.sample_shape)}, the spec '{spec.name}' expects {list(want)}"
        )
    lo, hi = spec.input.range
    if len(dataset) == 0:
        return
    xmin, xmax = float(dataset.x.min()), float(dataset.x.max())
    slack = 1e-6 * max(1.0, hi - lo)
    if xmin < lo - slack or xmax > hi + slack:
        raise NetspecError(
            f"{dataset.source}: values range from {xmin:g} to {xmax:g}, outside the spec '{spec.name}' input range "
            f"[{lo:g}, {hi:g}] (scale the data, or edit input.range if the model was trained on such values)"
        )


# -- npz --------------------------------------------------------------------------------------------
def _is_npz(p: Path) -> bool:
    if p.suffix.lower() == ".npz":
        return True
    try:
        with open(p, "rb") as fh:
            return fh.read(4) == b"PK\x03\x04"
    except OSError as exc:
        raise NetspecError(f"{p}: cannot read: {exc.strerror}", 2) from exc


def _load_npz(p: Path, name: str, require_labels: bool, limit: int | None, keys: tuple[str, ...]) -> Dataset:
    try:
        npz = np.load(p, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise NetspecError(f"{name}: not a readable .npz file ({_reason(exc)})") from exc
    try:
        with npz:
            present = list(npz.files)
            xkey = next((k for k in keys if k in present), None)
            if xkey is None:
                raise NetspecError(
                    f"{name}: no input array; expected one of the keys {', '.join(keys)} (the file has: {', '.join(present) or 'nothing'})"
                )
            x = _npz_array(npz, xkey, name)
            ykey = LABEL_KEYS.get(xkey)
            y = _npz_array(npz, ykey, name) if ykey in present else None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise NetspecError(f"{name}: corrupt .npz file ({_reason(exc)})") from exc
    if x.ndim < 2:
        raise NetspecError(f"{name}: '{xkey}' has shape {list(x.shape)}; expected [samples, ...] with at least 2 axes")
    if x.shape[0] == 0:
        raise NetspecError(f"{name}: '{xkey}' holds no samples")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_) or np.iscomplexobj(x):
        raise NetspecError(f"{name}: '{xkey}' has dtype {x.dtype}; expected numbers")
    if y is None:
        if require_labels:
            expect = f"'{ykey}'" if ykey else f"labels (inputs under '{xkey}' have none; use x/y, x_test/y_test or x_train/y_train)"
            raise NetspecError(f"{name}: no labels: expected {expect} next to '{xkey}' (the file has: {', '.join(present)})")
    else:
        y = _labels(y, f"{name}: '{ykey}'", x.shape[0], f"'{xkey}'")
    if limit is not None:
        x = x[:limit]
        y = None if y is None else y[:limit]
    return Dataset(np.ascontiguousarray(x, dtype=np.float32), y, name)


def _npz_array(npz, key: str, name: str) -> np.ndarray:
    try:
        return npz[key]
    except ValueError as exc:  # object arrays need pickle, which is refused
        raise NetspecError(f"{name}: '{key}' cannot be read without pickle (object array?); save plain numeric arrays") from exc


def _labels(y: np.ndarray, where: str, n: int, what: str) -> np.ndarray:
    """Integer or one-hot labels -> int64 class indices, checked against the sample count ``n``."""
    if y.ndim == 2 and y.shape[1] > 1:
        if not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
            raise NetspecError(f"{where}: labels have dtype {y.dtype}; expected integers or one-hot rows")
        ones = y == 1
        if not np.all(ones | (y == 0)) or not np.all(ones.sum(axis=1) == 1):
            raise NetspecError(f"{where}: labels of shape {list(y.shape)} are not one-hot (each row must hold one 1 and zeros)")
        y = np.argmax(y, axis=1)
    elif y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise NetspecError(f"{where}: labels have shape {list(y.shape)}; expected [samples] or one-hot [samples, classes]")
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise NetspecError(f"{where}: labels are not whole numbers (dtype {y.dtype}); expected class indices or one-hot rows")
    elif not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise NetspecError(f"{where}: labels have dtype {y.dtype}; expected integers or one-hot rows")
    if y.shape[0] != n:
        raise NetspecError(f"{where}: {y.shape[0]} labels for {n} samples in {what}")
    if y.size and y.min() < 0:
        raise NetspecError(f"{where}: labels must be class indices >= 0, found {int(y.min())}")
    return y.astype(np.int64)


# -- IDX --------------------------------------------------------------------------------------------
def _idx_in_folder(folder: Path, prefer: tuple[str, ...]) -> Path:
    for prefix in prefer:
        for suffix in ("", ".gz"):
            for sep in ("-", "."):
                candidate = folder / f"{prefix}-images{sep}idx3-ubyte{suffix}"
                if candidate.is_file():
                    return candidate
    raise NetspecError(
        f"{folder}: no MNIST images file in the folder (expected "
        + " or ".join(f"{p}-images-idx3-ubyte[.gz]" for p in prefer) + ")", 2
    )


def labels_path(images: Path) -> Path | None:
    """The labels file that goes with an IDX images file, found by name; None if there is none."""
    name = images.name
    if "images" not in name:
        return None
    stem = name.replace("images", "labels").replace("idx3", "idx1")
    stem = stem[:-3] if stem.endswith(".gz") else stem
    for candidate in (stem, stem + ".gz"):
        if (images.parent / candidate).is_file():
            return images.parent / candidate
    return None


def _read_bytes(p: Path) -> bytes:
    try:
        blob = p.read_bytes()
    except OSError as exc:
        raise NetspecError(f"{p}: cannot read: {exc.strerror}", 2) from exc
    if blob[:2] == b"\x1f\x8b":
        try:
            blob = gzip.decompress(blob)
        except (OSError, EOFError, zlib.error) as exc:
            raise NetspecError(f"{p}: corrupt gzip data ({_reason(exc)})") from exc
    return blob


def read_idx(p: Path, limit: int | None = None) -> np.ndarray:
    """Parse an IDX file (raw or gzipped): the big-endian header (magic ``00 00 TYPE NDIM``, then NDIM
    sizes as uint32) and the data. Returns the array with its native dtype (first ``limit`` rows)."""
    return _read_idx(p, limit)[0]


def _read_idx(p: Path, limit: int | None) -> tuple[np.ndarray, int]:
    """(first ``limit`` rows, total rows the file holds)."""
    blob = _read_bytes(p)
    if len(blob) < 4:
        raise NetspecError(f"{p}: not an IDX file: {len(blob)} bytes, shorter than the 4-byte magic number")
    if blob[0] != 0 or blob[1] != 0 or blob[2] not in _IDX_TYPES or not 1 <= blob[3] <= 4:
        raise NetspecError(f"{p}: not an IDX file: wrong magic number 0x{blob[:4].hex()} (expected 0x0000 then type and rank, e.g. 0x00000803)")
    ndim = blob[3]
    header = 4 + 4 * ndim
    if len(blob) < header:
        raise NetspecError(f"{p}: truncated IDX header ({len(blob)} bytes, the header needs {header})")
    dims = [int(d) for d in np.frombuffer(blob, dtype=">u4", count=ndim, offset=4)]
    dtype = np.dtype(_IDX_TYPES[blob[2]])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    have = len(blob) - header
    if have != expected:
        what = "truncated" if have < expected else "corrupt"
        raise NetspecError(
            f"{p}: {what} IDX file: the header says {'x'.join(map(str, dims))} values ({expected} bytes), the file holds {have} bytes of data"
        )
    rows = dims[0] if limit is None else min(limit, dims[0])
    count = rows * int(np.prod(dims[1:], dtype=np.int64))
    return np.frombuffer(blob, dtype=dtype, count=count, offset=header).reshape(rows, *dims[1:]), dims[0]


def _load_idx(p: Path, require_labels: bool, limit: int | None) -> Dataset:
    images, n_all = _read_idx(p, limit)
    if images.dtype != np.uint8:
        raise NetspecError(f"{p}: IDX element type {images.dtype} is not supported; netspec reads unsigned-byte IDX images (as MNIST)")
    if images.ndim not in (3, 4):
        hint = " (this looks like a labels file; give the images file)" if images.ndim == 1 else ""
        raise NetspecError(f"{p}: IDX images must have 3 axes [samples, rows, columns], got {images.ndim}{hint}")
    if images.shape[0] == 0:
        raise NetspecError(f"{p}: the IDX file holds no samples")
    x = images.astype(np.float32) / np.float32(255.0)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    lp = labels_path(p)
    y = None
    if lp is None:
        if require_labels:
            raise NetspecError(f"{p}: no labels file next to it (expected {_expected_labels_name(p)})")
    else:
        raw = read_idx(lp)
        if raw.ndim != 1:
            raise NetspecError(f"{lp}: IDX labels must have 1 axis, got {raw.ndim}")
        if raw.shape[0] != n_all:
            raise NetspecError(f"{lp}: {raw.shape[0]} labels for {n_all} images in {p.name}")
        y = _labels(raw[: x.shape[0]], str(lp), x.shape[0], p.name)
    return Dataset(np.ascontiguousarray(x), y, str(p))


def _expected_labels_name(p: Path) -> str:
    name = p.name.replace("images", "labels").replace("idx3", "idx1")
    return name if "labels" in name else "a '*-labels-idx1-ubyte' file"


def _check_finite(ds: Dataset) -> None:
    finite = np.isfinite(ds.x)
    if not finite.all():
        bad = int(finite.size - np.count_nonzero(finite))
        first = int(np.argwhere(~finite.reshape(len(ds), -1).all(axis=1))[0][0])
        raise NetspecError(f"{ds.source}: {bad} NaN or Inf value(s) in the inputs (first in sample {first})")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
