"""Train the LeNet-style MNIST network of the paper's MNIST experiment and save it as a Keras file.

    python tools/train_lenet.py PATH_TO_MNIST_DIR -o lenet.keras [--epochs 15] [--seed 0]

Architecture: conv 5x5 (16, no bias) -> BN -> relu -> maxpool 2 -> conv 5x5 (32, no bias) -> BN -> relu ->
maxpool 2 -> flatten -> dropout -> dense 128 -> relu -> dropout -> dense 10 softmax; every layer is one that
``netspec export`` converts (BN is folded into the convolutions). Training: Adam with cosine learning-rate
decay, batch 128, inputs shifted by up to 2 pixels each epoch (augmentation happens outside the model, so
the saved model holds no preprocessing layers). Data is read from the IDX files with
``netspec.datasets`` (pixels / 255, [28, 28, 1]). Seeded: the same seed gives the same run on the same
machine and TensorFlow build. Prints the accuracy on the 10,000 test images and the training time.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def build_model(keras, filters: tuple[int, int] = (16, 32), dense: int = 128):
    L = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1), name="image"),
        L.Conv2D(filters[0], 5, use_bias=False, name="conv1"), L.BatchNormalization(name="bn1"), L.ReLU(name="relu1"),
        L.MaxPooling2D(2, name="pool1"),
        L.Conv2D(filters[1], 5, use_bias=False, name="conv2"), L.BatchNormalization(name="bn2"), L.ReLU(name="relu2"),
        L.MaxPooling2D(2, name="pool2"),
        L.Flatten(name="flatten"), L.Dropout(0.25, name="drop1"),
        L.Dense(dense, activation="relu", name="fc1"), L.Dropout(0.4, name="drop2"),
        L.Dense(10, activation="softmax", name="fc2"),
    ], name="lenet")


def shifted(x: np.ndarray, rng: np.random.Generator, max_shift: int = 2) -> np.ndarray:
    """Each image moved by a random whole number of pixels (up to ``max_shift``) in each direction,
    the uncovered border filled with zeros."""
    n, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))
    dy = rng.integers(0, 2 * max_shift + 1, n)
    dx = rng.integers(0, 2 * max_shift + 1, n)
    rows = dy[:, None] + np.arange(h)[None, :]
    cols = dx[:, None] + np.arange(w)[None, :]
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mnist", metavar="PATH_TO_MNIST_DIR", help="folder with the four MNIST IDX files (.gz or raw)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.keras")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--filters", type=int, nargs=2, default=(16, 32), metavar=("C1", "C2"),
                   help="filters of the two convolutions (default 16 32: ~15k neurons, ~0.8M synapses as an SNN)")
    p.add_argument("--dense", type=int, default=128, help="units of the hidden dense layer (default 128)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-limit", type=int, default=None, metavar="N", help="first N training images only (quick trials)")
    args = p.parse_args(argv)

    from netspec.datasets import load_dataset
    from netspec.errors import NetspecError

    try:
        train = load_dataset(args.mnist, require_labels=True, limit=args.train_limit, prefer=("train",))
        test = load_dataset(args.mnist, require_labels=True, prefer=("t10k",))
    except NetspecError as exc:
        print(f"train_lenet: error: {exc}", file=sys.stderr)
        return 2

    import keras

    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = build_model(keras, tuple(args.filters), args.dense)
    steps = args.epochs * int(np.ceil(len(train) / args.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=steps, alpha=0.01)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    print(f"training on {len(train)} images from {train.source}, {args.epochs} epochs, seed {args.seed}")
    start = time.perf_counter()
    for epoch in range(args.epochs):
        hist = model.fit(shifted(train.x, rng), train.y, batch_size=args.batch_size, epochs=epoch + 1,
                         initial_epoch=epoch, shuffle=True, verbose=0)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {hist.history['loss'][-1]:.4f}, "
              f"train accuracy {hist.history['accuracy'][-1]:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    elapsed = time.perf_counter() - start
    _, accuracy = model.evaluate(test.x, test.y, batch_size=500, verbose=0)
    model.save(args.output)
    print(f"test accuracy {accuracy * 100:.2f} % on {len(test)} images ({test.source}); training took {elapsed:.0f} s; saved {args.output}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
