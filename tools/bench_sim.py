"""Simulation benchmark, kernel projections against unrolled synapses, in ONE run (ratios: shared machines).

    PYTHONPATH=. python tools/bench_sim.py lenet --samples 1000 --unrolled-samples 1000
    PYTHONPATH=. python tools/bench_sim.py vgg --samples 200 --unrolled-samples 20
    PYTHONPATH=. python tools/bench_sim.py vgg --samples 200 --unrolled-samples 20 --float64
    PYTHONPATH=. python tools/bench_sim.py vgg16 --samples 3 --unrolled-samples 0
    PYTHONPATH=. python tools/bench_sim.py vgg16 --samples 16 --unrolled-samples 0 --dense-samples 64 --float64 \
        --before ../wt-base    # a worktree of the previous commit: git worktree add --detach ../wt-base HEAD~1

Networks: ``lenet`` is specs/lenet-mnist.yaml on data/mnist-1k; ``vgg`` the random-weight VGG-style MNIST
net of tools/bench_kernels.py (conv 32-32-pool-64-64-pool, dense 256, 10) on data/mnist-1k; ``vgg16`` VGG-16
for 32x32x3 (13 conv layers, dense 512, 512, 10: the CIFAR-10 variant, 15.0 M parameters) on uniform random
images in [0, 1]; ``vgg16-4096`` the same with ImageNet's dense 4096, 4096 (33.6 M); ``dense-vgg`` / ``dense-lenet`` only dense layers (MNIST ->
a spiking layer of 3136 / 512 neurons -> 256, 10 / 128, 10), for the dense projections alone. The random
nets are written once, like `netspec export` writes a spec: He-initialized weights in a sidecar .npz named
with its sha256, lambda per layer the 99.9th percentile of the reference activations on a few hundred
calibration inputs (so they fire like a converted net, not saturated). T = 100, analog input, standalone,
float32 and ``--batch`` samples side by side, netspec's defaults (``--float64``: also a kernel build with float64 state;
``--batch N`` with N > 1: also the same build one sample at a time; ``--before CHECKOUT``: also the kernel build of
an earlier netspec, e.g. a ``git worktree`` of the previous commit, with its own defaults; each one's counts are
compared with the kernel build's), one worker, one thread. The load average is printed with every result.
``--dense-samples N`` adds the peer every speed figure should be a ratio against: a time-stepped dense simulation of
the same normalized network in TensorFlow (tools/dense_baseline.py: one ANN forward pass per step, batch 64, one
thread, IF with reset by subtraction), run in the same invocation on the same inputs, its outputs compared with
netspec's.
``--profile`` builds with Brian2's profiling (every code object timed; the timers cost a few per cent, so
take samples/s from a run without it) and prints, per layer, the time of its outgoing projections per
synaptic event, and the share of each kind of code object (projections, thresholds, state updates, ...).

Every (network, connectivity) runs in its own process, so that its peak memory (the process and the compiler
it waits for: ``ru_maxrss`` of ``wait4``) is its own. Printed per mode: generation time (plan, arrays,
network.py), compile time, peak memory, samples/s of the binary (simulate's wall time, the Python side
included) and, per layer, synaptic events per sample and ns per event (the simulation's wall time over all
events: an upper bound that includes neuron updates).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))


#: calibration: lambda = this percentile of each layer's non-zero reference activations (as `netspec export`)
PERCENTILE = 99.9
#: The dense peer's batch (as the issue measured Keras VGG-16: batch 64, one thread).
DENSE_BATCH = 64
CALIBRATION = {"vgg": 300, "vgg16": 100, "vgg16-4096": 100, "dense-vgg": 300, "dense-lenet": 300}
VGG16 = [[64, 64], [128, 128], [256] * 3, [512] * 3, [512] * 3]


def _mnist(n: int) -> np.ndarray:
    from netspec.datasets import load_dataset

    return load_dataset(ROOT / "data" / "mnist-1k", require_labels=False, limit=n).x


def _doc(net: str, tensors: dict) -> dict:
    from bench_kernels import vgg

    rng = np.random.default_rng(0)
    if net == "vgg":
        return vgg((28, 28, 1), [[32, 32], [64, 64]], [256], 10, rng, tensors)
    if net.startswith("vgg16"):
        return vgg((32, 32, 3), VGG16, [4096, 4096] if net == "vgg16-4096" else [512, 512], 10, rng, tensors)
    # dense only (for Synapses against the kernel scatter on dense projections): MNIST -> flatten -> a spiking
    # layer of the size of VGG's (7*7*64) or LeNet's (4*4*32) flattened features -> its dense layers
    return vgg((28, 28, 1), [], [3136, 256] if net == "dense-vgg" else [512, 128], 10, rng, tensors)


def _inputs(net: str, shape, n: int, seed: int = 1) -> np.ndarray:
    """MNIST images for the 28x28x1 nets (fire like a real digit), uniform random images for VGG-16."""
    if not net.startswith("vgg16"):
        return _mnist(n)
    return np.random.default_rng(seed).uniform(0, 1, (n, *shape)).astype(np.float32)


def prepare(net: str, folder: Path) -> tuple[Path, dict]:
    """The spec file of ``net``: lenet's shipped spec, or a random-weight net written like `netspec export`
    writes one (weights in a sidecar .npz named with its sha256, lambda per layer = the 99.9th percentile of
    the reference activations on calibration inputs, so that layers fire like a converted net's)."""
    if net == "lenet":
        return ROOT / "specs" / "lenet-mnist.yaml", {}
    import yaml

    from netspec.export.writer import write_npz
    from netspec.export.normalize import compute_lambdas
    from netspec.spec import Limits, load_spec

    t0 = time.perf_counter()
    tensors: dict = {}
    doc = _doc(net, tensors)
    doc["weights"] = {"file": f"{net}.npz", "sha256": write_npz(folder / f"{net}.npz", tensors)}
    path = folder / f"{net}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    spec = load_spec(path, Limits(max_memory=None))
    x = _inputs(net, spec.input.shape, CALIBRATION[net], seed=2)
    norms = compute_lambdas(spec, x, method="percentile", percentile=PERCENTILE)
    for entry in doc["layers"]:
        if entry["name"] in norms:
            entry["normalization"] = {"lambda": float(norms[entry["name"]].lam)}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    info = {"params": int(sum(a.size for a in tensors.values())), "prepare_s": time.perf_counter() - t0,
            "lambdas": {k: float(v.lam) for k, v in norms.items()}}
    return path, info


#: Kinds of Brian2 code objects by name, for the profile (first match wins)
KINDS = (("projections", ("S_",)), ("max-pooling elections", ("E_",)), ("thresholds", ("_thresholder",)),
         ("state updates", ("_stateupdater",)), ("resets", ("_resetter",)),
         ("counters and monitors", ("C_", "counters", "M_", "P_")), ("other", ("",)))


def _kind(codeobj: str) -> str:
    for kind, marks in KINDS:
        if any(codeobj.startswith(m) if m.endswith("_") else m in codeobj for m in marks):
            return kind
    return "other"


def _read_profile(path: Path, into: dict) -> None:
    for line in path.read_text().splitlines():
        name, _, value = line.partition("\t")
        into[name] = into.get(name, 0.0) + float(value)


def dense(net: str, spec_path: Path, samples: int, steps: int) -> dict:
    """In this process: the time-stepped dense TensorFlow simulation (tools/dense_baseline.py) of ``samples``."""
    import dense_baseline

    from netspec.spec import Limits, load_spec

    spec = load_spec(spec_path, Limits(max_memory=None))
    x = _inputs(net, spec.input.shape, samples)
    out, seconds = dense_baseline.simulate(spec, x, steps, batch=DENSE_BATCH, threads=1)
    return {"net": net, "mode": "dense", "samples": len(x), "sim_s": seconds, "samples_per_s": len(x) / seconds,
            "readout": spec.simulation.read_by, "out": out.tolist(), "predictions": np.argmax(out, axis=1).tolist()}


def one(net: str, spec_path: Path, mode: str, samples: int, profile: bool = False, steps: int = 100,
        batch: int = 1) -> dict:
    """In this process: generate, compile and simulate ``samples`` samples; the figures as a dict. ``mode``:
    ``kernel`` (netspec's defaults, ``batch`` samples side by side), ``batch1`` (the same, one sample at a time),
    ``synapses`` (unrolled, float32, one at a time), ``float64`` (kernel, float64 state, ``batch``), ``before`` (the
    kernel build of the netspec that ``--before`` names, with its own defaults); ``dense``: the TensorFlow peer."""
    if mode == "dense":
        return dense(net, spec_path, samples, steps)
    from netspec.brian import BuildOptions, build, simulate
    from netspec.spec import Limits, load_spec

    base = Path(tempfile.mkdtemp(prefix=f"bench-{net}-{mode}-"))
    t0 = time.perf_counter()
    spec = load_spec(spec_path, Limits(max_memory=None))
    load = time.perf_counter() - t0
    # a run of the binary simulates samples_per_run samples (padding a short last run): no more than measured
    opts = dict(steps=steps, connectivity="synapses" if mode == "synapses" else "kernel", profile=profile,
                samples_per_run=min(100, samples))
    if mode != "before":  # the previous implementation: its own defaults (it may not know these options)
        opts["float32"] = mode != "float64"
        opts["batch"] = batch if mode in ("kernel", "float64") else 1
    t0 = time.perf_counter()
    build(spec, base / "gen", BuildOptions(**opts))  # generation only (runtime build folder)
    generate = time.perf_counter() - t0
    t0 = time.perf_counter()
    built = build(spec, base / "sa", BuildOptions(standalone=True, **opts))
    standalone = time.perf_counter() - t0
    x = _inputs(net, spec.input.shape, samples)
    times: dict = {}
    t0 = time.perf_counter()
    if profile:  # run by run: each run of the binary writes its own profiling_info.txt
        from netspec.run.evaluate import merge

        step = built.options.samples_per_run
        parts = []
        for s in range(0, len(x), step):
            parts.append(simulate(built, x[s:s + step], results_dir=base / "r"))
            _read_profile(base / "r" / "profiling_info.txt", times)
        res = merge(parts)
    else:
        res = simulate(built, x, results_dir=base / "r")
    wall = time.perf_counter() - t0
    events = {k: float(v.sum()) / len(x) for k, v in res.layer_ops.items()}
    spikes = {k: float(v.sum()) / len(x) for k, v in res.layer_spikes.items()}
    total = sum(events.values())
    return {"net": net, "mode": mode, "samples": len(x), "load_s": load, "generate_s": generate,
            "compile_s": standalone - generate, "sim_s": wall, "samples_per_s": len(x) / wall,
            "events_per_sample": events, "spikes_per_sample": spikes,
            "ns_per_event": wall / len(x) / total * 1e9 if total else None,
            "connections": sum(built.synapses.values()), "batch": getattr(built.options, "batch", 1), "counts": res.counts.tolist(), "v_out": res.v_out.tolist(),
            "readout": spec.simulation.read_by,
            "predictions": res.predictions().tolist(), "profile": _profile(spec, opts["connectivity"], times, events, len(x))}


def _profile(spec, connectivity: str, times: dict, events: dict, n: int) -> dict:
    """Seconds per sample by kind of code object, and per layer the ns per event of its outgoing projections."""
    if not times:
        return {}
    from netspec.brian.plan import make_plan

    plan = make_plan(spec, connectivity=connectivity)
    kinds: dict = {}
    for name, seconds in times.items():
        kinds[_kind(name)] = kinds.get(_kind(name), 0.0) + seconds / n
    layer_s: dict = {}
    for pop in plan.populations.values():
        for proj in pop.inputs:
            name = f"S_{proj.target}_{proj.index}_pre"
            spent = sum(v for k, v in times.items() if k in (name + "_codeobject", name + "_push_spikes"))
            layer_s[proj.source] = layer_s.get(proj.source, 0.0) + spent / n
    ns = {k: layer_s[k] / events[k] * 1e9 for k in layer_s if events.get(k)}
    return {"kinds": kinds, "ns_per_event": ns}


def _disagree(a, b) -> float:
    """Fraction of samples whose prediction (the read-out's class) differs."""
    return float(np.mean(np.array(a) != np.array(b)))


def _against_dense(d: dict, k: dict, mode: str) -> None:
    """The speed ratio of a netspec build to the dense peer, and how closely their outputs agree on the samples both
    ran (spike counts; the membrane read-out: the final output membranes)."""
    n = min(d["samples"], k["samples"])
    ours = np.array(k["counts"][:n] if k["readout"] == "spike_count" else k["v_out"][:n], dtype=np.float64)
    theirs = np.array(d["out"][:n], dtype=np.float64)
    what = "output spike counts" if k["readout"] == "spike_count" else "final output membranes"
    diff = np.abs(ours - theirs)
    same = _disagree(k["predictions"][:n], d["predictions"][:n])
    print(f"{mode} / dense samples/s: {k['samples_per_s'] / d['samples_per_s']:.2f}x; {what} of {n} samples: max "
          f"difference {diff.max():.3g}, mean {diff.mean():.3g}; predictions differ in {same * 100:.1f} %")


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("net", choices=("lenet", "vgg", "vgg16", "vgg16-4096", "dense-vgg", "dense-lenet"))
    ap.add_argument("--samples", type=int, default=200, help="samples for the kernel build")
    ap.add_argument("--unrolled-samples", type=int, default=20, help="samples for the unrolled build (0: skip it)")
    ap.add_argument("--float64", action="store_true", help="also a kernel build with float64 state")
    ap.add_argument("--profile", action="store_true", help="time every code object (Brian2's profiling)")
    ap.add_argument("--dense-samples", type=int, default=0,
                    help="samples for the time-stepped dense TensorFlow peer (tools/dense_baseline.py; 0: skip it)")
    ap.add_argument("--steps", type=int, default=100, help="time steps per sample (default 100)")
    ap.add_argument("--batch", type=int, default=None,
                    help="samples side by side in the kernel builds (BuildOptions.batch; default netspec's own choice)")
    ap.add_argument("--before", type=Path, default=None, metavar="CHECKOUT",
                    help="also the kernel build of the netspec in this checkout (a git worktree of an earlier commit), "
                    "with its own defaults: the previous implementation, in the same run")
    ap.add_argument("--one", choices=("kernel", "batch1", "synapses", "float64", "before", "dense"), help=argparse.SUPPRESS)
    ap.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        if args.one == "before":  # import netspec from that checkout, not this one
            sys.path.insert(0, str(args.before.resolve()))
        print(json.dumps(one(args.net, args.spec, args.one, args.samples, args.profile, args.steps,
                             None if args.batch == 0 else args.batch)))
        return 0
    folder = Path(tempfile.mkdtemp(prefix=f"bench-{args.net}-spec-"))
    print(f"load average {_loadavg()} (1/5/15 min) at start")
    spec_path, info = prepare(args.net, folder)
    if info:
        print(f"{args.net}: {info['params']:,} random weights in {spec_path.with_suffix('.npz').name}, lambdas "
              f"(99.9th percentile, {CALIBRATION[args.net]} inputs) in {info['prepare_s']:.1f} s: "
              + ", ".join(f"{k} {v:.3g}" for k, v in info["lambdas"].items()))
    rows = {}
    runs = [("dense", args.dense_samples), ("kernel", args.samples), ("synapses", args.unrolled_samples)]
    if args.batch != 1:
        runs.append(("batch1", args.samples))
    if args.float64:
        runs.append(("float64", args.samples))
    if args.before:
        runs.append(("before", args.samples))
    for mode, n in runs:
        if n <= 0:
            continue
        proc = subprocess.Popen([sys.executable, __file__, args.net, "--one", mode, "--samples", str(n), "--spec", str(spec_path),
                                 "--steps", str(args.steps), "--batch", str(args.batch or 0),
                                 *(["--before", str(args.before)] if args.before else []),
                                 *(["--profile"] if args.profile else [])],
                                stdout=subprocess.PIPE, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        if status != 0:
            print(f"{mode}: failed (status {status})")
            continue
        row = json.loads(out.strip().splitlines()[-1])
        row["peak_mb"] = usage.ru_maxrss / 1024
        rows[mode] = row
        if mode == "dense":
            print(f"{args.net} dense   : {row['samples']} samples, {row['samples_per_s']:.2f} samples/s (TensorFlow, one "
                  f"thread, batch {DENSE_BATCH}, {args.steps} steps), peak {row['peak_mb']:.0f} MB; load average {_loadavg()}")
            continue
        print(f"{args.net} {mode:8s}: {row['samples']} samples, batch {row['batch']}, {row['samples_per_s']:.2f} samples/s, "
              f"build {row['generate_s'] + row['compile_s']:.1f} s (generate {row['generate_s']:.1f} s, compile "
              f"{row['compile_s']:.1f} s; spec load {row['load_s']:.1f} s), "
              f"peak {row['peak_mb']:.0f} MB, {row['connections']:,} connections, "
              f"{sum(row['events_per_sample'].values()) / 1e6:.2f} M events/sample, "
              f"{row['ns_per_event'] or float('nan'):.2f} ns/event; load average {_loadavg()}")
        prof = row["profile"]
        for layer, ev in row["events_per_sample"].items():
            ns = prof.get("ns_per_event", {}).get(layer)
            print(f"    {layer:10s} {row['spikes_per_sample'][layer]:12,.0f} spikes {ev:14,.0f} events/sample"
                  + (f" {ns:8.2f} ns/event (profiled: its outgoing projections)" if ns is not None else ""))
        if prof:
            total = sum(prof["kinds"].values())
            print("    profiled time per sample: " + ", ".join(
                f"{k} {v * 1e3:.2f} ms ({v / total * 100:.0f} %)" for k, v in
                sorted(prof["kinds"].items(), key=lambda kv: -kv[1])))
    if "kernel" in rows and "synapses" in rows:
        k, s = rows["kernel"], rows["synapses"]
        n = min(k["samples"], s["samples"])
        same = k["counts"][:n] == s["counts"][:n] and k["v_out"][:n] == s["v_out"][:n]
        print(f"kernel / unrolled samples/s: {k['samples_per_s'] / s['samples_per_s']:.1f}x; output counts and "
              f"final output membranes of the first {n} samples {'identical' if same else 'DIFFER'}")
    for mode in ("kernel", "batch1", "float64", "before"):
        if "dense" in rows and mode in rows:
            _against_dense(rows["dense"], rows[mode], mode)
    batch = rows["kernel"]["batch"] if "kernel" in rows else args.batch
    for other, what in (("batch1", f"batch {batch} / batch 1 (both float32)"),
                        ("float64", f"float32 / float64 kernel (both batch {batch})"),
                        ("before", f"this netspec / the one in {args.before}")):
        if other in rows and "kernel" in rows:
            d, k = rows[other], rows["kernel"]
            n = min(k["samples"], d["samples"])
            diff = np.abs(np.array(d["counts"][:n]) - np.array(k["counts"][:n]))
            print(f"{what} samples/s: {k['samples_per_s'] / d['samples_per_s']:.2f}x; output counts of "
                  f"{n} samples: max difference {diff.max()} spikes, {np.mean(diff.any(axis=1)) * 100:.1f} % of samples "
                  f"differ, predictions differ in {_disagree(d['predictions'][:n], k['predictions'][:n]) * 100:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
