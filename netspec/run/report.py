"""The run report: one JSON document (format version 1) and the summary printed on the terminal.

:func:`make_report` turns an :class:`~netspec.run.evaluate.Evaluation` plus the ANN reference outputs into
plain data; the format is documented, field by field, by the JSON Schema shipped next to this module
(``report.schema.json``, loaded with :func:`schema`), and :func:`write_report` validates against it before
writing. :func:`summary` renders the figures a person reads first.
"""
from __future__ import annotations

import json
import platform
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import NetspecError
from ..hashing import file_sha256
from . import metrics

REPORT_VERSION = 1

ERROR_RULE = ("argmax of the output spike counts accumulated up to the step, ties to the lowest index; "
              "a sample without an output spike yet is an error")
#: The numbers of steps whose error the report and the summary single out (those within the run's steps).
CHECKPOINTS = (4, 8, 16, 32)
MEMBRANE_RULE = "membrane read-out: argmax of the output membrane potentials at the end of the step, ties to the lowest index"


@lru_cache(maxsize=1)
def schema() -> dict:
    """The JSON Schema of the report (shipped as ``netspec/run/report.schema.json``)."""
    return json.loads(resources.files("netspec.run").joinpath("report.schema.json").read_text(encoding="utf-8"))


def validation_errors(report: dict) -> list[str]:
    """Every way ``report`` departs from the schema, as ``path: message`` lines (empty when valid)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    out = []
    for err in sorted(validator.iter_errors(report), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in err.absolute_path) or "(top)"
        out.append(f"{where}: {err.message}")
    return out


def _num(v) -> float | None:
    v = float(v)
    return None if v != v else v


def _versions() -> dict:
    import brian2

    return {"netspec": __version__, "brian2": str(brian2.__version__), "numpy": np.__version__,
            "python": platform.python_version()}


def make_report(spec, evaluation, labels: np.ndarray, ann_scores: np.ndarray, *, data_source: str,
                limit: int | None = None, duration_override: str | None = None, build_seconds: float = 0.0,
                ann_seconds: float = 0.0) -> dict:
    """Assemble the report.

    Parameters
    ----------
    spec : Spec
    evaluation : Evaluation
        From :func:`netspec.run.evaluate.evaluate`.
    labels : ndarray, int [n]
        Labels of the completed samples (``dataset.y[evaluation.indices]``).
    ann_scores : ndarray, [n, C]
        The ANN reference's output layer on the same samples.
    data_source, limit, duration_override :
        What the run was given (for the configuration block).
    build_seconds, ann_seconds : float
        Timings measured by the caller.
    """
    sim, build = evaluation.sim, evaluation.build
    labels = np.asarray(labels, dtype=np.int64)
    n, classes = sim.counts.shape
    steps = int(sim.out_steps.shape[1])
    dt = float(spec.simulation.dt.value)
    duration = steps * dt

    order = metrics.ranking(sim.counts, sim.v_out)
    snn_pred = order[:, 0]
    ann_order = metrics.score_ranking(ann_scores)
    ann_pred = ann_order[:, 0]
    top5 = classes > 5
    ann_top1 = metrics.top_k_accuracy(ann_order, labels, 1)

    macs = metrics.ann_macs(spec)
    paper_ann = metrics.ann_paper_ops(spec)
    paper_ann_total = int(sum(paper_ann.values()))
    paper_steps = metrics.snn_paper_ops(spec, sim.layer_ops)
    paper_ops = metrics.per_sample_means(paper_steps)
    paper_total = float(sum(paper_ops.values()))
    paper_cum = metrics.cumulative_mean(paper_steps, steps)
    error = (metrics.error_vs_time(sim.out_steps, labels) if sim.v_steps is None
             else metrics.membrane_error_vs_time(sim.v_steps, labels))
    half_error, half_steps = metrics.error_at_budget(error, paper_cum, 0.5 * paper_ann_total)
    ops_steps = metrics.operations_per_step(spec, sim.layer_ops, n, steps)
    ops = metrics.per_sample_means(ops_steps)
    ops_total = float(sum(ops.values()))
    macs_total = int(sum(macs.values()))
    spikes = metrics.per_sample_means(sim.layer_spikes)
    neurons = {k: int(v) for k, v in build.populations.items()}
    rates = {k: spikes[k] / neurons[k] / duration for k in spikes if neurons.get(k)}

    options = build.options
    report = {
        "report_version": REPORT_VERSION,
        "partial": bool(evaluation.partial),
        "samples": {"requested": int(evaluation.requested), "completed": int(n)},
        "config": {
            "spec": {
                "name": spec.name,
                "file": str(spec.path) if spec.path is not None else None,
                "sha256": None if spec.path is None else file_sha256(spec.path),
                "weights_sha256": spec.weights.sha256 if spec.weights is not None else None,
            },
            "data": {"source": str(data_source), "samples": int(evaluation.requested), "limit": limit},
            "simulation": {"steps": steps, "dt_s": dt, "duration_s": duration, "duration_override": duration_override,
                           "input_encoding": spec.input.encoding},
            "device": "standalone" if options.standalone else "runtime",
            "workers": int(evaluation.workers),
            "chunk_size": int(evaluation.chunk_size),
            "seed": evaluation.seed,
            "build": {"dir": str(build.dir), "key": str(build.key), "rebuilt": bool(build.rebuilt),
                      "samples_per_run": int(options.samples_per_run), "threads": int(options.threads),
                      "float32": bool(options.float32), "batch": int(options.batch)},
            "versions": _versions(),
        },
        "accuracy": {
            "classes": int(classes),
            "snn_top1": _num(metrics.top_k_accuracy(order, labels, 1)),
            "snn_top5": _num(metrics.top_k_accuracy(order, labels, 5)) if top5 else None,
            "ann_top1": _num(ann_top1),
            "ann_top5": _num(metrics.top_k_accuracy(ann_order, labels, 5)) if top5 else None,
            "agreement": _num(metrics.agreement(snn_pred, ann_pred)),
            "no_output_spike": _num((sim.counts.sum(axis=1) == 0).mean()) if n else None,
        },
        "timing": {
            "build_seconds": float(build_seconds),
            "simulation_seconds": float(evaluation.seconds),
            "samples_per_second": float(n / evaluation.seconds) if evaluation.seconds > 0 else None,
            "worker_seconds": float(evaluation.worker_seconds),
            "ann_seconds": float(ann_seconds),
        },
        "error_vs_time": {
            "rule": ERROR_RULE if sim.v_steps is None else MEMBRANE_RULE,
            "error": [float(e) for e in error],
            "ann_error": _num(1.0 - ann_top1),
            "checkpoints": checkpoints(error, _num(1.0 - ann_top1)),
        },
        "operations": {
            "ann_macs": {"total": macs_total, "per_layer": macs},
            "snn_per_sample": {"total": ops_total, "per_layer": ops},
            "snn_cumulative": [float(v) for v in metrics.cumulative_mean(ops_steps, steps)],
            "ratio": ops_total / macs_total if macs_total else None,
            "accounting": metrics.ACCOUNTING_NETSPEC,
            "paper": {
                "accounting": metrics.ACCOUNTING_PAPER,
                "ann_ops": {"total": paper_ann_total, "per_layer": paper_ann},
                "snn_per_sample": {"total": paper_total, "per_layer": paper_ops},
                "snn_cumulative": [float(v) for v in paper_cum],
                "ratio": paper_total / paper_ann_total if paper_ann_total else None,
                "half_ann": {"error": None if half_error is None else _num(half_error), "steps": half_steps},
            },
        },
        "spikes": {
            "per_sample": {"total": float(sum(spikes.values())), "per_layer": spikes},
            "neurons": neurons,
            "rate_hz": rates,
        },
        "per_sample": {
            "index": [int(i) for i in evaluation.indices],
            "label": labels.tolist(),
            "snn_prediction": snn_pred.tolist(),
            "ann_prediction": ann_pred.tolist(),
            "counts": np.asarray(sim.counts, dtype=np.int64).tolist(),
        },
    }
    return report


def checkpoints(error, ann_error: float | None) -> list[dict]:
    """The error after each of :data:`CHECKPOINTS` steps within the curve ``error`` (one value per step), and
    its difference to ``ann_error``."""
    return [{"steps": t, "error": float(error[t - 1]),
             "minus_ann": None if ann_error is None else float(error[t - 1]) - ann_error}
            for t in CHECKPOINTS if t <= len(error)]


def write_report(report: dict, path: str | Path) -> Path:
    """Validate ``report`` against the schema and write it as JSON (parent folders created)."""
    errors = validation_errors(report)
    if errors:  # a bug in netspec, not in the user's input
        raise RuntimeError(f"the run report does not match its schema ({len(errors)} errors): {errors[0]}")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise NetspecError(f"--report {path}: cannot write: {exc.strerror}", 2) from exc
    return path


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f} %"


def _si(v: float) -> str:
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= factor:
            return f"{v / factor:.3g} {suffix}"
    return f"{v:.3g}"


def summary(report: dict) -> str:
    """The terminal summary of a report."""
    cfg, acc, tim = report["config"], report["accuracy"], report["timing"]
    sim, samples = cfg["simulation"], report["samples"]
    ops = report["operations"]
    head = (f"{cfg['spec']['name']}: {samples['completed']} samples"
            + (f" of {samples['requested']} (interrupted)" if report["partial"] else "")
            + f", {sim['steps']} steps of {sim['dt_s'] * 1e3:g} ms, {cfg['device']}, "
            f"{cfg['workers']} worker{'s' if cfg['workers'] != 1 else ''}")
    rows = [("SNN accuracy", _pct(acc["snn_top1"]) + (f"   top-5 {_pct(acc['snn_top5'])}" if acc["snn_top5"] is not None else "")),
            ("ANN accuracy", _pct(acc["ann_top1"]) + (f"   top-5 {_pct(acc['ann_top5'])}" if acc["ann_top5"] is not None else "")),
            ("SNN-ANN agreement", _pct(acc["agreement"])),
            ("error after T steps", _pct(report["error_vs_time"]["error"][-1])
             + ("   (counts only, no spike = error)" if report["error_vs_time"]["rule"] == ERROR_RULE else "   (membrane read-out)"))]
    marks = report["error_vs_time"]["checkpoints"]
    if marks:
        rows.append(("error at T = " + "/".join(str(m["steps"]) for m in marks),
                     " / ".join(_pct(m["error"]) for m in marks)
                     + ("" if marks[0]["minus_ann"] is None else
                        "   (ANN " + " / ".join(f"{100 * m['minus_ann'] + 0.0:+.2f}".replace('-0.00', '+0.00') for m in marks) + " points)")))
    if ops["ann_macs"]["total"]:
        rows.append(("operations/sample", f"SNN {_si(ops['snn_per_sample']['total'])}, ANN {_si(ops['ann_macs']['total'])} MACs"
                     + (f" (ratio {ops['ratio']:.3g})" if ops["ratio"] is not None else "") + "   netspec's accounting"))
        paper = ops["paper"]
        half = paper["half_ann"]
        rows.append(("paper's accounting", f"SNN {_si(paper['snn_per_sample']['total'])}, ANN {_si(paper['ann_ops']['total'])} ops"
                     + (f" (ratio {paper['ratio']:.3g})" if paper["ratio"] is not None else "")
                     + (f"; at half the ANN's: error {_pct(half['error'])} after {half['steps']} steps" if half["steps"] else
                        "; half the ANN's is spent before the first step ends")))
    build = cfg["build"]
    rows.append(("build", f"{tim['build_seconds']:.1f} s" + ("" if build["rebuilt"] else " (up to date)") + f"   {build['dir']}"))
    rate = tim["samples_per_second"]
    rows.append(("simulation", f"{tim['simulation_seconds']:.1f} s" + (f", {rate:.1f} samples/s" if rate is not None else "")))
    width = max(len(k) for k, _ in rows)
    return "\n".join([head] + [f"  {k.ljust(width)}  {v}" for k, v in rows])
