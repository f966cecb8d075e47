"""Writing an exported spec: the YAML document (layer entries; normalization entries that say only how
a layer differs from the spec's provenance), the sidecar .npz, and moving both into place at once.

The .npz is written deterministically (fixed entry order and timestamps), so the same model and
calibration data give the same sha256. Files are written into a temporary folder next to the target,
validated there, and only then moved into place, so a failed export leaves no partial spec behind.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from ..hashing import file_sha256
from ..errors import NetspecError
from ..spec.layers import LAYER_TYPES, Normalization, Role
from .translate import SpecLayer

def spec_name(stem: str) -> str:
    """A spec name (``^[A-Za-z][A-Za-z0-9_-]{0,63}$``) from a file stem."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", stem)
    if not name or not name[0].isalpha():
        name = "net_" + name
    return name[:64]


def write_npz(path: Path, tensors: dict[str, np.ndarray]) -> str:
    """Write float32 tensors (sorted keys, fixed timestamps) and return the file's sha256."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(tensors):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.ascontiguousarray(tensors[key], dtype=np.float32), allow_pickle=False)
    return file_sha256(path)


def layer_entries(layers: list[SpecLayer]) -> list[dict[str, Any]]:
    """YAML entries of the layers, without normalization, as the spec's layer classes write them
    (:meth:`netspec.spec.layers.Layer.to_yaml`); ``inputs`` written where the layer reads more than one layer or
    another than the one listed before it."""
    out = []
    prev = None
    for layer in layers:
        entry: dict[str, Any] = {"name": layer.name, "type": layer.type, **layer.fields}
        if layer.kind.role is not Role.SOURCE and (layer.kind.arity != (1, 1) or layer.inputs != [prev]):
            entry["inputs"] = list(layer.inputs)
        for key in layer.tensors:
            entry[key] = f"{layer.name}/{key}"
        if layer.has_activation:
            entry["activation"] = layer.activation
        out.append(written(entry))
        prev = layer.name
    return out


def written(entry: dict[str, Any]) -> dict[str, Any]:
    """A layer entry as its layer class writes it (order of the fields; nothing dropped: a field the kind does not
    have is an internal error)."""
    try:
        return LAYER_TYPES[entry["type"]].from_yaml(entry).to_yaml()
    except ValueError as exc:
        raise NetspecError(f"internal error: the exporter wrote an entry its layer class cannot hold ({exc}); "
                           "please report this") from exc


def normalization_entry(norm: Normalization, provenance: Mapping[str, Any], samples: int) -> dict[str, Any]:
    """A layer's ``normalization``: its ``lambda``, and how it was obtained only where that differs from
    what the spec's ``source`` says once for all layers (``provenance``: ``source.normalization``;
    ``samples``: ``source.calibration.samples``)."""
    entry: dict[str, Any] = {"lambda": list(norm.lam) if norm.per_channel else norm.lam}
    how = {key: value for key, value in (("method", norm.method), ("percentile", norm.percentile)) if value is not None}
    said = {key: value for key, value in provenance.items() if key in ("method", "percentile")}
    if how and how != said:
        entry.update(how)
    if norm.samples is not None and norm.samples != samples:
        entry["samples"] = norm.samples
    if norm.bias_correction is not None:
        c = norm.bias_correction
        entry["bias_correction"] = list(c) if isinstance(c, tuple) else c
    return entry


def with_normalization(doc: dict[str, Any], norms: Mapping[str, Normalization]) -> dict[str, Any]:
    """The spec document with each layer in ``norms`` given its ``normalization`` entry (after its other
    fields), as :func:`normalization_entry` writes it against the document's ``source``."""
    source = doc["source"]
    provenance, samples = source["normalization"], source["calibration"]["samples"]
    layers = [
        written({**entry, "normalization": normalization_entry(norms[entry["name"]], provenance, samples)})
        if entry["name"] in norms else entry
        for entry in doc["layers"]
    ]
    return {**doc, "layers": layers}


def tensors_of(layers: list[SpecLayer]) -> dict[str, np.ndarray]:
    return {f"{layer.name}/{key}": arr for layer in layers for key, arr in layer.tensors.items()}


@contextmanager
def staging(target: Path) -> Iterator[Path]:
    """A temporary folder next to ``target``, removed on exit (whatever was not moved out of it)."""
    folder = Path(tempfile.mkdtemp(prefix=".netspec-export-", dir=target.parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def commit(staged: list[Path], targets: list[Path]) -> None:
    """Move staged files onto their targets (weights first, the spec last)."""
    for src, dst in zip(staged, targets):
        os.replace(src, dst)
