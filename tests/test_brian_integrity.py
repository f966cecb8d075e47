"""A build is used only as it was built, and processes and temporary files never outlive netspec (issue 14).

Tampered files (arrays, static arrays, the script, the binary) are detected; interrupted or killed builds never
look complete; a rebuild with another lambda during a run does not change what the run reads; SIGTERM stops
a run with its partial report; netspec leaves no temporary files and no worker behind, even when killed.
"""
from __future__ import annotations

import json
import re
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from netspec.run.evaluate import chunk_size_for
from netspec.brian import BuildOptions, build, check_build, simulate
from netspec.errors import NetspecError
from netspec.spec import load_spec
from process_support import descendants

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "specs" / "tiny-dense.yaml"
SMALL = ROOT / "specs" / "small-conv.yaml"
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}


def _netspec(*argv, **kw):
    return subprocess.Popen([sys.executable, "-m", "netspec", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _inputs(spec, n, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, *spec.input.shape)).astype(np.float32)


# -- tampered builds ---------------------------------------------------------------------------------
@pytest.mark.parametrize("edit", ["arrays", "truncated", "script", "runner"])
def test_edited_runtime_build_is_rebuilt_and_refused(tmp_path, edit, capsys):
    spec = load_spec(TINY)
    first = build(spec, tmp_path / "t")
    home = first.folder
    assert (tmp_path / "t").is_symlink() and (tmp_path / "t" / "network.py").exists()
    assert check_build(home, first.key, full=True) is None
    if edit == "arrays":
        arrays = dict(np.load(home / "arrays.npz"))
        name = next(k for k in arrays if k.endswith("_w"))
        arrays[name] = arrays[name] * 0.5
        np.savez(home / "arrays.npz", **arrays)
        changed = "arrays.npz"
    elif edit == "truncated":
        data = (home / "arrays.npz").read_bytes()
        (home / "arrays.npz").write_bytes(data[:len(data) // 2])
        changed = "arrays.npz"
    elif edit == "script":
        text = (home / "network.py").read_text()
        (home / "network.py").write_text(text.replace("import numpy as np", "import numpy as np  # edited"))
        changed = "network.py"
    else:
        with open(home / "netspec_runner" / "operations.py", "a") as f:
            f.write("\n")
        changed = "netspec_runner/operations.py"
    reason = check_build(home, first.key)
    assert reason is not None and changed in reason
    with pytest.raises(NetspecError, match=f"cannot be used: {changed} changed.*netspec build"):
        simulate(first, _inputs(spec, 2))
    capsys.readouterr()
    again = build(spec, tmp_path / "t")
    err = capsys.readouterr().err
    assert again.rebuilt and f"{changed} changed since the build completed" in err and "building it again" in err
    assert check_build(again.folder, again.key, full=True) is None
    assert simulate(again, _inputs(spec, 2)).counts.shape[0] == 2


def test_same_size_same_time_edit_is_found_by_the_full_check(tmp_path):
    built = build(load_spec(TINY), tmp_path / "t")
    path = built.folder / "network.py"
    st = path.stat()
    text = path.read_text()
    path.write_text(text.replace("import numpy as np", "import numpy as XX"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert check_build(built.folder, built.key) is None  # the cheap check trusts size and time
    assert "network.py changed" in check_build(built.folder, built.key, full=True)
    assert build(load_spec(TINY), tmp_path / "t").rebuilt  # a build (and so every run) checks every hash


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    spec = load_spec(TINY)
    return build(spec, tmp_path_factory.mktemp("sa") / "b", BuildOptions(standalone=True, samples_per_run=2))


def _copy(built, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(built.folder, copy, symlinks=True)  # copy2: sizes and times kept
    assert check_build(copy, built.key, full=True) is None
    return copy


def test_edited_static_array_is_detected(standalone, tmp_path):
    copy = _copy(standalone, tmp_path)
    static = sorted((copy / "cpp" / "static_arrays").iterdir())
    assert static, "the standalone project has static arrays"
    data = bytearray(static[0].read_bytes())
    data[0] ^= 0xFF
    static[0].write_bytes(bytes(data))
    assert f"cpp/static_arrays/{static[0].name} changed" in check_build(copy, standalone.key)


def test_replaced_binary_is_detected(standalone, tmp_path):
    copy = _copy(standalone, tmp_path)
    main = copy / "cpp" / "main"
    main.unlink()
    shutil.copy(shutil.which("true"), main)
    assert "cpp/main changed" in check_build(copy, standalone.key)
    main.unlink()
    assert "cpp/main is missing" in check_build(copy, standalone.key)


def test_standalone_build_runs_from_its_own_folder(standalone, tmp_path):
    spec = load_spec(TINY)
    before = simulate(standalone, _inputs(spec, 3)).counts
    shutil.rmtree(tmp_path, ignore_errors=True)
    assert check_build(standalone.folder, standalone.key, full=True) is None
    again = build(spec, standalone.dir, standalone.options)
    assert not again.rebuilt and again.folder == standalone.folder
    assert np.array_equal(simulate(again, _inputs(spec, 3)).counts, before)


# -- interrupted builds --------------------------------------------------------------------------------
def _wait_for_compile(store: Path, proc, timeout=120):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(proc.communicate())
        if store.is_dir() and any((p / "cpp").is_dir() for p in store.glob("tmp-*")):
            return
        time.sleep(0.05)
    raise AssertionError("the compilation did not start")


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _wait_for_compiler(proc, timeout=120) -> set[int]:
    """netspec's descendants once ``make`` runs among them."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(proc.communicate())
        family = descendants(proc.pid)
        if any(_comm(p) == "make" for p in family):
            return family
        time.sleep(0.05)
    raise AssertionError("make did not start")


def _children(pid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(stat.parent.name))
        except OSError:
            continue
    return out


def _gone(pids: set[int], timeout=20) -> set[int]:
    t0 = time.monotonic()
    alive = set(pids)
    while alive and time.monotonic() - t0 < timeout:
        for pid in list(alive):
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                if state == "Z":
                    alive.discard(pid)
            except OSError:
                alive.discard(pid)
        time.sleep(0.1)
    return alive


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
def test_kill_9_during_compile_leaves_nothing_that_looks_complete(tmp_path):
    out = tmp_path / "b"
    store = tmp_path / ".b.builds"
    proc = _netspec("build", TINY, "-o", out, "--standalone", env={**ENV, "TMPDIR": str(tmp_path)})
    _wait_for_compile(store, proc)
    family = _wait_for_compiler(proc)  # the watcher, network.py --compile, make and the compilers
    proc.kill()
    proc.communicate()
    assert not _gone(family, timeout=5), "the compiler process group outlived netspec"
    assert not out.exists() and not out.is_symlink()
    assert [p.name for p in store.iterdir() if not p.name.startswith("tmp-")] == []
    built = build(load_spec(TINY), out)  # a later build works, and clears what the killed one left
    assert sorted(p.name for p in store.iterdir()) == [built.folder.name]


def test_ctrl_c_of_background_build_is_one_line(tmp_path):
    out = tmp_path / "b"
    store = tmp_path / ".b.builds"
    # a background job of a non-interactive shell starts with SIGINT ignored
    proc = _netspec("build", TINY, "-o", out, "--standalone", env={**ENV, "TMPDIR": str(tmp_path)},
                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    _wait_for_compile(store, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip() == "netspec: interrupted", err
    assert not out.exists() and list(store.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [".b.builds"]  # no temp files left


def _wait_line(proc, text, done=0):
    """The first line of ``proc``'s stderr with ``text`` (with ``done``: a progress line of at least that many
    samples)."""
    for line in proc.stderr:
        count = re.search(r"\b([0-9]+)/[0-9]+ samples", line)
        if text in line and (not done or (count is not None and int(count.group(1)) >= done)):
            return line
    raise AssertionError(f"no line with {text!r}: {proc.communicate()}")


# -- runs ----------------------------------------------------------------------------------------------
def _labelled(n, seed):
    spec = load_spec(SMALL)
    x = _inputs(spec, n, seed)
    return x, np.random.default_rng(seed).integers(0, 3, n)


def _other_lambda(tmp_path) -> Path:
    doc = SMALL.read_text().replace("normalization: {lambda: 2.0, method: manual}",
                                    "normalization: {lambda: 0.5, method: manual}")
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / SMALL.name).write_text(doc)
    shutil.copy(SMALL.with_suffix(".npz"), folder)
    return folder / SMALL.name


def test_rebuild_with_other_lambda_during_a_run_changes_nothing(tmp_path):
    x, y = _labelled(1000, seed=3)
    data = tmp_path / "d.npz"
    np.savez(data, x=x, y=y)
    args = ["--data", data, "--runtime", "--workers", "1", "--duration", "20 ms"]
    quiet = _netspec("run", SMALL, *args, "--report", tmp_path / "alone.json", "--build-dir", tmp_path / "alone", env=ENV)
    out, err = quiet.communicate(timeout=600)
    assert quiet.returncode == 0, err

    shared = tmp_path / "shared"
    proc = _netspec("run", SMALL, *args, "--report", tmp_path / "busy.json", "--build-dir", shared, env=ENV)
    try:
        _wait_line(proc, "samples")  # the first chunk has finished
        other = _other_lambda(tmp_path)
        rebuild = subprocess.run([sys.executable, "-m", "netspec", "build", other, "-o", shared], capture_output=True,
                                 text=True, env=ENV, timeout=300)
        assert rebuild.returncode == 0, rebuild.stderr
        assert proc.poll() is None, "the run finished before the rebuild: give it more samples"
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    alone = json.loads((tmp_path / "alone.json").read_text())
    busy = json.loads((tmp_path / "busy.json").read_text())
    assert busy["partial"] is False
    assert busy["per_sample"] == alone["per_sample"]
    # the link now shows the other build; the run's build was pruned once the run ended and another build came
    assert json.loads((shared / "build.json").read_text())["key"] != alone["config"]["build"]["key"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
def test_sigterm_keeps_finished_samples_and_kill_9_leaves_no_worker(tmp_path):
    n = 10000  # enough that the run goes on past its first progress lines (non-tty: at 2 s, then every 30 s)
    x, y = _labelled(n, seed=4)
    data = tmp_path / "d.npz"
    np.savez(data, x=x, y=y)
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**ENV, "TMPDIR": str(temp)}
    args = ["run", SMALL, "--data", data, "--runtime", "--duration", "20 ms", "--build-dir", tmp_path / "b"]
    first_chunk = chunk_size_for(n, -(-100 // 8) * 8)  # the default build: 8 side by side, runs of 104
    proc = _netspec(*args, "--workers", "1", "--report", tmp_path / "r.json", env=env)
    # a chunk is kept just after the bar reports its last run: past the first chunk and a run, it is surely kept
    line = _wait_line(proc, "samples", done=first_chunk + 104)
    if f"{n}/{n}" in line:
        proc.communicate(timeout=120)
        pytest.skip("the run finished before a progress line showed it under way")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Traceback" not in err, err
    assert (tmp_path / "r.json").exists(), err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["partial"] is True and 0 < report["samples"]["completed"] < n
    assert list(temp.iterdir()) == []  # no netspec-run-* folder, no Brian2 log

    proc = _netspec(*args, "--workers", "2", env=env)
    _wait_line(proc, "samples")
    deadline = time.monotonic() + 60  # the second worker may still be forking on a loaded machine
    while True:
        workers = descendants(proc.pid) - _children(proc.pid)  # the workers are children of the fork server
        if len(workers) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(workers) >= 2
    proc.kill()
    proc.stdout.close()
    proc.stderr.close()
    proc.wait()
    assert not _gone(workers), "worker processes outlived netspec"
    leftover = [p.name for p in temp.iterdir()]
    assert all(n.startswith(f"netspec-run-{proc.pid}-") for n in leftover), leftover  # killed: swept next time
    done = subprocess.run([sys.executable, "-m", "netspec", *map(str, args), "--workers", "1", "--limit", "10"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert list(temp.iterdir()) == []
