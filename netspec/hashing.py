"""Content hashes: the one sha256 helper for files (weights, calibration data, specs in reports, builds)."""
from __future__ import annotations

import hashlib
from pathlib import Path

#: bytes read at a time
BLOCK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks (a large file is never held in memory whole)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(BLOCK), b""):
            h.update(block)
    return h.hexdigest()
