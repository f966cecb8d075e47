"""Issue 14 audit: the cases that ``test_brian_integrity.py`` and ``test_trust_inputs.py`` did not reproduce
with the real command line: a standalone binary started by netspec itself dies with it, SIGTERM during
start-up, a standalone build whose binary or static arrays were replaced or emptied, ``build --force``
while a run uses the build, and the system temp folder after runs that fail or are killed.

One standalone build of tiny-dense with 100,000 steps per sample (one binary start simulates 100 samples,
10^7 steps: long enough to be killed) is shared by the module.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from netspec.brian import BuildOptions, build, check_build, simulate
from netspec.errors import NetspecError
from netspec.spec import load_spec
from process_support import descendants

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "specs" / "tiny-dense.yaml"
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
STEPS = 100_000  # "100000 ms" at tiny-dense's 1 ms

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")


def _netspec(*argv, env):
    return subprocess.Popen([sys.executable, "-m", "netspec", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def _wait_for_binary(proc, main: Path, timeout=120) -> int:
    """The pid of ``main`` running below ``proc``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(proc.communicate())
        for pid in descendants(proc.pid):
            if _exe(pid) == str(main):
                return pid
        time.sleep(0.05)
    raise AssertionError(f"{main} did not start")


@pytest.fixture(scope="module")
def long_build(tmp_path_factory):
    """tiny-dense built standalone for ``run --duration '100000 ms'`` (the options ``run`` uses), and data."""
    folder = tmp_path_factory.mktemp("audit")
    built = build(load_spec(TINY), folder / "b", BuildOptions(standalone=True, steps=STEPS))
    rng = np.random.default_rng(0)
    np.savez(folder / "d.npz", x=rng.uniform(0, 1, (4, 4)).astype(np.float32), y=np.array([0, 1, 0, 1]))
    return built, folder


def _run_args(long_build):
    built, folder = long_build
    return ["run", TINY, "--data", folder / "d.npz", "--standalone", "--duration", f"{STEPS} ms",
            "--build-dir", built.dir]


# -- item 9: binaries die with netspec ----------------------------------------------------------------
def test_kill_9_of_run_kills_the_binary_it_started(long_build, tmp_path):
    built, _ = long_build
    temp = tmp_path / "temp"
    temp.mkdir()
    main = (built.folder / "cpp" / "main").resolve()
    proc = _netspec(*_run_args(long_build), "--workers", "1", env={**ENV, "TMPDIR": str(temp)})
    try:
        binary = _wait_for_binary(proc, main)  # started by netspec itself (one worker: in-process)
        time.sleep(0.5)
        assert _alive(binary), "the binary ended on its own: the test needs a longer run"
        proc.kill()
        proc.communicate()
        t0 = time.monotonic()
        while _alive(binary) and time.monotonic() - t0 < 3:
            time.sleep(0.05)
        assert not _alive(binary), f"{main} outlived netspec"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # the killed run leaves only its results folder, named after its pid, which the next run removes
    left = [p.name for p in temp.iterdir()]
    assert all(name.startswith(f"netspec-run-{proc.pid}-") for name in left), left
    sweep = subprocess.run([sys.executable, "-c", "from netspec.run.evaluate import remove_stale_results as r; r()"],
                           env={**ENV, "TMPDIR": str(temp)}, timeout=60)
    assert sweep.returncode == 0 and list(temp.iterdir()) == []


def test_sigterm_during_start_up_stops_at_once(long_build, tmp_path):
    temp = tmp_path / "temp"
    temp.mkdir()
    for delay in (0.3, 1.5):  # while Python imports netspec, and while it imports Brian2 and checks the build
        proc = _netspec(*_run_args(long_build), "--workers", "2", "--report", tmp_path / "r.json",
                        env={**ENV, "TMPDIR": str(temp)})
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=30)
        assert time.monotonic() - t0 < 10
        assert proc.returncode in (143, -signal.SIGTERM), (proc.returncode, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 1, err
        assert not descendants(proc.pid)
    assert list(temp.iterdir()) == []
    assert not (tmp_path / "r.json").exists()  # nothing was simulated, so no report


# -- items 2 and 3: a standalone build whose files changed ------------------------------------------------
def _copy_of(built, tmp_path):
    home = tmp_path / ".c.builds" / built.folder.name
    shutil.copytree(built.folder, home, symlinks=True)  # sizes and times kept
    assert check_build(home, built.key, full=True) is None
    return dataclasses.replace(built, dir=home, home=home, script=home / "network.py")


@pytest.mark.parametrize("damage", ["binary", "empty binary", "static array", "manifest"])
def test_standalone_build_with_changed_files_is_refused(long_build, tmp_path, damage):
    built, _ = long_build
    copy = _copy_of(built, tmp_path)
    cpp = copy.folder / "cpp"
    if damage == "binary":
        (cpp / "main").unlink()
        shutil.copy(shutil.which("true"), cpp / "main")
        expect = "cpp/main changed"
    elif damage == "empty binary":  # what kill -9 while linking left with an older netspec
        (cpp / "main").write_bytes(b"")
        expect = "cpp/main changed since the build completed (size"
    elif damage == "static array":
        static = sorted((cpp / "static_arrays").iterdir())[0]
        data = bytearray(static.read_bytes())
        data[-1] ^= 0x01
        static.write_bytes(bytes(data))
        expect = f"cpp/static_arrays/{static.name} changed"
    else:
        with open(cpp / "manifest.json", "a") as f:
            f.write(" ")
        expect = "cpp/manifest.json changed"
    with pytest.raises(NetspecError, match=f"cannot be used: {re.escape(expect)}.*netspec build") as info:
        simulate(copy, np.zeros((1, 4), np.float32))
    assert "\n" not in str(info.value)


# -- item 1: a forced rebuild while a run uses the build ---------------------------------------------------
def test_force_rebuild_while_a_run_uses_the_build_is_refused(long_build):
    built, _ = long_build
    proc = _netspec(*_run_args(long_build), "--workers", "1", env=ENV)
    try:
        _wait_for_binary(proc, (built.folder / "cpp" / "main").resolve())
        before = {p.name: p.stat().st_mtime_ns for p in built.folder.rglob("*") if p.is_file()}
        t0 = time.monotonic()
        with pytest.raises(NetspecError, match="is in use by a running netspec process; --force can rebuild") as info:
            build(load_spec(TINY), built.dir, built.options, force=True)  # the key the run uses
        assert time.monotonic() - t0 < 10  # refused before compiling
        assert info.value.exit_code == 2 and str(built.folder) in str(info.value)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.communicate()
    assert {p.name: p.stat().st_mtime_ns for p in built.folder.rglob("*") if p.is_file()} == before
    assert check_build(built.folder, built.key, full=True) is None
