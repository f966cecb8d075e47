"""``netspec run``: evaluate a spec's spiking network on a dataset.

The stage's entry point is :func:`run_command` (what the CLI calls with a :class:`RunOptions`). Its steps, each
in its own module:

1. load the data and check it against the spec's input before anything is built (``netspec.datasets``);
2. build the network once (``netspec.brian.build``);
3. simulate it in chunks on K worker processes and merge the chunks (:mod:`.evaluate`);
4. compute the ANN reference on the same samples (``netspec.reference``), then the metrics
   (:mod:`.metrics`), the report (:mod:`.report`, schema ``report.schema.json``) and the figures
   (:mod:`.plots`); a progress bar on stderr while simulating (:mod:`.progress`).
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import NetspecError
from ..spec.resources import Limits
from .evaluate import (Evaluation, check_labels, chunk_seed, default_workers, evaluate, interruptible, merge,
                       parse_steps, prepare_workers)
from .progress import Progress
from .report import REPORT_VERSION, make_report, schema, summary, validation_errors, write_report

__all__ = ["RunOptions", "run_command", "parallelism", "evaluate", "Evaluation", "ann_outputs", "make_report", "write_report", "summary",
           "schema", "validation_errors", "parse_steps", "check_labels", "chunk_seed", "merge", "default_workers",
           "Progress", "REPORT_VERSION"]

#: Samples of the activation-vs-rate scatter plot (simulated again with per-neuron counts).
CORRELATION_SAMPLES = 5


@dataclass(frozen=True)
class RunOptions:
    """What ``netspec run`` was asked to do (see ``netspec run --help``).

    ``data`` is a dataset path (``.npz``, MNIST IDX file or folder); ``limit`` keeps the first N samples;
    ``duration`` overrides the spec's duration per sample (``'50 ms'``, a multiple of dt); ``workers`` is
    the number of worker processes and ``threads`` the OpenMP threads of each standalone binary (None: one
    thread, and as many workers as usable cores, so that workers x threads never exceeds them; given
    threads and no workers: the usable cores divided by the threads); ``connectivity`` is the build's
    (``'kernel'``: projections from their kernels, ``'synapses'``: unrolled); ``float32`` its precision (False:
    ``--float64``) and ``batch`` its samples side by side (None: the build's default); ``seed`` overrides the spec's input seed;
    ``scheduler`` is a Dask scheduler's address (the chunks go to its workers); ``report``/``plots``/``build_dir`` are output paths (None: not written / ``build/<name>/``); ``limits``
    bound the steps per sample and the memory of the run (``--max-steps``, ``--max-memory``).
    """

    data: str
    limit: int | None = None
    duration: str | None = None
    standalone: bool = True
    workers: int | None = None
    threads: int | None = None
    connectivity: str = "kernel"
    float32: bool = True
    batch: int | None = None
    report: str | None = None
    plots: str | None = None
    seed: int | None = None
    build_dir: str | None = None
    limits: Limits = field(default_factory=Limits)
    scheduler: str | None = None


def ann_outputs(spec, x: np.ndarray, batch: int = 500) -> np.ndarray:
    """The ANN reference's output layer for ``x`` ([N, classes]), computed in batches."""
    from ..reference import forward

    out = spec.output_layer.name
    parts = [np.asarray(forward(spec, x[i:i + batch])[out]).reshape(len(x[i:i + batch]), -1)
             for i in range(0, len(x), batch)]
    return np.concatenate(parts, axis=0)


#: Seeds a run accepts (Brian2 and numpy take 32-bit unsigned seeds).
SEED_RANGE = (0, 2**32 - 1)


def _check_outputs(spec, args: RunOptions) -> None:
    """Before any work: the report and the plots go to writable paths that are none of the run's inputs
    (the spec, its weights, the data files)."""
    from ..datasets import data_files
    from ..paths import check_outputs
    from .plots import PLOT_FILES

    inputs = {"the spec": spec.path}
    if spec.path is not None and spec.weights is not None:
        inputs["the spec's weights"] = Path(spec.path).parent / spec.weights.file
    for i, f in enumerate(data_files(args.data)):
        inputs["the data" if i == 0 else "the data's labels"] = f
    outputs: dict[str, Path | None] = {"--report": Path(args.report) if args.report is not None else None}
    if args.plots is not None:
        outputs.update({f"--plots ({name})": Path(args.plots) / name for name in PLOT_FILES})
    check_outputs(outputs, inputs, {"--plots": Path(args.plots) if args.plots is not None else None})


def _check_resources(spec, args: RunOptions, steps: int | None):
    """Before loading the data: its headers fit the spec's input, and the run (network, data, recorded
    per-step output counts) fits the memory limit. Returns what the headers say."""
    from ..datasets import check_memory, check_shape, inspect_dataset
    from ..spec.resources import check_steps

    if steps is not None:
        why = check_steps(steps, args.limits)
        if why:
            raise NetspecError(f"--duration {args.duration!r}: {why}", 2)
    info = inspect_dataset(args.data, limit=args.limit)
    check_shape(info, spec)
    est = spec.estimate(args.connectivity)
    batch = est.default_batch if args.batch is None else args.batch
    need = est.run_bytes(info.samples, steps, input_bytes=info.nbytes, batch=batch)
    check_memory(info, args.limits.max_memory, need,
                 f"a run of {(steps or spec.simulation.steps):,} steps per sample on {est.describe()}")
    return info


def parallelism(workers: int | None, threads: int | None, standalone: bool, cores: int | None = None) -> tuple[int, int]:
    """(worker processes, OpenMP threads per worker) for ``--workers`` and ``--threads`` (None: chosen).

    Samples are independent, so processes use the cores best: by default one thread per worker and one
    worker per usable core; given threads only, the usable cores divided by them (workers x threads never
    exceeds the cores unless both are given)."""
    cores = default_workers() if cores is None else cores
    threads = 1 if threads is None else threads
    if threads < 1:
        raise NetspecError(f"--threads: must be at least 1, got {threads}", 2)
    if threads > 1 and not standalone:
        raise NetspecError("--threads: OpenMP threads apply to the standalone binary; --runtime runs one thread", 2)
    workers = max(1, cores // threads) if workers is None else workers
    if workers < 1:
        raise NetspecError(f"--workers: must be at least 1, got {workers}", 2)
    return workers, threads


def run_command(spec, args: RunOptions) -> int:
    """Run ``netspec run``: simulate ``spec`` as ``args`` says (see :class:`RunOptions`).

    Returns
    -------
    int
        0 when every sample was simulated; 130 when interrupted (the report, if asked for, then holds the
        completed samples and ``partial: true``).
    """
    steps = parse_steps(args.duration, spec) if args.duration is not None else None
    if args.scheduler is not None and args.workers is not None:
        raise NetspecError("--workers: a Dask cluster (--scheduler) runs on its own workers; give one of the two", 2)
    workers, threads = parallelism(1 if args.scheduler is not None else args.workers, args.threads, args.standalone)
    if args.scheduler is not None:
        from .cluster import check_scheduler

        check_scheduler(args.scheduler)  # a one-line error within seconds, before any work
    if args.batch is not None and args.batch < 1:
        raise NetspecError(f"--batch: must be at least 1, got {args.batch}", 2)
    if args.seed is not None and not SEED_RANGE[0] <= args.seed <= SEED_RANGE[1]:
        raise NetspecError(f"--seed: must be an integer from {SEED_RANGE[0]} to {SEED_RANGE[1]:,} (2^32 - 1), got {args.seed}", 2)
    if args.plots is not None:
        from .plots import require_matplotlib

        require_matplotlib()
    _check_outputs(spec, args)
    _check_resources(spec, args, steps)

    from ..datasets import check_fits, load_dataset

    data = load_dataset(args.data, require_labels=True, limit=args.limit, max_bytes=None)  # checked above
    check_fits(data, spec)
    classes = int(np.prod(spec.shapes[spec.output_layer.name]))
    check_labels(data.y, classes, data.source)

    import netspec.brian  # noqa: F401  (imports Brian2, which installs its own SIGINT handler)

    if args.scheduler is not None:
        from .cluster import connect

        client = connect(args.scheduler)
    else:
        client = None
    # Ctrl-C while building or simulating: KeyboardInterrupt, whatever Brian2 installed
    with interruptible(), (client if client is not None else contextlib.nullcontext()):
        return _run(spec, args, data, workers, threads, steps, client)


def _run(spec, args: RunOptions, data, workers: int, threads: int, steps: int | None, client=None) -> int:
    from ..brian import BuildOptions, build

    prepare_workers(min(workers, len(data)))
    options = BuildOptions(standalone=args.standalone, steps=steps, threads=threads, connectivity=args.connectivity,
                           float32=args.float32, batch=args.batch)
    t0 = time.perf_counter()
    built = build(spec, out_dir=args.build_dir, options=options)
    build_seconds = time.perf_counter() - t0

    seed = args.seed if args.seed is not None else spec.input.seed
    bar = Progress(len(data))
    try:
        ev = evaluate(built, data.x, workers=workers, seed=seed, progress=bar.update, client=client)
    finally:
        bar.close()
    if ev.partial:
        print(f"netspec: interrupted: keeping the {len(ev.indices)} of {ev.requested} samples that finished",
              file=sys.stderr)

    x_done = data.x[ev.indices]
    t0 = time.perf_counter()
    scores = ann_outputs(spec, x_done)
    ann_seconds = time.perf_counter() - t0
    report = make_report(spec, ev, data.y[ev.indices], scores, data_source=data.source, limit=args.limit,
                         duration_override=args.duration, build_seconds=build_seconds, ann_seconds=ann_seconds)
    print(summary(report))
    for label, text in ev.cluster.lines() if ev.cluster is not None else ():
        print(f"  {label:<20} {text}")
    if args.report is not None:
        write_report(report, args.report)
        print(f"  report: {args.report}")
    if args.plots is not None:
        _plots(spec, built, ev, x_done, report, args.plots)
    return 130 if ev.partial else 0


def _plots(spec, built, ev: Evaluation, x_done: np.ndarray, report: dict, out_dir) -> None:
    from ..brian import simulate
    from .plots import activation_pairs, make_plots

    pairs = None
    if not ev.partial:
        import logging

        from brian2.utils.logger import catch_logs

        few = x_done[:CORRELATION_SAMPLES]
        # per-neuron counts come from a runtime (numpy) simulation; its code-generation notices (e.g. that
        # max-pooling elections run as a Python loop) are expected, so they are kept off the terminal
        with catch_logs(log_level=logging.INFO):
            recorded = simulate(built, few, seed=chunk_seed(ev.seed, 0), record_neurons=True)
        if recorded.neuron_counts:
            pairs = activation_pairs(spec, few, recorded.neuron_counts, int(ev.sim.out_steps.shape[1]))
    written = make_plots(report, out_dir, out_steps=np.asarray(ev.sim.out_steps[0]), pairs=pairs)
    print(f"  plots: {', '.join(str(p) for p in written)}")
