"""Helpers shared by the tests that drive netspec as a real process (no tests here): a process's
descendants from /proc, waiting on the progress bar until a chunk has surely finished, and a run
interrupted with Ctrl-C once one has."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children, their children, ...), read from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def wait_for_finished_chunk(stderr, total: int, running_at_most: int) -> str:
    """Read the non-terminal progress bar's lines from ``stderr`` until its count of ``total`` samples is above
    ``running_at_most``, the most the samples of running chunks can add up to: then some chunk has finished.
    The bar prints a line after 2 s and then every 30 s; it counts running chunks' samples too, so on a
    loaded machine its first line can come before any chunk is done. Returns the line."""
    while True:
        line = stderr.readline()
        assert f"/{total} samples" in line, line
        if int(re.search(rf"(\d+)/{total}", line).group(1)) > running_at_most:
            return line


def interrupt_run_after_a_chunk(argv, total: int, running_at_most: int) -> tuple[int, str, str]:
    """Start ``python -m netspec run *argv`` (unbuffered), send it SIGINT (Ctrl-C) once a chunk has finished
    (:func:`wait_for_finished_chunk`), and return its exit status, stdout and stderr."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "netspec", "run", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for_finished_chunk(proc.stderr, total, running_at_most)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err
