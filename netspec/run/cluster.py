"""Evaluation on a Dask distributed cluster: ``netspec run --scheduler ADDRESS``.

One module of some 550 lines: what travels to the workers (:class:`Package`, packed builds), what a worker does
with it (its cached build, in the shared build store of :mod:`netspec.brian.store`) and how chunks are submitted
and collected are one protocol; split, each half would import the other's private types.

:func:`netspec.run.evaluate.evaluate` cuts the samples into chunks and derives their seeds exactly as for a
local run; with a Dask client it hands the chunks to :func:`run_chunks`, which submits one Dask task per
chunk and merges nothing itself: the chunks come back to the caller, so the counts are those of a local run.

What travels (no shared file system is assumed):

- a :class:`Package`, scattered to the workers once per run: the spec file's bytes, its weights file's
  bytes, the build options and the build key computed here. A worker writes the files into a content-keyed
  folder of its own cache (:func:`cache_root`), validates the spec like any other and builds it there, once
  (a lock serializes the tasks and processes of one machine; a later run finds the folder and reuses it);
- for standalone builds, the compiled build folder (binary, static arrays, ``network.py``), published in a
  Dask ``Variable`` and fetched only by a worker whose CPU can run it (:func:`binary_runs_on`: Brian2
  compiles with ``-march=native``); a worker on another CPU compiles its own;
- per chunk, its inputs and its seed; back, its :class:`netspec.brian.SimResult`.

Faults: a worker that dies mid-chunk is Dask's to handle (the scheduler reruns the chunk elsewhere, up to
``distributed.scheduler.allowed-failures`` times); a task that raises is retried ``RETRIES`` times; a
:class:`NetspecError` (bad input, a failing binary) is returned, not raised, so it stops the run at once with
its message instead of being retried. A scheduler that cannot be reached is a one-line error after
``CONNECT_TIMEOUT`` seconds. Ctrl-C cancels the futures, tells running chunks to stop after their current run
of samples and keeps the chunks that had finished.

Brian2 installs a SIGINT handler when it is imported, which only a process's main thread may do; Dask runs
tasks in other threads, so a task imports Brian2 on the worker's event loop (the main thread of a worker
process) first.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import platform
import shutil
import tarfile
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from .. import __version__
from ..brian.store import KEY_FILE, adopt, machine_lock, write_atomic
from ..errors import NetspecError

#: Seconds to wait for the scheduler to answer before giving up.
CONNECT_TIMEOUT = 3.0
#: Dask retries of a chunk whose task raised (a worker that died is rerun by the scheduler regardless).
RETRIES = 2
#: Chunks submitted ahead per worker thread (the rest wait here, so inputs are not all sent at once).
AHEAD = 2
#: Environment variable naming a worker's cache folder (default ``$XDG_CACHE_HOME/netspec/cluster``).
CACHE_ENV = "NETSPEC_CACHE"
#: What a worker needs of a standalone build folder to run it (the C++ sources and objects stay behind).
BUILD_FILES = ("build.json", "network.py", "netspec_runner", "arrays.npz", "cpp/main", "cpp/manifest.json",
               "cpp/static_arrays")


def require_distributed() -> None:
    """Fail with a one-line error when Dask distributed is not installed."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise NetspecError("--scheduler: needs Dask distributed; install it with: pip install 'netspec[dask]'", 2) from None


# -- connecting ---------------------------------------------------------------------------------------
async def _identity(address: str, timeout: float):
    from distributed.comm import connect

    async def ask():
        comm = await connect(address, timeout=timeout)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    # a server that accepts the connection but never answers (not a Dask scheduler) would hold the
    # handshake forever: the whole exchange is bounded
    return await asyncio.wait_for(ask(), timeout)


def check_scheduler(address: str, timeout: float | None = None) -> None:
    """Fail with a one-line :class:`NetspecError` within about ``timeout`` seconds unless a Dask scheduler
    answers at ``address`` (malformed address, nothing listening, another kind of server)."""
    require_distributed()
    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    where = f"--scheduler {address}"
    try:
        identity = asyncio.run(_identity(address, timeout))
    except ValueError as exc:
        raise NetspecError(f"{where}: {exc} (expected an address such as tcp://10.0.0.5:8786)", 2) from None
    except (OSError, TimeoutError):
        raise NetspecError(f"{where}: no Dask scheduler answered within {timeout:g} s "
                           "(is it running, and can this machine reach that port?)") from None
    except Exception:  # noqa: BLE001 - a server that speaks another protocol sends anything at all
        identity = None
    if not isinstance(identity, dict) or identity.get("type") != "Scheduler":
        raise NetspecError(f"{where}: the server at that address is not a Dask scheduler")


def connect(address: str, timeout: float | None = None):
    """A ``distributed.Client`` of the scheduler at ``address``; the errors of :func:`check_scheduler`."""
    check_scheduler(address, timeout)
    from distributed import Client

    try:
        return Client(address, timeout=CONNECT_TIMEOUT if timeout is None else timeout, set_as_default=False)
    except Exception as exc:  # noqa: BLE001 - whatever Dask raises, the user gets one line
        raise NetspecError(f"--scheduler {address}: cannot connect: {exc}") from None


# -- what travels -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Package:
    """What a worker needs to build the network, scattered once per run.

    Attributes
    ----------
    key : str
        The build key computed on the submitting machine; a worker must compute the same one (same spec,
        options, netspec and Brian2 versions), which is what makes its counts identical to a local run.
    spec_hash : str
        :func:`netspec.brian.build.spec_hash` of the spec (content and tensors).
    spec_file : str
        Relative path of the spec among ``files``.
    files : dict[str, bytes]
        The spec file and its weights file, by relative POSIX path (the weights path as the spec names it).
    options : netspec.brian.BuildOptions
    versions : dict[str, str]
        netspec and Brian2 versions of the submitting machine (for the error when a worker's differ).
    cpu : dict | None
        :func:`cpu_compatibility` of the machine that compiled the binary, when one is published.
    build_cpu : str | None
        :func:`netspec.brian.build.cpu_signature` of the submitting machine, which its build key includes for
        standalone builds (a worker computes the key for it to check that it builds the same network).
    binary : str | None
        Name of the Dask ``Variable`` holding the packed build folder (:func:`pack_build`), or None.
    """

    key: str
    spec_hash: str
    spec_file: str
    files: dict
    options: object
    versions: dict
    cpu: dict | None = None
    binary: str | None = None
    build_cpu: str | None = None


def make_package(build, binary: str | None = None) -> Package:
    """The :class:`Package` of a build (reads the spec file and its weights file again)."""
    import brian2

    from ..brian.build import cpu_signature as build_cpu, spec_hash

    spec = build.spec
    if spec.path is None:
        raise NetspecError("--scheduler: the spec must come from a file (the workers receive the file)", 2)
    spec_path = Path(spec.path)
    files = {spec_path.name: _read(spec_path)}
    if spec.weights is not None:
        files[PurePosixPath(spec.weights.file).as_posix()] = _read(spec_path.parent / spec.weights.file)
    return Package(key=build.key, spec_hash=spec_hash(spec), spec_file=spec_path.name, files=files,
                   options=build.options, versions={"netspec": __version__, "brian2": str(brian2.__version__)},
                   cpu=cpu_compatibility() if binary else None, binary=binary,
                   build_cpu=build_cpu() if build.options.standalone else None)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise NetspecError(f"{path}: cannot read: {exc.strerror or exc}", 2) from None


def cpu_compatibility() -> dict:
    """What decides whether a compiled binary runs here: architecture, OS, C library and the CPU's
    instruction-set flags (``/proc/cpuinfo``; None where unknown). Not the build key's CPU identity
    (:func:`netspec.brian.build.cpu_signature`): a binary also runs on a newer CPU with more flags."""
    from ..cpuinfo import cpuinfo_fields, instruction_sets

    libc, libc_version = platform.libc_ver()
    return {"machine": platform.machine(), "system": platform.system(), "libc": [libc, libc_version],
            "flags": instruction_sets(cpuinfo_fields())}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def binary_runs_on(built_on: dict | None, here: dict) -> bool:
    """Whether a binary compiled on ``built_on`` (``-march=native``) can run on ``here``: same architecture,
    OS and C library (here at least as new), and every instruction-set flag of the building CPU present."""
    if not built_on:
        return False
    if (built_on["machine"], built_on["system"], built_on["libc"][0]) != (here["machine"], here["system"], here["libc"][0]):
        return False
    if _version(here["libc"][1]) < _version(built_on["libc"][1]):
        return False
    if built_on["flags"] is None or here["flags"] is None:
        return built_on == here
    return set(built_on["flags"]) <= set(here["flags"])


def pack_build(folder: Path) -> bytes:
    """The parts of a standalone build folder that run it (:data:`BUILD_FILES`), as an uncompressed tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for rel in BUILD_FILES:
            if (folder / rel).exists():  # bytecode caches stay behind
                tar.add(folder / rel, arcname=rel, filter=lambda t: None if "__pycache__" in t.name else t)
    return buf.getvalue()


def unpack_build(data: bytes, folder: Path) -> None:
    """Extract :func:`pack_build`'s tar into ``folder``: plain files and folders inside it only."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        members = tar.getmembers()
        for m in members:
            if not (m.isfile() or m.isdir()) or not _inside(m.name):
                raise NetspecError(f"the received build holds an unexpected entry {m.name!r}")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(folder, members=members, filter="data")
        else:  # pragma: no cover - Python 3.11 before 3.11.4
            tar.extractall(folder, members=members)


def _inside(rel: str) -> bool:
    p = PurePosixPath(rel)
    return bool(rel) and not p.is_absolute() and ".." not in p.parts


# -- worker side --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setup:
    """How a worker got its build for a run: ``built`` (generated, and compiled for standalone),
    ``received`` (the submitting machine's binary), ``cached`` (its folder from an earlier run) or ``ready``
    (this worker process had it already); ``seconds`` spent on it."""

    kind: str
    seconds: float


@dataclass
class ChunkDone:
    """A chunk's results and where its time went."""

    index: int
    sim: object
    worker: str
    threads: int
    setup: Setup
    seconds: float


@dataclass
class ChunkFailed:
    """A :class:`NetspecError` on a worker (returned, not raised: retrying would fail the same way)."""

    index: int
    worker: str
    message: str
    exit_code: int


class Stopped(Exception):
    """The submitting process was interrupted; the chunk stops after its current run of samples."""


_SETUP_LOCK = threading.Lock()
_READY: dict[str, object] = {}


def cache_root() -> Path:
    """A worker's cache of specs and builds: ``$NETSPEC_CACHE``, else ``$XDG_CACHE_HOME/netspec/cluster``,
    else ``~/.cache/netspec/cluster``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "netspec" / "cluster"


def _fetch_binary(name: str) -> bytes | None:
    """The packed build published under ``name``, or None when it cannot be had (then the worker builds)."""
    from distributed import Variable, get_client

    try:
        value = Variable(name, client=get_client()).get(timeout=30)
        return value.result() if hasattr(value, "result") else value
    except Exception:  # noqa: BLE001 - lost with its worker, timed out: building is the fallback
        return None


def _folder_key(folder: Path) -> str | None:

    try:
        return json.loads((folder / KEY_FILE).read_text()).get("key")
    except (OSError, ValueError, AttributeError):
        return None


def worker_build(pkg: Package):
    """The build of ``pkg`` on this worker: made once per process (and once per machine and CPU, in a
    content-keyed folder of :func:`cache_root`). Returns (Build, Setup)."""
    t0 = time.perf_counter()
    with _SETUP_LOCK:
        if pkg.key in _READY:
            return _READY[pkg.key], Setup("ready", time.perf_counter() - t0)
        here = cpu_compatibility()
        cpu = hashlib.sha256(json.dumps(here, sort_keys=True).encode()).hexdigest()
        folder = cache_root() / f"{pkg.key[:20]}-{cpu[:8]}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise NetspecError(f"cannot create the build cache {folder}: {exc.strerror or exc} "
                               f"(set {CACHE_ENV} on the workers)", 2) from None
        with machine_lock(folder.with_name(folder.name + ".lock")):
            spec = _load_package_spec(pkg, folder / "spec")
            built, kind = _build_here(pkg, spec, folder / "build", here)
        _READY[pkg.key] = built
    return built, Setup(kind, time.perf_counter() - t0)


def _load_package_spec(pkg: Package, folder: Path):
    from ..brian.build import spec_hash
    from ..spec import SpecError, load_spec

    for rel, data in pkg.files.items():
        if not _inside(rel):
            raise NetspecError(f"the received spec names a file outside its folder: {rel!r}")
        path = folder / rel
        if not path.exists() or path.stat().st_size != len(data) or path.read_bytes() != data:
            write_atomic(path, data)
    try:
        spec = load_spec(folder / pkg.spec_file)
    except SpecError as exc:
        raise NetspecError(f"the spec is invalid here: {exc.diagnostics[0].text()}") from None
    if spec_hash(spec) != pkg.spec_hash:
        raise NetspecError("the spec reads differently here than on the submitting machine (spec hash differs)")
    return spec


def _own_key(pkg: Package, spec) -> str:
    """This worker's build key for ``pkg``, after checking that it builds the network the submitter built: the
    key computed for the submitter's CPU must be the submitter's (else netspec or Brian2 differ)."""
    import brian2

    from ..brian.build import build_key

    if build_key(spec, pkg.options, pkg.build_cpu) != pkg.key:
        mine = {"netspec": __version__, "brian2": str(brian2.__version__)}
        raise NetspecError(
            f"this worker builds a different network than the submitting machine (build keys differ): worker has "
            f"netspec {mine['netspec']}, brian2 {mine['brian2']}; submitter has netspec {pkg.versions['netspec']}, "
            f"brian2 {pkg.versions['brian2']}; install the same netspec and Brian2 on every worker")
    return build_key(spec, pkg.options)


def _build_here(pkg: Package, spec, out: Path, here: dict):
    from ..brian import build

    own = _own_key(pkg, spec)
    # a build of the submitter's binary is keyed for the submitter's CPU (this one was checked to run it)
    cpu = None
    kind = "built"
    found = _folder_key(out)
    if found in (own, pkg.key):
        kind = "cached"
        cpu = pkg.build_cpu if found != own else None
    elif pkg.binary is not None and binary_runs_on(pkg.cpu, here):
        data = _fetch_binary(pkg.binary)
        if data is not None:
            received = Path(tempfile.mkdtemp(prefix="received-", dir=out.parent))
            try:
                unpack_build(data, received)
                adopt(received, out, pkg.key)
            finally:
                shutil.rmtree(received, ignore_errors=True)
            kind, cpu = "received", pkg.build_cpu
    built = build(spec, out, pkg.options, cpu=cpu)
    return built, ("built" if built.rebuilt else kind)


def _import_brian2(worker) -> None:
    """Import Brian2 on the worker's event loop (the worker process's main thread), where its SIGINT handler
    can be installed; a task's own thread cannot."""
    import sys

    if "brian2" in sys.modules or threading.current_thread() is threading.main_thread():
        return
    from distributed.utils import sync

    async def load():
        import brian2  # noqa: F401

    try:
        sync(worker.loop, load)
    except ValueError:
        raise NetspecError("Brian2 can only be imported in a process's main thread: start the Dask workers as "
                           "processes (dask worker, or LocalCluster(processes=True))") from None


def run_chunk(pkg: Package, index: int, x: np.ndarray, seed: int | None, run: str):
    """A Dask task: simulate one chunk on this worker (building first if needed). Reports progress on the
    topic ``netspec-progress-<run>`` and stops between runs of samples once ``netspec-abort-<run>`` is set."""
    from distributed import Event, get_client, get_worker

    from ..brian import simulate

    worker = get_worker()
    t0 = time.perf_counter()
    try:
        _import_brian2(worker)  # the first task of a worker process: part of its setup time
        built, setup = worker_build(pkg)
        if setup.kind != "ready":
            setup = Setup(setup.kind, time.perf_counter() - t0)
        abort = Event(f"netspec-abort-{run}", client=get_client())

        def progress(k: int) -> None:
            worker.log_event(f"netspec-progress-{run}", [int(index), int(k)])
            if abort.is_set():
                raise Stopped(f"chunk {index} stopped: the run was interrupted")

        sim = simulate(built, x, seed=seed, progress=progress)
    except NetspecError as exc:
        return ChunkFailed(index, worker.address, str(exc), exc.exit_code)
    return ChunkDone(index, sim, worker.address, int(worker.state.nthreads), setup, time.perf_counter() - t0)


# -- submitting side ----------------------------------------------------------------------------------
@dataclass
class ClusterStats:
    """Where a cluster run's time went."""

    scheduler: str
    chunks: int = 0
    seconds: float = 0.0
    sim_seconds: float = 0.0
    setups: dict = field(default_factory=dict)
    threads: dict = field(default_factory=dict)

    def add(self, done: ChunkDone) -> None:
        self.chunks += 1
        self.sim_seconds += float(done.sim.seconds)
        self.threads[done.worker] = done.threads
        if done.worker not in self.setups or self.setups[done.worker].kind == "ready":
            self.setups[done.worker] = done.setup

    def lines(self) -> list[tuple[str, str]]:
        """(label, text) rows for the run's summary."""
        kinds = Counter(s.kind for s in self.setups.values())
        words = {"built": "built it", "received": "received the binary", "cached": "had it from an earlier run",
                 "ready": "had it loaded"}
        setup = ", ".join(
            f"{kinds[k]} {words[k]} ({max(s.seconds for s in self.setups.values() if s.kind == k):.1f} s)"
            for k in ("built", "received", "cached", "ready") if kinds[k])
        setup_seconds = sum(s.seconds for s in self.setups.values())
        slots = sum(self.threads.values()) or 1
        other = max(0.0, self.seconds * slots - self.sim_seconds - setup_seconds)
        n = len(self.setups)
        return [
            ("cluster", f"{self.scheduler}, {n} worker{'s' if n != 1 else ''} ({slots} thread{'s' if slots != 1 else ''}), "
                        f"{self.chunks} chunks"),
            ("worker setup", setup or "none"),
            ("worker time", f"simulating {self.sim_seconds:.1f} s; transfers, scheduling and idle "
                            f"{other / max(self.chunks, 1):.2f} s per chunk"),
        ]


def run_chunks(client, build, tasks, done: dict, progress=None) -> tuple[bool, ClusterStats]:
    """Simulate ``tasks`` ([(index, x, seed)], from :func:`netspec.run.evaluate.evaluate`) on the cluster of
    ``client``; fill ``done`` (index -> SimResult). Returns (interrupted, stats)."""
    import sys

    from distributed import Event, KilledWorker, Variable, as_completed
    from distributed.client import FutureCancelledError

    run = uuid.uuid4().hex[:12]
    stats = ClusterStats(scheduler=str(client.scheduler.address))
    if not client.scheduler_info()["workers"]:
        print(f"netspec: no workers at {stats.scheduler} yet; waiting for one to join (Ctrl-C to stop)", file=sys.stderr)
        client.wait_for_workers(1)
    binary = None
    if build.options.standalone:
        binary = Variable(f"netspec-binary-{run}", client=client)
        binary.set(client.scatter(pack_build(Path(build.folder)), hash=False))
    pkg = client.scatter(make_package(build, binary.name if binary is not None else None), broadcast=True, hash=False)

    sizes = {index: len(x) for index, x, _ in tasks}
    waiting = deque(tasks)
    running: dict[int, int] = {}
    lock = threading.Lock()

    def on_progress(event) -> None:
        index, k = event[1]
        with lock:
            running[index] = k

    client.subscribe_topic(f"netspec-progress-{run}", on_progress)
    futures: dict = {}
    ac = as_completed(loop=client.loop)

    def submit_more() -> None:
        slots = max(1, sum(client.nthreads().values()))
        while waiting and len(futures) < AHEAD * slots:
            index, x, seed = waiting.popleft()
            future = client.submit(run_chunk, pkg, index, x, seed, run, key=f"netspec-chunk-{run}-{index}",
                                   retries=RETRIES, pure=False)
            futures[future] = index
            ac.add(future)

    finished = 0
    interrupted = False
    t0 = time.perf_counter()
    try:
        submit_more()
        while futures:
            batch = ac.next_batch(block=False) if ac.has_ready() else []
            for future in batch:
                index = futures.pop(future)
                try:
                    result = future.result()
                except KilledWorker:
                    raise NetspecError(f"run: chunk {index} was lost: every worker that ran it died (Dask gives up "
                                       "after distributed.scheduler.allowed-failures deaths); out of memory?") from None
                except FutureCancelledError:
                    raise NetspecError(f"run: the cluster cancelled chunk {index} (scheduler restarted?)") from None
                if isinstance(result, ChunkFailed):
                    raise NetspecError(f"worker {result.worker}: {result.message}", result.exit_code)
                done[index] = result.sim
                stats.add(result)
                finished += sizes[index]
                with lock:
                    running.pop(index, None)
            if batch:
                submit_more()
            elif client.status == "closed":
                raise NetspecError(f"run: lost the connection to the scheduler at {stats.scheduler}")
            if progress:
                with lock:
                    partly = sum(min(k, sizes[i]) for i, k in running.items() if i not in done)
                progress(finished + partly)
            if not batch:
                time.sleep(0.1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        stats.seconds = time.perf_counter() - t0
        if futures:
            with contextlib.suppress(Exception):
                Event(f"netspec-abort-{run}", client=client).set()
                client.cancel(list(futures))
        with contextlib.suppress(Exception):
            client.unsubscribe_topic(f"netspec-progress-{run}")
            if binary is not None:
                binary.delete()
            pkg.release()
    return interrupted, stats
