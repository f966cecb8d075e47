"""The fork server that ``netspec run`` starts its worker processes from (standard library only).

The server imports Brian2 and the builder once (:data:`PRELOAD`), so a worker forked from it starts in
milliseconds instead of importing Brian2 again. Importing Brian2 takes seconds, so ``netspec run`` starts
the server (:func:`start_early`) before it imports Brian2 itself: the two imports run side by side. This
module must therefore not import Brian2, numpy or the rest of netspec.
"""
from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading

#: Modules the fork server imports once, so that workers forked from it start ready.
PRELOAD = ["numpy", "brian2", "netspec.brian", "netspec.run.evaluate"]
#: Results folders of runs in the system temp folder: netspec-run-<pid>-*.
RESULTS_PREFIX = "netspec-run-"


def context():
    """The multiprocessing context of the workers: ``forkserver`` (``spawn`` where there is none)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


def start(ctx) -> None:
    """Start the fork server of ``ctx`` if it is not running (it imports :data:`PRELOAD` in the background)."""
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        _own_temp_dir()
        with sigint_ignored():
            forkserver.ensure_running()


def start_early(workers: int | None, scheduler: str | None) -> None:
    """Start the fork server now unless the run will have no local workers: one worker asked for, a Dask
    scheduler, or a single usable core (an unused server costs nothing but its start)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if scheduler is None and cores > 1 and (workers is None or workers > 1):
        start(context())


def _own_temp_dir() -> None:
    """multiprocessing's temp folder (the fork server's socket) as a ``netspec-run-<pid>-mp`` folder, removed at
    exit, and by the next run after a ``kill -9`` (multiprocessing's own ``pymp-*`` folder would stay)."""
    from multiprocessing import process

    config = process.current_process()._config
    if config.get("tempdir") is None:
        folder = os.path.join(tempfile.gettempdir(), f"{RESULTS_PREFIX}{os.getpid()}-mp")
        os.makedirs(folder, exist_ok=True)
        config["tempdir"] = folder
        atexit.register(shutil.rmtree, folder, True)


@contextlib.contextmanager
def sigint_handler(handler):
    """``handler`` for SIGINT while inside, the previous one restored after; no-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def sigint_ignored():
    """SIGINT ignored while inside (main thread only); for the instant it takes to start the fork server,
    which inherits it, so that a Ctrl-C while it imports Brian2 prints no traceback of its own (the parent
    handles the Ctrl-C)."""
    return sigint_handler(signal.SIG_IGN)
