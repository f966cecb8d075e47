"""Reading ``.npz`` files, in one place: first what they hold, from the headers only (:func:`npz_members`: the zip
directory and each member's ``.npy`` header, shape and dtype, nothing inflated), then the arrays
(:func:`npz_arrays`, never unpickling). Data files and weights files are read this way: a small archive that
inflates to gigabytes, or a header that claims 10^13 values, is refused with its size before ``numpy.load``
allocates anything, and every failure is one short reason (:class:`NpzHeaderError`).
"""
from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from typing import IO

import numpy as np


class NpzHeaderError(ValueError):
    """The file is not an ``.npz`` numpy can read safely; the message says why, in a few words."""


@dataclass(frozen=True)
class Member:
    """One array of an ``.npz``: its key (the member name without ``.npy``), shape, dtype and the bytes
    its data takes once loaded."""

    key: str
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def npz_members(source: str | IO[bytes]) -> list[Member]:
    """The arrays of an ``.npz`` (a path or a binary file object), from the headers only.

    Raises
    ------
    NpzHeaderError
        Not a zip archive; a member that is not a ``.npy`` array; a header whose data does not fit in the
        member's declared size. Object (pickled) arrays are listed with their dtype: callers refuse them.
    """
    try:
        if not zipfile.is_zipfile(source):
            raise NpzHeaderError("it is not a zip archive; numpy.savez writes one")
        if hasattr(source, "seek"):
            source.seek(0)  # is_zipfile leaves the position at the archive's end
        with zipfile.ZipFile(source) as zf:
            return [_member(zf, info) for info in zf.infolist() if not info.is_dir()]
    except NpzHeaderError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError) as exc:
        raise NpzHeaderError(f"corrupt .npz file ({_first_line(exc)})") from exc


def _member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Member:
    key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
    with zf.open(info) as fh:
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                shape, _fortran, dtype = np.lib.format._read_array_header(fh, version)
        except (ValueError, EOFError, zipfile.BadZipFile, OSError) as exc:
            raise NpzHeaderError(f"member {info.filename!r} is not a numpy array (.npy): {_first_line(exc)}") from exc
        header_end = fh.tell()
    member = Member(key, tuple(int(d) for d in shape), dtype)
    if header_end + member.nbytes > info.file_size:
        raise NpzHeaderError(
            f"member {info.filename!r}: its header says {'x'.join(map(str, member.shape)) or 'a scalar'} values of {dtype} "
            f"({member.nbytes:,} bytes), the archive holds {max(info.file_size - header_end, 0):,} bytes for it (corrupt)")
    return member


def npz_arrays(source: str | IO[bytes], keys=None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` (a path or a binary file object): all of them, or those named in ``keys``, in that
    order. Call :func:`npz_members` first to know they fit.

    Raises
    ------
    NpzHeaderError
        A member that needs pickle (an object array) or is not a ``.npy`` array, or an archive that fails to
        inflate: the message says which, in a few words.
    """
    try:
        if hasattr(source, "seek"):
            source.seek(0)
        with np.load(source, allow_pickle=False) as npz:
            out = {}
            for key in (npz.files if keys is None else keys):
                try:
                    value = npz[key]
                except ValueError as exc:  # object arrays need pickle, which is refused
                    raise NpzHeaderError(f"'{key}' cannot be read without pickle (object array?); save plain numeric "
                                         "arrays") from exc
                if not isinstance(value, np.ndarray):
                    raise NpzHeaderError(f"member '{key}' is not a numpy array (.npy)")
                out[key] = value
            return out
    except NpzHeaderError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged archive fails in zipfile, zlib or numpy, each its own way
        raise NpzHeaderError(f"corrupt .npz file ({_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
