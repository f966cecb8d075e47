"""The run report and chunk merging on hand-made SimResults (no simulation): every figure is checked
against a recomputation from the arrays, and the report against its JSON Schema."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from netspec.brian import BuildOptions, SimResult
from netspec.run import Evaluation, evaluate, make_report, merge, schema, summary, validation_errors, write_report
from netspec.run import metrics
from netspec.spec import load_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"


def _sim(n: int, steps: int, classes: int, seed: int) -> SimResult:
    rng = np.random.default_rng(seed)
    out_steps = (rng.random((n, steps, classes)) < 0.08).astype(np.int32)
    counts = out_steps.sum(axis=1).astype(np.int32)
    spikes = {"conv1": rng.integers(0, 30, (n, steps)).astype(float), "fc": out_steps.sum(axis=2).astype(float)}
    ops = {"conv1": spikes["conv1"] * 54.0, "fc": np.zeros((n, steps))}
    return SimResult(counts=counts, v_out=rng.random((n, classes)), out_steps=out_steps, layer_spikes=spikes,
                     layer_ops=ops, neuron_counts=None, seconds=0.5)


def _build(spec):
    return SimpleNamespace(spec=spec, dir=Path("build/x"), key="k" * 16, rebuilt=True, options=BuildOptions(batch=1),
                           populations={"conv1": 400, "fc": 3}, synapses={}, fanout={}, seconds=1.0, steps=20)


@pytest.fixture(scope="module")
def spec():
    return load_spec(SPECS / "small-conv.yaml")


def _evaluation(spec, sim, partial=False, requested=None):
    n = len(sim.counts)
    return Evaluation(build=_build(spec), sim=sim, indices=np.arange(n), requested=requested or n, partial=partial,
                      workers=2, chunk_size=100, seconds=2.0, worker_seconds=3.0, seed=5)


def test_report_figures_match_the_arrays_and_the_schema(spec, tmp_path):
    sim = _sim(40, 20, 3, seed=0)
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 40)
    ann = rng.random((40, 3))
    rep = make_report(spec, _evaluation(spec, sim), labels, ann, data_source="d.npz", build_seconds=4.0, ann_seconds=0.1)
    assert validation_errors(rep) == []
    acc = rep["accuracy"]
    assert acc["snn_top1"] == pytest.approx(np.mean(sim.predictions() == labels))
    assert acc["ann_top1"] == pytest.approx(np.mean(ann.argmax(axis=1) == labels))
    assert acc["agreement"] == pytest.approx(np.mean(sim.predictions() == ann.argmax(axis=1)))
    assert acc["snn_top5"] is None  # 3 classes
    err = rep["error_vs_time"]["error"]
    assert len(err) == 20
    assert err[-1] == pytest.approx(metrics.count_error(sim.counts, labels))
    ops = rep["operations"]
    assert ops["snn_per_sample"]["per_layer"]["conv1"] == pytest.approx(sim.layer_ops["conv1"].sum() / 40)
    assert ops["snn_cumulative"][-1] == pytest.approx(ops["snn_per_sample"]["total"])
    # analog input: the constant input current into conv1 (its 3136 MACs) once per sample, at the first step
    assert ops["snn_per_sample"]["per_layer"]["image"] == 28 * 28 * 4
    assert ops["snn_cumulative"][0] == pytest.approx(28 * 28 * 4 + (sim.layer_ops["conv1"][:, 0].mean()))
    assert ops["snn_per_sample"]["total"] == pytest.approx(sum(ops["snn_per_sample"]["per_layer"].values()))
    assert ops["ann_macs"]["total"] == 28 * 28 * 4 + 81 * 4 * 6 + 54 * 3
    assert ops["ratio"] == pytest.approx(ops["snn_per_sample"]["total"] / ops["ann_macs"]["total"])
    # the paper's accounting: the ANN at 2 per MAC + one per biased output neuron; the SNN's events only
    paper = ops["paper"]
    assert paper["ann_ops"]["total"] == 2 * ops["ann_macs"]["total"] + 10 * 10 * 4 + 3 * 3 * 6 + 3
    assert paper["ann_ops"]["per_layer"]["fc"] == 2 * 54 * 3 + 3
    assert "image" not in paper["snn_per_sample"]["per_layer"]
    assert paper["snn_per_sample"]["total"] == pytest.approx(ops["snn_per_sample"]["total"] - 28 * 28 * 4)
    cum = np.cumsum(sim.layer_ops["conv1"].mean(axis=0))
    np.testing.assert_allclose(paper["snn_cumulative"], cum)
    within = np.flatnonzero(cum <= paper["ann_ops"]["total"] / 2)
    assert paper["half_ann"]["steps"] == within[-1] + 1
    assert paper["half_ann"]["error"] == pytest.approx(err[within[-1]])
    assert paper["ratio"] == pytest.approx(paper["snn_per_sample"]["total"] / paper["ann_ops"]["total"])
    assert "paper" in paper["accounting"] and "strict" in ops["accounting"]
    assert "paper's accounting" in summary(rep)
    assert rep["spikes"]["rate_hz"]["conv1"] == pytest.approx(sim.layer_spikes["conv1"].sum() / 40 / 400 / (20 * 1e-3))
    assert rep["per_sample"]["counts"] == sim.counts.tolist()
    assert rep["timing"]["samples_per_second"] == pytest.approx(20.0)
    assert rep["config"]["spec"]["sha256"] is not None and rep["config"]["seed"] == 5
    path = write_report(rep, tmp_path / "sub" / "r.json")
    assert json.loads(path.read_text()) == rep
    text = summary(rep)
    assert f"{100 * acc['snn_top1']:.2f} %" in text and "20.0 samples/s" in text


def test_top5_with_ten_classes(spec):
    sim = _sim(60, 10, 10, seed=3)
    labels = np.random.default_rng(4).integers(0, 10, 60)
    rep = make_report(spec, _evaluation(spec, sim), labels, np.random.default_rng(5).random((60, 10)), data_source="d")
    order = metrics.ranking(sim.counts, sim.v_out)
    assert rep["accuracy"]["snn_top5"] == pytest.approx(np.mean([l in o[:5] for l, o in zip(labels, order)]))
    assert rep["accuracy"]["snn_top5"] >= rep["accuracy"]["snn_top1"]
    assert validation_errors(rep) == []


def test_partial_report_and_schema_rejects_a_broken_report(spec):
    sim = _sim(10, 5, 3, seed=6)
    rep = make_report(spec, _evaluation(spec, sim, partial=True, requested=30), np.zeros(10, int), np.ones((10, 3)),
                      data_source="d")
    assert rep["partial"] is True and rep["samples"] == {"requested": 30, "completed": 10}
    assert validation_errors(rep) == []
    broken = json.loads(json.dumps(rep))
    del broken["accuracy"]["snn_top1"]
    broken["extra"] = 1
    errors = validation_errors(broken)
    assert any("snn_top1" in e for e in errors) and any("extra" in e for e in errors)


def test_every_schema_property_is_described():
    def walk(node, where):
        if isinstance(node, dict):
            for key, sub in node.get("properties", {}).items():
                assert "description" in sub, f"{where}/{key} has no description"
            for key, sub in node.items():
                walk(sub, f"{where}/{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{where}[{i}]")

    walk(schema(), "")


def test_merge_keeps_sample_order():
    a, b = _sim(7, 5, 3, seed=7), _sim(4, 5, 3, seed=8)
    m = merge([a, b])
    assert np.array_equal(m.counts, np.concatenate([a.counts, b.counts]))
    assert np.array_equal(m.out_steps[7:], b.out_steps)
    assert np.array_equal(m.layer_ops["conv1"][:7], a.layer_ops["conv1"])
    assert m.seconds == pytest.approx(1.0)


def test_evaluate_in_process_chunks_seeds_and_interrupt(spec):
    calls = []

    def fake_simulate(build, x, *, results_dir=None, seed=None, progress=None):
        calls.append((len(x), seed))
        if len(calls) == 3:
            raise KeyboardInterrupt
        n = len(x)
        counts = np.rint(x[:, 0, 0, 0] * 10).astype(np.int32)[:, None].repeat(3, axis=1)
        if progress:
            progress(n)
        return SimResult(counts=counts, v_out=np.zeros((n, 3)), out_steps=np.zeros((n, 4, 3), np.int32),
                         layer_spikes={}, layer_ops={}, neuron_counts=None, seconds=0.1)

    x = np.zeros((25, 10, 10, 1), np.float32)
    x[:, 0, 0, 0] = np.arange(25) / 10
    done = []
    ev = evaluate(_build(spec), x, workers=1, seed=3, chunk_size=10, simulate_fn=fake_simulate, progress=done.append)
    assert [c[0] for c in calls] == [10, 10, 5]
    assert len({c[1] for c in calls}) == 3  # a different seed per chunk
    assert ev.partial and ev.requested == 25 and ev.indices.tolist() == list(range(20))
    assert ev.sim.counts[:, 0].tolist() == list(range(20))
    assert done == [10, 10, 20, 20]  # from inside the chunk, then when it is merged


def test_error_vs_operations_plot_draws_both_accountings(spec, tmp_path):
    pytest.importorskip("matplotlib")
    from netspec.run import plots
    sim = _sim(40, 20, 3, seed=0)
    labels = np.random.default_rng(1).integers(0, 3, 40)
    rep = make_report(spec, _evaluation(spec, sim), labels, np.random.default_rng(2).random((40, 3)), data_source="d.npz")
    path = plots.error_vs_ops(rep, tmp_path / "e.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_membrane_readout_report_reads_the_membrane_at_every_step(spec):
    """With v_steps (the membrane read-out) the error at step t is the argmax of the membranes at t, and the
    report says so; the final prediction is the membrane's argmax (no output spikes)."""
    rng = np.random.default_rng(3)
    n, steps, classes = 30, 20, 3
    v_steps = np.cumsum(rng.random((n, steps, classes)), axis=1)
    base = _sim(n, steps, classes, seed=0)
    sim = SimResult(counts=np.zeros((n, classes), np.int32), v_out=v_steps[:, -1], out_steps=np.zeros((n, steps, classes), np.int32),
                    layer_spikes=base.layer_spikes, layer_ops=base.layer_ops, neuron_counts=None, seconds=0.5, v_steps=v_steps)
    labels = rng.integers(0, 3, n)
    rep = make_report(spec, _evaluation(spec, sim), labels, rng.random((n, classes)), data_source="d.npz",
                      build_seconds=1.0, ann_seconds=0.1)
    assert validation_errors(rep) == []
    want = (v_steps.argmax(axis=2) != labels[:, None]).mean(axis=0)
    np.testing.assert_allclose(rep["error_vs_time"]["error"], want)
    assert rep["error_vs_time"]["rule"].startswith("membrane read-out")
    assert rep["accuracy"]["snn_top1"] == pytest.approx(np.mean(v_steps[:, -1].argmax(axis=1) == labels))
    assert "(membrane read-out)" in summary(rep)
    merged = merge([sim, sim])
    assert merged.v_steps.shape == (2 * n, steps, classes)


@pytest.mark.parametrize("steps, marked", [(3, []), (10, [4, 8]), (20, [4, 8, 16]), (40, [4, 8, 16, 32])])
def test_error_at_4_8_16_32_steps_in_the_report_and_summary(spec, steps, marked):
    sim = _sim(50, steps, 3, seed=7)
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 3, 50)
    ann = rng.random((50, 3))
    rep = make_report(spec, _evaluation(spec, sim), labels, ann, data_source="d.npz")
    assert validation_errors(rep) == []
    curve = rep["error_vs_time"]
    err, ann_error = curve["error"], curve["ann_error"]
    assert [m["steps"] for m in curve["checkpoints"]] == marked
    for m in curve["checkpoints"]:
        assert m["error"] == err[m["steps"] - 1]
        assert m["minus_ann"] == pytest.approx(err[m["steps"] - 1] - ann_error)
    line = [l for l in summary(rep).splitlines() if "error at T =" in l]
    if not marked:
        assert line == []
        return
    label = "error at T = " + "/".join(map(str, marked))
    values = (" / ".join(f"{100 * err[t - 1]:.2f} %" for t in marked)
              + "   (ANN " + " / ".join(f"{100 * (err[t - 1] - ann_error):+.2f}" for t in marked) + " points)")
    assert len(line) == 1 and line[0].strip().startswith(label + " ") and line[0].endswith("  " + values)


def test_error_vs_time_plot_marks_4_8_16_steps(spec, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from netspec.run import plots

    sim = _sim(30, 20, 3, seed=9)
    rep = make_report(spec, _evaluation(spec, sim), np.zeros(30, dtype=int), np.random.default_rng(2).random((30, 3)),
                      data_source="d.npz")
    figures = []
    saved = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, plt, path: (figures.append(fig), saved(fig, plt, path))[1])
    path = plots.error_vs_time(rep, tmp_path / "e.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = figures[0].axes[0]
    marks = [line for line in ax.lines if line.get_label() == "T = 4, 8, 16"]
    assert len(marks) == 1
    err = rep["error_vs_time"]["error"]
    np.testing.assert_allclose(marks[0].get_xdata(), [4, 8, 16])
    np.testing.assert_allclose(marks[0].get_ydata(), [100 * err[3], 100 * err[7], 100 * err[15]])
    assert [t.get_text() for t in ax.texts] == [f"{100 * err[t - 1]:.2f} %" for t in (4, 8, 16)]
