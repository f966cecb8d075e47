"""Benchmark ``netspec run``'s simulation on a LeNet-size network: samples/s on 1 and K workers, build
time, and where the time goes.

    python tools/bench_run.py                     # specs/lenet-mnist.yaml if present, else a random LeNet
    python tools/bench_run.py --samples 1000 --workers 1 2 --steps 100
    python tools/bench_run.py --random            # always the random-weight LeNet

The random LeNet (input 28x28x1 -> conv 5x5x16 -> maxpool 2 -> conv 5x5x32 -> maxpool 2 -> flatten ->
dense 128 -> dense 10) has He-initialized weights and per-layer λ set to the 99.9th percentile of its
activations on the shipped MNIST images (data/mnist-1k), so its firing rates are those of a converted
network even though its answers are meaningless. Inputs are analog; the build is C++ standalone.

Time breakdown of one run of ``samples_per_run`` samples (what one start of the binary simulates), from
the binary's own timings, no profiler needed (the builder compiles without Brian2's ``profile=True``):

- *Python side*: computing the input currents and reading the results (simulate's time minus the binary's);
- *binary start-up*: loading the arrays and creating the synapses (the binary's wall time minus its
  simulation loop, which Brian2 reports in ``last_run_info.txt``);
- *neuron updates and per-step overhead*: the simulation loop on all-zero input (no spikes);
- *synaptic events*: the loop on the real images minus the zero-input loop, with the synaptic operations
  per sample that caused it (ns per operation).

``--profile`` asks the builder for a Brian2 ``profile=True`` build, when its BuildOptions offer one, and
prints the per-code-object times of the binary (``profiling_info.txt``).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def random_lenet(folder: Path, x: np.ndarray, seed: int = 0) -> Path:
    """Write a random-weight LeNet spec (+ .npz) into ``folder``; λ from the activations on ``x``."""
    import yaml

    from netspec.reference import forward
    from netspec.spec import load_spec_data

    rng = np.random.default_rng(seed)

    def he(shape, fan_in):
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)

    tensors = {
        "conv1/kernel": he((5, 5, 1, 16), 25), "conv1/bias": np.full(16, 0.01, np.float32),
        "conv2/kernel": he((5, 5, 16, 32), 400), "conv2/bias": np.full(32, 0.01, np.float32),
        "fc1/kernel": he((512, 128), 512), "fc1/bias": np.full(128, 0.01, np.float32),
        "fc2/kernel": he((128, 10), 128), "fc2/bias": np.zeros(10, np.float32),
    }
    layers = [
        {"name": "image", "type": "input"},
        {"name": "conv1", "type": "conv2d", "filters": 16, "kernel_size": 5, "kernel": "conv1/kernel",
         "bias": "conv1/bias", "activation": "relu"},
        {"name": "pool1", "type": "maxpool2d", "pool_size": 2},
        {"name": "conv2", "type": "conv2d", "filters": 32, "kernel_size": 5, "kernel": "conv2/kernel",
         "bias": "conv2/bias", "activation": "relu"},
        {"name": "pool2", "type": "maxpool2d", "pool_size": 2},
        {"name": "flat", "type": "flatten"},
        {"name": "fc1", "type": "dense", "units": 128, "kernel": "fc1/kernel", "bias": "fc1/bias", "activation": "relu"},
        {"name": "fc2", "type": "dense", "units": 10, "kernel": "fc2/kernel", "bias": "fc2/bias", "activation": "softmax"},
    ]
    folder.mkdir(parents=True, exist_ok=True)
    npz = folder / "lenet-random.npz"
    np.savez(npz, **tensors)
    digest = hashlib.sha256(npz.read_bytes()).hexdigest()
    doc = {
        "netspec": 1, "name": "lenet-random",
        "description": "Random-weight LeNet for benchmarks (tools/bench_run.py); lambda from MNIST activations.",
        "weights": {"file": npz.name, "sha256": digest},
        "input": {"shape": [28, 28, 1], "range": [0.0, 1.0], "encoding": "analog"},
        "simulation": {"dt": "1 ms", "duration": "100 ms"},
        "neuron": {"model": "if", "threshold": 1.0, "reset": "subtract"},
        "layers": layers,
    }
    # λ: first with every λ = 1 to get the activations, then the 99.9th percentile of each layer
    for layer in layers:
        if layer["type"] in ("conv2d", "dense"):
            layer["normalization"] = {"lambda": 1.0, "method": "manual"}
    acts = forward(load_spec_data(doc, folder), x)
    for layer in layers:
        if "normalization" in layer:
            values = acts[layer["name"]]
            if layer["activation"] == "softmax":
                values = forward(load_spec_data(doc, folder), x, logits=True)[layer["name"]].clip(min=0)
            lam = float(np.percentile(values[values > 0], 99.9)) if np.any(values > 0) else 1.0
            layer["normalization"] = {"lambda": round(lam, 6), "method": "percentile", "percentile": 99.9,
                                      "samples": int(len(x))}
    path = folder / "lenet-random.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _timed_simulate(build, x, results_dir, seed=None):
    from netspec.brian import simulate

    t0 = time.perf_counter()
    sim = simulate(build, x, results_dir=results_dir, seed=seed)
    return time.perf_counter() - t0, sim


def _binary(build, results: Path, values: dict[str, np.ndarray] | None = None) -> tuple[float, float]:
    """Start the build's binary once on the input files a simulate call left in ``results`` (or on
    ``values``, written there first); return (wall seconds of the process, seconds of its simulation loop
    as Brian2 reports them in last_run_info.txt)."""
    import json
    import os
    import subprocess

    cpp = Path(build.dir).resolve() / "cpp"
    manifest = json.loads((cpp / "manifest.json").read_text())
    args = [str(cpp / "main"), "--results_dir", str(results.resolve()) + os.sep]
    for name, meta in manifest["inputs"].items():
        path = results / f"{name}.values"
        if values is not None:
            np.ascontiguousarray(values[name], dtype=meta["dtype"]).tofile(path)
        args.append(f"{name}.values={path.resolve()}")
    t0 = time.perf_counter()
    subprocess.run(args, cwd=cpp, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    loop = float((results / "last_run_info.txt").read_text().split()[0])
    return wall, loop


def breakdown(build, x: np.ndarray, work: Path) -> dict:
    """Where the time of one run of ``samples_per_run`` samples goes (see the module doc): Python side
    (input currents, reading results), binary start-up (loading arrays, creating synapses), the simulation
    loop on real input, and the same loop on all-zero input (neuron updates and per-step overhead only)."""
    import json

    per_run = build.options.samples_per_run
    x = x[:per_run]
    results = work / "run"
    t_sim, sim = _timed_simulate(build, x, str(results))
    wall, loop = _binary(build, results)
    manifest = json.loads((Path(build.dir) / "cpp" / "manifest.json").read_text())
    zeros = {name: np.zeros(meta["shape"]) for name, meta in manifest["inputs"].items()}
    zero_results = work / "zero"
    zero_results.mkdir(parents=True, exist_ok=True)
    _, loop_zero = _binary(build, zero_results, zeros)
    ops = float(sum(a.sum() for a in sim.layer_ops.values()) / len(x))
    n = len(x)
    return {"samples": n, "simulate_s": t_sim, "python_s": max(0.0, t_sim - wall), "startup_s": max(0.0, wall - loop),
            "loop_s": loop, "loop_zero_s": loop_zero, "synaptic_s": max(0.0, loop - loop_zero), "ops_per_sample": ops,
            "ops_by_layer": {k: float(v.sum() / n) for k, v in sim.layer_ops.items()},
            "spikes_by_layer": {k: float(v.sum() / n) for k, v in sim.layer_spikes.items()}}


def profile_build(spec, steps: int, x: np.ndarray, out_dir: Path) -> list[tuple[str, float]] | None:
    """Build again with Brian2 profiling into ``out_dir``, run ``x``, return (code object, seconds) sorted."""
    from netspec.brian import BuildOptions, build

    fields = getattr(BuildOptions, "__dataclass_fields__", {})
    if "profile" not in fields:
        print("  (--profile: this netspec.brian.BuildOptions has no 'profile' option; skipped)")
        return None
    b = build(spec, out_dir=out_dir, options=BuildOptions(standalone=True, steps=steps, profile=True), force=True)
    results = out_dir / "profile-results"
    _timed_simulate(b, x, str(results))
    info = next(iter(results.rglob("profiling_info.txt")), None)
    if info is None:
        print("  (--profile: no profiling_info.txt was written)")
        return None
    rows = []
    for line in info.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            rows.append((parts[0], float(parts[1])))
    return sorted(rows, key=lambda r: -r[1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", default=None, help="spec to benchmark (default specs/lenet-mnist.yaml, else a random LeNet)")
    ap.add_argument("--random", action="store_true", help="use the random LeNet even if specs/lenet-mnist.yaml exists")
    ap.add_argument("--data", default=str(ROOT / "data" / "mnist-1k"))
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--build-dir", default=str(ROOT / "build" / "bench"))
    ap.add_argument("--samples-per-run", type=int, default=None, help="BuildOptions.samples_per_run (default: the builder's)")
    ap.add_argument("--float32", action="store_true", help="single-precision state variables (BuildOptions.float32)")
    ap.add_argument("--no-breakdown", action="store_true")
    ap.add_argument("--profile", action="store_true", help="also a Brian2 profile=True build (if the builder offers one)")
    args = ap.parse_args(argv)

    from netspec.brian import BuildOptions, build
    from netspec.datasets import load_dataset
    from netspec.run import evaluate
    from netspec.spec import load_spec

    data = load_dataset(args.data, require_labels=True, limit=args.samples)
    build_root = Path(args.build_dir)
    spec_path = args.spec or (None if args.random else ROOT / "specs" / "lenet-mnist.yaml")
    if spec_path is None or not Path(spec_path).exists():
        spec_path = random_lenet(build_root / "spec", data.x)
    spec = load_spec(spec_path)
    print(f"spec {spec_path}: {spec.neuron_count():,} neurons; {len(data)} samples from {data.source}; "
          f"T = {args.steps} steps, analog input, standalone{', float32' if args.float32 else ''}")

    kw = {"standalone": True, "steps": args.steps, "float32": args.float32}
    if args.samples_per_run:
        kw["samples_per_run"] = args.samples_per_run
    t0 = time.perf_counter()
    folder = build_root / (spec.name + ("-float32" if args.float32 else "") +
                           (f"-spr{args.samples_per_run}" if args.samples_per_run else ""))
    b = build(spec, out_dir=folder, options=BuildOptions(**kw))
    wall = time.perf_counter() - t0
    print(f"build: {wall:.1f} s wall ({'compiled' if b.rebuilt else 'up to date, reused'}; Build.seconds {b.seconds:.1f}); "
          f"{sum(b.populations.values()):,} neurons, {sum(b.synapses.values()):,} synapses")
    print("  populations: " + ", ".join(f"{k} {v:,}" for k, v in b.populations.items()))
    print("  synapses:    " + ", ".join(f"{k} {v:,}" for k, v in b.synapses.items()))

    reference = None
    for k in args.workers:
        ev = evaluate(b, data.x, workers=k)
        rate = len(ev.indices) / ev.seconds
        same = "" if reference is None else (
            "  (counts identical to 1 worker)" if np.array_equal(reference, ev.sim.counts) else "  (COUNTS DIFFER!)")
        print(f"workers {k}: {len(ev.indices)} samples in {ev.seconds:.2f} s = {rate:.1f} samples/s "
              f"({ev.workers} processes, chunks of {ev.chunk_size}, sum of chunk times {ev.worker_seconds:.2f} s){same}")
        if reference is None:
            reference = ev.sim.counts
            ops = float(sum(a.sum() for a in ev.sim.layer_ops.values()) / len(ev.indices))
            spikes = float(sum(a.sum() for a in ev.sim.layer_spikes.values()) / len(ev.indices))
            print(f"  per sample: {spikes:,.0f} spikes, {ops:,.0f} synaptic operations")

    if not args.no_breakdown:
        with tempfile.TemporaryDirectory(prefix="netspec-bench-") as tmp:
            bd = breakdown(b, data.x, Path(tmp))
        n, ms = bd["samples"], 1e3 / bd["samples"]
        print(f"breakdown of one run of {n} samples (1 process), per sample: simulate {bd['simulate_s'] * ms:.2f} ms = "
              f"python side {bd['python_s'] * ms:.2f} ms + binary start-up {bd['startup_s'] * ms:.2f} ms + "
              f"simulation loop {bd['loop_s'] * ms:.2f} ms")
        print(f"  simulation loop = neuron updates and step overhead {bd['loop_zero_s'] * ms:.2f} ms (all-zero input) "
              f"+ synaptic events {bd['synaptic_s'] * ms:.2f} ms ({bd['ops_per_sample']:,.0f} ops/sample, "
              f"{bd['synaptic_s'] / max(bd['ops_per_sample'] * n, 1) * 1e9:.2f} ns/op)")
        print("  spikes/sample by layer: " + ", ".join(f"{k} {v:,.0f}" for k, v in bd["spikes_by_layer"].items()))
        print("  ops/sample by layer:    " + ", ".join(f"{k} {v:,.0f}" for k, v in bd["ops_by_layer"].items()))
    if args.profile:
        rows = profile_build(spec, args.steps, data.x[:200], build_root / f"{spec.name}-profile")
        if rows:
            total = sum(s for _, s in rows)
            print(f"Brian2 profile (200 samples, {total:.2f} s in code objects):")
            for name, s in rows[:12]:
                print(f"  {name:50s} {s:8.3f} s  {100 * s / total:5.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
