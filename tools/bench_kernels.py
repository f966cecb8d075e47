"""Plan (build without compiling) time and array size of random-weight VGG-style nets, kernel vs unrolled.

    PYTHONPATH=. python tools/bench_kernels.py [--vgg16]

Measures make_plan + the arrays written to arrays.npz, in one run for both connectivity modes (ratios: the
machines are shared). Simulation speed (ns per event, samples/s) is not measured here yet.
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from netspec.brian.build import plan_arrays
from netspec.brian.plan import make_plan
from netspec.spec import load_spec_data


def vgg(shape, blocks, dense, classes, rng, tensors=None):
    """A VGG-style spec document with He-initialized random weights and lambda 1. With ``tensors`` (a dict),
    the weights go there under ``layer/kernel`` and the document names them (for a sidecar .npz, see
    tools/bench_sim.py); without it they are written inline (slow to load for large nets)."""
    def put(name, arr):
        if tensors is None:
            return arr.tolist()
        tensors[f"{name}/kernel"] = arr
        return f"{name}/kernel"

    layers, c = [{"name": "x", "type": "input"}], shape[2]
    for b, filters in enumerate(blocks):
        for k, f in enumerate(filters):
            layers.append({"name": f"c{b}_{k}", "type": "conv2d", "filters": f, "kernel_size": 3, "padding": "same",
                           "kernel": put(f"c{b}_{k}", rng.normal(0, (2 / (9 * c)) ** 0.5, (3, 3, c, f)).astype(np.float32)),
                           "activation": "relu", "normalization": {"lambda": 1.0}})
            c = f
        layers.append({"name": f"p{b}", "type": "maxpool2d", "pool_size": 2})
    layers.append({"name": "f", "type": "flatten"})
    n = (shape[0] >> len(blocks)) * (shape[1] >> len(blocks)) * c
    for k, units in enumerate([*dense, classes]):
        layers.append({"name": f"d{k}", "type": "dense", "units": units, "kernel": put(f"d{k}", rng.normal(0, (2 / n) ** 0.5, (n, units)).astype(np.float32)),
                       "activation": "relu" if k < len(dense) else "softmax", "normalization": {"lambda": 1.0}})
        n = units
    return {"netspec": 1, "name": "vgg", "input": {"shape": list(shape), "range": [0.0, 1.0], "encoding": "analog"},
            "simulation": {"dt": "1 ms", "duration": "100 ms"}, "layers": layers}


def measure(spec, mode):
    t0 = time.perf_counter()
    plan = make_plan(spec, connectivity=mode)
    arrays = plan_arrays(plan)
    seconds = time.perf_counter() - t0
    conns = sum(p.count for pop in plan.populations.values() for p in pop.inputs)
    size = sum(a.nbytes for a in arrays.values())
    print(f"  {mode:9s} plan {seconds:6.2f} s  arrays {size / 1e6:8.1f} MB  connections {conns:,}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vgg16", action="store_true", help="also VGG-16 for 32x32x3 (kernel mode only)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    base = Path(tempfile.mkdtemp())
    print("VGG-style MNIST (conv 32-32-pool-64-64-pool, dense 256, 10)")
    spec = load_spec_data(vgg((28, 28, 1), [[32, 32], [64, 64]], [256], 10, rng), base)
    for mode in ("kernel", "synapses"):
        measure(spec, mode)
    if args.vgg16:
        print("VGG-16, 32x32x3")
        spec = load_spec_data(vgg((32, 32, 3), [[64, 64], [128, 128], [256] * 3, [512] * 3, [512] * 3], [4096, 4096], 10, rng), base)
        measure(spec, "kernel")
    print(f"peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
