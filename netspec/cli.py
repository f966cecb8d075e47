"""Command line: argument parsing and error printing only; every command calls one stage's entry point.

Exit codes: 0 success (all specs valid), 1 invalid input (an invalid spec, bad data), 2 usage errors or
unreadable files. No traceback unless ``--traceback``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading

from . import __version__
from .errors import NetspecError


def _size(text: str) -> int:
    from .spec.resources import parse_bytes

    try:
        return parse_bytes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(text: str) -> int:
    from .spec.resources import parse_count

    try:
        return parse_count(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _limit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-steps", type=_count, default=None, metavar="N",
                   help="refuse more time steps per sample than N (default 1000000)")
    p.add_argument("--max-memory", type=_size, default=None, metavar="SIZE",
                   help="refuse networks and runs estimated to need more memory ('16G'; default half the physical memory)")


def _simulation_options(p: argparse.ArgumentParser) -> None:
    precision = p.add_mutually_exclusive_group()
    precision.add_argument("--float32", dest="float64", action="store_false", default=False,
                           help="single-precision state variables and weights (the default: half the bytes to move)")
    precision.add_argument("--float64", dest="float64", action="store_true",
                           help="double precision instead (spike counts differ from float32's by rounding only)")
    p.add_argument("--batch", type=int, default=None, metavar="B",
                   help="samples simulated side by side in one network, so that every weight read serves B of them "
                   "(default 8, 16 for kernels of over 4 M values, fewer where the copies would pass 512 MB of neuron "
                   "state; the results do not depend on it)")


def _connectivity_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--connectivity", choices=("kernel", "synapses"), default="kernel",
                   help=f"{what} projections from their kernels (default) or as one Brian2 synapse per connection")


def _limits(args):
    from .spec.resources import Limits

    default = Limits()
    return Limits(args.max_steps if args.max_steps is not None else default.max_steps,
                  args.max_memory if args.max_memory is not None else default.max_memory,
                  args.connectivity)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="netspec", description="Spiking networks from trained deep networks: specs, Brian2 code, evaluation.")
    p.add_argument("--version", action="version", version=f"netspec {__version__}")
    p.add_argument("--traceback", action="store_true", help="show the Python traceback of an error")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    v = sub.add_parser("validate", help="check specs against the schema and the semantic rules")
    v.add_argument("files", nargs="+", metavar="FILE")
    v.add_argument("--format", choices=("text", "json"), default="text", help="report format (default text)")
    _connectivity_option(v, "estimate the memory of")
    _limit_options(v)

    i = sub.add_parser("inspect", help="one row per layer: shape, neurons, synapses, parameters, lambda")
    i.add_argument("file", metavar="FILE")

    sub.add_parser("schema", help="print the JSON Schema of the spec format")

    # defaults are ExportOptions' own: an option not given stays None here and is not passed on
    from .export.options import ENCODINGS, METHODS, READOUTS, ExportOptions

    e = sub.add_parser("export", help="export a trained Keras model, or read a NIR graph, to a spec and its weights")
    e.add_argument("model", metavar="MODEL", help="Keras .keras or legacy .h5 file, or a NIR graph (.nir)")
    e.add_argument("-o", "--output", required=True, metavar="SPEC.yaml")
    e.add_argument("--calibration", default=None, metavar="DATA",
                   help="Keras models (required for them): .npz (x, x_train or x_norm) or MNIST IDX file/folder")
    e.add_argument("--percentile", type=float, default=None,
                   help=f"robust normalization percentile, for percentile and channel (default {ExportOptions.percentile:g})")
    e.add_argument("--normalization", choices=METHODS, default=None,
                   help=f"how lambda is computed: percentile, max, or channel (the percentile per output channel) (default {ExportOptions.method})")
    e.add_argument("--samples", type=int, default=None, metavar="N", help="calibration samples to use (default all)")
    e.add_argument("--input-encoding", choices=ENCODINGS, default=None, help=f"input encoding (default {ExportOptions.encoding})")
    e.add_argument("--duration", default=None, help=f"simulation duration per sample written to the spec (default '{ExportOptions.duration}')")
    e.add_argument("--quantized-initial", type=float, default=None, metavar="U",
                   help="initial membrane (fraction of the threshold) of layers with netspec.keras.QuantizedClip "
                        f"(default {ExportOptions.quantized_initial:g}; 0: at rest)")
    e.add_argument("--readout", choices=READOUTS, default=None, help="simulation.readout written to the spec: membrane (the "
                   "output integrates without spiking, an answer from the first step) or spike_count "
                   f"(default {ExportOptions.readout})")
    e.add_argument("--initial", type=float, default=None, metavar="U0", help="neuron.initial written to the spec: the "
                   f"membrane at the start of every sample, a fraction of the threshold in [0, 1) (default {ExportOptions.initial:g})")
    e.add_argument("--calibrate-bias", action=argparse.BooleanOptionalAction, default=None, help="bias calibration: "
                   "simulate the normalized SNN in numpy on the calibration data and correct each layer's bias per channel "
                   "so its rates at --bias-steps steps match the ANN (normalization.bias_correction; analog input only) "
                   f"(default {'on' if ExportOptions.calibrate_bias else 'off'})")
    e.add_argument("--bias-steps", type=int, default=None, metavar="T",
                   help=f"time steps the bias calibration simulates (default {ExportOptions.bias_steps})")
    e.add_argument("--bias-samples", type=int, default=None, metavar="N",
                   help=f"calibration samples the bias calibration uses (default {ExportOptions.bias_samples})")
    e.add_argument("--bias-rounds", type=int, default=None, metavar="N",
                   help="secant rounds per layer after the bias calibration's first correction (0: the gap alone) "
                        f"(default {ExportOptions.bias_rounds})")
    e.add_argument("--dt", default=None, help="NIR graphs: the time step the graph's dynamics are stepped with (default: "
                   "the graph's netspec metadata, else '1 ms'; snnTorch exports with '0.1 ms')")
    e.add_argument("--approximate", action="store_true", help="NIR graphs: accept a bias into CubaLIF neurons "
                   "(netspec adds it to the membrane, not through the synaptic current)")
    e.add_argument("--convention", choices=("nir", "snntorch", "norse", "sinabs", "spyx"), default=None, help="NIR graphs: "
                   "how the library that wrote the graph steps its neurons (default: recognised from the graph, else nir)")
    e.add_argument("--reset", choices=("zero", "subtract"), default=None, help="NIR graphs: reset of every neuron node, "
                   "instead of the convention's (snnTorch's Leaky(reset_mechanism='zero'): zero)")

    n = sub.add_parser("nir", help="write a spec's spiking network as a NIR graph (Neuromorphic Intermediate Representation)")
    n.add_argument("spec", metavar="SPEC.yaml")
    n.add_argument("-o", "--output", required=True, metavar="GRAPH.nir")
    n.add_argument("--approximate", action="store_true", help="leave out what NIR cannot express (refractory periods, "
                   "delays, the bias path of exponential synapses), recorded in node metadata, instead of refusing")

    b = sub.add_parser("build", help="generate Brian2 code (and with --standalone, a compiled C++ simulation)")
    b.add_argument("spec", metavar="SPEC.yaml")
    b.add_argument("-o", "--output", default=None, metavar="DIR", help="build folder (default build/<name>/)")
    b.add_argument("--standalone", action="store_true", help="Brian2 cpp_standalone: generate and compile C++")
    b.add_argument("--threads", type=int, default=1, metavar="N",
                   help="OpenMP threads of the standalone binary (default 1, as netspec run builds it: samples run "
                   "in parallel on worker processes, which use the cores better)")
    _simulation_options(b)
    _connectivity_option(b, "simulate")
    b.add_argument("--force", action="store_true", help="rebuild even if the build folder is up to date")
    _limit_options(b)

    r = sub.add_parser("run", help="simulate a spec on a dataset: accuracy, error vs time, operations")
    r.add_argument("spec", metavar="SPEC.yaml")
    r.add_argument("--data", required=True, metavar="DATA", help=".npz (x/y or x_test/y_test), MNIST IDX files or their folder")
    r.add_argument("--limit", type=int, default=None, metavar="N", help="first N samples only")
    r.add_argument("--duration", default=None, metavar="T", help="override the duration per sample ('50 ms')")
    mode = r.add_mutually_exclusive_group()
    mode.add_argument("--standalone", dest="standalone", action="store_true", default=True, help="compiled C++ (default)")
    mode.add_argument("--runtime", dest="standalone", action="store_false", help="Brian2 runtime mode")
    r.add_argument("--workers", type=int, default=None, metavar="K",
                   help="worker processes (default: the usable cores divided by --threads)")
    r.add_argument("--threads", type=int, default=None, metavar="N",
                   help="OpenMP threads per worker of the standalone binary (default 1: workers use the cores)")
    _connectivity_option(r, "simulate")
    _simulation_options(r)
    r.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="simulate on the workers of a Dask cluster (tcp://host:8786) instead; needs netspec[dask]")
    r.add_argument("--report", default=None, metavar="FILE.json")
    r.add_argument("--plots", default=None, metavar="DIR")
    r.add_argument("--seed", type=int, default=None, metavar="S")
    r.add_argument("--build-dir", default=None, metavar="DIR", help="build folder (default build/<name>/)")
    _limit_options(r)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    terminated: list[int] = []
    try:
        with _sigterm_interrupts(terminated):
            status = _COMMANDS[args.command](args)
        return 143 if terminated and status == 130 else status
    except NetspecError as exc:
        if args.traceback:
            raise
        print(f"netspec: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("netspec: terminated" if terminated else "netspec: interrupted", file=sys.stderr)
        return 143 if terminated else 130
    except MemoryError:  # a safety net: sizes are estimated and refused before allocating
        if args.traceback:
            raise
        print("netspec: error: out of memory (the estimate before allocating was too low; lower --max-memory "
              "or use fewer samples)", file=sys.stderr)
        return 1


def _not_now(frame) -> bool:
    """Whether a KeyboardInterrupt raised at ``frame`` (where a signal arrived) would be lost or do harm: inside
    an import (an interrupted import breaks the module for good: numpy raises ImportError ever after), or in
    ``logging``'s lock handling (it runs around every fork, where an exception is ignored and the run goes on)."""
    if frame is not None and frame.f_code.co_filename.endswith(os.path.join("logging", "__init__.py")):
        return True
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def _sigterm_interrupts(terminated: list[int]):
    """While inside, SIGTERM (``kill``, ``timeout``, batch schedulers) stops the command as Ctrl-C does (a run
    keeps its finished samples and writes its partial report); ``terminated`` records it (exit status 143)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if _not_now(frame):  # delivered again a moment later
            threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
            return
        terminated.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _validate(args) -> int:
    from .spec import check_file

    results = []
    status = 0
    limits = _limits(args)
    for name in args.files:
        _spec, diagnostics = check_file(name, limits)
        results.append((name, diagnostics))
        if any(d.code == "NS006" for d in diagnostics):
            status = max(status, 2)
        elif diagnostics:
            status = max(status, 1)
    if args.format == "json":
        print(json.dumps({"valid": status == 0, "files": [
            {"file": name, "valid": not diags, "errors": [d.to_json() for d in diags]} for name, diags in results
        ]}, indent=2))
        return status
    for name, diags in results:
        if not diags:
            print(f"{name}: valid")
            continue
        for d in diags:
            print(d.text())
        if any(d.code == "NS006" for d in diags):
            print(f"{name}: unreadable")
        else:
            print(f"{name}: invalid ({len(diags)} error{'s' if len(diags) != 1 else ''})")
    return status


def _load(path: str, limits=None):
    from .spec import check_file

    spec, diagnostics = check_file(path, limits)
    if spec is None:
        for d in diagnostics:
            print(d.text(), file=sys.stderr)
        if any(d.code == "NS006" for d in diagnostics):
            raise NetspecError(f"{path}: cannot read the spec", 2)
        raise NetspecError(f"{path}: invalid spec ({len(diagnostics)} error{'s' if len(diagnostics) != 1 else ''})", 1)
    return spec


def _inspect(args) -> int:
    from .inspect import table

    from .spec import Limits

    print(table(_load(args.file, Limits.unchecked())))  # inspect allocates nothing: show what is too big
    return 0


def _schema(args) -> int:
    from .spec import schema_text

    sys.stdout.write(schema_text())
    return 0


def _export(args) -> int:
    from .nir import is_nir_file

    if is_nir_file(args.model):
        return _import_nir(args)
    if args.calibration is None:
        raise NetspecError("--calibration: required to export a Keras model", 2)
    if args.dt is not None or args.approximate or args.convention or args.reset:
        raise NetspecError("--dt, --approximate, --convention and --reset apply to NIR graphs; a Keras export steps with 1 ms", 2)
    from .export import export

    print(export(args.model, args.output, _export_options(args)).summary())
    return 0


def _export_options(args):
    """The :class:`~netspec.export.ExportOptions` given on the command line; the others keep their defaults."""
    from .export import ExportOptions

    if args.normalization == "max" and args.percentile is not None:
        raise NetspecError("--percentile: not used by --normalization max (the maximum is the 100th percentile)", 2)
    if not args.calibrate_bias and (args.bias_steps is not None or args.bias_samples is not None
                                    or args.bias_rounds is not None):
        raise NetspecError("--bias-steps, --bias-samples, --bias-rounds: used only with --calibrate-bias", 2)
    given = {"method": args.normalization, "percentile": args.percentile, "samples": args.samples,
             "encoding": args.input_encoding, "duration": args.duration, "readout": args.readout,
             "initial": args.initial, "calibrate_bias": args.calibrate_bias, "bias_steps": args.bias_steps,
             "bias_samples": args.bias_samples, "bias_rounds": args.bias_rounds, "quantized_initial": args.quantized_initial}
    return ExportOptions(args.calibration, **{key: value for key, value in given.items() if value is not None})


def _import_nir(args) -> int:
    from .nir import ImportOptions, import_command

    for option, value in (("--calibration", args.calibration), ("--percentile", args.percentile),
                          ("--normalization", args.normalization), ("--samples", args.samples),
                          ("--readout", args.readout), ("--initial", args.initial), ("--calibrate-bias", args.calibrate_bias),
                          ("--bias-steps", args.bias_steps), ("--bias-samples", args.bias_samples),
                          ("--bias-rounds", args.bias_rounds)):
        if value is not None:
            raise NetspecError(f"{option}: a NIR graph is already a spiking network (every lambda is 1); "
                               "there is nothing to calibrate", 2)
    if args.quantized_initial is not None:
        raise NetspecError("--quantized-initial: for Keras models with netspec.keras.QuantizedClip; a NIR graph has none", 2)
    options = ImportOptions(dt=args.dt, duration=args.duration, encoding=args.input_encoding, approximate=args.approximate,
                            convention=args.convention, reset=args.reset)
    return import_command(args.model, args.output, options)


def _nir(args) -> int:
    from .nir import nir_command

    return nir_command(_load(args.spec), args.output, approximate=args.approximate)


def _build(args) -> int:
    spec = _load(args.spec, _limits(args))
    from .brian import BuildOptions, build_command  # imports Brian2, which installs its own SIGINT handler
    from .run.evaluate import interruptible

    options = BuildOptions(standalone=args.standalone, threads=args.threads, float32=not args.float64, batch=args.batch,
                           connectivity=args.connectivity)
    with interruptible():  # Ctrl-C (even of a background job, where SIGINT was ignored): one line, exit 130
        return build_command(spec, options, args.output, force=args.force)


def _run(args) -> int:
    from .workers import start_early

    start_early(args.workers, args.scheduler)  # the workers' fork server imports Brian2 while this process does
    from .run import RunOptions, run_command

    options = RunOptions(data=args.data, limit=args.limit, duration=args.duration, standalone=args.standalone,
                         workers=args.workers, threads=args.threads, connectivity=args.connectivity, float32=not args.float64, batch=args.batch,
                         report=args.report, plots=args.plots, seed=args.seed, build_dir=args.build_dir,
                         limits=_limits(args), scheduler=args.scheduler)
    return run_command(_load(args.spec, options.limits), options)


_COMMANDS = {"validate": _validate, "inspect": _inspect, "schema": _schema, "export": _export, "nir": _nir, "build": _build,
             "run": _run}


if __name__ == "__main__":
    sys.exit(main())
