"""Write the weights of specs/small-conv.yaml (deterministic) and print the sha256 to put in the spec.

    python tools/make_conv_example.py specs/small-conv.npz
"""
import hashlib
import sys

import numpy as np


def main(out: str) -> None:
    rng = np.random.default_rng(20170101)
    tensors = {
        "conv1/kernel": rng.normal(0, 0.4, (3, 3, 1, 4)),
        "conv1/bias": rng.normal(0, 0.05, (4,)),
        "conv2/kernel": rng.normal(0, 0.25, (3, 3, 4, 6)),
        "conv2/bias": rng.normal(0, 0.05, (6,)),
        "fc/kernel": rng.normal(0, 0.2, (54, 3)),
        "fc/bias": np.zeros(3),
    }
    np.savez(out, **{k: v.astype(np.float32) for k, v in tensors.items()})
    print(hashlib.sha256(open(out, "rb").read()).hexdigest())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "specs/small-conv.npz")
