"""Metrics, progress bar and option parsing of ``netspec run``, on hand-made arrays (no simulation)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from netspec.errors import NetspecError
from netspec.run import metrics
from netspec.run.evaluate import check_labels, chunk_seed, chunk_size_for, parse_steps
from netspec.run.progress import Progress
from netspec.spec import load_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"


def _brute_ranking(counts, v_out):
    """Read-out rule written out the slow way: most spikes, then highest membrane, then lowest index."""
    return np.array([sorted(range(len(c)), key=lambda k: (-c[k], -v[k], k)) for c, v in zip(counts, v_out)])


def test_ranking_breaks_ties_by_membrane_then_index():
    counts = np.array([[1, 3, 3], [0, 0, 0], [2, 1, 0], [5, 5, 5]])
    v_out = np.array([[0.0, 0.1, 0.5], [0.2, 0.2, 0.1], [0.0, 0.0, 0.9], [0.3, 0.3, 0.3]])
    order = metrics.ranking(counts, v_out)
    assert order[:, 0].tolist() == [2, 0, 0, 0]
    assert order[0].tolist() == [2, 1, 0]
    assert order[1].tolist() == [0, 1, 2]


def test_ranking_matches_brute_force_on_many_ties():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 3, size=(200, 7))
    v_out = rng.integers(0, 2, size=(200, 7)) * 0.5
    assert np.array_equal(metrics.ranking(counts, v_out), _brute_ranking(counts, v_out))


def test_top_k_accuracy():
    order = np.array([[2, 0, 1], [0, 1, 2], [1, 2, 0], [0, 2, 1]])
    labels = np.array([2, 1, 0, 0])
    assert metrics.top_k_accuracy(order, labels, 1) == 0.5
    assert metrics.top_k_accuracy(order, labels, 2) == 0.75
    assert metrics.top_k_accuracy(order, labels, 3) == 1.0


def test_score_ranking_and_agreement():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.5, 0.0]])
    assert metrics.score_ranking(scores)[:, 0].tolist() == [1, 0]  # tie -> lowest index
    assert metrics.agreement(np.array([1, 0, 2]), np.array([1, 2, 2])) == pytest.approx(2 / 3)


def test_error_vs_time_by_hand():
    # 3 samples, 4 steps, 3 classes; labels 0, 1, 2
    out = np.zeros((3, 4, 3), dtype=np.int32)
    out[0, 0, 0] = 1                     # sample 0: right from step 0 on
    out[1, 1, 0] = 1                     # sample 1: wrong at step 1, tie 0/1 at step 2 (-> 0, wrong),
    out[1, 2, 1] = 1                     #           right at step 3
    out[1, 3, 1] = 1
    out[2, 3, 2] = 1                     # sample 2: silent until step 3, then right
    err = metrics.error_vs_time(out, np.array([0, 1, 2]))
    assert err.tolist() == pytest.approx([2 / 3, 2 / 3, 2 / 3, 0.0])


def test_error_vs_time_last_point_is_final_count_error_and_blocks_agree():
    rng = np.random.default_rng(1)
    out = (rng.random((300, 20, 5)) < 0.05).astype(np.int32)
    labels = rng.integers(0, 5, 300)
    err = metrics.error_vs_time(out, labels)
    assert err[-1] == pytest.approx(metrics.count_error(out.sum(axis=1), labels))
    assert np.allclose(metrics.error_vs_time(out, labels, block=7), err)
    # silent samples are errors even when their label is class 0 (the argmax of all-zero counts)
    silent = np.zeros((4, 3, 2), dtype=np.int32)
    assert metrics.error_vs_time(silent, np.zeros(4, dtype=int)).tolist() == [1.0, 1.0, 1.0]


def test_ops_per_step_sum_to_the_total():
    rng = np.random.default_rng(2)
    ops = {"a": rng.integers(0, 100, (50, 30)).astype(float), "b": rng.integers(0, 10, (50, 30)).astype(float)}
    per = metrics.per_sample_means(ops)
    cum = metrics.cumulative_mean(ops, 30)
    assert per["a"] == pytest.approx(ops["a"].sum() / 50)
    assert cum[-1] == pytest.approx(sum(per.values()))
    assert np.all(np.diff(cum) >= 0)


def test_ann_macs_of_small_conv_by_hand():
    spec = load_spec(SPECS / "small-conv.yaml")
    # conv1: 10x10 'same' 3x3 -> 28 taps per axis, 28*28 * 1 channel * 4 filters
    # conv2: 5x5x4 'valid' 3x3 -> 3 outputs * 3 taps per axis, 81 * 4 * 6; fc: 54 * 3; max-pooling: no MACs
    assert metrics.ann_macs(spec) == {"conv1": 28 * 28 * 4, "conv2": 81 * 4 * 6, "fc": 54 * 3}


def test_analog_input_macs_and_operations_per_step():
    spec = load_spec(SPECS / "small-conv.yaml")
    assert metrics.analog_input_macs(spec) == 28 * 28 * 4  # conv1, driven by the analog input
    steps = metrics.operations_per_step(spec, {"conv1": np.ones((2, 5))}, 2, 5)
    assert steps["image"].tolist() == [[3136, 0, 0, 0, 0]] * 2 and steps["conv1"].sum() == 10
    tiny = load_spec(SPECS / "tiny-dense.yaml")
    assert metrics.analog_input_macs(tiny) == 4 * 3
    # the input beside a branch of neurons: only the connections from the input's elements are its current's
    mixed = load_spec(Path(__file__).parent / "spec" / "valid" / "analog-into-concat-and-add.yaml")
    assert metrics.analog_input_macs(mixed) == 2 * 2 + 2 * 2 + 2  # h from x; d from cat's x half; sum from x


def test_pearson():
    a = np.arange(10.0)
    assert metrics.pearson(a, 2 * a + 1) == pytest.approx(1.0)
    assert metrics.pearson(a, -a) == pytest.approx(-1.0)
    assert np.isnan(metrics.pearson(a, np.ones(10)))


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_progress_log_style_prints_at_coarse_intervals():
    clock, out = _Clock(), io.StringIO()
    bar = Progress(1000, stream=out, tty=False, delay=1.0, interval=30.0, clock=clock)
    for i in range(1, 11):
        clock.t = 5.0 * i
        bar.update(100 * i)
    bar.close()
    lines = out.getvalue().splitlines()
    # shown at t=5 (after the delay), t=35 (30 s later), and the final one at completion
    assert [line.split()[1] for line in lines] == ["100/1000", "700/1000", "1000/1000"]
    assert "20.0/s" in lines[-1] and "left 0:00" in lines[-1]
    assert "\r" not in out.getvalue()


def test_progress_terminal_style_redraws_in_place_and_stays_quiet_for_short_runs():
    clock, out = _Clock(), io.StringIO()
    bar = Progress(10, stream=out, tty=True, delay=2.0, clock=clock)
    clock.t = 1.0
    bar.update(5)
    assert out.getvalue() == ""
    clock.t = 3.0
    bar.update(6)
    bar.close()
    text = out.getvalue()
    assert text.startswith("\r[") and text.endswith("\n") and "6/10 samples" in text


def test_parse_steps():
    spec = load_spec(SPECS / "tiny-dense.yaml")  # dt 1 ms
    assert parse_steps("50 ms", spec) == 50
    assert parse_steps("0.2 second", spec) == 200
    for bad, words in (("50.5 ms", "whole, positive multiple"), ("0 ms", "whole, positive multiple"),
                       ("5 mV", "expected a time"), ("fifty", "cannot read"), ("50", "expected a time")):
        with pytest.raises(NetspecError, match=words) as info:
            parse_steps(bad, spec)
        assert str(info.value).startswith("--duration: ")


def test_chunks_and_seeds_do_not_depend_on_workers():
    assert chunk_size_for(10_000, 100) == 700      # 15 chunks
    assert chunk_size_for(100_000, 100) == 1000    # capped
    assert chunk_size_for(1000, 100) == 100        # 10 chunks
    assert chunk_size_for(250, 100) == 100
    assert chunk_size_for(5, 100) == 100
    assert chunk_size_for(10_000, 3000) == 3000
    assert chunk_seed(None, 3) is None
    assert chunk_seed(7, 3) == chunk_seed(7, 3) != chunk_seed(7, 4)
    assert 0 <= chunk_seed(7, 3) < 2**31


def test_check_labels():
    check_labels(np.array([0, 1, 2]), 3, "d.npz")
    with pytest.raises(NetspecError, match=r"d.npz: label 3 is outside the spec's 3 output classes \[0, 2\]"):
        check_labels(np.array([0, 3]), 3, "d.npz")
    with pytest.raises(NetspecError, match="no labels"):
        check_labels(None, 3, "d.npz")


def test_error_at_budget_is_the_last_step_within_it():
    err = np.array([1.0, 0.5, 0.2, 0.1])
    cum = np.array([10.0, 20.0, 30.0, 40.0])
    assert metrics.error_at_budget(err, cum, 30.0) == (0.2, 3)
    assert metrics.error_at_budget(err, cum, 29.9) == (0.5, 2)
    assert metrics.error_at_budget(err, cum, 9.0) == (None, None)
