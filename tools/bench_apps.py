"""Benchmark: keras.applications architectures through every netspec stage, with each stage's time and memory.

    python tools/bench_apps.py vgg16                     # VGG16 at its real input size (224x224x3), T = 10 steps
    python tools/bench_apps.py inceptionv3 --steps 20    # InceptionV3 at 299x299x3
    python tools/bench_apps.py resnet50 --size 32        # a small input instead
    python tools/bench_apps.py mobilenet --calibration mnist --data /work/shared/data/mnist

Architectures: vgg16, vgg19, resnet50, inceptionv3, mobilenet, densenet121, built by ``keras.applications``
with ``weights=None`` (random weights: nothing is downloaded) and ``classes`` output classes
(``classifier_activation=None``: the logits are the output layer). Calibration inputs are ``random`` (uniform
in [0, 1]) or ``mnist``-derived (the digits resized to the input size, grey copied into three channels).

Stages, each a fresh process of its own, so that its peak resident memory (``ru_maxrss`` of the process and
the processes it waited for: the compiler under ``build``) is its own:

1. ``model``: build the Keras model and write it (.keras) with the calibration and run data (not netspec);
2. ``export``: ``netspec export`` (``--samples`` calibration samples, ``--duration`` T steps of 1 ms);
3. ``validate``: ``netspec validate``;
4. ``build``: ``netspec build --standalone`` (generate and compile the C++ simulation);
5. ``simulate``: ``netspec run --limit N --workers 1`` on the same build (nothing is rebuilt).

Prints one line per stage (seconds, peak RSS in MB) and a summary; stops at the first stage that fails and
shows its last lines. Absolute times on a shared machine move by 2x from one hour to the next: the figures
say what fits (memory) and where the time goes, not how fast a machine is. Not a test.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: name -> (keras.applications constructor, real input side, smallest input side it accepts)
ARCHS = {
    "vgg16": ("VGG16", 224, 32),
    "vgg19": ("VGG19", 224, 32),
    "resnet50": ("ResNet50", 224, 32),
    "inceptionv3": ("InceptionV3", 299, 75),
    "mobilenet": ("MobileNet", 224, 32),
    "densenet121": ("DenseNet121", 224, 32),
}

MAKE_MODEL = r'''
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import keras
ctor, side, classes, cal_kind, data, n_cal, n_run, out = sys.argv[1:9]
side, classes, n_cal, n_run = int(side), int(classes), int(n_cal), int(n_run)
keras.utils.set_random_seed(0)
model = getattr(keras.applications, ctor)(weights=None, input_shape=(side, side, 3), classes=classes,
                                          classifier_activation=None)
model.save(os.path.join(out, "model.keras"))
rng = np.random.default_rng(0)
n = n_cal + n_run
if cal_kind == "random":
    x = rng.uniform(0.0, 1.0, (n, side, side, 3)).astype(np.float32)
else:
    from netspec.datasets import load_dataset
    import tensorflow as tf
    digits = load_dataset(data, require_labels=False, limit=n).x.astype(np.float32)
    digits = digits.reshape(n, 28, 28, 1) / max(1.0, float(digits.max()))
    x = tf.image.resize(digits, (side, side)).numpy().repeat(3, axis=3).astype(np.float32)
np.savez(os.path.join(out, "calibration.npz"), x=x[:n_cal])
np.savez(os.path.join(out, "samples.npz"), x=x[n_cal:], y=np.zeros(n_run, dtype=np.int64))
print(f"{ctor} {side}x{side}x3: {len(model.layers)} Keras layers, {model.count_params():,} parameters")
'''


def stage(name: str, argv: list[str], cwd: Path, log: Path) -> tuple[float, float, int]:
    """Run one stage; (seconds, peak RSS in MB, exit status)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1", OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    return seconds, usage.ru_maxrss / 1024.0, code


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("arch", choices=sorted(ARCHS))
    p.add_argument("--size", type=int, default=None, help="input side (default the architecture's real one)")
    p.add_argument("--classes", type=int, default=10, help="output classes (default 10)")
    p.add_argument("--steps", type=int, default=10, help="time steps per sample, dt 1 ms (default 10)")
    p.add_argument("--samples", type=int, default=8, help="calibration samples (default 8)")
    p.add_argument("--simulate", type=int, default=1, metavar="N", help="samples to simulate (default 1)")
    p.add_argument("--calibration", choices=("random", "mnist"), default="random")
    p.add_argument("--data", default="/work/shared/data/mnist", help="MNIST folder for --calibration mnist")
    p.add_argument("--workdir", default=None, help="keep the files here (default a temporary folder, removed)")
    args = p.parse_args(argv)

    ctor, real, smallest = ARCHS[args.arch]
    side = args.size or real
    if side < smallest:
        p.error(f"{ctor} needs an input of at least {smallest}x{smallest}")
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix=f"bench-apps-{args.arch}-"))
    work.mkdir(parents=True, exist_ok=True)
    netspec = [sys.executable, "-m", "netspec"]
    stages = [
        ("model", [sys.executable, "-c", MAKE_MODEL, ctor, str(side), str(args.classes), args.calibration, args.data,
                   str(args.samples), str(args.simulate), str(work)]),
        ("export", [*netspec, "export", "model.keras", "-o", "net.yaml", "--calibration", "calibration.npz",
                    "--duration", f"{args.steps} ms"]),
        ("validate", [*netspec, "validate", "net.yaml"]),
        ("build", [*netspec, "build", "net.yaml", "-o", "build", "--standalone"]),
        ("simulate", [*netspec, "run", "net.yaml", "--data", "samples.npz", "--limit", str(args.simulate), "--workers", "1",
                      "--build-dir", "build", "--report", "report.json"]),
    ]
    print(f"bench_apps: {args.arch} ({ctor}) at {side}x{side}x3, {args.classes} classes, {args.calibration} calibration "
          f"({args.samples} samples), T = {args.steps} steps, {args.simulate} sample(s) simulated; in {work}", flush=True)
    rows = []
    try:
        for name, cmd in stages:
            seconds, rss, code = stage(name, cmd, work, work / f"{name}.log")
            rows.append((name, seconds, rss, code))
            print(f"  {name:9s} {seconds:9.1f} s  peak RSS {rss:9.1f} MB  exit {code}", flush=True)
            lines = (work / f"{name}.log").read_text(errors="replace").splitlines()
            if code != 0:
                print("    " + "\n    ".join(lines[-15:]))
                return 1
            for line in lines:
                if name in ("model", "export", "build") and ("parameters" in line or line.startswith("wrote")
                                                              or "neurons" in line):
                    print(f"    {line[:240]}")
        if (work / "report.json").is_file():
            import json

            timing = json.loads((work / "report.json").read_text()).get("timing", {})
            print("    run report: " + ", ".join(f"{k} {v:.4g}" for k, v in timing.items() if isinstance(v, (int, float))))
        worst = max(rows, key=lambda r: r[2])
        print(f"  peak RSS of any stage: {worst[2]:.0f} MB ({worst[0]}); total {sum(r[1] for r in rows):.0f} s")
        return 0
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
