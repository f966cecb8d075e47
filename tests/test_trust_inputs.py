"""Issue 14, inputs and resources: no command writes over its own inputs, every output path and every
size is checked before work starts, data and weights files are checked from their headers, and each bad
case is a one-line error (no traceback, non-zero exit, nothing written). Files are small and synthetic:
headers are crafted, nothing allocates gigabytes."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from netspec.cli import main as cli
from netspec.datasets import inspect_dataset, load_dataset
from netspec.errors import NetspecError
from netspec.spec import Limits, check_file
from netspec.spec.resources import estimate, parse_bytes, physical_memory

SPECS = Path(__file__).resolve().parent.parent / "specs"
INVALID = Path(__file__).resolve().parent / "spec" / "invalid"
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


def _read_only(folder: Path, monkeypatch) -> None:
    """Make ``folder`` read-only; as root (who writes anyway), make os.access say so."""
    folder.mkdir()
    folder.chmod(0o555)
    if ROOT:
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: (not (mode & os.W_OK) or not Path(p).resolve().is_relative_to(folder.resolve())) and real(p, mode, **kw))


def _cli(argv, capsys) -> tuple[int, str, str]:
    rc = cli([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(rc: int, err: str, fragment: str) -> str:
    assert rc != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("netspec: error: "), err
    assert fragment in lines[0], lines[0]
    return lines[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>") for p in sorted(folder.rglob("*"))}


@pytest.fixture
def conv_case(tmp_path):
    """small-conv (input [10, 10, 1], 3 classes, weights in small-conv.npz) copied into tmp_path, with
    labelled data."""
    for name in ("small-conv.yaml", "small-conv.npz"):
        shutil.copy(SPECS / name, tmp_path / name)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((5, 10, 10, 1)).astype(np.float32), y=np.array([0, 1, 2, 0, 1]))
    return tmp_path


def _npz_with_header(path: Path, key: str, shape: tuple, dtype="<f4", data: bytes = b"") -> None:
    """An .npz whose member ``key`` has a hand-written .npy header (``shape`` may be huge) and ``data``."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{key}.npy", buf.getvalue() + data)


# -- item 4: outputs over inputs ---------------------------------------------------------------------
def _export_case(tmp_path) -> tuple[Path, Path]:
    model = tmp_path / "m.keras"
    model.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # never read: the paths are refused first
    cal = tmp_path / "cal.npz"
    np.savez(cal, x=np.zeros((2, 4), np.float32))
    return model, cal


@pytest.mark.parametrize("case", ["model", "calibration", "symlink", "hardlink", "folder"])
def test_export_never_writes_over_its_inputs(case, tmp_path, capsys):
    model, cal = _export_case(tmp_path)
    if case == "model":
        out, msg = model, f"-o {model}: is the model ({model})"
    elif case == "calibration":
        out, msg = tmp_path / "cal.yaml", f"-o (its weights) {tmp_path / 'cal.npz'}: is the calibration data ({cal})"
    elif case == "symlink":
        out = tmp_path / "link.yaml"
        out.symlink_to(model)
        msg = "is the model"
    elif case == "hardlink":
        os.link(cal, tmp_path / "twin.npz")
        out, msg = tmp_path / "twin.yaml", "-o (its weights) "
    else:
        out = tmp_path / "existing_dir"
        out.mkdir()
        msg = f"-o {out}: is a folder; give a file name"
    before = _snapshot(tmp_path)
    rc, _, err = _cli(["export", model, "-o", out, "--calibration", cal], capsys)
    line = _one_line_error(rc, err, msg)
    assert rc == 2
    if case == "hardlink":
        assert "is the calibration data" in line
    assert _snapshot(tmp_path) == before  # nothing written, nothing left behind (no existing_dir.npz)


def test_export_into_read_only_folder_fails_before_work(tmp_path, capsys, monkeypatch):
    model, cal = _export_case(tmp_path)
    ro = tmp_path / "ro"
    _read_only(ro, monkeypatch)
    try:
        rc, _, err = _cli(["export", model, "-o", ro / "net.yaml", "--calibration", cal], capsys)
    finally:
        ro.chmod(0o755)
    _one_line_error(rc, err, f"-o {ro / 'net.yaml'}: the folder {ro} is not writable")
    assert list(ro.iterdir()) == []


@pytest.mark.parametrize("case", ["spec", "data", "weights", "plots_is_data", "report_in_plots", "read_only"])
def test_run_never_writes_over_its_inputs(case, conv_case, capsys, monkeypatch):
    t = conv_case
    spec, data = t / "small-conv.yaml", t / "d.npz"
    extra: list = []
    if case == "spec":
        extra, msg = ["--report", spec], f"--report {spec}: is the spec ({spec})"
    elif case == "data":
        extra, msg = ["--report", data], f"--report {data}: is the data ({data})"
    elif case == "weights":
        extra, msg = ["--report", t / "small-conv.npz"], "is the spec's weights"
    elif case == "plots_is_data":
        extra, msg = ["--plots", data], f"--plots {data}: is the data"
    elif case == "report_in_plots":
        extra, msg = ["--report", t / "p" / "error_vs_time.png", "--plots", t / "p"], "give each output its own path"
    else:
        ro = t / "ro"
        _read_only(ro, monkeypatch)
        extra, msg = ["--report", ro / "r.json"], f"the folder {ro} is not writable"
    before = _snapshot(t)
    try:
        rc, out, err = _cli(["run", spec, "--data", data, "--build-dir", t / "build", *extra], capsys)
    finally:
        if case == "read_only":
            (t / "ro").chmod(0o755)
    _one_line_error(rc, err, msg)
    assert out == ""  # nothing simulated
    assert _snapshot(t) == before


# -- item 5: bounds before allocating ----------------------------------------------------------------
def test_duration_override_above_the_step_limit_is_refused(conv_case, capsys):
    t = conv_case
    rc, _, err = _cli(["run", t / "small-conv.yaml", "--data", t / "d.npz", "--build-dir", t / "build",
                       "--duration", "1e9 ms"], capsys)
    _one_line_error(rc, err, "--duration '1e9 ms': 1,000,000,000 time steps per sample, above the limit of 1,000,000")
    assert not (t / "build").exists()


def test_step_limit_override(capsys):
    rc, out, _ = _cli(["validate", INVALID / "NS601-dt-one-ns.yaml"], capsys)
    assert rc == 1 and "NS601" in out
    rc, out, _ = _cli(["validate", "--max-steps", "1e8", INVALID / "NS601-dt-one-ns.yaml"], capsys)
    assert rc == 0, out


def _wide_conv(tmp_path, filters=65536) -> Path:
    """A conv with 65,536 3x3 filters on a 28x28 image: 443 M unrolled synapses (the kernels take 3 MB)."""
    np.savez(tmp_path / "wide.npz", **{"conv/kernel": np.zeros((3, 3, 1, filters), np.float32),
                                        "out/kernel": np.zeros((filters, 2), np.float32)})
    digest = hashlib.sha256((tmp_path / "wide.npz").read_bytes()).hexdigest()
    spec = tmp_path / "wide.yaml"
    spec.write_text(f"""netspec: 1
name: wide
weights: {{file: wide.npz, sha256: {digest}}}
input: {{shape: [28, 28, 1], range: [0.0, 1.0], encoding: analog}}
simulation: {{dt: 1 ms, duration: 100 ms}}
layers:
  - {{name: image, type: input}}
  - {{name: conv, type: conv2d, filters: {filters}, kernel_size: [3, 3], kernel: conv/kernel, activation: relu, normalization: {{lambda: 1.0}}}}
  - {{name: pool, type: global_avgpool2d, normalization: {{lambda: 1.0}}}}
  - {{name: out, type: dense, units: 2, kernel: out/kernel, activation: softmax, normalization: {{lambda: 1.0}}}}
""")
    return spec


def test_huge_conv_is_refused_before_build(tmp_path, capsys):
    spec = _wide_conv(tmp_path)
    rc, out, err = _cli(["validate", "--connectivity", "synapses", "--max-memory", "8G", spec], capsys)
    assert rc == 1
    (line, _) = out.strip().splitlines()
    assert line.endswith(": NS602: layer 'conv' (layers[1]): the network (44,367,874 neurons and 443,154,432 synapses) "
                         "needs about 29.1 GiB, above the memory limit of 8 GiB (--max-memory raises the limit)")
    rc, _, err = _cli(["build", "--connectivity", "synapses", "--max-memory", "8G", spec, "-o", tmp_path / "build"], capsys)
    assert rc == 1 and "NS602" in err and "Traceback" not in err
    assert not (tmp_path / "build").exists()
    # inspect allocates nothing and shows the sizes
    rc, out, _ = _cli(["inspect", spec], capsys)
    assert rc == 0 and "443,154,432" in out


def test_kernel_connectivity_estimates_kernels_not_connections(tmp_path, capsys):
    """From its kernel the wide conv costs its neurons, its 3x3x1x65536 kernel and one index per source neuron:
    the default (kernel) accepts it under 8 GiB; with --connectivity synapses it is refused (above)."""
    spec = _wide_conv(tmp_path)
    rc, out, _ = _cli(["validate", "--max-memory", "8G", spec], capsys)
    assert rc == 0 and out.strip().endswith(": valid")
    rc, out, _ = _cli(["validate", "--max-memory", "2G", spec], capsys)
    assert rc == 1 and "NS602: layer 'pool' (layers[2]): the network (44,367,874 neurons and 851,970 kernel values) " \
        "needs about 3.33 GiB, above the memory limit of 2 GiB" in out  # pool: one index per conv neuron
    s, _ = check_file(spec, Limits(max_memory=None))
    kernel = estimate(s.layers, s.shapes, s.output_layer.name, s.simulation.steps)
    unrolled = estimate(s.layers, s.shapes, s.output_layer.name, s.simulation.steps, "synapses")
    assert kernel.synapses == 0 and unrolled.synapses == 443_154_432 and unrolled.kernel_values == 0
    # conv kernel and bias, pool factors, out kernel and bias
    assert kernel.kernel_values == (9 * 65536 + 65536) + 65536 + (65536 * 2 + 2)
    # a synaptic delay keeps a projection unrolled (a kernel scatter has no spike queue)
    delayed = estimate(s.layers, s.shapes, s.output_layer.name, s.simulation.steps, "kernel", {"conv"})
    conv = s.layer("conv")
    assert delayed.synapses == conv.connections([s.shapes["image"]]) and delayed.kernel_values == 65536 + 65536 * 2 + 2


def test_default_memory_limit_is_half_the_physical_memory():
    total = physical_memory()
    assert total is not None and Limits().max_memory == total // 2
    assert parse_bytes("8G") == 8 << 30 and parse_bytes("500 MB") == 500 << 20 and parse_bytes("1e9") == 10**9
    with pytest.raises(ValueError):
        parse_bytes("lots")


def test_estimate_counts_unrolled_synapses():
    spec, _ = check_file(SPECS / "small-conv.yaml")
    est = estimate(spec.layers, spec.shapes, spec.output_layer.name, spec.simulation.steps, "synapses")
    from netspec.inspect import rows

    assert est.synapses >= sum(r["synapses"] for r in rows(spec))
    assert est.neurons >= spec.neuron_count() and est.steps == spec.simulation.steps


def test_input_of_100000_squared_fails_fast_in_build(tmp_path, capsys):
    rc, _, err = _cli(["build", INVALID / "NS603-input-100000x100000.yaml", "-o", tmp_path / "b"], capsys)
    assert rc == 1 and "NS603" in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()


def test_npz_that_inflates_beyond_the_limit_is_refused_from_its_header(tmp_path):
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros((50, 1 << 18), np.float32))  # 50 MiB of zeros, ~50 KiB on disk
    assert path.stat().st_size < 1 << 20
    with pytest.raises(NetspecError) as e:
        load_dataset(path, require_labels=False, max_bytes=10 << 20)
    assert str(e.value) == (f"{path}: loading the data needs about 62.5 MiB (50 samples of [262144]), above the memory "
                            "limit of 10 MiB (--max-memory raises the limit)")


def test_run_memory_estimate_includes_the_data_and_is_checked_before_loading(conv_case, capsys):
    t = conv_case
    _npz_with_header(t / "big.npz", "x", (100000, 10, 10, 1), data=b"\0" * (100000 * 100 * 4))
    rc, out, err = _cli(["run", t / "small-conv.yaml", "--data", t / "big.npz", "--max-memory", "20M",
                         "--build-dir", t / "build"], capsys)
    # 40 MB of data, 200 steps x 100,000 samples of output counts (uint16) and of spikes and operations of the 4
    # recorded layers (int64 each): the per-step records dominate
    _one_line_error(rc, err, "big.npz: a run of 200 steps per sample on 557 neurons, 400 synapses and 427 kernel values needs about 1.35 GiB")
    assert "above the memory limit of 20 MiB" in err and out == "" and not (t / "build").exists()


def test_npz_header_claiming_1e13_values(conv_case, capsys):
    t = conv_case
    _npz_with_header(t / "liar.npz", "x", (10**7, 10**6), data=b"\0" * 64)
    rc, _, err = _cli(["run", t / "small-conv.yaml", "--data", t / "liar.npz", "--build-dir", t / "build"], capsys)
    _one_line_error(rc, err, "liar.npz: not a readable .npz file (member 'x.npy': its header says 10000000x1000000 values "
                             "of float32 (40,000,000,000,000 bytes), the archive holds 64 bytes for it (corrupt))")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_dev_zero_as_data(conv_case, capsys):
    t = conv_case
    rc, _, err = _cli(["run", t / "small-conv.yaml", "--data", "/dev/zero", "--build-dir", t / "build"], capsys)
    _one_line_error(rc, err, "/dev/zero: not a regular file (a device, pipe or socket cannot be read as data)")


@pytest.mark.parametrize("gz", [False, True])
def test_idx_dimensions_that_overflow_int64(tmp_path, gz):
    header = b"\x00\x00\x08\x03" + b"\xff\xff\xff\xff" * 3
    blob = header + b"\0" * 100
    path = tmp_path / ("t10k-images-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(blob) if gz else blob)
    with pytest.raises(NetspecError) as e:
        load_dataset(path, require_labels=False, max_bytes=None if gz else 1 << 30)
    size = 4294967295 ** 3
    assert f"header says 4294967295x4294967295x4294967295 values ({size} bytes), the file holds 100 bytes of data" in str(e.value)
    with pytest.raises(NetspecError) as e:  # with the default limit, a gzipped file is refused by its size
        load_dataset(path, require_labels=False)
    assert ("above the memory limit" in str(e.value)) if gz else ("truncated IDX file" in str(e.value))


def _spec_with_weights(tmp_path, blob: bytes) -> Path:
    (tmp_path / "w.npz").write_bytes(blob)
    text = (INVALID / "NS405-missing-key.yaml").read_text()
    old = [l for l in text.splitlines() if "sha256:" in l][0]
    text = text.replace(old, f"  sha256: {hashlib.sha256(blob).hexdigest()}").replace("file: weights.npz", "file: w.npz")
    spec = tmp_path / "s.yaml"
    spec.write_text(text)
    return spec


def test_weights_npz_is_checked_from_its_headers(tmp_path):
    buf = tmp_path / "tmp.npz"
    _npz_with_header(buf, "conv1/kernel", (10**7, 10**6), data=b"\0" * 16)
    spec = _spec_with_weights(tmp_path, buf.read_bytes())
    d = check_file(spec)[1][0]
    assert d.code == "NS404" and "its header says 10000000x1000000 values of float32" in d.message
    # a consistent header above the memory limit: refused before inflating
    np.savez_compressed(buf, big=np.zeros(1 << 20, np.float32))
    spec = _spec_with_weights(tmp_path, buf.read_bytes())
    d = check_file(spec, Limits(max_memory=1 << 20))[1][0]
    assert d.code == "NS602" and d.message.startswith("weights file 'w.npz' inflates to 4 MiB (member 'big': [1048576] float32)")


def test_truncated_weights_npz_in_a_spec(tmp_path, capsys):
    blob = (INVALID / "weights.npz").read_bytes()
    spec = _spec_with_weights(tmp_path, blob[: len(blob) - 30])
    rc, out, err = _cli(["validate", spec], capsys)
    assert rc == 1 and "NS404" in out and "Traceback" not in out + err
    rc, _, err = _cli(["build", spec, "-o", tmp_path / "b"], capsys)
    assert rc == 1 and "NS404" in err and "Traceback" not in err


# -- item 6: tracebacks --------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_seed_out_of_range(seed, conv_case, capsys):
    t = conv_case
    rc, _, err = _cli(["run", t / "small-conv.yaml", "--data", t / "d.npz", "--seed", seed, "--build-dir", t / "build"], capsys)
    _one_line_error(rc, err, f"--seed: must be an integer from 0 to 4,294,967,295 (2^32 - 1), got {seed}")
    assert rc == 2 and not (t / "build").exists()


# -- item 7: misleading messages ---------------------------------------------------------------------
def test_text_file_named_npz(conv_case, capsys):
    t = conv_case
    (t / "text.npz").write_text("x,y\n1,2\n")
    rc, _, err = _cli(["run", t / "small-conv.yaml", "--data", t / "text.npz", "--build-dir", t / "build"], capsys)
    line = _one_line_error(rc, err, "text.npz: not a readable .npz file (it is not a zip archive; numpy.savez writes one)")
    assert "pickle" not in line


def test_float64_beyond_float32_is_out_of_range_without_warning(tmp_path):
    x = np.zeros((3, 2))
    x[2, 1] = 1e39
    np.savez(tmp_path / "big.npz", x=x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(NetspecError) as e:
            load_dataset(tmp_path / "big.npz", require_labels=False)
    assert str(e.value) == (f"{tmp_path / 'big.npz'}: value 1e+39 in 'x' (sample 2) is out of range: it does not fit "
                            "float32 (largest 3.403e+38), which netspec computes in; scale the data")


def test_inspect_dataset_reads_headers_only(tmp_path):
    _npz_with_header(tmp_path / "h.npz", "x", (4, 3), dtype="<f8", data=b"\0" * 96)
    info = inspect_dataset(tmp_path / "h.npz")
    assert (info.samples, info.sample_shape, info.files) == (4, (3,), (tmp_path / "h.npz",))


@pytest.mark.keras
def test_lambda_layer_is_named(tmp_path, keras_lib, capsys):
    keras = keras_lib
    inp = keras.Input((4,))
    h = keras.layers.Dense(3, activation="relu", name="d1")(inp)
    h = keras.layers.Lambda(lambda t: t * 2.0, name="double")(h)
    model = keras.Model(inp, keras.layers.Dense(2, name="out")(h))
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "cal.npz", x=np.zeros((2, 4), np.float32) + 0.5)
    before = _snapshot(tmp_path)
    rc, _, err = _cli(["export", tmp_path / "m.keras", "-o", tmp_path / "net.yaml", "--calibration", tmp_path / "cal.npz"], capsys)
    _one_line_error(rc, err, f"{tmp_path / 'm.keras'}: layer 'double' is a Lambda layer: not supported")
    assert _snapshot(tmp_path) == before
