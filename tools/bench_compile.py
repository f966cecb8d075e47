"""Benchmark: compiling a standalone project's code objects one file each (Brian2's way) against in units.

    python tools/bench_compile.py build/<name>/cpp [--objects 320] [--jobs 2]

Takes the C++ project of a standalone build (``netspec build --standalone``; its ``cpp/`` folder), compiles the
precompiled header, then the same ``--objects`` code objects (every k-th of the project's, so that every kind is
in the sample) twice, one run after the other with ``make -jJOBS``: one file each after the precompiled header,
and merged ``UNITY`` to a translation unit as ``netspec build`` does (netspec/brian/runner/standalone.py). Prints
the wall and CPU seconds of both and their ratio, and the CPU minutes the whole project would take each way.
It works on a copy of the project's sources in a temporary folder (removed afterwards): the build is not
touched. On a shared machine the wall times move with the load; the CPU ratio is the figure. Not a test.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netspec.brian.runner import standalone as sa  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cpp", type=Path, help="a standalone build's cpp/ folder")
    p.add_argument("--objects", type=int, default=320, help="code objects to compile each way (default 320)")
    p.add_argument("--jobs", type=int, default=2, help="make -j (default 2)")
    args = p.parse_args(argv)
    build_cpp = args.cpp.resolve()
    if not (build_cpp / "objects.h").is_file() or not (build_cpp / "code_objects").is_dir():
        p.error(f"{args.cpp} is not a standalone build's cpp/ folder (no objects.h and code_objects/)")
    work = Path(tempfile.mkdtemp(prefix="bench-compile-"))
    try:
        cpp = work / "cpp"
        shutil.copytree(build_cpp, cpp, ignore=shutil.ignore_patterns(
            "static_arrays", "results", "*.o", "main", "netspec_unit_*", "*.gch"))
        sources = sorted(str(f.relative_to(cpp)) for f in (cpp / "code_objects").glob("*.cpp"))
        pick = sources[::max(1, len(sources) // args.objects)][:args.objects]
        flags = ["-c", "-Wno-write-strings", f"-I{sys.prefix}/include", "-w", "-O3", "-march=native", "-std=c++11", "-I."]
        sa.write_headers(cpp)
        t0 = time.perf_counter()
        subprocess.run(["g++", *flags, "-x", "c++-header", sa.PCH, "-o", sa.PCH + ".gch"], cwd=cpp, check=True)
        print(f"precompiled header: {time.perf_counter() - t0:.1f} s, {os.path.getsize(cpp / (sa.PCH + '.gch')) / 1e6:.0f} MB")
        units = sa.unity_sources(cpp, pick)
        merged = [u for u in units if "netspec_unit_" in u]
        print(f"{len(pick)} of the project's {len(sources)} code objects: {len(merged)} units of {sa.UNITY}, "
              f"{len(units) - len(merged)} compiled alone")

        def compile_all(files: list[str], tag: str) -> tuple[float, float]:
            mk = work / f"{tag}.mk"
            objs = " ".join(f.replace(".cpp", f".{tag}.o") for f in files)
            mk.write_text(f"all: {objs}\n%.{tag}.o: %.cpp\n\tg++ {' '.join(flags)} -include {sa.PCH} $< -o $@\n")
            c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run(["make", "-s", "-f", str(mk), f"-j{args.jobs}"], cwd=cpp, check=True)
            c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            return time.perf_counter() - t, (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)

        w1, c1 = compile_all(pick, "one")
        print(f"one file each:   wall {w1:7.1f} s   cpu {c1:7.1f} s")
        w2, c2 = compile_all(units, "uni")
        print(f"units of {sa.UNITY}:     wall {w2:7.1f} s   cpu {c2:7.1f} s")
        print(f"one file each / units: wall {w1 / w2:.2f}x, cpu {c1 / c2:.2f}x; per code object {c1 / len(pick):.3f} "
              f"against {c2 / len(pick):.3f} CPU-s; the whole project's {len(sources)} code objects: "
              f"{c1 / len(pick) * len(sources) / 60:.1f} against {c2 / len(pick) * len(sources) / 60:.1f} CPU-min")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
