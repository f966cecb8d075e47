"""The spec commands of the CLI: ``validate`` (exit codes, text and JSON reports, never a traceback),
``inspect`` (totals checked against counts made here by hand) and ``schema``."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from netspec.cli import main

HERE = Path(__file__).parent
REPO = HERE.parent.parent
INVALID = sorted((HERE / "invalid").glob("*.yaml"))
SHIPPED = sorted((REPO / "specs").glob("*.yaml"))
#: FILE:LINE:COL: CODE: WHERE: MESSAGE, WHERE naming the layer where there is one
LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<code>NS\d{3}): (?:(?P<where>[^:]+): )?(?P<message>.+)$")


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_valid_specs_exit_0(capsys):
    code, out, err = run(capsys, "validate", *map(str, SHIPPED))
    assert code == 0
    assert out.splitlines() == [f"{p}: valid" for p in SHIPPED]
    assert err == ""


def test_validate_invalid_spec_exit_1_and_line_format(capsys):
    path = HERE / "invalid" / "NS106-kernel-size-three.yaml"
    code, out, err = run(capsys, "validate", str(path))
    assert code == 1
    lines = out.splitlines()
    assert lines == [
        f"{path}:21:5: NS106: layer 'conv1' (layers[1]).kernel_size: expected 2 items, got 3",
        f"{path}: invalid (1 error)",
    ]
    match = LINE.match(lines[0])
    assert match and match["where"] == "layer 'conv1' (layers[1]).kernel_size"


def test_validate_missing_file_exit_2(capsys, tmp_path):
    missing = tmp_path / "missing.yaml"
    code, out, _ = run(capsys, "validate", str(SHIPPED[0]), str(HERE / "invalid" / "NS201-duplicate-layer-name.yaml"), str(missing))
    assert code == 2  # the worst of the files: unreadable beats invalid beats valid
    assert out.splitlines()[0] == f"{SHIPPED[0]}: valid"
    assert out.splitlines()[-2:] == [f"{missing}: NS006: cannot read file: No such file or directory", f"{missing}: unreadable"]


def test_validate_counts_every_error(capsys, tmp_path):
    spec = (HERE / "valid" / "lif-mv.yaml").read_text()
    bad = tmp_path / "two.yaml"
    bad.write_text(spec.replace("units: 2\n    kernel: [[0.5", "units: 0\n    kernel: [[0.5").replace("tau_m: 20 ms", "tau_m: 20 mS"))
    code, out, _ = run(capsys, "validate", str(bad))
    assert code == 1
    assert out.splitlines()[-1] == f"{bad}: invalid (1 error)"  # schema errors stop before the rules
    bad.write_text(spec.replace("tau_m: 20 ms", "tau_m: 20 mV").replace("duration: 25 ms", "duration: 25.05 ms"))
    code, out, _ = run(capsys, "validate", str(bad))
    assert out.splitlines()[-1] == f"{bad}: invalid (2 errors)"


def test_validate_json_report(capsys, tmp_path):
    good, bad, missing = SHIPPED[0], HERE / "invalid" / "NS406-wrong-shape-key.yaml", tmp_path / "missing.yaml"
    code, out, _ = run(capsys, "validate", "--format", "json", str(good), str(bad), str(missing))
    assert code == 2
    report = json.loads(out)
    assert report["valid"] is False
    assert [(f["file"], f["valid"], len(f["errors"])) for f in report["files"]] == [
        (str(good), True, 0), (str(bad), False, 1), (str(missing), False, 1)
    ]
    error = report["files"][1]["errors"][0]
    assert error == {
        "file": str(bad),
        "line": 36,
        "column": 5,
        "code": "NS406",
        "path": ["layers", 4, "bias"],
        "where": "layer 'fc' (layers[4]).bias",
        "message": "tensor 'conv1/bias' has shape [2], the layer needs [3] ([units])",
    }
    assert report["files"][2]["errors"][0]["code"] == "NS006"
    code, out, _ = run(capsys, "validate", "--format", "json", str(good))
    assert code == 0 and json.loads(out) == {"valid": True, "files": [{"file": str(good), "valid": True, "errors": []}]}


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_every_invalid_spec_prints_located_lines_and_no_traceback(capsys, path):
    code, out, err = run(capsys, "validate", str(path))
    assert code == 1
    assert "Traceback" not in out + err and err == ""
    *diagnostics, summary = out.splitlines()
    assert summary == f"{path}: invalid (1 error)"
    (line,) = diagnostics
    match = LINE.match(line)
    assert match, line
    assert match["file"] == str(path) and int(match["line"]) >= 1


def test_oversized_file_exit_1(capsys, tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (16 * 1024 * 1024 + 1))
    code, out, _ = run(capsys, "validate", str(big))
    assert code == 1
    assert out.splitlines() == [f"{big}: NS004: file is larger than 16 MiB", f"{big}: invalid (1 error)"]


def test_inspect_invalid_or_unreadable_spec(capsys, tmp_path):
    path = HERE / "invalid" / "NS302-pool-larger-than-input.yaml"
    code, out, err = run(capsys, "inspect", str(path))
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f"{path}:29:5: NS302: layer 'pool1' (layers[2]).pool_size: pool [7, 7] is larger than the input [6, 6] "
        "with padding 'valid' (input 'conv1' gives [6, 6, 2])",
        f"netspec: error: {path}: invalid spec (1 error)",
    ]
    code, _, err = run(capsys, "inspect", str(tmp_path / "missing.yaml"))
    assert code == 2 and err.splitlines()[-1] == f"netspec: error: {tmp_path / 'missing.yaml'}: cannot read the spec"


def _table(out: str) -> dict[str, list[str]]:
    rows = {}
    for line in out.splitlines()[3:]:
        cells = line.split()
        if cells and not cells[0].startswith("-"):
            rows[cells[0]] = cells
    return rows


def test_inspect_small_conv_totals(capsys, brute):
    code, out, _ = run(capsys, "inspect", str(REPO / "specs" / "small-conv.yaml"))
    assert code == 0
    assert out.splitlines()[0] == "small-conv: 6 layers, input [10, 10, 1] (analog), dt 1 ms, 200 steps per sample"
    rows = _table(out)
    number = lambda text: int(text.replace(",", ""))  # noqa: E731

    # counted by hand from the spec: 10x10x1 -> conv 3x3 'same' x4 -> maxpool 2 -> conv 3x3 'valid' x6
    # -> flatten -> dense 3; neurons are the conv and dense outputs, pooling and flatten have none
    neurons = {"image": 0, "conv1": 10 * 10 * 4, "pool1": 0, "conv2": 3 * 3 * 6, "flat": 0, "fc": 3}
    synapses = {
        "image": 0,
        "conv1": brute.taps_2d(10, 10, 3, 3, 1, 1, "same") * 1 * 4,
        "pool1": 10 * 10 * 4,  # each input in exactly one 2x2 pool
        "conv2": brute.taps_2d(5, 5, 3, 3, 1, 1, "valid") * 4 * 6,
        "flat": 0,
        "fc": 54 * 3,
    }
    with np.load(REPO / "specs" / "small-conv.npz") as npz:
        parameters = {"conv1": 0, "conv2": 0, "fc": 0}
        for key in npz.files:
            parameters[key.split("/")[0]] += npz[key].size
    assert synapses["conv1"] == 3136 and synapses["conv2"] == 1944  # the brute force, spelled out
    for name in neurons:
        assert number(rows[name][3]) == neurons[name], name
        assert number(rows[name][4]) == synapses[name], name
        assert number(rows[name][5]) == parameters.get(name, 0), name
    total = rows["total"]
    assert [number(v) for v in total[1:4]] == [sum(neurons.values()), sum(synapses.values()), sum(parameters.values())]
    assert [number(v) for v in total[1:4]] == [457, 5642, 427]
    assert rows["fc"][6] == "3" and rows["pool1"][6] == "1.5"  # maxpool keeps its input's lambda


def test_inspect_concatenate_then_flatten_shows_branch_lambdas(capsys):
    code, out, _ = run(capsys, "inspect", str(HERE / "valid" / "inception.yaml"))
    assert code == 0
    rows = _table(out)
    assert rows["mixed"][6] == rows["flat"][6] == "1.5/2.5/1.2"


def test_inspect_add_counts_linear_projections_once(capsys):
    code, out, _ = run(capsys, "inspect", str(HERE / "valid" / "residual.yaml"))
    rows = _table(out)
    # r1 and r2 are linear: no neurons, their synapses go straight into 'sum' and are counted on their rows
    assert rows["r1"][3] == rows["r2"][3] == "0"
    assert rows["r1"][4] == "4,096" and rows["r2"][4] == "576"
    assert rows["sum"][3] == "144" and rows["sum"][4] == "0"


def test_schema_prints_the_shipped_schema(capsys):
    code, out, _ = run(capsys, "schema")
    assert code == 0
    assert out == (REPO / "schemas" / "netspec.schema.json").read_text(encoding="utf-8")
    assert json.loads(out)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_python_dash_m_netspec_in_a_real_process(tmp_path):
    """The installed entry point: exit codes and stderr as a shell sees them."""
    bad = HERE / "invalid" / "NS203-cycle.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "netspec", "validate", str(SHIPPED[0]), str(bad)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    assert f"{bad}:17:5: NS203: layer 'hidden' (layers[1]).inputs: the layers form a cycle" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    proc = subprocess.run([sys.executable, "-m", "netspec", "validate", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "NS006: cannot read file: Is a directory" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "netspec", "validate"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "usage:" in proc.stderr
