"""The command line of ``network.py``: ``--inputs x.npy --out results.npz``, or ``--compile``."""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

from .model import Model
from .operations import UnsupportedTarget
from .runtime import run_runtime
from .standalone import compile_standalone, run_standalone


def main(model: Model, argv: Sequence[str] | None = None, description: str | None = None) -> int:
    """Run ``network.py``'s command line.

    Parameters
    ----------
    model : Model
        The network.
    argv : sequence of str, optional
        Arguments (default: ``sys.argv[1:]``).
    description : str, optional
        The first line of the help text.

    Returns
    -------
    int
        The exit status (argument errors exit with status 2, as argparse does).
    """
    shape = ", ".join(map(str, model.input_shape))
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--inputs", help=f".npy file of raw inputs [N, {shape}]")
    parser.add_argument("--out", help=".npz file for the results")
    parser.add_argument("--seed", type=int, default=None, help="seed of the poisson input (default: the spec's)")
    parser.add_argument("--runtime", action="store_true",
                        help="simulate in runtime mode even if this is a standalone build")
    parser.add_argument("--target", default="numpy", choices=("numpy", "cython"),
                        help="runtime code generation: numpy (starts at once) or cython (compiles once, faster)")
    parser.add_argument("--compile", action="store_true", help="generate and compile the standalone C++ project")
    args = parser.parse_args(argv)
    if args.compile:
        try:
            compile_standalone(model)
        except RuntimeError as exc:  # the compiler's own messages, without a traceback
            print(f"{parser.prog}: error: {exc}", file=sys.stderr)
            return 1
        return 0
    if not args.inputs or not args.out:
        parser.error("--inputs and --out are required")
    x = np.load(args.inputs)
    if tuple(x.shape[1:]) != tuple(model.input_shape):
        parser.error(f"inputs have shape {list(x.shape)}, expected [N, {shape}]")
    seed_value = args.seed if args.seed is not None else model.seed
    t0 = time.perf_counter()
    if model.standalone and not args.runtime:
        if not (model.cpp_dir / "main").exists():
            compile_standalone(model)
        results = run_standalone(model, x, seed_value=seed_value)
    else:
        try:
            results = run_runtime(model, x, seed_value, target=args.target)
        except UnsupportedTarget as exc:
            parser.exit(2, f"{parser.prog}: error: {exc}\n")
    np.savez(args.out, **results.arrays())  # type: ignore[arg-type]  # numpy's stubs take a ** array for allow_pickle
    print(f"{len(x)} samples in {time.perf_counter() - t0:.2f} s -> {args.out}")
    return 0
