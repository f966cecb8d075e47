"""The C++ scatters of netspec_kernels.h make the same additions in the same order: ``scatter_by_tap`` (blocks of
rows, tap after tap, the samples side by side together) and ``scatter_grouped`` give bit for bit the targets of
``scatter_one`` (Brian2's order, spike after spike), on strides, padding, gating, filters that fill no whole
vector, sources that reach nothing and several samples side by side (tests/cpp/scatter_orders.cpp)."""
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent
RUNNER = HERE.parent / "netspec" / "brian" / "runner"


@pytest.mark.cpp
@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_scatters_add_in_brian2s_order(tmp_path):
    binary = tmp_path / "scatter_orders"
    subprocess.run(["g++", "-O2", "-std=c++11", f"-I{RUNNER}", str(HERE / "cpp" / "scatter_orders.cpp"), "-o",
                    str(binary)], check=True, capture_output=True, text=True)
    lines = subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout.splitlines()
    assert len(lines) == 5 * 4
    assert [line for line in lines if not line.endswith(": identical")] == []
