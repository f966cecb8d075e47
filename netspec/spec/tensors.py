"""Semantic rules for tensors: read the weights file (path inside the spec's folder, sha256, a real
.npz of numpy arrays) and check every tensor a layer names (present, floating point, the shape the
layer needs, finite)."""
from __future__ import annotations

import difflib
import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .context import Context
from ..npzheader import NpzHeaderError, npz_arrays, npz_members
from .layers import Role
from .resources import human_bytes


def _load_npz(ctx: Context) -> dict[str, Any] | None:
    """The arrays of the spec's weights file; None when the spec names none, {} when it fails (the
    failure reported)."""
    spec_w = ctx.data.get("weights")
    if spec_w is None:
        return None
    rel = spec_w["file"]
    path = ("weights", "file")
    candidate = Path(rel)
    base = ctx.base.resolve()
    if candidate.is_absolute() or rel.startswith(("/", "\\")) or ":" in rel[:3]:
        ctx.rep.add("NS402", f"weights path {rel!r} is absolute; give it relative to the spec's folder", path)
        return {}
    full = (base / candidate).resolve()
    try:
        full.relative_to(base)
    except ValueError:
        ctx.rep.add("NS402", f"weights path {rel!r} leaves the spec's folder", path)
        return {}
    if not full.is_file():
        ctx.rep.add("NS401", f"weights file {rel!r} not found (looked in {base})", path)
        return {}
    limit = ctx.limits.max_memory
    try:
        size = full.stat().st_size
    except OSError as exc:
        ctx.rep.add("NS401", f"cannot read weights file {rel!r}: {exc.strerror}", path)
        return {}
    if limit is not None and size > limit:
        ctx.rep.add("NS602", f"weights file {rel!r} is {human_bytes(size)}, above the memory limit of {human_bytes(limit)} "
                             "(--max-memory raises the limit)", path)
        return {}
    try:
        blob = full.read_bytes()
    except OSError as exc:
        ctx.rep.add("NS401", f"cannot read weights file {rel!r}: {exc.strerror}", path)
        return {}
    digest = hashlib.sha256(blob).hexdigest()
    if digest != spec_w["sha256"]:
        ctx.rep.add(
            "NS403",
            f"sha256 of {rel!r} is {digest[:16]}…, the spec says {spec_w['sha256'][:16]}… (the weights changed; re-export or update the hash)",
            ("weights", "sha256"),
        )
        return {}
    # from here on only the bytes that were hashed are read: the file is not opened again. The headers
    # come first: nothing is inflated before the sizes they claim are known to fit.
    archive = io.BytesIO(blob)
    if not zipfile.is_zipfile(archive):
        ctx.rep.add("NS404", f"weights file {rel!r} is not an .npz archive (numpy.savez writes one)", path)
        return {}
    try:
        members = npz_members(archive)
    except NpzHeaderError as exc:
        ctx.rep.add("NS404", f"weights file {rel!r}: {exc}", path)
        return {}
    need = sum(m.nbytes for m in members)
    if limit is not None and need > limit:
        big = max(members, key=lambda m: m.nbytes)
        ctx.rep.add("NS602", f"weights file {rel!r} inflates to {human_bytes(need)} (member {big.key!r}: {list(big.shape)} "
                             f"{big.dtype}), above the memory limit of {human_bytes(limit)} (--max-memory raises the limit)", path)
        return {}
    try:
        return npz_arrays(archive)
    except NpzHeaderError as exc:
        ctx.rep.add("NS404", f"weights file {rel!r}: {exc}", path)
        return {}


def rule_tensors(ctx: Context) -> None:
    """Every tensor a layer names, by key or inline: present, floating point, the shape the layer
    needs (when its input shapes are known) and finite. The good ones land in ``ctx.arrays``."""
    if not ctx.resources_ok:
        return  # the network is refused as a whole; its tensors are not read
    npz = _load_npz(ctx)
    for i, layer in enumerate(ctx.layers):
        for fname, ref in layer.tensors().items():
            path = ("layers", i, fname)
            if ref.key is not None:
                if npz is None:
                    ctx.rep.add("NS409", f"tensor key '{ref.key}' given, but the spec has no `weights` file", path)
                    continue
                if not npz:
                    continue  # the file itself failed, already reported
                if ref.key not in npz:
                    close = difflib.get_close_matches(ref.key, list(npz), n=1, cutoff=0.6)
                    hint = f"did you mean '{close[0]}'? " if close else ""
                    near = ", ".join(sorted(npz)[:8])
                    ctx.rep.add(
                        "NS405",
                        f"key '{ref.key}' is not in the weights file ({hint}it has: {near}{', …' if len(npz) > 8 else ''})",
                        path,
                    )
                    continue
                arr = npz[ref.key]
            else:
                try:
                    arr = np.array(ref.inline, dtype=np.float64)
                except ValueError:
                    ctx.rep.add("NS410", f"the inline tensor is ragged: {_ragged(ref.inline, fname)}", path)
                    continue
            if not np.issubdtype(arr.dtype, np.floating):
                ctx.rep.add("NS407", f"{ref.describe()} has dtype {arr.dtype}, expected floating point", path)
                continue
            if layer.name in ctx.shapes or layer.role is Role.SOURCE:
                in_shapes = [ctx.shapes[n] for n in layer.inputs if n in ctx.shapes]
                if len(in_shapes) == len(layer.inputs):
                    want = layer.tensor_shapes(in_shapes)[fname]
                    if tuple(arr.shape) != tuple(want):
                        layout = layer.tensor_layouts.get(fname, "")
                        ctx.rep.add(
                            "NS406",
                            f"{ref.describe()} has shape {list(arr.shape)}, the layer needs {list(want)}" + (f" ({layout})" if layout else ""),
                            path,
                        )
                        continue
            finite = np.isfinite(arr)
            if not finite.all():
                bad = int(finite.size - np.count_nonzero(finite))
                first = [int(k) for k in np.argwhere(~finite)[0]]
                ctx.rep.add("NS408", f"{ref.describe()} holds {bad} NaN or Inf value(s), the first at {first}", path)
                continue
            ctx.arrays[f"{layer.name}.{fname}"] = arr


def _ragged(value: Any, name: str) -> str:
    """Where a nested list stops being rectangular: ``kernel[1] has 2 items, kernel[0] has 3``."""
    frontier = [(name, value)]
    while frontier:
        lists = [(w, v) for w, v in frontier if isinstance(v, list)]
        if lists and len(lists) != len(frontier):
            w_list = lists[0][0]
            w_num = next(w for w, v in frontier if not isinstance(v, list))
            return f"{w_list} is a list, {w_num} a number"
        if not lists:
            break
        w0, v0 = lists[0]
        odd = [(w, v) for w, v in lists if len(v) != len(v0)]
        if odd:
            return f"{odd[0][0]} has {len(odd[0][1])} items, {w0} has {len(v0)}"
        frontier = [(f"{w}[{k}]", item) for w, v in lists for k, item in enumerate(v)]
    return "every row must have the same length"
