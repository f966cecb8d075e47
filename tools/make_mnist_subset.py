"""Write the first N images and labels of an MNIST IDX set as new (gzipped) IDX files.

The repository ships the first 1,000 test images this way (data/mnist-1k/), so the quick start and the
tests need no download:

    python tools/make_mnist_subset.py ../shared/data/mnist data/mnist-1k --count 1000
"""
from __future__ import annotations

import argparse
import gzip
import struct
from pathlib import Path


def _read(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if path.suffix == ".gz" else raw


def subset(src: Path, dst: Path, count: int, prefix: str = "t10k") -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for kind, magic, header in (("images-idx3-ubyte", 2051, 16), ("labels-idx1-ubyte", 2049, 8)):
        name = f"{prefix}-{kind}"
        candidates = [src / f"{name}.gz", src / name]
        path = next((p for p in candidates if p.exists()), None)
        if path is None:
            raise SystemExit(f"{src}: no {name}[.gz]")
        data = _read(path)
        got_magic, total = struct.unpack(">II", data[:8])
        if got_magic != magic:
            raise SystemExit(f"{path}: magic {got_magic}, expected {magic}")
        if count > total:
            raise SystemExit(f"{path}: has {total} items, asked for {count}")
        item = 28 * 28 if magic == 2051 else 1
        out = data[:4] + struct.pack(">I", count) + data[8:header] + data[header : header + count * item]
        # mtime=0 keeps the file byte-identical from run to run
        with open(dst / f"{name}.gz", "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0, filename="") as gz:
            gz.write(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path, help="folder with the original IDX files")
    p.add_argument("dst", type=Path)
    p.add_argument("--count", type=int, default=1000)
    args = p.parse_args()
    subset(args.src, args.dst, args.count)


if __name__ == "__main__":
    main()
