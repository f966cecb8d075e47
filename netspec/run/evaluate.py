"""Orchestration of a run: simulate a built network on a dataset, in chunks, on K worker processes.

The network is built once (by the caller, :func:`netspec.brian.build`); here the samples are cut into
chunks of a fixed size (a multiple of the build's ``samples_per_run``, never dependent on the number of
workers), every chunk is simulated by :func:`netspec.brian.simulate` with its own seed, and the chunks are
merged back in sample order. Because the chunking and the seeds do not depend on K, one worker and K
workers give identical spike counts.

Workers are processes of the ``forkserver`` context (``spawn`` where there is none; see
:mod:`netspec.workers`): the fork server imports Brian2 and the builder once (``netspec run`` starts it
before it imports Brian2 itself, :func:`prepare_workers` before a build), so a worker starts in milliseconds
instead of importing Brian2 again. Each worker runs in its own process group
with SIGINT ignored: a Ctrl-C reaches the parent only, which terminates the workers (and the standalone
binaries they run) and keeps the chunks that had finished; the evaluation is then marked partial. A worker
that dies (killed, out of memory) stops the run with an error rather than leaving it waiting.
"""
from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..brian.runner import chunk_seed
from ..brian.runner.processes import die_with_parent
from ..errors import NetspecError
from ..workers import RESULTS_PREFIX, context, sigint_handler, start

#: Upper bound on the samples of one chunk (keeps progress reports and interruptions fine-grained).
MAX_CHUNK = 1000
#: Chunks aimed at when there are enough samples (each chunk is at least one Brian2 run).
TARGET_CHUNKS = 16


@dataclass
class Evaluation:
    """What a run produced, before metrics.

    Attributes
    ----------
    build : netspec.brian.Build
        The build that was simulated.
    sim : netspec.brian.SimResult
        Merged results of the completed chunks, in sample order.
    indices : ndarray, int64 [n]
        Dataset index of every row of ``sim`` (all of ``0..N-1`` unless the run was interrupted).
    requested : int
        Samples the run was asked to simulate (N).
    partial : bool
        True when interrupted before every chunk finished.
    workers : int
        Worker processes used (1 means in the calling process).
    chunk_size : int
        Samples per chunk.
    seconds : float
        Wall-clock time of the simulation phase (worker start-up included).
    worker_seconds : float
        Sum of the simulation times reported by the chunks.
    seed : int | None
        Base seed; chunk i ran with :func:`chunk_seed` (seed, i).
    """

    build: object
    sim: object
    indices: np.ndarray
    requested: int
    partial: bool
    workers: int
    chunk_size: int
    seconds: float
    worker_seconds: float
    seed: int | None
    chunk_seconds: list[float] = field(default_factory=list)
    cluster: object = None  # netspec.run.cluster.ClusterStats of a run on a Dask cluster


def default_workers() -> int:
    """Worker processes when none are asked for: the number of cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def chunk_size_for(n: int, samples_per_run: int) -> int:
    """Samples per chunk for ``n`` samples: a multiple of ``samples_per_run`` giving about TARGET_CHUNKS
    chunks (so that many workers have work and progress is reported often), at most MAX_CHUNK samples
    unless one run is larger. Depends on ``n`` and ``samples_per_run`` only, never on the workers."""
    per_run = max(1, int(samples_per_run))
    runs_needed = -(-max(n, 1) // per_run)
    factor = -(-runs_needed // TARGET_CHUNKS)
    factor = max(1, min(factor, MAX_CHUNK // per_run))
    return per_run * factor


def merge(parts: list, sim_type=None):
    """Concatenate SimResults of consecutive chunks (in the given order) into one SimResult."""
    from ..brian import SimResult

    sim_type = sim_type or SimResult
    if not parts:
        raise ValueError("nothing to merge")
    first = parts[0]

    def cat(name):
        return np.concatenate([getattr(p, name) for p in parts], axis=0)

    def cat_dict(name):
        if getattr(first, name) is None:
            return None
        return {k: np.concatenate([getattr(p, name)[k] for p in parts], axis=0) for k in getattr(first, name)}

    return sim_type(
        counts=cat("counts"),
        v_out=cat("v_out"),
        out_steps=cat("out_steps"),
        layer_spikes=cat_dict("layer_spikes"),
        layer_ops=cat_dict("layer_ops"),
        neuron_counts=cat_dict("neuron_counts"),
        seconds=float(sum(p.seconds for p in parts)),
        v_steps=None if first.v_steps is None else cat("v_steps"),
    )


def prepare_workers(workers: int) -> None:
    """Start the fork server (which imports Brian2) now, in the background, when ``workers`` > 1, so that
    its start-up overlaps with whatever the caller does next (building)."""
    if workers > 1:
        start(context())


@contextlib.contextmanager
def _sigint_deferred():
    """A SIGINT received while inside raises KeyboardInterrupt on leaving (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


# -- worker side ------------------------------------------------------------------------------------
_WORKER: dict = {}


def _kill_own_group(signum, frame):  # pragma: no cover - runs in a worker being terminated
    os.killpg(os.getpgrp(), signal.SIGKILL)


def _watch_parent(parent: int) -> None:  # pragma: no cover - runs in a worker process
    """Kill this worker's process group (the worker and its binary) once netspec (``parent``) is gone, even
    if it was killed with SIGKILL: the fork server, the worker's real parent, may outlive it."""
    while True:
        time.sleep(0.5)
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os.killpg(os.getpgrp(), signal.SIGKILL)
        except OSError:
            pass


def _worker_init(build, root: str, parent: int | None = None) -> None:  # pragma: no cover - in a worker
    """Worker start-up: own process group (a terminal's Ctrl-C reaches the parent only), SIGINT ignored,
    SIGTERM (the parent stopping the run) kills the worker with anything it started (the standalone binary)."""
    try:
        os.setpgrp()
    except OSError:
        pass
    die_with_parent()  # killed with its parent process (the fork server, or netspec with spawn)
    if parent is not None:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _kill_own_group)
    _WORKER["build"] = build
    _WORKER["results"] = os.path.join(root, f"worker-{os.getpid()}")


# -- parent side ------------------------------------------------------------------------------------
def evaluate(build, x: np.ndarray, *, workers: int = 1, seed: int | None = None, chunk_size: int | None = None,
             progress: Callable[[int], None] | None = None, simulate_fn=None, client=None) -> Evaluation:
    """Simulate ``x`` on a built network, in chunks, on ``workers`` processes.

    Parameters
    ----------
    build : netspec.brian.Build
    x : ndarray, float32 [N, *input_shape]
    workers : int
        1 simulates in this process; K > 1 starts min(K, chunks) worker processes.
    seed : int, optional
        Base seed; chunk i gets ``chunk_seed(seed, i)``.
    chunk_size : int, optional
        Samples per chunk (default :func:`chunk_size_for`).
    progress : callable, optional
        Called with the number of samples done (over all workers) whenever a run of
        ``samples_per_run`` samples finishes.
    client : distributed.Client, optional
        Simulate the same chunks on this Dask cluster instead (:mod:`.cluster`); ``workers`` is ignored.

    Returns
    -------
    Evaluation
        ``partial`` is True when a KeyboardInterrupt stopped the run; the chunks that had finished are kept.
        If none had, the KeyboardInterrupt propagates.
    """
    from ..brian import simulate as _simulate

    simulate_fn = simulate_fn or _simulate
    n = len(x)
    if n == 0:
        raise NetspecError("run: no samples to simulate")
    if workers < 1:
        raise NetspecError(f"run: --workers must be at least 1, got {workers}")
    size = chunk_size or chunk_size_for(n, build.options.samples_per_run)
    starts = list(range(0, n, size))
    tasks = [(i, x[s:s + size], chunk_seed(seed, i)) for i, s in enumerate(starts)]
    workers = min(workers, len(tasks))
    done: dict[int, object] = {}
    partial = False
    cluster = None
    remove_stale_results()
    root = tempfile.mkdtemp(prefix=f"{RESULTS_PREFIX}{os.getpid()}-")
    t0 = time.perf_counter()
    try:
        with interruptible():
            if client is not None:
                from .cluster import run_chunks

                partial, cluster = run_chunks(client, build, tasks, done, progress)
                workers = max(1, len(cluster.setups))
            elif workers == 1:
                partial = _run_here(build, tasks, done, root, simulate_fn, progress)
            else:
                partial = _run_pool(build, tasks, done, root, workers, progress)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    seconds = time.perf_counter() - t0
    if not done:
        raise KeyboardInterrupt
    order = sorted(done)
    parts = [done[i] for i in order]
    indices = np.concatenate([np.arange(starts[i], min(starts[i] + size, n)) for i in order]).astype(np.int64)
    sim = merge(parts, type(parts[0]))
    return Evaluation(build=build, sim=sim, indices=indices, requested=n, partial=partial, workers=workers,
                      chunk_size=size, seconds=seconds, worker_seconds=float(sum(p.seconds for p in parts)),
                      seed=seed, chunk_seconds=[float(p.seconds) for p in parts], cluster=cluster)


def remove_stale_results() -> None:
    """Remove the results folders that runs killed before their clean-up left (their process is gone)."""
    base = tempfile.gettempdir()
    try:
        entries = list(os.scandir(base))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(RESULTS_PREFIX):
            continue
        try:
            pid = int(entry.name[len(RESULTS_PREFIX):].split("-")[0])
            if entry.stat(follow_symlinks=False).st_uid != os.getuid() or not entry.is_dir(follow_symlinks=False):
                continue
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(entry.path, ignore_errors=True)
        except (ValueError, OSError):
            continue


def interruptible():
    """While inside, SIGINT raises KeyboardInterrupt (restored on exit; no-op outside the main thread).
    Brian2 installs its own SIGINT handler at import, which fails when SIGINT was ignored before (a
    background job); a Ctrl-C must always stop a run cleanly."""
    return sigint_handler(signal.default_int_handler)


def _run_here(build, tasks, done, root, simulate_fn, progress) -> bool:
    results = os.path.join(root, "worker-0")
    finished = 0
    try:
        for index, x, seed in tasks:
            base = finished
            done[index] = simulate_fn(build, x, results_dir=results, seed=seed,
                                      progress=(lambda k: progress(base + k)) if progress else None)
            finished += len(x)
            if progress:
                progress(finished)
    except KeyboardInterrupt:
        return True
    return False


def _worker_main(build, root: str, tasks, results, parent: int | None = None) -> None:  # pragma: no cover
    """A worker: take chunks from ``tasks`` until a None, put ("progress" | "done" | "error", index, payload)
    messages on ``results``."""
    _worker_init(build, root, parent)
    from ..brian import simulate

    while True:
        task = tasks.get()
        if task is None:
            return
        index, x, seed = task
        try:
            sim = simulate(build, x, results_dir=_WORKER["results"], seed=seed,
                           progress=lambda k: results.put(("progress", index, k)))
        except NetspecError as exc:
            results.put(("error", index, (True, str(exc), exc.exit_code)))
            continue
        except Exception:
            results.put(("error", index, (False, traceback.format_exc(), 1)))
            continue
        results.put(("done", index, sim))


def _run_pool(build, tasks, done, root, workers, progress) -> bool:
    """Simulate ``tasks`` on ``workers`` processes; fill ``done``; True when interrupted. A worker that
    dies (killed, out of memory) or fails stops the run with an error instead of waiting for it forever."""
    ctx = context()
    todo, messages = ctx.Queue(), ctx.Queue()
    for task in tasks:
        todo.put(task)
    for _ in range(workers):
        todo.put(None)
    procs = [ctx.Process(target=_worker_main, args=(build, root, todo, messages, os.getpid()), daemon=True,
                         name=f"netspec-run-{k}") for k in range(workers)]
    start(ctx)
    sizes = {index: len(x) for index, x, _ in tasks}
    running: dict[int, int] = {}
    finished = 0
    try:
        # with forkserver, start() waits until the server has imported Brian2; a Ctrl-C meanwhile is held
        # back until every worker has its start data (else a half-started worker prints a traceback)
        with _sigint_deferred():
            for p in procs:
                p.start()
        checked = time.monotonic()
        while len(done) < len(tasks):
            try:
                kind, index, payload = messages.get(timeout=0.5)
            except queue.Empty:
                kind = None
            if kind is None or time.monotonic() - checked > 0.5:
                checked = time.monotonic()
                dead = [p for p in procs if p.exitcode is not None and p.exitcode != 0]
                if dead:
                    raise NetspecError(f"run: worker process {dead[0].pid} died (exit code {dead[0].exitcode}) "
                                       "before finishing its samples; try fewer --workers if memory is short")
            if kind is None:
                continue
            if kind == "progress":
                running[index] = payload
            elif kind == "done":
                running.pop(index, None)
                done[index] = payload
                finished += sizes[index]
            else:
                is_user, text, code = payload
                if is_user:
                    raise NetspecError(text, code)
                raise RuntimeError(f"run: a worker failed on chunk {index}:\n{text}")
            if progress:
                progress(finished + sum(running.values()))
    except KeyboardInterrupt:
        return True
    finally:
        for p in procs:
            if p.pid is not None and p.is_alive():
                p.terminate()
        for p in procs:
            if p.pid is not None:
                p.join(timeout=10)
        todo.cancel_join_thread()
        messages.cancel_join_thread()
    return False


def parse_steps(text: str, spec) -> int:
    """Time steps of a ``--duration`` override: a time (``'50 ms'``) that is a whole, positive multiple of the
    spec's dt."""
    from ..spec.units import TIME, QuantityError, parse_quantity, steps_in

    try:
        q = parse_quantity(text)
    except QuantityError as exc:
        raise NetspecError(f"--duration: {exc}", 2) from None
    if q.dim != TIME:
        raise NetspecError(f"--duration: expected a time such as '50 ms', got {text!r}", 2)
    ratio = q.value / spec.simulation.dt.value
    steps = steps_in(q, spec.simulation.dt)
    if steps < 1 or abs(ratio - steps) > 1e-6 * max(1.0, ratio):
        raise NetspecError(
            f"--duration: {text!r} is not a whole, positive multiple of the spec's dt ({spec.simulation.dt.text})", 2)
    return steps


def check_labels(labels: np.ndarray | None, n_classes: int, source: str) -> None:
    """Labels must be present and name one of the output layer's classes."""
    if labels is None:
        raise NetspecError(f"{source}: no labels; a run needs labels to measure accuracy")
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        bad = int(labels.max() if labels.max() >= n_classes else labels.min())
        raise NetspecError(
            f"{source}: label {bad} is outside the spec's {n_classes} output classes [0, {n_classes - 1}]")

