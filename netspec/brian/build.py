"""``netspec build``: a spec -> a build folder with ``network.py``, ``arrays.npz``, the runner they need
(``netspec_runner.py``, a copy of ``runner.py``) and, for standalone builds, the compiled C++ project in ``cpp/``.

A build folder is keyed by its content: the spec (its canonical YAML content and every tensor), the build
options, the builder's own source and the Brian2 and netspec versions. ``build.json`` holds the key of the
build that completed last; when it matches (and, for standalone builds, the binary exists), nothing is
regenerated or compiled.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import NetspecError
from ..spec import Spec
from . import codegen
from .plan import Plan, make_plan

#: Bumped when the layout of a build folder changes.
BUILD_FORMAT = 2
KEY_FILE = "build.json"
#: The runner module in the build folder, which ``network.py`` imports.
RUNNER_FILE = codegen.RUNNER_MODULE + ".py"


@dataclass(frozen=True)
class BuildOptions:
    """How to build. ``steps`` overrides ``spec.simulation.steps`` (``run --duration``);
    ``samples_per_run`` samples are simulated per run of the network (compiled in for standalone)."""

    standalone: bool = False
    threads: int = 1
    float32: bool = False
    samples_per_run: int = 100
    steps: int | None = None
    connectivity: str = "kernel"  # 'kernel' or 'synapses' (unrolled, one Brian2 synapse per connection)


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
    for name in sorted(["build.py", "codegen.py", "connectivity.py", "kernels.py", "plan.py", "runner.py"]):
        h.update(pkg.joinpath(name).read_bytes())
    h.update(codegen.template_text().encode())
    return h.hexdigest()


def cpu_signature() -> str:
    """What ``-march=native`` depends on: the CPU model and flags (``/proc/cpuinfo``), or the platform's
    description where there is none, so that a binary is never reused on another kind of CPU."""
    import platform

    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    keep = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("vendor_id", "cpu family", "model", "model name", "flags", "Features", "CPU implementer", "CPU part"):
            keep.setdefault(key, value.strip())
    return json.dumps(keep, sort_keys=True)


def build_key(spec: Spec, options: BuildOptions) -> str:
    import brian2

    blob = json.dumps({
        "format": BUILD_FORMAT,
        "netspec": __version__,
        "brian2": brian2.__version__,
        "builder": _builder_source_hash(),
        "spec": spec_hash(spec),
        "options": asdict(options),
        "cpu": cpu_signature() if options.standalone else None,  # -march=native depends on it
    }, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


# -- the folder --------------------------------------------------------------------------------------
def plan_arrays(plan: Plan) -> dict[str, np.ndarray]:
    """Everything ``network.py`` loads from ``arrays.npz`` (see ``runner.load_arrays`` for the keys)."""
    out: dict[str, np.ndarray] = {}
    for pop in plan.populations.values():
        out[f"B_{pop.name}"] = pop.bias.astype(np.float64)
        for k, piece in enumerate(pop.drive or []):
            out[f"D_{pop.name}_{k}_pos"], out[f"D_{pop.name}_{k}_w"] = piece.pos, piece.w.astype(np.float64)
        for proj in pop.inputs:
            if proj.pieces is not None:
                for k, piece in enumerate(proj.pieces):
                    out[f"{proj.name}_{k}_pos"], out[f"{proj.name}_{k}_w"] = piece.pos, piece.w.astype(np.float64)
            else:
                out[f"{proj.name}_i"], out[f"{proj.name}_j"] = proj.pre, proj.post
                out[f"{proj.name}_w"] = proj.w.astype(np.float64)
    for relay in plan.relays.values():
        for e in relay.elections:
            out[f"{e.name}_i"], out[f"{e.name}_j"], out[f"{e.name}_key"] = e.pre, e.post, e.key.astype(np.float64)
    for name, f in plan.fanout.items():
        out[f"F_{name}"] = f.astype(np.int32)
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


def _check_options(options: BuildOptions) -> None:
    if not isinstance(options.threads, int) or options.threads < 1:
        raise NetspecError(f"build: --threads must be at least 1, got {options.threads}", 2)
    if not isinstance(options.samples_per_run, int) or options.samples_per_run < 1:
        raise NetspecError(f"build: samples_per_run must be at least 1, got {options.samples_per_run}", 2)
    if options.steps is not None and (not isinstance(options.steps, int) or options.steps < 1):
        raise NetspecError(f"build: steps must be at least 1, got {options.steps}", 2)


def _up_to_date(folder: Path, key: str, options: BuildOptions) -> bool:
    try:
        info = json.loads((folder / KEY_FILE).read_text())
    except (OSError, ValueError):
        return False
    needed = [folder / "network.py", folder / "arrays.npz", folder / RUNNER_FILE]
    if options.standalone:
        needed += [folder / "cpp" / "main", folder / "cpp" / "manifest.json"]
    return info.get("key") == key and all(p.exists() for p in needed)


def build(spec: Spec, out_dir: str | Path | None = None, options: BuildOptions = BuildOptions(), force: bool = False) -> Build:
    """Generate (and with ``options.standalone``, compile) the SNN of ``spec`` in ``out_dir``
    (default ``build/<spec name>/``); reuse the folder when its key matches, unless ``force``."""
    t0 = time.perf_counter()
    _check_options(options)
    folder = Path(out_dir) if out_dir is not None else Path("build") / spec.name
    plan = make_plan(spec, options.steps, options.connectivity)
    key = build_key(spec, options)
    populations, synapses, fanout = _summary(plan)
    script = folder / "network.py"
    reuse = not force and _up_to_date(folder, key, options)
    if not reuse:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / KEY_FILE).unlink(missing_ok=True)
            np.savez(folder / "arrays.npz", **plan_arrays(plan))
            (folder / RUNNER_FILE).write_text(codegen.runner_text(), encoding="utf-8")
            script.write_text(codegen.render(plan, key, spec_hash(spec), options), encoding="utf-8")
        except OSError as exc:
            raise NetspecError(f"build: cannot write to {folder}: {exc.strerror or exc}", 2) from None
        if options.standalone:
            _compile(folder, script)
        info = {"key": key, "netspec": __version__, "spec": spec.name, "options": asdict(options), "steps": plan.steps,
                "populations": populations, "synapses": synapses, "fanout": fanout}
        (folder / KEY_FILE).write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    return Build(spec=spec, dir=folder, script=script, options=options, key=key, rebuilt=not reuse,
                 seconds=time.perf_counter() - t0, steps=plan.steps, populations=populations, synapses=synapses,
                 fanout=fanout)


def _compile(folder: Path, script: Path) -> None:
    """Run ``network.py --compile`` in its own process (Brian2's standalone device is process-global)."""
    done = subprocess.run([sys.executable, str(script.resolve()), "--compile"], cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise NetspecError(f"build: compiling the standalone project in {folder / 'cpp'} failed:\n{tail}")


def build_command(spec: Spec, options: BuildOptions, out_dir: str | Path | None = None, force: bool = False) -> int:
    """``netspec build``: build, then print the folder, whether it was reused, and the time taken."""
    result = build(spec, out_dir, options, force=force)
    state = "built" if result.rebuilt else "up to date, reused"
    mode = "standalone C++" if options.standalone else "runtime"
    neurons = sum(result.populations.values())
    syn = sum(result.synapses.values())
    print(f"{result.dir}: {state} ({mode}) in {result.seconds:.2f} s")
    print(f"  {result.script}  ({neurons:,} neurons, {syn:,} synapses, {result.steps} steps per sample)")
    if options.standalone:
        print(f"  {result.dir / 'cpp' / 'main'}")
    return 0
