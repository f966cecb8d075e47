"""``netspec run``: evaluate a spec's spiking network on a dataset.

The stage's entry point is :func:`run_command` (what the CLI calls). Its steps, each in its own module:

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
from pathlib import Path

import numpy as np

from ..errors import NetspecError
from .evaluate import (Evaluation, check_labels, chunk_seed, default_workers, evaluate, interruptible, merge,
                       parse_steps, prepare_workers)
from .progress import Progress
from .report import REPORT_VERSION, make_report, schema, summary, validation_errors, write_report

__all__ = ["run_command", "evaluate", "Evaluation", "ann_outputs", "make_report", "write_report", "summary",
           "schema", "validation_errors", "parse_steps", "check_labels", "chunk_seed", "merge", "default_workers",
           "Progress", "REPORT_VERSION"]

#: Samples of the activation-vs-rate scatter plot (simulated again with per-neuron counts).
CORRELATION_SAMPLES = 5


def ann_outputs(spec, x: np.ndarray, batch: int = 500) -> np.ndarray:
    """The ANN reference's output layer for ``x`` ([N, classes]), computed in batches."""
    from ..reference import forward

    out = spec.output_layer.name
    parts = [np.asarray(forward(spec, x[i:i + batch])[out]).reshape(len(x[i:i + batch]), -1)
             for i in range(0, len(x), batch)]
    return np.concatenate(parts, axis=0)


def _check_writable(folder: Path, option: str) -> None:
    """Fail before any work when an output folder cannot be created or written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NetspecError(f"{option} {folder}: cannot create the folder: {exc.strerror}", 2) from None
    if not os.access(folder, os.W_OK):
        raise NetspecError(f"{option} {folder}: the folder is not writable", 2)


def run_command(spec, args) -> int:
    """Run ``netspec run`` with parsed arguments (see ``netspec run --help``).

    Returns
    -------
    int
        0 when every sample was simulated; 130 when interrupted (the report, if asked for, then holds the
        completed samples and ``partial: true``).
    """
    steps = parse_steps(args.duration, spec) if args.duration is not None else None
    if args.scheduler is not None and args.workers is not None:
        raise NetspecError("--workers: a Dask cluster (--scheduler) runs on its own workers; give one of the two", 2)
    workers = args.workers if args.workers is not None else (1 if args.scheduler else default_workers())
    if args.scheduler is not None:
        from .cluster import check_scheduler

        check_scheduler(args.scheduler)  # a one-line error within seconds, before any work
    if workers < 1:
        raise NetspecError(f"--workers: must be at least 1, got {workers}", 2)
    if args.plots is not None:
        from .plots import require_matplotlib

        require_matplotlib()
        _check_writable(Path(args.plots), "--plots")
    if args.report is not None:
        if Path(args.report).is_dir():
            raise NetspecError(f"--report {args.report}: is a folder; give a file name such as report.json", 2)
        _check_writable(Path(args.report).parent, "--report")

    from ..datasets import check_fits, load_dataset

    data = load_dataset(args.data, require_labels=True, limit=args.limit)
    check_fits(data, spec)
    classes = int(np.prod(spec.shapes[spec.output_layer.name]))
    check_labels(data.y, classes, data.source)

    import netspec.brian  # noqa: F401  (imports Brian2, which installs its own SIGINT handler)

    if args.scheduler is not None:
        from .cluster import connect

        client = connect(args.scheduler)
    else:
        client = None
    with interruptible(), (client if client is not None else contextlib.nullcontext()):
        return _run(spec, args, data, workers, steps, client)


def _run(spec, args, data, workers: int, steps: int | None, client=None) -> int:
    from ..brian import BuildOptions, build

    prepare_workers(min(workers, len(data)))
    options = BuildOptions(standalone=args.standalone, steps=steps)
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
