"""``netspec run --scheduler``: evaluation on a real local Dask cluster (worker processes), compared with a
local run: analog input through the compiled binary that the workers receive, seeded poisson input in
runtime mode that the workers build themselves, a cluster started with the ``dask scheduler`` / ``dask
worker`` commands, a worker killed in the middle of a chunk, Ctrl-C, and schedulers that cannot be reached.

One standalone build of ``specs/tiny-dense.yaml`` (about 20 s to compile) and one two-worker
``LocalCluster`` serve the whole module; the workers' build cache is a temporary folder (``NETSPEC_CACHE``).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from netspec.brian import BuildOptions, build  # noqa: E402
from netspec.cli import main  # noqa: E402
from netspec.reference import predict  # noqa: E402
from netspec.run import ann_outputs, evaluate, make_report, validation_errors  # noqa: E402
from netspec.run import cluster as cluster_mod  # noqa: E402
from netspec.run.evaluate import chunk_size_for  # noqa: E402
from process_support import interrupt_run_after_a_chunk  # noqa: E402
from netspec.spec import load_spec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "specs" / "tiny-dense.yaml"


def _labelled(spec_path: Path, n: int, seed: int):
    spec = load_spec(spec_path)
    x = np.random.default_rng(seed).random((n, *spec.input.shape)).astype(np.float32)
    return x, predict(spec, x)


def _data(folder: Path, n: int, seed: int) -> Path:
    x, y = _labelled(TINY, n, seed)
    path = folder / f"tiny-{n}.npz"
    np.savez(path, x=x, y=y)
    return path


def _run(argv, capsys):
    rc = main(["run", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The workers' build cache (inherited by the worker processes through the environment)."""
    path = tmp_path_factory.mktemp("worker-cache")
    old = os.environ.get(cluster_mod.CACHE_ENV)
    os.environ[cluster_mod.CACHE_ENV] = str(path)
    yield path
    if old is None:
        os.environ.pop(cluster_mod.CACHE_ENV, None)
    else:
        os.environ[cluster_mod.CACHE_ENV] = old


@pytest.fixture(scope="module")
def local_cluster(cache):
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.CRITICAL) as lc:
        yield lc


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    """The standalone build folder of tiny-dense, compiled by the first local run that uses it."""
    return tmp_path_factory.mktemp("build") / "tiny-dense"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return _data(tmp_path_factory.mktemp("data"), 600, seed=3)


@pytest.fixture(scope="module")
def local_report(data, tiny_build, tmp_path_factory, request):
    """The reference: the same run with --workers 1 (compiles the build)."""
    rep = tmp_path_factory.mktemp("local") / "one.json"
    rc = main(["run", str(TINY), "--data", str(data), "--standalone", "--workers", "1", "--report", str(rep),
               "--build-dir", str(tiny_build)])
    assert rc == 0
    return json.loads(rep.read_text())


def _same_counts(a: dict, b: dict) -> None:
    assert validation_errors(b) == [] and not b["partial"]
    assert b["samples"]["completed"] == b["samples"]["requested"] == a["samples"]["requested"]
    assert b["per_sample"]["index"] == a["per_sample"]["index"]
    assert b["per_sample"]["counts"] == a["per_sample"]["counts"]
    assert b["error_vs_time"] == a["error_vs_time"]
    assert b["config"]["chunk_size"] == a["config"]["chunk_size"]


@pytest.mark.cpp
def test_analog_counts_identical_to_one_local_worker(local_cluster, cache, data, tiny_build, local_report, tmp_path,
                                                     capsys):
    rep = tmp_path / "cluster.json"
    argv = [TINY, "--data", data, "--standalone", "--scheduler", local_cluster.scheduler_address, "--report", rep,
            "--build-dir", tiny_build]
    rc, out, err = _run(argv, capsys)
    assert rc == 0, err
    report = json.loads(rep.read_text())
    _same_counts(local_report, report)
    assert report["config"]["workers"] == 2
    # the first run says where the time went; the binary was received (same CPU), not compiled again
    assert "received the binary" in out and "simulating" in out and "per chunk" in out
    folders = [p for p in cache.iterdir() if p.is_dir()]
    assert len(folders) == 1
    assert (folders[0] / "build" / "cpp" / "main").exists()
    assert not list((folders[0] / "build" / "cpp").glob("*.cpp"))
    assert (folders[0] / "spec" / "tiny-dense.yaml").read_bytes() == TINY.read_bytes()

    # a second run reuses what every worker process has loaded
    rc, out, err = _run(argv, capsys)
    assert rc == 0, err
    assert "2 had it loaded" in out
    _same_counts(local_report, json.loads(rep.read_text()))


def test_seeded_poisson_counts_identical_to_one_local_worker(local_cluster, tmp_path, capsys):
    """Runtime mode: no binary travels, each worker builds; chunk seeds do not depend on who runs a chunk."""
    spec_path = tmp_path / "tiny-poisson.yaml"
    spec_path.write_text(TINY.read_text().replace("encoding: analog", "encoding: poisson\n  max_rate: 500 Hz"))
    x, y = _labelled(TINY, 210, seed=4)  # chunks of 100, 100, 10
    data = tmp_path / "d.npz"
    np.savez(data, x=x, y=y)
    reports = {}
    for where in (["--workers", 1], ["--scheduler", local_cluster.scheduler_address]):
        rep = tmp_path / f"{where[0][2:]}.json"
        rc, out, err = _run([spec_path, "--data", data, "--runtime", *where, "--seed", 7, "--duration", "40 ms",
                             "--report", rep, "--build-dir", tmp_path / "build"], capsys)
        assert rc == 0, err
        reports[where[0]] = json.loads(rep.read_text())
    _same_counts(reports["--workers"], reports["--scheduler"])
    assert reports["--scheduler"]["config"]["seed"] == 7
    assert "built it" in out


@pytest.mark.cpp
def test_worker_killed_mid_chunk_costs_a_retry(local_cluster, tiny_build, local_report, tmp_path):
    """Two chunks of 2000 samples run at once, one per worker; once a chunk has reported progress, the
    process of a worker running a chunk is killed. The scheduler reruns that chunk; the report is complete and
    its counts are a local run's."""
    spec = load_spec(TINY)
    built = build(spec, tiny_build, BuildOptions(standalone=True))
    assert not built.rebuilt
    x, y = _labelled(TINY, 4000, seed=9)
    reference = evaluate(built, x, workers=1, chunk_size=2000)
    client = cluster_mod.connect(local_cluster.scheduler_address)
    killed = []
    try:
        pids = client.run(os.getpid)

        def progress(k: int) -> None:
            if not killed and 0 < k < 2000:
                busy = [w for w, keys in client.processing().items() if keys]
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])

        ev = evaluate(built, x, chunk_size=2000, progress=progress, client=client)
    finally:
        client.close()
    assert killed, "the run finished before a worker could be killed"
    assert not ev.partial and ev.indices.tolist() == list(range(4000))
    assert killed[0] not in ev.cluster.setups  # its chunk came back from another worker
    assert np.array_equal(ev.sim.counts, reference.sim.counts)
    assert np.array_equal(ev.sim.out_steps, reference.sim.out_steps)
    report = make_report(spec, ev, y, ann_outputs(spec, x), data_source="test")
    assert validation_errors(report) == [] and report["samples"]["completed"] == 4000 and not report["partial"]


@pytest.mark.cpp
def test_ctrl_c_cancels_the_chunks_and_keeps_the_finished_ones(local_cluster, tiny_build, local_report, tmp_path):
    n = 200000
    data = _data(tmp_path, n, seed=5)
    rep = tmp_path / "partial.json"
    # two single-thread workers run a chunk each: a count above two chunks means one has finished
    rc, out, err = interrupt_run_after_a_chunk(
        [TINY, "--data", data, "--report", rep, "--build-dir", tiny_build, "--scheduler", local_cluster.scheduler_address],
        n, 2 * chunk_size_for(n, 100))
    assert rc == 130, err
    assert "Traceback" not in err and "interrupted" in err
    report = json.loads(rep.read_text())
    assert report["partial"] is True and validation_errors(report) == []
    done = report["samples"]["completed"]
    assert 0 < done < n and len(report["per_sample"]["index"]) == done
    # the futures were cancelled: the workers go idle
    with distributed.Client(local_cluster.scheduler_address, set_as_default=False) as c:
        deadline = time.monotonic() + 10
        while any(c.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(c.processing().values())


@pytest.mark.cpp
def test_cluster_from_the_dask_commands(data, tiny_build, local_report, tmp_path, capsys):
    """``dask scheduler`` and ``dask worker`` as a user starts them; the worker has its own, empty cache."""
    bin_dir = Path(sys.executable).parent
    dask_cmd = shutil.which("dask", path=str(bin_dir)) or shutil.which("dask")
    if dask_cmd is None:
        pytest.skip("the dask command is not installed")
    env = {**os.environ, cluster_mod.CACHE_ENV: str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    sched_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([dask_cmd, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(sched_file)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        procs.append(subprocess.Popen([dask_cmd, "worker", address, "--nthreads", "1", "--no-dashboard"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        rep = tmp_path / "r.json"
        rc, out, err = _run([TINY, "--data", data, "--scheduler", address, "--report", rep,
                             "--build-dir", tiny_build], capsys)
        assert rc == 0, err
        report = json.loads(rep.read_text())
        _same_counts(local_report, report)
        assert report["config"]["workers"] == 1 and "1 received the binary" in out
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGINT)
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", ["refused", "silent", "malformed", "with_workers"])
def test_scheduler_errors_are_one_line_and_quick(case, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cluster_mod, "CONNECT_TIMEOUT", 1.0)
    x, y = _labelled(TINY, 5, seed=1)
    data = tmp_path / "d.npz"
    np.savez(data, x=x, y=y)
    extra: list = []
    server = None
    if case == "refused":
        address, msg = f"tcp://127.0.0.1:{_free_port()}", "no Dask scheduler answered within 1 s"
    elif case == "silent":  # accepts connections, never answers: not a Dask scheduler
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()
        address, msg = f"tcp://127.0.0.1:{server.getsockname()[1]}", "no Dask scheduler answered within 1 s"
    elif case == "malformed":
        address, msg = "10.0.0.5", "missing port number"
    else:
        address, msg = f"tcp://127.0.0.1:{_free_port()}", "give one of the two"
        extra = ["--workers", "2"]
    build_dir = tmp_path / "build"
    t0 = time.monotonic()
    try:
        rc, out, err = _run([TINY, "--data", data, "--scheduler", address, "--build-dir", build_dir, *extra], capsys)
    finally:
        if server is not None:
            server.close()
    assert time.monotonic() - t0 < 4
    assert rc != 0 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("netspec: error: --") and msg in lines[0], err
    assert not build_dir.exists()


def test_a_binary_runs_only_where_the_cpu_has_its_instructions():
    here = cluster_mod.cpu_compatibility()
    assert cluster_mod.binary_runs_on(here, here)
    assert not cluster_mod.binary_runs_on(None, here)
    other_arch = {**here, "machine": "riscv64"}
    assert not cluster_mod.binary_runs_on(other_arch, here)
    if here["flags"]:
        more = {**here, "flags": sorted(set(here["flags"]) | {"an_extension_this_cpu_lacks"})}
        assert not cluster_mod.binary_runs_on(more, here)
        assert cluster_mod.binary_runs_on({**here, "flags": here["flags"][:3]}, here)
    newer_libc = {**here, "libc": [here["libc"][0], "999.0"]}
    assert not cluster_mod.binary_runs_on(newer_libc, here)


def test_received_build_cannot_write_outside_its_folder(tmp_path):
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(cluster_mod.NetspecError, match="unexpected entry"):
        cluster_mod.unpack_build(buf.getvalue(), tmp_path / "b")
    assert not (tmp_path / "escape.txt").exists()


def test_worker_build_once_and_refusal_of_other_versions(tmp_path, monkeypatch):
    """In-process: a worker writes the received files into its cache, builds once, keeps the build loaded;
    a package whose build key this machine does not compute (other netspec/Brian2) is refused."""
    import dataclasses

    monkeypatch.setenv(cluster_mod.CACHE_ENV, str(tmp_path / "cache"))
    built = build(load_spec(TINY), tmp_path / "here", BuildOptions())
    pkg = cluster_mod.make_package(built)
    assert pkg.binary is None and set(pkg.files) == {"tiny-dense.yaml"}
    other = dataclasses.replace(pkg, key="f" * 64, versions={"netspec": "9.9", "brian2": "9.9"})
    with pytest.raises(cluster_mod.NetspecError, match="build keys differ.*submitter has netspec 9.9"):
        cluster_mod.worker_build(other)
    mine, setup = cluster_mod.worker_build(pkg)
    assert setup.kind == "built" and mine.key == built.key and mine.dir != built.dir
    assert cluster_mod.worker_build(pkg)[1].kind == "ready"
    tampered = dataclasses.replace(pkg, key="e" * 64, files={"tiny-dense.yaml": TINY.read_bytes().replace(b"1.2", b"1.3")})
    with pytest.raises(cluster_mod.NetspecError, match="spec hash differs"):
        cluster_mod.worker_build(tampered)


def test_a_worker_on_another_cpu_builds_the_same_network(monkeypatch):
    """A standalone build key includes the CPU (-march=native): a worker on another CPU checks the network
    with the submitter's CPU, then keys its own build for its own CPU; other versions are still refused."""
    import dataclasses
    import importlib

    build_mod = importlib.import_module("netspec.brian.build")  # the module (netspec.brian.build is also a function)
    spec = load_spec(TINY)
    options = BuildOptions(standalone=True)
    monkeypatch.setattr(build_mod, "cpu_signature", lambda: "submitter cpu")
    key = build_mod.build_key(spec, options)
    pkg = cluster_mod.Package(key=key, spec_hash=build_mod.spec_hash(spec), spec_file=TINY.name, files={},
                              options=options, versions={"netspec": "x", "brian2": "y"}, build_cpu="submitter cpu")
    monkeypatch.setattr(build_mod, "cpu_signature", lambda: "worker cpu")
    own = cluster_mod._own_key(pkg, spec)
    assert own == build_mod.build_key(spec, options) and own != key
    with pytest.raises(cluster_mod.NetspecError, match="build keys differ"):
        cluster_mod._own_key(dataclasses.replace(pkg, key="f" * 64), spec)


def test_without_distributed_the_option_says_what_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)
    x, y = _labelled(TINY, 5, seed=1)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    rc, out, err = _run([TINY, "--data", tmp_path / "d.npz", "--scheduler", "tcp://127.0.0.1:8786"], capsys)
    assert rc == 2 and err.strip() == "netspec: error: --scheduler: needs Dask distributed; install it with: pip install 'netspec[dask]'"


def test_the_cpu_is_read_once_for_both_questions(monkeypatch, tmp_path):
    """netspec/cpuinfo.py reads /proc/cpuinfo for the build key's CPU identity and for binary compatibility;
    where it cannot be read, the key falls back to the platform and the flags are unknown (None)."""
    import importlib

    from netspec import cpuinfo

    build_mod = importlib.import_module("netspec.brian.build")  # the module, not the function
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nvendor_id\t: X\nflags\t\t: b a c\n\nprocessor\t: 1\nvendor_id\t: Y\nflags\t\t: z\n")
    monkeypatch.setattr(cpuinfo, "CPUINFO", fake)
    assert cluster_mod.cpu_compatibility()["flags"] == ["a", "b", "c"]  # the first processor's, sorted
    assert json.loads(build_mod.cpu_signature()) == {"vendor_id": "X", "flags": "b a c"}
    monkeypatch.setattr(cpuinfo, "CPUINFO", tmp_path / "missing")
    assert cluster_mod.cpu_compatibility()["flags"] is None
    assert not build_mod.cpu_signature().startswith("{")
