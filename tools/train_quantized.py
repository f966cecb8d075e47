"""Train MNIST networks with netspec's quantized activation (QCFS) for low-latency conversion, and measure them.

    python tools/train_quantized.py train PATH_TO_MNIST_DIR --arch lenet -o models/lenet-qcfs.keras [--levels 8]
        [--epochs 3] [--seed 0] [--train-limit N]
    python tools/train_quantized.py measure MODEL.keras PATH_TO_MNIST_DIR -o DIR [--steps 32] [--limit N]
        [--readout membrane] [--workers 2]

``train`` builds one of three networks with :class:`netspec.keras.QuantizedClip` in place of every hidden
ReLU (every one of them exported by ``netspec export``):

* ``lenet``: conv 5x5 (16) -> BN -> QCFS -> maxpool 2 -> conv 5x5 (32) -> BN -> QCFS -> maxpool 2 -> flatten
  -> dense 128 -> QCFS -> dense 10 softmax;
* ``inception``: conv 3x3 (16) -> BN -> QCFS -> maxpool 2, then an Inception-style block of three branches
  (1x1 conv 16, 3x3 conv 16, 5x5 conv 8, each -> BN -> QCFS) concatenated on the channels -> maxpool 2 ->
  conv 3x3 (32) -> BN -> QCFS -> maxpool 2 -> flatten -> dense 10 softmax;
* ``vgg``: two conv 3x3 (16) -> BN -> QCFS, maxpool 2, two conv 3x3 (32) -> BN -> QCFS, maxpool 2, flatten,
  dense 128 -> QCFS, dense 10 softmax.

Training: Adam (cosine decay from 1e-3), batch 128, seeded (``keras.utils.set_random_seed``); prints the
test error and the training time. Set TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 for one core.

``measure`` is the conversion benchmark: the model's own (Keras) test error, then ``netspec export`` (λ of the
quantized layers = their trained clip, their neurons starting at 0.5), optionally the spec's read-out set to
``membrane`` (the hand edit ``simulation.readout: membrane``), ``netspec run --standalone --report`` on the
MNIST test set at ``--steps`` time steps, and the SNN error after each step against the ANN's, printed as a
table (T = 1, 2, 4, 8, 16, 32 and the last step). The commands it runs are printed, so they can be rerun by hand.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
ARCHS = ("lenet", "inception", "vgg")


def build_model(keras, arch: str, levels: int, initial_clip: float):
    from netspec.keras import QuantizedClip

    L = keras.layers
    count = {"n": 0}

    def q(x):
        count["n"] += 1
        return QuantizedClip(levels, initial_clip, name=f"qcfs{count['n']}")(x)

    def conv_bn(x, filters, k, name):
        x = L.Conv2D(filters, k, padding="same" if arch != "lenet" else "valid", use_bias=False, name=name)(x)
        return q(L.BatchNormalization(name=f"{name}_bn")(x))

    inp = keras.Input((28, 28, 1), name="image")
    if arch == "lenet":
        x = L.MaxPooling2D(2, name="pool1")(conv_bn(inp, 16, 5, "conv1"))
        x = L.MaxPooling2D(2, name="pool2")(conv_bn(x, 32, 5, "conv2"))
        x = L.Flatten(name="flatten")(x)
        x = q(L.Dense(128, name="fc1")(x))
    elif arch == "inception":
        x = L.MaxPooling2D(2, name="pool1")(conv_bn(inp, 16, 3, "stem"))
        branches = [conv_bn(x, 16, 1, "branch1x1"), conv_bn(x, 16, 3, "branch3x3"), conv_bn(x, 8, 5, "branch5x5")]
        x = L.MaxPooling2D(2, name="pool2")(L.Concatenate(name="mixed")(branches))
        x = L.MaxPooling2D(2, name="pool3")(conv_bn(x, 32, 3, "conv2"))
        x = L.Flatten(name="flatten")(x)
    else:
        x = conv_bn(inp, 16, 3, "conv1a")
        x = L.MaxPooling2D(2, name="pool1")(conv_bn(x, 16, 3, "conv1b"))
        x = conv_bn(x, 32, 3, "conv2a")
        x = L.MaxPooling2D(2, name="pool2")(conv_bn(x, 32, 3, "conv2b"))
        x = L.Flatten(name="flatten")(x)
        x = q(L.Dense(128, name="fc1")(x))
    out = L.Dense(10, activation="softmax", name="fc_out")(x)
    return keras.Model(inp, out, name=f"{arch}_qcfs{levels}")


def train(args) -> int:
    from netspec.datasets import load_dataset

    train_set = load_dataset(args.mnist, require_labels=True, limit=args.train_limit, prefer=("train",))
    test = load_dataset(args.mnist, require_labels=True, prefer=("t10k",))
    import keras

    keras.utils.set_random_seed(args.seed)
    model = build_model(keras, args.arch, args.levels, args.initial_clip)
    steps = args.epochs * int(np.ceil(len(train_set) / args.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=steps, alpha=0.01)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    print(f"training {model.name} ({model.count_params()} parameters) on {len(train_set)} images from "
          f"{train_set.source}, {args.epochs} epochs, seed {args.seed}", flush=True)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        hist = model.fit(train_set.x, train_set.y, batch_size=args.batch_size, epochs=epoch + 1, initial_epoch=epoch,
                         shuffle=True, verbose=0)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {hist.history['loss'][-1]:.4f}, train accuracy "
              f"{hist.history['accuracy'][-1]:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    elapsed = time.perf_counter() - start
    _, accuracy = model.evaluate(test.x, test.y, batch_size=500, verbose=0)
    bare = build_model(keras, args.arch, args.levels, args.initial_clip)  # the same network without the optimizer's
    bare.set_weights(model.get_weights())                                  # state, so that the file stays small
    bare.save(args.output)
    clips = ", ".join(f"{l.name} {float(l.clip):.3f}" for l in model.layers if hasattr(l, "levels"))
    print(f"trained clips: {clips}")
    print(f"test error {100 - accuracy * 100:.2f} % on {len(test)} images; training took {elapsed:.0f} s; saved {args.output}")
    return 0


def _netspec(*argv: str) -> None:
    cmd = [sys.executable, "-m", "netspec", *argv]
    print("$ netspec " + " ".join(argv), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")})


def measure(args) -> int:
    from netspec.datasets import load_dataset

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    test = load_dataset(args.mnist, require_labels=True, limit=args.limit, prefer=("t10k",))
    import keras
    import netspec.keras  # noqa: F401  (registers QuantizedClip)

    model = keras.models.load_model(args.model, compile=False)
    pred = np.argmax(model.predict(test.x, batch_size=500, verbose=0), axis=1)
    ann_error = float(np.mean(pred != test.y)) * 100
    print(f"ANN (Keras) error {ann_error:.2f} % on {len(test)} test images", flush=True)
    stem = Path(args.model).stem.replace(".", "_")
    spec = out / f"{stem}.yaml"
    export = ["export", str(args.model), "-o", str(spec), "--calibration", str(args.mnist), "--samples", str(args.samples),
              "--duration", f"{args.steps} ms"]
    if args.normalization:
        export += ["--normalization", args.normalization]
    _netspec(*export)
    if args.readout != "spike_count":
        text = spec.read_text(encoding="utf-8")
        marker = f"  duration: {args.steps} ms\n"
        if marker not in text:
            raise SystemExit(f"train_quantized: cannot find '{marker.strip()}' in {spec} to add the read-out")
        spec.write_text(text.replace(marker, marker + f"  readout: {args.readout}\n", 1), encoding="utf-8")
        print(f"(edited {spec}: simulation.readout: {args.readout})")
    report = out / f"{stem}.json"
    run = ["run", str(spec), "--data", str(args.mnist), "--standalone", "--report", str(report)]
    if args.limit:
        run += ["--limit", str(args.limit)]
    if args.workers:
        run += ["--workers", str(args.workers)]
    start = time.perf_counter()
    _netspec(*run)
    elapsed = time.perf_counter() - start
    data = json.loads(report.read_text(encoding="utf-8"))
    errors = data["error_vs_time"]["error"]
    snn_ann = data["error_vs_time"]["ann_error"]
    print(f"\n{stem}: ANN error {ann_error:.2f} % (Keras) / {snn_ann * 100 if snn_ann is not None else float('nan'):.2f} % "
          f"(netspec reference), {len(test)} images, run {elapsed:.0f} s (build included)")
    print("T      SNN error   SNN - ANN (points)")
    for t in sorted({1, 2, 4, 8, 16, 32, len(errors)}):
        if t <= len(errors):
            print(f"{t:<6} {errors[t - 1] * 100:7.2f} %   {errors[t - 1] * 100 - ann_error:+.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a network with QuantizedClip")
    t.add_argument("mnist", metavar="PATH_TO_MNIST_DIR")
    t.add_argument("--arch", choices=ARCHS, required=True)
    t.add_argument("-o", "--output", required=True, metavar="MODEL.keras")
    t.add_argument("--levels", type=int, default=8, help="L, quantization steps (default 8)")
    t.add_argument("--initial-clip", type=float, default=2.0, help="starting value of every trainable clip (default 2)")
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--train-limit", type=int, default=None, metavar="N", help="first N training images only")
    m = sub.add_parser("measure", help="export, run standalone, SNN error vs ANN error per time step")
    m.add_argument("model", metavar="MODEL.keras")
    m.add_argument("mnist", metavar="PATH_TO_MNIST_DIR")
    m.add_argument("-o", "--output", required=True, metavar="DIR", help="where the spec, weights and report go")
    m.add_argument("--steps", type=int, default=32, help="time steps of the run (1 ms each; default 32)")
    m.add_argument("--samples", type=int, default=1000, help="calibration samples for the non-quantized layers (default 1000)")
    m.add_argument("--normalization", default=None, help="netspec export --normalization")
    m.add_argument("--readout", choices=("spike_count", "membrane"), default="spike_count")
    m.add_argument("--limit", type=int, default=None, metavar="N", help="first N test images only")
    m.add_argument("--workers", type=int, default=None)
    args = p.parse_args(argv)
    return train(args) if args.command == "train" else measure(args)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
