"""Train four plain-ReLU MNIST networks for the low-latency benchmark and save them as Keras files.

    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 \\
        python tools/train_mnist_nets.py /work/shared/data/mnist -o models --train-limit 30000 [--epochs 3] [--seed 0] [--only inception]

Networks (every layer one that ``netspec export`` converts; BN is folded into the convolution before it):

* ``lenet-bn``: conv 5x5 16 -> BN -> relu -> maxpool 2 -> conv 5x5 32 -> BN -> relu -> maxpool 2 -> flatten ->
  dense 128 relu -> dense 10 softmax (tools/train_lenet.py's architecture);
* ``resnet``: conv 3x3 16 -> BN -> relu -> maxpool 2 -> two residual blocks (conv 3x3 -> BN -> relu -> conv 3x3 ->
  BN, added to the block's input, relu; the second block widens to 32 channels, its shortcut a 1x1 convolution
  with BN), a max pool 2 between them -> flatten -> dense 10 softmax;
* ``inception``: conv 3x3 16 -> BN -> relu -> maxpool 2 -> an Inception-style module of three convolution branches
  (1x1 16; 1x1 8 -> 3x3 16; 1x1 8 -> 5x5 16; each conv with BN and relu) concatenated (48 channels), then max
  pool 2 -> flatten -> dense 64 relu -> dense 10 softmax;
* ``inception-deep``: three stacked GoogLeNet-style modules of four branches each (1x1 12; 1x1 8 -> 3x3 12;
  1x1 8 -> 5x5 12; 3x3 max pool stride 1 -> 1x1 12; each conv with BN and relu), concatenated (48 channels):
  conv 3x3 16 -> BN -> relu -> maxpool 2 -> module a -> maxpool 2 -> module b -> module c -> maxpool 2 -> flatten
  -> dense 64 relu -> dense 10 softmax (eight layers of neurons from input to output, against the
  ``inception`` net's five: the net bias calibration is measured on).

Training: Adam with cosine learning-rate decay, batch 128, no augmentation, BN momentum 0.9, seeded (the same seed gives the same
run on the same machine and TensorFlow build). Prints each network's test accuracy on the 10,000 test images and
the time its training took. Data from the IDX files through ``netspec.datasets`` (pixels / 255, [28, 28, 1]).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

NETS = ("lenet-bn", "resnet", "inception", "inception-deep")


def _conv_bn(L, x, filters: int, kernel: int, name: str, relu: bool = True, padding: str = "same"):
    x = L.Conv2D(filters, kernel, padding=padding, use_bias=False, name=name)(x)
    x = L.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)  # moving statistics that keep up in few epochs
    return L.ReLU(name=f"{name}_relu")(x) if relu else x


def lenet_bn(keras):
    L = keras.layers
    inp = keras.Input((28, 28, 1), name="image")
    x = _conv_bn(L, inp, 16, 5, "conv1", padding="valid")
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = _conv_bn(L, x, 32, 5, "conv2", padding="valid")
    x = L.MaxPooling2D(2, name="pool2")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(128, activation="relu", name="fc1")(x)
    return keras.Model(inp, L.Dense(10, activation="softmax", name="fc2")(x), name="lenet_bn")


def resnet(keras):
    L = keras.layers
    inp = keras.Input((28, 28, 1), name="image")
    x = _conv_bn(L, inp, 16, 3, "conv1")
    x = L.MaxPooling2D(2, name="pool1")(x)
    y = _conv_bn(L, x, 16, 3, "b1_conv1")
    y = _conv_bn(L, y, 16, 3, "b1_conv2", relu=False)
    x = L.ReLU(name="b1_relu")(L.Add(name="b1_add")([x, y]))
    x = L.MaxPooling2D(2, name="pool2")(x)
    y = _conv_bn(L, x, 32, 3, "b2_conv1")
    y = _conv_bn(L, y, 32, 3, "b2_conv2", relu=False)
    s = _conv_bn(L, x, 32, 1, "b2_short", relu=False)
    x = L.ReLU(name="b2_relu")(L.Add(name="b2_add")([s, y]))
    x = L.Flatten(name="flatten")(x)
    return keras.Model(inp, L.Dense(10, activation="softmax", name="fc")(x), name="resnet")


def inception(keras):
    L = keras.layers
    inp = keras.Input((28, 28, 1), name="image")
    x = _conv_bn(L, inp, 16, 3, "conv1", padding="valid")
    x = L.MaxPooling2D(2, name="pool1")(x)
    a = _conv_bn(L, x, 16, 1, "inc_1x1")
    b = _conv_bn(L, _conv_bn(L, x, 8, 1, "inc_3x3_reduce"), 16, 3, "inc_3x3")
    c = _conv_bn(L, _conv_bn(L, x, 8, 1, "inc_5x5_reduce"), 16, 5, "inc_5x5")
    x = L.Concatenate(name="inc_concat")([a, b, c])
    x = L.MaxPooling2D(2, name="pool2")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(64, activation="relu", name="fc1")(x)
    return keras.Model(inp, L.Dense(10, activation="softmax", name="fc2")(x), name="inception")


def _module(L, x, name: str, width: int = 12, reduce: int = 8):
    """A GoogLeNet-style Inception module: four branches concatenated along the channels."""
    a = _conv_bn(L, x, width, 1, f"{name}_1x1")
    b = _conv_bn(L, _conv_bn(L, x, reduce, 1, f"{name}_3x3_reduce"), width, 3, f"{name}_3x3")
    c = _conv_bn(L, _conv_bn(L, x, reduce, 1, f"{name}_5x5_reduce"), width, 5, f"{name}_5x5")
    d = _conv_bn(L, L.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x), width, 1, f"{name}_pool_proj")
    return L.Concatenate(name=f"{name}_concat")([a, b, c, d])


def inception_deep(keras):
    L = keras.layers
    inp = keras.Input((28, 28, 1), name="image")
    x = _conv_bn(L, inp, 16, 3, "conv1", padding="valid")
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = _module(L, x, "inc_a")
    x = L.MaxPooling2D(2, name="pool2")(x)
    x = _module(L, _module(L, x, "inc_b"), "inc_c")
    x = L.MaxPooling2D(2, name="pool3")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(64, activation="relu", name="fc1")(x)
    return keras.Model(inp, L.Dense(10, activation="softmax", name="fc2")(x), name="inception_deep")


def deflate(path: Path) -> None:
    """Rewrite a .keras file (a zip Keras writes uncompressed) with its members deflated: a third of the size, so
    the models can be committed (< 1 MB); Keras reads it as before."""
    import zipfile

    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info.filename, src.read(info.filename))
    tmp.replace(path)


BUILDERS = {"lenet-bn": lenet_bn, "resnet": resnet, "inception": inception, "inception-deep": inception_deep}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mnist", metavar="PATH_TO_MNIST_DIR", help="folder with the four MNIST IDX files (.gz or raw)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder the <net>.keras files go to")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", choices=NETS, action="append", default=None, help="train only this network (repeatable)")
    p.add_argument("--train-limit", type=int, default=None, metavar="N", help="first N training images only (quick trials)")
    args = p.parse_args(argv)

    from netspec.datasets import load_dataset
    from netspec.errors import NetspecError

    out = Path(args.output)
    if not out.is_dir():
        print(f"train_mnist_nets: error: {out}: not a folder", file=sys.stderr)
        return 2
    try:
        train = load_dataset(args.mnist, require_labels=True, limit=args.train_limit, prefer=("train",))
        test = load_dataset(args.mnist, require_labels=True, prefer=("t10k",))
    except NetspecError as exc:
        print(f"train_mnist_nets: error: {exc}", file=sys.stderr)
        return 2

    import keras

    for net in args.only or NETS:
        keras.utils.set_random_seed(args.seed)
        model = BUILDERS[net](keras)
        steps = args.epochs * -(-len(train) // args.batch_size)
        schedule = keras.optimizers.schedules.CosineDecay(2e-3, decay_steps=steps, alpha=0.01)
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        start = time.perf_counter()
        model.fit(train.x, train.y, batch_size=args.batch_size, epochs=args.epochs, shuffle=True, verbose=0)
        elapsed = time.perf_counter() - start
        _, accuracy = model.evaluate(test.x, test.y, batch_size=500, verbose=0)
        path = out / f"{net}-mnist.keras"
        saved = keras.models.clone_model(model)  # uncompiled: the file holds no optimizer state (< 1 MB)
        saved.set_weights(model.get_weights())
        saved.save(path)
        deflate(path)
        print(f"{net}: {model.count_params()} parameters, {len(train)} training images, {args.epochs} epochs in "
              f"{elapsed:.0f} s; test error {100 - accuracy * 100:.2f} % ({len(test)} images); saved {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
