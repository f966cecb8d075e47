"""Figures of a run, as the paper draws them (PNG, matplotlib's Agg backend, imported only when asked).

- ``error_vs_time.png``: SNN error after every time step, the ANN error as a horizontal line, the error at
  T = 4, 8, 16, 32 marked and labelled;
- ``error_vs_ops.png``: the same error against the SNN's accumulated operations per sample, in the paper's
  accounting and in netspec's, each with the ANN's point (its operations, its error);
- ``correlation.png``: per spiking layer, λ-normalized ANN activations against SNN rates (counts / T) on a
  few samples, with the Pearson r;
- ``output_raster.png``: the output layer's spikes over time for one sample.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import NetspecError
from .metrics import pearson

#: The files --plots may write into its folder (checked against the inputs before a run starts).
PLOT_FILES = ("error_vs_time.png", "error_vs_ops.png", "correlation.png", "output_raster.png")


def require_matplotlib():
    """Import matplotlib with the Agg backend; a clear error when it is not installed."""
    try:
        import matplotlib
    except ImportError:
        raise NetspecError("--plots: matplotlib is not installed (pip install 'netspec[plots]')", 2) from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _steps_axis(report: dict) -> np.ndarray:
    return np.arange(1, len(report["error_vs_time"]["error"]) + 1)


def _error_axis(ax, err: np.ndarray) -> None:
    """0-100 %; symmetric-log above 1 % when the final error is small, so that the approach to a low
    error stays readable (linear below 1 %, where zero errors must show)."""
    ax.set_ylabel("error (%)")
    if len(err) and err[-1] < 10:
        ax.set_yscale("symlog", linthresh=1.0, linscale=0.5)
        ax.set_yticks([0, 0.5, 1, 2, 5, 10, 20, 50, 100])
        ax.set_yticklabels(["0", "0.5", "1", "2", "5", "10", "20", "50", "100"])
    ax.set_ylim(0, 100)


def error_vs_time(report: dict, path: Path) -> Path:
    """Error (%) after every step, with the ANN's error as a dashed line."""
    plt = require_matplotlib()
    err = 100 * np.asarray(report["error_vs_time"]["error"])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(_steps_axis(report), err, label="SNN", color="C0")
    ann = report["error_vs_time"]["ann_error"]
    if ann is not None:
        ax.axhline(100 * ann, color="C3", ls="--", label=f"ANN ({100 * ann:.2f} %)")
    marks = report["error_vs_time"].get("checkpoints") or []
    if marks:
        ax.plot([m["steps"] for m in marks], [100 * m["error"] for m in marks], "o", color="C0", ms=5,
                label="T = " + ", ".join(str(m["steps"]) for m in marks))
        for m in marks:
            ax.annotate(f"{100 * m['error']:.2f} %", (m["steps"], 100 * m["error"]), textcoords="offset points",
                        xytext=(4, 6), fontsize=8, color="C0")
    dt_ms = report["config"]["simulation"]["dt_s"] * 1e3
    ax.set_xlabel(f"time step (dt = {dt_ms:g} ms)")
    _error_axis(ax, err)
    ax.set_xlim(1, len(err))
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{report['config']['spec']['name']}: error vs time ({report['samples']['completed']} samples)")
    return _save(fig, plt, path)


def error_vs_ops(report: dict, path: Path) -> Path | None:
    """Error (%) against operations per sample (log x), in both accountings of the report: the paper's (SNN
    synaptic events; the ANN at 2 per MAC + biases) and netspec's (SNN events + analog input current; the ANN
    at 1 per MAC), each SNN curve with its ANN's point. None when the ANN has no MACs."""
    ops = report["operations"]
    macs = ops["ann_macs"]["total"]
    if not macs:
        return None
    plt = require_matplotlib()
    err = 100 * np.asarray(report["error_vs_time"]["error"])
    ann = report["error_vs_time"]["ann_error"]
    paper = ops["paper"]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    any_positive = False
    for cum, ann_ops, color, label in ((paper["snn_cumulative"], paper["ann_ops"]["total"], "C0", "paper's accounting"),
                                       (ops["snn_cumulative"], macs, "C1", "netspec's accounting")):
        x = np.asarray(cum, dtype=np.float64)
        keep = x > 0
        any_positive |= bool(keep.any())
        ax.plot(x[keep], err[keep], color=color, label=f"SNN, {label}")
        if ann is not None:
            ax.plot([ann_ops], [100 * ann], marker="*", ms=12, color=color, ls="none",
                    label=f"ANN, {label} ({ann_ops:.3g} ops, {100 * ann:.2f} %)")
    half = paper["half_ann"]
    if half["steps"]:
        ax.axvline(0.5 * paper["ann_ops"]["total"], color="C0", ls=":", lw=1,
                   label=f"half the ANN's (paper): {_pct_text(half['error'])} at step {half['steps']}")
    if any_positive:
        ax.set_xscale("log")
    ax.set_xlabel("operations per sample (SNN: cumulative)")
    _error_axis(ax, err)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax.set_title(f"{report['config']['spec']['name']}: error vs operations")
    return _save(fig, plt, path)


def _pct_text(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f} %"


def activation_pairs(spec, x: np.ndarray, neuron_counts: dict, steps: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per spiking layer, (λ-normalized ANN activation, SNN rate = counts / steps), flattened over the
    samples and neurons (channels-last order, as the build numbers neurons)."""
    from ..reference import forward, normalized

    acts = normalized(spec, forward(spec, x))
    pairs = {}
    for name, counts in neuron_counts.items():
        if name not in acts:
            continue
        ann = np.asarray(acts[name], dtype=np.float64).reshape(len(x), -1)
        snn = np.asarray(counts, dtype=np.float64).reshape(len(x), -1) / steps
        if ann.shape != snn.shape:
            continue
        pairs[name] = (ann.ravel(), snn.ravel())
    return pairs


def correlation(pairs: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str = "") -> Path | None:
    """One scatter panel per layer, ANN activation (x) against SNN rate (y), identity line, Pearson r."""
    if not pairs:
        return None
    plt = require_matplotlib()
    n = len(pairs)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (name, (ann, snn)) in zip(axes.ravel(), pairs.items()):
        ax.scatter(ann, snn, s=3, alpha=0.4, color="C0", edgecolors="none")
        hi = 1.05 * max(float(np.max(ann, initial=0)), float(np.max(snn, initial=0)), 1e-3)
        ax.plot([0, hi], [0, hi], color="0.5", lw=0.8, ls="--")
        ax.set_xlim(min(0.0, float(np.min(ann, initial=0))), hi)
        ax.set_ylim(0, hi)
        r = pearson(ann, snn)
        ax.set_title(f"{name}  (r = {r:.3f})" if r == r else f"{name}  (r undefined)", fontsize=9)
        ax.set_xlabel("ANN activation / λ", fontsize=8)
        ax.set_ylabel("SNN rate (spikes / step)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, plt, path)


def output_raster(out_steps: np.ndarray, path: Path, *, label: int | None, prediction: int | None,
                  dt_ms: float, title: str = "") -> Path:
    """Spikes of the output layer over time for one sample ([T, C] counts per step): a dot per spike."""
    plt = require_matplotlib()
    steps, classes = out_steps.shape
    t, c = np.nonzero(out_steps)
    fig, ax = plt.subplots(figsize=(6, 0.35 * classes + 1.5))
    colors = ["C2" if k == label else "C0" for k in c]
    ax.scatter((t + 1) * dt_ms, c, marker="|", s=80, c=colors)
    ax.set_yticks(range(classes))
    ax.set_ylim(-0.5, classes - 0.5)
    ax.set_xlim(0, steps * dt_ms)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("output neuron (class)")
    counts = out_steps.sum(axis=0)
    ax.set_title((title + "  " if title else "") + f"label {label} (green), SNN says {prediction}, "
                 f"{int(counts.sum())} spikes", fontsize=9)
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, plt, path)


def _save(fig, plt, path: Path) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def make_plots(report: dict, out_dir: str | Path, *, out_steps: np.ndarray | None = None,
               pairs: dict | None = None) -> list[Path]:
    """Write every figure the inputs allow into ``out_dir``; returns the files written.

    ``out_steps`` is [T, C] for the raster sample (the first completed one); ``pairs`` comes from
    :func:`activation_pairs`."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NetspecError(f"--plots {out}: cannot create the folder: {exc.strerror}", 2) from exc
    name = report["config"]["spec"]["name"]
    written = [error_vs_time(report, out / "error_vs_time.png"), error_vs_ops(report, out / "error_vs_ops.png")]
    if pairs:
        written.append(correlation(pairs, out / "correlation.png",
                                   title=f"{name}: ANN activations vs SNN rates"))
    if out_steps is not None:
        ps = report["per_sample"]
        written.append(output_raster(out_steps, out / "output_raster.png", label=ps["label"][0],
                                     prediction=ps["snn_prediction"][0],
                                     dt_ms=report["config"]["simulation"]["dt_s"] * 1e3,
                                     title=f"{name}, sample {ps['index'][0]}:"))
    return [p for p in written if p is not None]
