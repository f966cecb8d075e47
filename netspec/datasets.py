"""Loading input data (and labels) for export calibration and for ``netspec run``.

One module of some 500 lines: both formats go through the same header-first checks (shapes, dtypes and the
memory loading takes, before anything is inflated), the same label rules and the same messages.

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

Files are checked from their headers before anything is loaded (:func:`inspect_dataset`): the npz's
zip directory and ``.npy`` headers, the IDX header against the file size; what loading would take must
fit the memory limit. Only regular files are read (not ``/dev/zero`` or a pipe).

Every problem is a :class:`~netspec.errors.NetspecError` naming the file and what is wrong.
"""
from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import NetspecError
from .npzheader import NpzHeaderError, npz_arrays, npz_members

#: Marks "the default memory limit" (half the physical memory, see netspec.spec.resources).
DEFAULT_LIMIT = object()
#: Largest finite float32 (data are computed in float32).
FLOAT32_MAX = float(np.finfo(np.float32).max)

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


@dataclass(frozen=True)
class DataInfo:
    """What a dataset holds, from its headers: ``files`` read (inputs, then labels), ``samples`` (after the
    limit), ``sample_shape`` (as loaded: IDX images get their channel axis) and ``nbytes``, the memory
    loading takes at its peak (the arrays as stored, their float32 copy, the NaN check's mask)."""

    source: str
    files: tuple[Path, ...]
    samples: int
    sample_shape: tuple[int, ...]
    nbytes: int
    #: an npz's keys of the inputs and (if present) the labels; None for IDX data
    keys: tuple[str, str | None] | None = None


def inspect_dataset(
    path: str | Path,
    *,
    limit: int | None = None,
    keys: tuple[str, ...] = ("x", "x_test", "x_train", "x_norm"),
    prefer: tuple[str, ...] = ("t10k", "train"),
) -> DataInfo:
    """Read a dataset's headers only (see :func:`load_dataset` for the arguments); nothing is inflated."""
    if limit is not None and limit < 1:
        raise NetspecError(f"{path}: the sample limit must be at least 1, got {limit}", 2)
    p = Path(path)
    if not p.exists():
        raise NetspecError(f"{path}: file not found", 2)
    if p.is_dir():
        images = _idx_in_folder(p, prefer)
        return _idx_info(images, limit)
    _regular(p)
    if _is_npz(p):
        return _npz_info(p, str(path), limit, keys)
    return _idx_info(p, limit)


def data_files(path: str | Path, prefer: tuple[str, ...] = ("t10k", "train")) -> list[Path]:
    """The files loading ``path`` would read (an npz, or IDX images and their labels); nothing is checked."""
    p = Path(path)
    if p.is_dir():
        try:
            p = _idx_in_folder(p, prefer)
        except NetspecError:
            return []
    if not p.is_file():
        return [p]
    labels = None if _looks_npz(p) else labels_path(p)
    return [p] + ([labels] if labels is not None else [])


def load_dataset(
    path: str | Path,
    *,
    require_labels: bool,
    limit: int | None = None,
    keys: tuple[str, ...] = ("x", "x_test", "x_train", "x_norm"),
    prefer: tuple[str, ...] = ("t10k", "train"),
    max_bytes: int | None | object = DEFAULT_LIMIT,
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
    max_bytes : int | None
        Refuse, from the headers, data whose loading takes more memory (default: half the physical
        memory; None: no limit).

    Returns
    -------
    Dataset

    Raises
    ------
    NetspecError
        Missing or unreadable file, corrupt data, no known key, labels that do not fit, NaN/Inf values.
    """
    info = inspect_dataset(path, limit=limit, keys=keys, prefer=prefer)
    if max_bytes is DEFAULT_LIMIT:
        from .spec.resources import default_max_memory

        max_bytes = default_max_memory()
    check_memory(info, max_bytes)
    p = Path(path)
    if p.is_dir():
        ds = _load_idx(info.files[0], require_labels, limit)
    elif info.keys is not None:
        ds = _load_npz(p, info, require_labels, limit)
    else:
        ds = _load_idx(p, require_labels, limit)
    _check_finite(ds)
    return ds


def check_memory(info: DataInfo, max_bytes: int | None, need: int | None = None, what: str = "loading the data") -> None:
    """Refuse ``need`` bytes (default: what loading ``info`` takes) above ``max_bytes``."""
    from .spec.resources import human_bytes

    need = info.nbytes if need is None else need
    if max_bytes is not None and need > max_bytes:
        raise NetspecError(
            f"{info.source}: {what} needs about {human_bytes(need)} ({info.samples:,} samples of "
            f"{list(info.sample_shape)}), above the memory limit of {human_bytes(max_bytes)} (--max-memory raises the limit)")


def _regular(p: Path) -> None:
    if not p.is_file():
        raise NetspecError(f"{p}: not a regular file (a device, pipe or socket cannot be read as data)", 2)


def check_shape(data: "Dataset | DataInfo", spec) -> None:
    """The samples (loaded, or known from the headers) have the shape of the spec's input."""
    want = tuple(spec.input.shape)
    if tuple(data.sample_shape) != want:
        raise NetspecError(
            f"{data.source}: samples have shape {list(data.sample_shape)}, the spec '{spec.name}' expects {list(want)}"
        )


def check_fits(dataset: Dataset, spec) -> None:
    """Check that the data can be fed to a spec: same sample shape, values inside ``spec.input.range``.

    Raises
    ------
    NetspecError
        ``data.npz: samples have shape [28, 28], the spec 'lenet' expects [28, 28, 1]``, or the observed
        minimum/maximum when values fall outside the range.
    """
    check_shape(dataset, spec)
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
def _looks_npz(p: Path) -> bool:
    try:
        return _is_npz(p)
    except NetspecError:
        return False


def _is_npz(p: Path) -> bool:
    if p.suffix.lower() == ".npz":
        return True
    try:
        with open(p, "rb") as fh:
            return fh.read(4) == b"PK\x03\x04"
    except OSError as exc:
        raise NetspecError(f"{p}: cannot read: {exc.strerror}", 2) from exc


def _npz_info(p: Path, name: str, limit: int | None, keys: tuple[str, ...]) -> DataInfo:
    """What the npz holds (the inputs' key the first of ``keys`` it has), from the zip directory and the .npy
    headers: shapes and dtypes are checked here, before anything is inflated."""
    try:
        members = {m.key: m for m in npz_members(str(p))}
    except NpzHeaderError as exc:
        raise NetspecError(f"{name}: not a readable .npz file ({exc})") from exc
    present = list(members)
    xkey = next((k for k in keys if k in present), None)
    if xkey is None:
        raise NetspecError(
            f"{name}: no input array; expected one of the keys {', '.join(keys)} (the file has: {', '.join(present) or 'nothing'})"
        )
    x = members[xkey]
    if x.dtype.hasobject:
        raise NetspecError(f"{name}: '{xkey}' cannot be read without pickle (object array?); save plain numeric arrays")
    if len(x.shape) < 2:
        raise NetspecError(f"{name}: '{xkey}' has shape {list(x.shape)}; expected [samples, ...] with at least 2 axes")
    if x.shape[0] == 0:
        raise NetspecError(f"{name}: '{xkey}' holds no samples")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_) or np.issubdtype(x.dtype, np.complexfloating):
        raise NetspecError(f"{name}: '{xkey}' has dtype {x.dtype}; expected numbers")
    ykey = LABEL_KEYS.get(xkey)
    y = members.get(ykey) if ykey else None
    rows = x.shape[0] if limit is None else min(limit, x.shape[0])
    values = rows * math.prod(x.shape[1:])
    # as stored, then the float32 copy (none when already float32), then the NaN check's boolean mask
    need = x.nbytes + (0 if x.dtype == np.float32 else values * 4) + values + (y.nbytes * 2 if y is not None else 0)
    return DataInfo(name, (p,), rows, tuple(x.shape[1:]), need, (xkey, ykey if y is not None else None))


def _load_npz(p: Path, info: DataInfo, require_labels: bool, limit: int | None) -> Dataset:
    """The arrays that :func:`_npz_info` found and checked in the headers."""
    name = info.source
    xkey, ykey = info.keys
    try:
        arrays = npz_arrays(str(p), [xkey] + ([ykey] if ykey is not None else []))
    except NpzHeaderError as exc:
        raise NetspecError(f"{name}: {exc}") from exc
    x, y = arrays[xkey], arrays.get(ykey)
    n_all = x.shape[0]
    if limit is not None:
        x = x[:limit]
    _check_float32_range(x, name, xkey)
    if y is None:
        if require_labels:
            want = LABEL_KEYS.get(xkey)
            present = [m.key for m in npz_members(str(p))]
            expect = f"'{want}'" if want else f"labels (inputs under '{xkey}' have none; use x/y, x_test/y_test or x_train/y_train)"
            raise NetspecError(f"{name}: no labels: expected {expect} next to '{xkey}' (the file has: {', '.join(present)})")
    else:
        y = _labels(y, f"{name}: '{ykey}'", n_all, f"'{xkey}'")
    if limit is not None:
        y = None if y is None else y[:limit]
    return Dataset(np.ascontiguousarray(x, dtype=np.float32), y, name)


def _check_float32_range(x: np.ndarray, name: str, key: str) -> None:
    """Finite values beyond float32's range would become Inf in the float32 copy: say so, with the value."""
    if not (np.issubdtype(x.dtype, np.floating) and x.dtype.itemsize > 4):
        return
    with np.errstate(invalid="ignore"):
        big = np.isfinite(x) & (np.abs(x) > FLOAT32_MAX)
    if big.any():
        first = np.argwhere(big)[0]
        value = float(x[tuple(first)])
        raise NetspecError(
            f"{name}: value {value:g} in '{key}' (sample {int(first[0])}) is out of range: it does not fit float32 "
            f"(largest {FLOAT32_MAX:.4g}), which netspec computes in; scale the data")


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


def _open(p: Path):
    """The file, through gzip when it starts with the gzip magic number; (stream, gzipped)."""
    try:
        fh = open(p, "rb")
        gz = fh.read(2) == b"\x1f\x8b"
        fh.seek(0)
    except OSError as exc:
        raise NetspecError(f"{p}: cannot read: {exc.strerror}", 2) from exc
    return (gzip.GzipFile(fileobj=fh, mode="rb") if gz else fh), fh, gz


def _read(p: Path, stream, n: int) -> bytes:
    try:
        return stream.read(n)
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, (gzip.BadGzipFile,)) and exc.errno is not None:
            raise NetspecError(f"{p}: cannot read: {exc.strerror}", 2) from exc
        raise NetspecError(f"{p}: corrupt gzip data ({_reason(exc)})") from exc


@dataclass(frozen=True)
class _IdxHeader:
    dtype: np.dtype
    dims: tuple[int, ...]
    size: int  # header bytes

    @property
    def data_bytes(self) -> int:
        return math.prod(self.dims) * self.dtype.itemsize


def _idx_header(p: Path, stream) -> _IdxHeader:
    """The big-endian header: magic ``00 00 TYPE NDIM``, then NDIM sizes as uint32 (exact Python ints, so
    that sizes whose product overflows int64 are reported, not wrapped)."""
    magic = _read(p, stream, 4)
    if len(magic) < 4:
        raise NetspecError(f"{p}: not an IDX file: {len(magic)} bytes, shorter than the 4-byte magic number")
    if magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES or not 1 <= magic[3] <= 4:
        raise NetspecError(f"{p}: not an IDX file: wrong magic number 0x{magic.hex()} (expected 0x0000 then type and rank, e.g. 0x00000803)")
    ndim = magic[3]
    header = 4 + 4 * ndim
    raw = _read(p, stream, 4 * ndim)
    if len(raw) < 4 * ndim:
        raise NetspecError(f"{p}: truncated IDX header ({4 + len(raw)} bytes, the header needs {header})")
    dims = tuple(int.from_bytes(raw[4 * i:4 * i + 4], "big") for i in range(ndim))
    return _IdxHeader(np.dtype(_IDX_TYPES[magic[2]]), dims, header)


def _size_error(p: Path, h: _IdxHeader, have: int) -> NetspecError:
    what = "truncated" if have < h.data_bytes else "corrupt"
    return NetspecError(
        f"{p}: {what} IDX file: the header says {'x'.join(map(str, h.dims))} values ({h.data_bytes} bytes), the file holds {have} bytes of data"
    )


def _checked_idx_header(p: Path, stream, gz: bool):
    """The IDX header of ``p``; an uncompressed file's size must be what the header promises (a gzipped
    file's is checked as it is read)."""
    h = _idx_header(p, stream)
    if not gz:
        have = p.stat().st_size - h.size
        if have != h.data_bytes:
            raise _size_error(p, h, have)
    return h


def _idx_info(images: Path, limit: int | None) -> DataInfo:
    """Headers of an IDX images file (and its labels file): sizes checked against the files' sizes."""
    _regular(images)
    stream, fh, gz = _open(images)
    with fh, stream:
        h = _checked_idx_header(images, stream, gz)
    rows = h.dims[0] if limit is None else min(limit, h.dims[0])
    shape = h.dims[1:] + ((1,) if len(h.dims) == 3 else ())
    values = rows * math.prod(h.dims[1:])
    labels = labels_path(images)
    files = (images,) if labels is None else (images, labels)
    if labels is not None:
        lstream, lfh, _ = _open(labels)
        with lfh, lstream:
            lh = _idx_header(labels, lstream)
        if len(lh.dims) != 1:
            raise NetspecError(f"{labels}: IDX labels must have 1 axis, got {len(lh.dims)}")
        if lh.dims[0] != h.dims[0]:
            raise NetspecError(f"{labels}: {lh.dims[0]} labels for {h.dims[0]} images in {images.name}")
    # the file's bytes (all of them when gzipped), then float32 twice (the division), the NaN check's mask
    need = (h.data_bytes if gz else values * h.dtype.itemsize) + values * 9 + (h.dims[0] * 9 if labels else 0)
    return DataInfo(str(images), files, rows, tuple(shape), need)


def read_idx(p: Path, limit: int | None = None) -> np.ndarray:
    """Parse an IDX file (raw or gzipped): the big-endian header (magic ``00 00 TYPE NDIM``, then NDIM
    sizes as uint32) and the data. Returns the array with its native dtype (first ``limit`` rows)."""
    return _read_idx(p, limit)[0]


def _read_idx(p: Path, limit: int | None) -> tuple[np.ndarray, int]:
    """(first ``limit`` rows, total rows the file holds). The header is read and checked against the
    file's size first; only then is the data read (a gzipped file: at most one byte more than the header
    promises)."""
    _regular(p)
    stream, fh, gz = _open(p)
    with fh, stream:
        h = _checked_idx_header(p, stream, gz)
        rows = h.dims[0] if limit is None else min(limit, h.dims[0])
        row_values = math.prod(h.dims[1:])
        if gz:  # in pieces: never ask for more than a MiB at once, stop one byte past what the header says
            pieces, got = [], 0
            while got <= h.data_bytes:
                piece = _read(p, stream, min(1 << 20, h.data_bytes + 1 - got))
                if not piece:
                    break
                pieces.append(piece)
                got += len(piece)
            blob = b"".join(pieces)
            if len(blob) != h.data_bytes:
                raise _size_error(p, h, len(blob))
        else:
            blob = _read(p, stream, rows * row_values * h.dtype.itemsize)
    data = np.frombuffer(blob, dtype=h.dtype, count=rows * row_values)
    return data.reshape(rows, *h.dims[1:]), h.dims[0]


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
