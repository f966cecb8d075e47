"""``netspec run`` end to end on the shipped small specs and generated data: report figures recomputed
from the recorded counts, the schema, 1 vs 2 workers, interruption, plots, and every bad dataset."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from netspec.cli import main
from netspec.reference import predict
from netspec.run import metrics, validation_errors
from netspec.run.evaluate import chunk_size_for
from process_support import interrupt_run_after_a_chunk
from netspec.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "specs" / "small-conv.yaml"
TINY = ROOT / "specs" / "tiny-dense.yaml"


def _labelled(spec_path: Path, n: int, seed: int, wrong: float = 0.2):
    """Random inputs in the spec's range, labelled by the ANN with a fraction of labels changed (so the
    ANN's accuracy is about 1 - wrong, not trivially 1)."""
    spec = load_spec(spec_path)
    rng = np.random.default_rng(seed)
    lo, hi = spec.input.range
    x = (lo + (hi - lo) * rng.random((n, *spec.input.shape))).astype(np.float32)
    classes = int(np.prod(spec.shapes[spec.output_layer.name]))
    y = predict(spec, x)
    flip = rng.random(n) < wrong
    y[flip] = (y[flip] + 1) % classes
    return x, y


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    x, y = _labelled(SMALL, 250, seed=11)
    path = tmp_path_factory.mktemp("data") / "small.npz"
    np.savez(path, x=x, y=y)
    return path


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    return tmp_path_factory.mktemp("build") / "small-conv"


def _run(argv, capsys):
    rc = main(["run", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def _check_report(rep: dict, y: np.ndarray):
    """Every figure of a complete report against a recomputation from its recorded per-sample data
    (``y``: the dataset's labels)."""
    assert validation_errors(rep) == []
    ps = rep["per_sample"]
    counts = np.array(ps["counts"])
    labels = np.array(ps["label"])
    snn = np.array(ps["snn_prediction"])
    assert np.array_equal(labels, y[: len(labels)])
    assert rep["accuracy"]["snn_top1"] == pytest.approx(np.mean(snn == labels))
    # the read-out's prediction is one of the classes with the most spikes
    assert np.all(counts[np.arange(len(snn)), snn] == counts.max(axis=1))
    assert rep["accuracy"]["agreement"] == pytest.approx(np.mean(snn == np.array(ps["ann_prediction"])))
    # error-vs-time: last point = 1 - accuracy of the final counts with the same rule
    correct = (counts.argmax(axis=1) == labels) & (counts.max(axis=1) > 0)
    assert rep["error_vs_time"]["error"][-1] == pytest.approx(1 - correct.mean())
    assert len(rep["error_vs_time"]["error"]) == rep["config"]["simulation"]["steps"]
    ops = rep["operations"]
    assert ops["snn_cumulative"][-1] == pytest.approx(ops["snn_per_sample"]["total"], rel=1e-9)
    assert ops["snn_per_sample"]["total"] == pytest.approx(sum(ops["snn_per_sample"]["per_layer"].values()))
    assert np.all(np.diff(ops["snn_cumulative"]) >= 0)
    assert rep["samples"]["completed"] == rep["samples"]["requested"] == len(labels)
    assert not rep["partial"]


@pytest.mark.cpp
def test_run_standalone_report_workers_and_plots(small_data, small_build, tmp_path, capsys):
    r1, r2 = tmp_path / "one.json", tmp_path / "two.json"
    rc, out, err = _run([SMALL, "--data", small_data, "--standalone", "--workers", 1, "--report", r1,
                         "--build-dir", small_build, "--seed", 3, "--plots", tmp_path / "plots"], capsys)
    assert rc == 0, err
    rep1 = json.loads(r1.read_text())
    _check_report(rep1, np.load(small_data)["y"])
    assert rep1["config"]["device"] == "standalone" and rep1["config"]["workers"] == 1
    assert rep1["config"]["simulation"]["steps"] == 200 and rep1["config"]["data"]["samples"] == 250
    # the ANN accuracy is the numpy reference's on the same samples
    x = np.load(small_data)["x"]
    ann = predict(load_spec(SMALL), x)
    assert rep1["accuracy"]["ann_top1"] == pytest.approx(np.mean(ann == np.load(small_data)["y"]))
    # the converted network mostly agrees with its ANN on this easy network
    assert rep1["accuracy"]["agreement"] > 0.8
    for word in ("SNN accuracy", "ANN accuracy", "agreement", "samples/s", "build", "simulation"):
        assert word in out
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == ["correlation.png", "error_vs_ops.png", "error_vs_time.png", "output_raster.png"]
    assert all((tmp_path / "plots" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)

    # 2 workers (250 samples = 3 chunks of 100): identical counts, same order; the build is reused
    rc, out, err = _run([SMALL, "--data", small_data, "--workers", 2, "--report", r2,
                         "--build-dir", small_build, "--seed", 3], capsys)
    assert rc == 0, err
    rep2 = json.loads(r2.read_text())
    _check_report(rep2, np.load(small_data)["y"])
    assert rep2["config"]["workers"] == 2 and rep2["config"]["build"]["rebuilt"] is False
    assert rep2["per_sample"]["counts"] == rep1["per_sample"]["counts"]
    assert rep2["error_vs_time"] == rep1["error_vs_time"]


@pytest.mark.cpp
def test_limit_and_duration(small_data, small_build, tmp_path, capsys):
    rep = tmp_path / "r.json"
    rc, out, err = _run([SMALL, "--data", small_data, "--limit", 30, "--duration", "50 ms", "--workers", 1,
                         "--report", rep, "--build-dir", small_build], capsys)
    assert rc == 0, err
    data = json.loads(rep.read_text())
    _check_report(data, np.load(small_data)["y"])
    assert data["samples"]["requested"] == 30 and data["config"]["data"]["limit"] == 30
    assert data["config"]["simulation"]["steps"] == 50
    assert data["config"]["simulation"]["duration_override"] == "50 ms"


def test_runtime_mode_on_tiny_dense(tmp_path, capsys):
    x, y = _labelled(TINY, 12, seed=2)
    data = tmp_path / "tiny.npz"
    np.savez(data, x_test=x, y_test=np.eye(2)[y])  # one-hot labels under x_test/y_test
    rep = tmp_path / "r.json"
    rc, out, err = _run([TINY, "--data", data, "--runtime", "--workers", 1, "--report", rep,
                         "--build-dir", tmp_path / "build"], capsys)
    assert rc == 0, err
    report = json.loads(rep.read_text())
    _check_report(report, y)
    assert report["config"]["device"] == "runtime"


@pytest.mark.cpp
def test_ctrl_c_keeps_finished_chunks(small_build, tmp_path):
    x, y = _labelled(SMALL, 6000, seed=5)
    data = tmp_path / "many.npz"
    np.savez(data, x=x, y=y)
    rep = tmp_path / "partial.json"
    # two workers run a chunk each: a count above two chunks means one has finished
    rc, out, err = interrupt_run_after_a_chunk(
        [SMALL, "--data", data, "--workers", 2, "--report", rep, "--build-dir", small_build],
        6000, 2 * chunk_size_for(6000, 100))
    assert rc == 130, err
    assert "Traceback" not in err and "interrupted" in err
    report = json.loads(rep.read_text())
    assert report["partial"] is True
    done = report["samples"]["completed"]
    assert 0 < done < 6000 and report["samples"]["requested"] == 6000
    assert len(report["per_sample"]["index"]) == done
    assert validation_errors(report) == []
    assert report["per_sample"]["label"] == y[report["per_sample"]["index"]].tolist()


def _bad(tmp_path, name, **arrays):
    p = tmp_path / name
    np.savez(p, **arrays)
    return p


@pytest.mark.parametrize("case", ["shape", "range", "missing", "label_count", "label_class", "no_labels", "duration", "limit",
                                  "report_folder", "workers"])
def test_bad_input_is_one_line_error_before_building(case, tmp_path, capsys):
    rng = np.random.default_rng(0)
    good_x = rng.random((5, 10, 10, 1)).astype(np.float32)
    good_y = np.array([0, 1, 2, 0, 1])
    extra: list = []
    if case == "shape":
        data, msg = _bad(tmp_path, "d.npz", x=good_x[..., 0], y=good_y), "samples have shape [10, 10], the spec 'small-conv' expects [10, 10, 1]"
    elif case == "range":
        data, msg = _bad(tmp_path, "d.npz", x=good_x * 255, y=good_y), "outside the spec 'small-conv' input range [0, 1]"
    elif case == "missing":
        data, msg = tmp_path / "nope.npz", "nope.npz: file not found"
    elif case == "label_count":
        data, msg = _bad(tmp_path, "d.npz", x=good_x, y=good_y[:4]), "4 labels for 5 samples"
    elif case == "label_class":
        data, msg = _bad(tmp_path, "d.npz", x=good_x, y=np.array([0, 1, 2, 3, 1])), "label 3 is outside the spec's 3 output classes"
    elif case == "no_labels":
        data, msg = _bad(tmp_path, "d.npz", x=good_x), "no labels"
    elif case == "duration":
        data, msg = _bad(tmp_path, "d.npz", x=good_x, y=good_y), "--duration: '50.5 ms' is not a whole, positive multiple"
        extra = ["--duration", "50.5 ms"]
    elif case == "limit":
        data, msg = _bad(tmp_path, "d.npz", x=good_x, y=good_y), "the sample limit must be at least 1"
        extra = ["--limit", "0"]
    elif case == "workers":
        data, msg = _bad(tmp_path, "d.npz", x=good_x, y=good_y), "--workers: must be at least 1, got 0"
        extra = ["--workers", "0"]
    else:
        data, msg = _bad(tmp_path, "d.npz", x=good_x, y=good_y), "is a folder; give a file name"
        extra = ["--report", str(tmp_path)]
    build = tmp_path / "build"
    rc, out, err = _run([SMALL, "--data", data, "--build-dir", build, *extra], capsys)
    assert rc != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("netspec: error: ") and msg in lines[0], err
    assert not build.exists()


def test_poisson_input_same_counts_on_1_and_2_workers(tmp_path, capsys):
    """Random input spikes: chunks and their seeds do not depend on the number of workers, so the counts
    are identical; another seed gives other counts. (Runtime mode: no compiler needed.)"""
    text = TINY.read_text().replace("encoding: analog", "encoding: poisson\n  max_rate: 500 Hz")
    spec_path = tmp_path / "tiny-poisson.yaml"
    spec_path.write_text(text)
    x, y = _labelled(TINY, 210, seed=4)  # 3 chunks of 100, 100, 10
    data = tmp_path / "d.npz"
    np.savez(data, x=x, y=y)
    counts = {}
    for workers, seed in ((1, 7), (2, 7), (1, 8)):
        rep = tmp_path / f"r{workers}-{seed}.json"
        rc, out, err = _run([spec_path, "--data", data, "--runtime", "--workers", workers, "--seed", seed,
                             "--report", rep, "--build-dir", tmp_path / "build", "--duration", "40 ms"], capsys)
        assert rc == 0, err
        report = json.loads(rep.read_text())
        _check_report(report, y)
        assert report["config"]["seed"] == seed and report["config"]["simulation"]["input_encoding"] == "poisson"
        counts[workers, seed] = report["per_sample"]["counts"]
    assert counts[1, 7] == counts[2, 7]
    assert counts[1, 7] != counts[1, 8]


def test_workers_and_threads_fit_the_cores():
    from netspec.errors import NetspecError
    from netspec.run import parallelism

    assert parallelism(None, None, True, cores=8) == (8, 1)
    assert parallelism(None, 2, True, cores=8) == (4, 2)
    assert parallelism(None, 3, True, cores=2) == (1, 3)
    assert parallelism(3, None, True, cores=8) == (3, 1)
    assert parallelism(2, 4, True, cores=2) == (2, 4)  # both given: as asked
    with pytest.raises(NetspecError, match=r"^--threads: OpenMP threads apply to the standalone binary"):
        parallelism(None, 2, False, cores=8)
    with pytest.raises(NetspecError, match=r"^--threads: must be at least 1, got 0"):
        parallelism(None, 0, True)


def test_runtime_with_threads_is_one_line(small_data, tmp_path, capsys):
    rc, out, err = _run([SMALL, "--data", small_data, "--runtime", "--threads", 2, "--build-dir", tmp_path / "b"], capsys)
    assert rc == 2 and out == "" and not (tmp_path / "b").exists()
    assert err == "netspec: error: --threads: OpenMP threads apply to the standalone binary; --runtime runs one thread\n"


@pytest.mark.cpp
def test_run_passes_connectivity_and_threads(small_data, tmp_path, capsys):
    """run --connectivity synapses --threads 2 builds that (build.json says so) and counts like the default."""
    reps = []
    for k, extra in enumerate(([], ["--connectivity", "synapses", "--threads", 2])):
        rep = tmp_path / f"r{k}.json"
        rc, _, err = _run([SMALL, "--data", small_data, "--limit", 20, "--workers", 1, "--report", rep,
                           "--build-dir", tmp_path / f"b{k}", "--seed", 3, *extra], capsys)
        assert rc == 0, err
        reps.append(json.loads(rep.read_text()))
    info = json.loads((tmp_path / "b1" / "build.json").read_text())
    assert info["options"]["connectivity"] == "synapses" and info["options"]["threads"] == 2
    assert json.loads((tmp_path / "b0" / "build.json").read_text())["options"]["connectivity"] == "kernel"
    assert reps[0]["per_sample"]["counts"] == reps[1]["per_sample"]["counts"]


@pytest.mark.parametrize("workers, scheduler, started", [(None, None, True), (2, None, True), (1, None, False),
                                                         (None, "tcp://127.0.0.1:1", False)])
def test_the_fork_server_starts_before_brian2_is_imported(workers, scheduler, started):
    """`netspec run` starts its workers' fork server (which imports Brian2) before importing Brian2 itself, so
    the two imports overlap; not when the run will have no local workers. Checked in a fresh interpreter."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one usable core: no worker processes")
    code = ("import os, sys\n"
            "from multiprocessing import forkserver\n"
            "from netspec.workers import start_early\n"
            f"start_early({workers!r}, {scheduler!r})\n"
            "pid = forkserver._forkserver._forkserver_pid\n"
            "print('brian2' in sys.modules, pid is not None and os.waitpid(pid, os.WNOHANG) == (0, 0))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", str(started)]
