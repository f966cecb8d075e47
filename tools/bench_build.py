"""Benchmark of the Brian2 builder: connectivity, build/compile and (optionally) simulation speed.

    python tools/bench_build.py                       # connectivity of a 1M-synapse conv layer, plan of a LeNet-size net
    python tools/bench_build.py --simulate 500        # also build it standalone and simulate 500 samples
    python tools/bench_build.py --spec my.yaml --data mnist/ --simulate 1000 --workers 2

The LeNet-size network (made here with seeded random weights, lambdas calibrated on the inputs): 28x28x1
analog input, conv 5x5x16 (valid), max pool 2, conv 5x5x32 (valid), max pool 2, dense 128, dense 10:
about 11k neurons, 2.8k max-pooling gates and 0.9M synapses. Inputs are random images unless ``--data``
gives a dataset (any the ``run`` command reads). Prints figures; it is not a test.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np


def lenet_doc(rng: np.random.Generator) -> dict:
    def t(*shape, scale):
        return rng.normal(0.0, scale, shape).astype(np.float32)

    tensors = {
        "conv1/kernel": t(5, 5, 1, 16, scale=0.25), "conv1/bias": t(16, scale=0.02),
        "conv2/kernel": t(5, 5, 16, 32, scale=0.06), "conv2/bias": t(32, scale=0.02),
        "fc1/kernel": t(512, 128, scale=0.06), "fc1/bias": t(128, scale=0.02),
        "fc2/kernel": t(128, 10, scale=0.15), "fc2/bias": t(10, scale=0.02),
    }
    layers = [
        {"name": "image", "type": "input"},
        {"name": "conv1", "type": "conv2d", "filters": 16, "kernel_size": 5, "kernel": "conv1/kernel", "bias": "conv1/bias", "activation": "relu"},
        {"name": "pool1", "type": "maxpool2d", "pool_size": 2},
        {"name": "conv2", "type": "conv2d", "filters": 32, "kernel_size": 5, "kernel": "conv2/kernel", "bias": "conv2/bias", "activation": "relu"},
        {"name": "pool2", "type": "maxpool2d", "pool_size": 2},
        {"name": "flat", "type": "flatten"},
        {"name": "fc1", "type": "dense", "units": 128, "kernel": "fc1/kernel", "bias": "fc1/bias", "activation": "relu"},
        {"name": "fc2", "type": "dense", "units": 10, "kernel": "fc2/kernel", "bias": "fc2/bias", "activation": "softmax"},
    ]
    doc = {"netspec": 1, "name": "bench-lenet", "input": {"shape": [28, 28, 1], "range": [0.0, 1.0], "encoding": "analog"},
           "simulation": {"dt": "1 ms", "duration": "100 ms"}, "layers": layers}
    return doc, tensors


def write_lenet(folder: Path, x: np.ndarray, seed: int = 7):
    """Write the LeNet-size spec and its weights into ``folder`` with lambdas = max activation over ``x``."""
    import hashlib

    import yaml

    from netspec.reference import forward
    from netspec.spec import load_spec

    doc, tensors = lenet_doc(np.random.default_rng(seed))
    npz = folder / "bench-lenet.npz"
    np.savez(npz, **tensors)
    doc["weights"] = {"file": npz.name, "sha256": hashlib.sha256(npz.read_bytes()).hexdigest()}
    for layer in doc["layers"]:
        if layer["type"] in ("conv2d", "dense"):
            layer["normalization"] = {"lambda": 1.0}
    path = folder / "bench-lenet.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    acts = forward(load_spec(path), x, logits=True)
    for layer in doc["layers"]:
        if "normalization" in layer:
            layer["normalization"] = {"lambda": float(max(np.percentile(acts[layer["name"]], 99.9), 1e-3))}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def bench_connectivity() -> None:
    from netspec.brian import connectivity

    kernel = np.random.default_rng(0).normal(size=(3, 3, 32, 32))
    t0 = time.perf_counter()
    pre, _, _ = connectivity.conv2d((12, 12, 32), kernel, (1, 1), "same")
    print(f"connectivity: conv2d 3x3x32x32 'same' on 12x12x32: {pre.size:,} synapses in {time.perf_counter() - t0:.3f} s")


def _simulate_part(args):
    from netspec.brian import simulate

    built, x, results = args
    return simulate(built, x, results_dir=results)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=None, help="benchmark this spec instead of the LeNet-size one")
    ap.add_argument("--data", default=None, help="dataset for inputs (default random images)")
    ap.add_argument("--simulate", type=int, default=0, metavar="N", help="build standalone and simulate N samples")
    ap.add_argument("--workers", type=int, default=1, metavar="K", help="simulate on K processes")
    ap.add_argument("--samples-per-run", type=int, default=100)
    ap.add_argument("--float32", action="store_true", help="single-precision state variables and weights")
    ap.add_argument("--threads", type=int, default=1, help="OpenMP threads of the binary")
    ap.add_argument("--out", default=None, help="build folder (default: a temporary one)")
    args = ap.parse_args(argv)

    from netspec.brian import BuildOptions, build
    from netspec.brian.plan import make_plan
    from netspec.spec import load_spec

    bench_connectivity()
    work = Path(args.out or tempfile.mkdtemp(prefix="netspec-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    n = max(args.simulate, 50)
    if args.data:
        from netspec.datasets import load_dataset

        x = load_dataset(args.data, require_labels=False, limit=n).x
    else:
        x = np.random.default_rng(1).uniform(0, 1, (n, 28, 28, 1)).astype(np.float32)
    spec = load_spec(args.spec) if args.spec else load_spec(write_lenet(work, x[:50]))
    t0 = time.perf_counter()
    plan = make_plan(spec)
    synapses = sum(p.pre.size for pop in plan.populations.values() for p in pop.inputs)
    neurons = sum(pop.size for pop in plan.populations.values())
    gates = sum(r.size for r in plan.relays.values())
    print(f"plan: {spec.name}: {neurons:,} neurons, {gates:,} max-pooling gates, {synapses:,} synapses "
          f"in {time.perf_counter() - t0:.3f} s")
    if not args.simulate:
        return 0
    options = BuildOptions(standalone=True, samples_per_run=args.samples_per_run, float32=args.float32, threads=args.threads)
    built = build(spec, work / ("build-f32" if args.float32 else "build") / f"t{args.threads}", options)
    print(f"build (standalone, compile included): {built.seconds:.1f} s{'' if built.rebuilt else ' (reused)'}")
    x = x[:args.simulate]
    t0 = time.perf_counter()
    if args.workers <= 1:
        from netspec.brian import simulate

        sim = [simulate(built, x)]
    else:
        parts = np.array_split(x, args.workers)
        with ProcessPoolExecutor(args.workers) as pool:
            sim = list(pool.map(_simulate_part, [(built, p, str(work / f"res{k}")) for k, p in enumerate(parts)]))
    wall = time.perf_counter() - t0
    spikes = {k: float(np.mean(np.concatenate([s.layer_spikes[k] for s in sim]).sum(axis=1))) for k in sim[0].layer_spikes}
    ops = float(np.mean(np.concatenate([sum(s.layer_ops.values()) for s in sim]).sum(axis=1)))
    print(f"simulate: {len(x)} samples x {built.steps} steps on {args.workers} process(es) in {wall:.2f} s = "
          f"{len(x) / wall:.1f} samples/s")
    print("  spikes per sample: " + ", ".join(f"{k} {v:,.0f}" for k, v in spikes.items()))
    print(f"  synaptic operations per sample: {ops:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
