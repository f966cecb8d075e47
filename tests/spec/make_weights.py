"""Write the small .npz files that the specs under tests/spec/ reference, and print their sha256.

Run once by hand when a fixture changes (the files are committed; the tests never regenerate them):

    python tests/spec/make_weights.py

A rerun writes new archives (zip timestamps differ), so their sha256 changes: paste the printed hashes
into the specs that name them (invalid/NS40*.yaml and the other conv-base specs, valid/inception.yaml,
valid/residual.yaml).
"""
import hashlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def _write(path: Path, tensors: dict) -> None:
    np.savez(path, **tensors)
    print(f"{path.relative_to(HERE)}  {hashlib.sha256(path.read_bytes()).hexdigest()}")


def main() -> None:
    rng = np.random.default_rng(2017)
    f32 = np.float32
    # invalid/weights.npz: a 6x6x1 input, conv 3x3 'same' with 2 filters, maxpool 2, flatten, dense 18 -> 3
    _write(HERE / "invalid" / "weights.npz", {
        "conv1/kernel": rng.normal(0, 0.3, (3, 3, 1, 2)).astype(f32),
        "conv1/bias": np.zeros(2, f32),
        "fc/kernel": rng.normal(0, 0.3, (18, 3)).astype(f32),
        "fc/bias": np.zeros(3, f32),
        "int/kernel": rng.integers(-3, 4, (3, 3, 1, 2)).astype(np.int32),
    })
    # invalid/corrupt.npz: not a zip file at all (its sha256 is right, so the reader gets to open it)
    (HERE / "invalid" / "corrupt.npz").write_bytes(b"this is not an npz archive\n" * 4)
    print("invalid/corrupt.npz ", hashlib.sha256((HERE / "invalid" / "corrupt.npz").read_bytes()).hexdigest())
    # valid/inception.npz: stem conv 3x3 (3 -> 3), branches 1x1 (4) and 3x3 (5), dense 8*8*12 -> 10
    _write(HERE / "valid" / "inception.npz", {
        "stem/kernel": rng.normal(0, 0.3, (3, 3, 3, 3)).astype(f32),
        "stem/bias": rng.normal(0, 0.05, (3,)).astype(f32),
        "b1/kernel": rng.normal(0, 0.3, (1, 1, 3, 4)).astype(f32),
        "b1/bias": rng.normal(0, 0.05, (4,)).astype(f32),
        "b3/kernel": rng.normal(0, 0.2, (3, 3, 3, 5)).astype(f32),
        "b3/bias": rng.normal(0, 0.05, (5,)).astype(f32),
        "fc/kernel": rng.normal(0, 0.05, (8 * 8 * 12, 10)).astype(f32),
        "fc/bias": np.zeros(10, f32),
    })
    # valid/residual.npz: c1 3x3 (2 -> 4), r1 3x3 (4 -> 4), r2 1x1 (4 -> 4), dense 3*3*4 -> 2
    _write(HERE / "valid" / "residual.npz", {
        "c1/kernel": rng.normal(0, 0.3, (3, 3, 2, 4)).astype(f32),
        "c1/bias": rng.normal(0, 0.05, (4,)).astype(f32),
        "r1/kernel": rng.normal(0, 0.2, (3, 3, 4, 4)).astype(f32),
        "r2/kernel": rng.normal(0, 0.3, (1, 1, 4, 4)).astype(f32),
        "r2/bias": rng.normal(0, 0.05, (4,)).astype(f32),
        "fc/kernel": rng.normal(0, 0.2, (36, 2)).astype(f32),
        "fc/bias": np.zeros(2, f32),
    })

if __name__ == "__main__":
    main()
