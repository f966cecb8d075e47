"""``netspec build``: a spec -> a build folder with ``network.py``, ``arrays.npz``, the runner they need
(``netspec_runner/``, a copy of the package ``netspec.brian.runner``) and, for standalone builds, the compiled C++
project in ``cpp/``.

A build is keyed by its content: the spec (its canonical YAML content and every tensor), the build
options, the builder's own source and the Brian2 and netspec versions. Where builds live, how they are
checked, locked and installed is :mod:`.store`'s job.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import NetspecError
from ..spec import Spec
from . import codegen
from .plan import CONNECTIVITY, Plan, make_plan
from .runner import keys
from .runner.processes import die_with_parent
from .store import KEY_FILE, RUNNER_DIR, check_build, exclusive, fingerprints, hold, install, link, prune, store_of

#: Bumped when the layout of a build folder changes.
BUILD_FORMAT = 3


@dataclass(frozen=True)
class BuildOptions:
    """How to build. ``steps`` overrides ``spec.simulation.steps`` (``run --duration``);
    ``samples_per_run`` samples are simulated per run of the network (compiled in for standalone)."""

    standalone: bool = False
    threads: int = 1
    #: single-precision state and weights (the default: the scatter moves half the bytes; spike counts stay within the
    #: tolerance tests/test_brian_kernels.py states against float64); False: double precision (``--float64``)
    float32: bool = True
    samples_per_run: int = 100
    #: samples simulated side by side in one network (every group holds ``batch`` copies of its layer, so that a
    #: projection's kernel is read from memory once per step for all of them); samples_per_run is rounded up to a
    #: multiple of it. Results are those of ``batch = 1`` (tested). None: chosen by :func:`resolve`, from the
    #: network's size (:attr:`netspec.spec.resources.Estimate.default_batch`: 8, 16 for kernels of over 4 M values,
    #: fewer for networks whose copies would hold over 512 MB of neuron state).
    batch: int | None = None
    steps: int | None = None
    connectivity: str = "kernel"  # 'kernel' or 'synapses' (unrolled, one Brian2 synapse per connection)
    #: Brian2's profiling: every code object is timed, and each run of the standalone binary writes the seconds
    #: per code object to ``profiling_info.txt`` in its results folder (tools/bench_sim.py --profile reads it)
    profile: bool = False


@dataclass(frozen=True)
class Build:
    """A finished build folder.

    Attributes
    ----------
    populations : dict[str, int]
        Layer name -> neurons, for every spiking population (the poisson input included).
    synapses : dict[str, int]
        Layer name -> synapses into it (for a max-pooling layer: its (neuron, window) pairs). Analog input
        projections are computed as currents, not synapses, and are not counted.
    fanout : dict[str, int]
        Layer name -> outgoing synapses of its neurons in total (spiking layers, max pooling included).
    """

    spec: Spec
    dir: Path
    script: Path
    options: BuildOptions
    key: str
    rebuilt: bool
    seconds: float
    steps: int
    populations: dict[str, int]
    synapses: dict[str, int]
    fanout: dict[str, int]
    #: The build's own folder (``.<name>.builds/<key prefix>/``), never rewritten: what runs is read from here.
    home: Path | None = None

    @property
    def folder(self) -> Path:
        """Where the build's files are read from (``home``; ``dir`` for builds without one)."""
        return self.home if self.home is not None else self.dir


# -- keys ------------------------------------------------------------------------------------------
def spec_hash(spec: Spec) -> str:
    """sha256 of the spec's content: its YAML data (comments and formatting aside) and every tensor."""
    h = hashlib.sha256()
    h.update(json.dumps(spec.to_yaml(), sort_keys=True, default=str).encode())
    for name in sorted(spec.arrays):
        arr = np.ascontiguousarray(spec.arrays[name])
        h.update(f"\n{name} {arr.dtype.str} {list(arr.shape)}\n".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _builder_source_hash() -> str:
    h = hashlib.sha256()
    pkg = resources.files("netspec.brian")
    for name in sorted(["build.py", "codegen.py", "connectivity.py", "kernels.py", "plan.py"]):
        h.update(pkg.joinpath(name).read_bytes())
    h.update(codegen.template_text().encode())
    for name, data in codegen.runner_files():
        h.update(f"\n{name}\n".encode() + data)
    return h.hexdigest()


def cpu_signature() -> str:
    """What ``-march=native`` depends on: the CPU model and flags (``/proc/cpuinfo``), or the platform's
    description where there is none, so that a binary is never reused on another kind of CPU."""
    import platform

    from ..cpuinfo import cpuinfo_fields

    fields = cpuinfo_fields()
    if fields is None:
        return f"{platform.machine()} {platform.processor()}"
    keys = ("vendor_id", "cpu family", "model", "model name", "flags", "Features", "CPU implementer", "CPU part")
    return json.dumps({k: v for k, v in fields.items() if k in keys}, sort_keys=True)


def build_key(spec: Spec, options: BuildOptions, cpu: str | None = None) -> str:
    import brian2

    blob = json.dumps({
        "format": BUILD_FORMAT,
        "netspec": __version__,
        "brian2": brian2.__version__,
        "builder": _builder_source_hash(),
        "spec": spec_hash(spec),
        "options": asdict(options),
        "cpu": (cpu or cpu_signature()) if options.standalone else None,  # -march=native depends on it
    }, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


# -- the folder --------------------------------------------------------------------------------------
def plan_arrays(plan: Plan) -> dict[str, np.ndarray]:
    """Everything ``network.py`` loads from ``arrays.npz`` (named in :mod:`.runner.keys`)."""
    out: dict[str, np.ndarray] = {}

    def pieces(prefix: str, items) -> None:
        for p, piece in enumerate(items):
            name = keys.piece(prefix, p)
            out[name + keys.POS], out[name + keys.W] = piece.pos, piece.w.astype(np.float64)

    for pop in plan.populations.values():
        out[keys.bias(pop.name)] = pop.bias.astype(np.float64)
        pieces(keys.drive(pop.name), pop.drive or [])
        for proj in pop.inputs:
            if proj.pieces is not None:
                pieces(proj.name, proj.pieces)
            else:
                out[proj.name + keys.PRE], out[proj.name + keys.POST] = proj.pre, proj.post
                out[proj.name + keys.W] = proj.w.astype(np.float64)
    for relay in plan.relays.values():
        for e in relay.elections:
            out[e.name + keys.PRE], out[e.name + keys.POST], out[e.name + keys.KEY] = e.pre, e.post, e.key.astype(np.float64)
    for name, f in plan.fanout.items():
        out[keys.fanout(name)] = f.astype(np.int32)
    return out


def _summary(plan: Plan) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    populations: dict[str, int] = {}
    synapses: dict[str, int] = {}
    for name in plan.order:
        if name in plan.relays:
            synapses[name] = int(sum(e.pre.size for e in plan.relays[name].elections))
            continue
        populations[name] = plan.size(name)
        if name in plan.populations:
            synapses[name] = int(sum(p.count for p in plan.populations[name].inputs))
    fanout = {name: int(f.sum()) for name, f in plan.fanout.items()}
    return populations, synapses, fanout


#: The per-step operation counter of a layer whose neurons' fan-outs differ is a Brian2 ``integer`` (int32).
COUNTER_MAX = 2**31 - 1


def _check_counters(plan: Plan) -> None:
    """Refuse a layer whose operations in one time step (all its neurons spiking) could wrap its counter."""
    for name, fan in plan.fanout.items():
        total = int(fan.sum())
        if fan.size and not np.all(fan == fan[0]) and total > COUNTER_MAX:
            raise NetspecError(f"build: layer '{name}': up to {total:,} synaptic operations per time step do not fit "
                               f"the per-step operation counter (int32, at most {COUNTER_MAX:,})", 2)


def resolve(spec: Spec, options: BuildOptions) -> BuildOptions:
    """``options`` with what they leave to the builder chosen for ``spec`` (``batch``), as the build records them."""
    if options.batch is None:
        return replace(options, batch=spec.estimate(options.connectivity).default_batch)  # as `netspec run` estimates
    return options


def _check_options(options: BuildOptions) -> None:
    if options.connectivity not in CONNECTIVITY:  # before resolve() estimates the network with it
        raise NetspecError(f"build: connectivity must be one of {', '.join(CONNECTIVITY)}, not {options.connectivity!r}",
                           2)
    if not isinstance(options.threads, int) or options.threads < 1:
        raise NetspecError(f"build: --threads must be at least 1, got {options.threads}", 2)
    if options.batch is not None and (not isinstance(options.batch, int) or options.batch < 1):
        raise NetspecError(f"build: --batch must be at least 1, got {options.batch}", 2)
    if not isinstance(options.samples_per_run, int) or options.samples_per_run < 1:
        raise NetspecError(f"build: samples_per_run must be at least 1, got {options.samples_per_run}", 2)
    if options.steps is not None and (not isinstance(options.steps, int) or options.steps < 1):
        raise NetspecError(f"build: steps must be at least 1, got {options.steps}", 2)


def build(spec: Spec, out_dir: str | Path | None = None, options: BuildOptions = BuildOptions(), force: bool = False,
          cpu: str | None = None) -> Build:
    """Generate (and with ``options.standalone``, compile) the SNN of ``spec``; ``out_dir`` (default
    ``build/<spec name>``) becomes a link to it. An intact build with the same key is reused, unless ``force``;
    a damaged or edited one is built again (the reason is printed on stderr). ``cpu`` (default: this machine's
    :func:`cpu_signature`) names the CPU a standalone binary is for: a cluster worker gives the submitting
    machine's when it runs that machine's binary (:func:`adopt`), after checking its CPU can."""
    t0 = time.perf_counter()
    _check_options(options)
    options = resolve(spec, options)
    folder = Path(out_dir) if out_dir is not None else Path("build") / spec.name
    plan = make_plan(spec, options.steps, options.connectivity)
    key = build_key(spec, options, cpu)
    _check_counters(plan)
    populations, synapses, fanout = _summary(plan)
    store = store_of(folder)
    home = store / key[:16]
    if folder.exists() and not folder.is_symlink() and not folder.is_dir():
        raise NetspecError(f"build: {folder} exists and is not a folder", 2)
    reuse = False
    if force and home.is_dir():
        with exclusive(home):  # refused before any work while a run uses it
            pass
    if not force and home.is_dir() and hold(home):
        reason = check_build(home, key, full=True)
        reuse = reason is None
        if reason is not None:
            print(f"netspec: {home}: {reason}; building it again", file=sys.stderr)
    if not reuse:
        try:
            store.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f"tmp-{os.getpid()}-", dir=store))
        except OSError as exc:
            raise NetspecError(f"build: cannot write to {store}: {exc.strerror or exc}", 2) from None
        try:
            try:
                (tmp / ".lock").touch()
                np.savez(tmp / "arrays.npz", **plan_arrays(plan))
                (tmp / RUNNER_DIR).mkdir()
                for name, data in codegen.runner_files():
                    (tmp / RUNNER_DIR / name).write_bytes(data)
                (tmp / "network.py").write_text(codegen.render(plan, key, spec_hash(spec), options), encoding="utf-8")
            except OSError as exc:
                raise NetspecError(f"build: cannot write to {store}: {exc.strerror or exc}", 2) from None
            if options.standalone:
                _compile(tmp, tmp / "network.py")
            info = {"key": key, "netspec": __version__, "spec": spec.name, "options": asdict(options),
                    "steps": plan.steps, "populations": populations, "synapses": synapses, "fanout": fanout,
                    "files": fingerprints(tmp, options.standalone)}
            (tmp / KEY_FILE).write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
            os.chmod(tmp, 0o755)
            install(tmp, home)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        hold(home)
    try:
        link(folder, home)
    except OSError as exc:
        raise NetspecError(f"build: cannot write to {folder}: {exc.strerror or exc}", 2) from None
    prune(store, home)
    return Build(spec=spec, dir=folder, script=home / "network.py", options=options, key=key, rebuilt=not reuse,
                 seconds=time.perf_counter() - t0, steps=plan.steps, populations=populations, synapses=synapses,
                 fanout=fanout, home=home)


def forget_brian_temp_files() -> None:
    """Import Brian2 without the files it leaves in the system temp folder when a process fails or is killed
    (its debug log and a copy of the main script): netspec reports its own errors."""
    import logging

    import brian2
    from brian2.utils.logger import BrianLogger

    brian2.prefs["logging.file_log"] = False
    brian2.prefs["logging.save_script"] = False
    if BrianLogger.file_handler is not None:
        logging.getLogger("brian2").removeHandler(BrianLogger.file_handler)
        BrianLogger.file_handler.close()
        BrianLogger.file_handler = None
    for path in (BrianLogger.tmp_log, f"{BrianLogger.tmp_log}.1" if BrianLogger.tmp_log else None,
                 BrianLogger.tmp_script):
        if path:
            with contextlib.suppress(OSError):
                os.remove(path)
    BrianLogger.tmp_log = BrianLogger.tmp_script = None


#: The compile step's watcher: ``python -c _WATCHER <netspec pid> <command...>``. It leads a process group of
#: its own, starts the command in it and waits; once netspec is gone (it gets SIGTERM from the kernel when
#: netspec dies, and checks its parent pid besides) it kills the whole group: the compiling Python process and
#: the ``make`` and compilers below it, which a death signal on the direct child alone would leave running.
_WATCHER = """
import os, signal, sys, time
netspec = int(sys.argv[1])
def stop(*_):
    os.killpg(0, signal.SIGKILL)
signal.signal(signal.SIGTERM, stop)
if os.getppid() != netspec:
    stop()
pid = os.fork()
if pid == 0:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.execv(sys.argv[2], sys.argv[2:])
while True:
    if os.getppid() != netspec:
        stop()
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        code = os.waitstatus_to_exitcode(status)
        sys.exit(code if code >= 0 else 128 - code)
    time.sleep(0.1)
"""


def _watcher_setup() -> None:  # pragma: no cover - runs in the child between fork and exec
    """The compile watcher: a process group of its own (so it can be stopped with all it started), and SIGTERM
    when netspec dies (Linux), which it answers by killing its group."""
    os.setpgrp()
    die_with_parent(signal.SIGTERM)


def _compile(folder: Path, script: Path) -> None:
    """Run ``network.py --compile`` in its own process (Brian2's standalone device is process-global), under
    a watcher that leads a process group of its own: interrupted, or killed even with SIGKILL, netspec leaves
    no compiler running."""
    scratch = folder / ".tmp"  # the child's temp folder (Brian2's logs), removed with or after the build
    scratch.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(scratch.resolve())}
    argv = [sys.executable, "-c", _WATCHER, str(os.getpid()), sys.executable, str(script.resolve()), "--compile"]
    proc = subprocess.Popen(argv, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            preexec_fn=_watcher_setup)
    try:
        output, _ = proc.communicate()
    except BaseException:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if proc.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-25:])
        if proc.returncode > 128:  # the watcher's code for a child killed by a signal
            sig = proc.returncode - 128
            name = signal.Signals(sig).name if sig in signal.valid_signals() else f"signal {sig}"
            why = " (the kernel kills the largest process when memory runs out)" if sig == signal.SIGKILL else ""
            tail = f" the compiling process was killed by {name}{why}" + (f"; its last output:\n{tail}" if tail else "")
        else:
            tail = "\n" + tail
        raise NetspecError(f"build: compiling the standalone project in {folder / 'cpp'} failed:{tail}")


def build_command(spec: Spec, options: BuildOptions, out_dir: str | Path | None = None, force: bool = False) -> int:
    """``netspec build``: build, then print the folder, whether it was reused, and the time taken."""
    result = build(spec, out_dir, options, force=force)
    state = "built" if result.rebuilt else "up to date, reused"
    mode = "standalone C++" if options.standalone else "runtime"
    neurons = sum(result.populations.values())
    syn = sum(result.synapses.values())
    print(f"{result.dir}: {state} ({mode}) in {result.seconds:.2f} s")
    print(f"  -> {result.folder}")
    print(f"  {result.script}  ({neurons:,} neurons, {syn:,} synapses, {result.steps} steps per sample)")
    if options.standalone:
        print(f"  {result.folder / 'cpp' / 'main'}")
    return 0
