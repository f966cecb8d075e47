"""Low-latency benchmark: error at T = 4, 8, 16, 32 under the old export defaults and the new ones, same run.

    PYTHONPATH=. python tools/bench_lowlat.py                        # all three nets, full 10k test set
    PYTHONPATH=. python tools/bench_lowlat.py --nets inception --limit 1000
    PYTHONPATH=. python tools/bench_lowlat.py --nets --vgg 200        # only the VGG speed ratio
    PYTHONPATH=. python tools/bench_lowlat.py --nets --agreement 300  # only the Inception agreement at T = 100

For each network of tools/train_mnist_nets.py (``models/<net>-mnist.keras``) and each configuration, the
model is exported with ``netspec export`` (the same calibration data and ``--samples`` for every
configuration; the export's wall time is printed, so the cost of bias calibration shows), then run with
``netspec run --duration "32 ms" --report`` standalone on the MNIST test set. The simulation is causal, so the
report's ``error_vs_time`` (the error after every step) read at step t is a t-step run.

Configurations (the export options each one gives):

* ``old``: the defaults before issue 18: ``--normalization percentile --readout spike_count --initial 0`` (λ per
  layer, spike-count read-out, membranes from rest);
* ``old+cal``: the same with ``--calibrate-bias`` (what bias calibration alone does);
* ``new``: no option at all, the defaults now (λ per channel, membrane read-out, initial 0.5);
* ``new+cal``: ``--calibrate-bias`` (the defaults with bias calibration at T = 16 on 1000 samples);
* ``old+cal0``, ``new+cal0``: as ``old+cal`` and ``new+cal`` with ``--bias-rounds 0`` (the first correction alone,
  no secant rounds); ``new+cal4``: the defaults calibrated at ``--bias-steps 4``.

``--nets inception-deep`` (not in the default set): the deeper Inception-style net (three stacked four-branch
modules) on which bias calibration is measured.

``--agreement N``: the Inception-style net exported with the defaults, run at T = 100 on the first N test
images: SNN-ANN agreement. ``--vgg N``: the random-weight VGG-style MNIST net of tools/bench_sim.py, run on N
images of data/mnist-1k at T = 16 and T = 100 (one standalone build each, one worker): samples/s and their ratio.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

MNIST = Path("/work/shared/data/mnist")
NETS = ("lenet-bn", "resnet", "inception", "inception-deep")
CONFIGS = {
    "old": ["--normalization", "percentile", "--readout", "spike_count", "--initial", "0"],
    "old+cal": ["--normalization", "percentile", "--readout", "spike_count", "--initial", "0", "--calibrate-bias"],
    "new": [],
    "new+cal": ["--calibrate-bias"],
    "old+cal0": ["--normalization", "percentile", "--readout", "spike_count", "--initial", "0", "--calibrate-bias",
                 "--bias-rounds", "0"],
    "new+cal0": ["--calibrate-bias", "--bias-rounds", "0"],
    "new+cal4": ["--calibrate-bias", "--bias-steps", "4"],
}
READ_AT = (4, 8, 16, 32)


def _netspec(*args: str) -> float:
    """Run the netspec command line (this checkout's), return its wall time; stop the benchmark on failure."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "netspec", *args], env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"bench_lowlat: netspec {' '.join(args)} failed:\n{done.stderr.strip()[-2000:]}")
    return time.perf_counter() - t0


def _export(model: Path, spec: Path, options: list[str], data: Path, samples: int) -> float:
    return _netspec("export", str(model), "-o", str(spec), "--calibration", str(data), "--samples", str(samples), *options)


def _run(spec: Path, data: Path, report: Path, duration: str, limit: int | None, workers: int | None) -> dict:
    args = ["run", str(spec), "--data", str(data), "--duration", duration, "--report", str(report)]
    if limit:
        args += ["--limit", str(limit)]
    if workers:
        args += ["--workers", str(workers)]
    _netspec(*args)
    return json.loads(report.read_text())


def errors(args, folder: Path) -> None:
    print(f"error (%) after T steps on {args.limit or 'all'} MNIST test images; exports calibrated on {args.samples} "
          f"training images; one 32-step standalone run per row, read at T = {', '.join(map(str, READ_AT))}")
    print(f"{'net':<10} {'config':<10} {'ANN':>6} " + " ".join(f"{'T=' + str(t):>7}" for t in READ_AT) + f" {'export s':>9}")
    for net in args.nets:
        model = ROOT / "models" / f"{net}-mnist.keras"
        for config in args.configs:
            spec = folder / f"{net}-{config}.yaml"
            seconds = _export(model, spec, CONFIGS[config], MNIST, args.samples)
            rep = _run(spec, MNIST, folder / f"{net}-{config}.json", "32 ms", args.limit, args.workers)
            curve = rep["error_vs_time"]["error"]
            ann = rep["error_vs_time"]["ann_error"]
            print(f"{net:<10} {config:<10} {100 * ann:6.2f} " + " ".join(f"{100 * curve[t - 1]:7.2f}" for t in READ_AT)
                  + f" {seconds:9.1f}", flush=True)


def agreement(args, folder: Path) -> None:
    spec = folder / "inception-default.yaml"
    _export(ROOT / "models" / "inception-mnist.keras", spec, [], MNIST, args.samples)
    rep = _run(spec, MNIST, folder / "inception-agreement.json", "100 ms", args.agreement, args.workers)
    acc = rep["accuracy"]
    print(f"inception, default export, T = 100, first {rep['samples']['completed']} test images: SNN-ANN agreement "
          f"{100 * acc['agreement']:.2f} % (SNN top-1 {100 * acc['snn_top1']:.2f} %, ANN {100 * acc['ann_top1']:.2f} %)")


def vgg_speed(args, folder: Path) -> None:
    from bench_sim import prepare

    spec, _ = prepare("vgg", folder)
    data = ROOT / "data" / "mnist-1k"
    rates = {}
    for steps in (16, 100):
        rep = _run(spec, data, folder / f"vgg-{steps}.json", f"{steps} ms", args.vgg, 1)
        rates[steps] = rep["timing"]["samples_per_second"]
        print(f"vgg (random weights, conv 32-32-pool-64-64-pool, dense 256, 10), T = {steps}: {rates[steps]:.1f} samples/s "
              f"({rep['samples']['completed']} images, one worker, build {rep['timing']['build_seconds']:.0f} s)", flush=True)
    print(f"vgg: T = 16 runs {rates[16] / rates[100]:.2f}x the samples/s of T = 100 (ideal 6.25x); load average "
          f"{os.getloadavg()[0]:.1f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", nargs="*", choices=NETS, default=list(NETS[:3]),
                    help="networks (default the first three; inception-deep is the bias calibration's net)")
    ap.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS)[:4])
    ap.add_argument("--limit", type=int, default=None, help="first N test images (default all 10,000)")
    ap.add_argument("--samples", type=int, default=10000, help="calibration (training) images of every export (default 10000)")
    ap.add_argument("--workers", type=int, default=None, help="netspec run --workers (default netspec's)")
    ap.add_argument("--agreement", type=int, default=0, metavar="N", help="also the Inception agreement at T = 100 on N images")
    ap.add_argument("--vgg", type=int, default=0, metavar="N", help="also the VGG samples/s at T = 16 and 100 on N images")
    ap.add_argument("--keep", type=Path, default=None, help="write specs and reports here instead of a temporary folder")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-lowlat-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        if args.nets:
            errors(args, folder)
        if args.agreement:
            agreement(args, folder)
        if args.vgg:
            vgg_speed(args, folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
