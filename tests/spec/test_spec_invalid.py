"""Invalid specs: each file under tests/spec/invalid/ has one defect and says, in its first two lines,
the first diagnostic it must produce:

    # expect: NS406 36:5 layers[4].bias
    # message: tensor 'conv1/bias' has shape [2], the layer needs [3] ([units])

(code, line:col, the path -- or the ``where`` text -- and the exact message; ``{here}`` stands for
the folder). One defect gives exactly one diagnostic. Files that cannot be committed (16 MiB, a
folder, bytes that are not UTF-8) are made here. Then: specs with several defects, the codes every
file covers, and check_file on mangled specs never raising.
"""
from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from netspec.spec import CODES, SpecError, check_file, load_spec, load_spec_data
from netspec.spec.yamlsrc import MAX_BYTES

HERE = Path(__file__).parent
INVALID = sorted((HERE / "invalid").glob("*.yaml"))
VALID = sorted((HERE / "valid").glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (NS\d{3}) (\d+):(\d+) (.+)$")
MESSAGE = re.compile(r"^# message: (.+)$")

#: Codes no spec can trigger, and why; every other code has a file under invalid/ or a test here.
UNREACHABLE = {
    "NS100": "every keyword the schema uses has its own code (NS101-NS107)",
    "NS306": "a layer whose size disagrees with its tensor is reported as NS406 (shows both shapes)",
}
#: Codes whose cases are made by the tests below rather than committed.
GENERATED = {"NS004", "NS006", "NS602"}  # NS602 (memory): tests/test_trust_inputs.py


def _expectation(path: Path) -> tuple[str, int, int, str, str]:
    head = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    expect, message = EXPECT.match(head[0]), MESSAGE.match(head[1])
    assert expect and message, f"{path.name}: the first two lines must be '# expect: ...' and '# message: ...'"
    code, line, col, target = expect.groups()
    return code, int(line), int(col), target, message.group(1).replace("{here}", str(path.parent))


def test_there_are_enough_invalid_specs():
    assert len(INVALID) >= 45


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_spec_reports_its_defect_first(path, render):
    code, line, col, target, message = _expectation(path)
    assert path.name.startswith(code), "name the file after the code it expects"
    spec, diagnostics = check_file(path)  # never raises
    assert spec is None
    first = diagnostics[0]
    assert (first.code, first.line, first.col) == (code, line, col), first.text()
    assert target in (render(first.path), first.where), first.text()
    assert first.message == message
    assert first.file == str(path)
    assert len(diagnostics) == 1, "one defect, one diagnostic: " + " | ".join(d.text() for d in diagnostics)


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_load_spec_raises_spec_error_with_the_same_diagnostics(path):
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.diagnostics == check_file(path)[1]
    assert str(info.value) == info.value.diagnostics[0].text()


def test_every_reachable_code_has_a_case():
    covered = {_expectation(p)[0] for p in INVALID} | GENERATED
    assert covered == set(CODES) - set(UNREACHABLE)
    assert not covered & set(UNREACHABLE)


def test_weights_fixture_hashes_match():
    """The specs that expect NS404-NS407 depend on the committed .npz being the one their hash names."""
    import hashlib

    weights = hashlib.sha256((HERE / "invalid" / "weights.npz").read_bytes()).hexdigest()
    assert weights in (HERE / "invalid" / "NS405-missing-key.yaml").read_text()
    corrupt = hashlib.sha256((HERE / "invalid" / "corrupt.npz").read_bytes()).hexdigest()
    assert corrupt in (HERE / "invalid" / "NS404-corrupt-npz.yaml").read_text()


# -- cases made at test time ----------------------------------------------------------------------
def test_oversized_file(tmp_path):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:
        fh.write(b"netspec: 1\n")
        fh.write(b"#" * (MAX_BYTES - 11) + b"\n")  # one byte over the limit
    assert big.stat().st_size == MAX_BYTES + 1
    spec, diagnostics = check_file(big)
    assert spec is None
    assert [(d.code, d.message, d.file) for d in diagnostics] == [("NS004", "file is larger than 16 MiB", str(big))]


def test_file_at_the_size_limit_is_read(tmp_path, monkeypatch):
    # the limit is exact; shown with a small one (PyYAML needs ~10 s to scan 16 MiB)
    text = (HERE / "valid" / "lif-mv.yaml").read_bytes()
    monkeypatch.setattr("netspec.spec.yamlsrc.MAX_BYTES", len(text))
    ok, over = tmp_path / "ok.yaml", tmp_path / "over.yaml"
    ok.write_bytes(text)
    over.write_bytes(text + b"\n")
    spec, diagnostics = check_file(ok)
    assert diagnostics == [] and spec.name == "lif-mv"
    assert [d.code for d in check_file(over)[1]] == ["NS004"]


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_unreadable_file(tmp_path, kind):
    path = tmp_path / "nowhere.yaml"
    if kind == "folder":
        path.mkdir()
    spec, diagnostics = check_file(path)
    assert spec is None
    (d,) = diagnostics
    assert d.code == "NS006" and d.file == str(path) and d.line == 0
    assert d.message == ("cannot read file: No such file or directory" if kind == "missing" else "cannot read file: Is a directory")


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("netspec: 1\nname: caf\xe9\n".encode("latin-1"))
    (d,) = check_file(path)[1]
    assert (d.code, d.line, d.col) == ("NS006", 2, 10)
    assert d.message == "not UTF-8 text: byte 0xe9 (save the file as UTF-8)"


def test_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("netspec: 1\nname: loop\nextra: &a [1, *a]\n")
    (d,) = check_file(path)[1]
    assert (d.code, d.line, d.col, d.path) == ("NS003", 3, 1, ("extra",))
    assert d.message == "expands to infinitely many values once aliases are expanded (at most 2,000,000)"


def test_nesting_pyyaml_cannot_read_is_refused(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("netspec: 1\nname: deep\nextra: " + "[" * 2000 + "]" * 2000 + "\n")
    (d,) = check_file(path)[1]
    assert d.code == "NS003"


def test_spec_in_memory_has_no_positions():
    import yaml

    data = yaml.safe_load((HERE / "valid" / "lif-mv.yaml").read_text())
    data["layers"][1]["units"] = 0
    with pytest.raises(SpecError) as info:
        load_spec_data(data, HERE / "valid", file="generated")
    (d,) = info.value.diagnostics
    assert (d.code, d.line, d.col, d.where) == ("NS105", 0, 0, "layer 'h' (layers[1]).units")
    assert d.text() == "generated: NS105: layer 'h' (layers[1]).units: expected a number >= 1, got 0"


# -- several defects --------------------------------------------------------------------------------
SEMANTIC_DEFECTS = """\
netspec: 1
name: four-defects
input:
  shape: [4]
  range: [0.0, 1.0]
  encoding: analog
simulation:
  dt: 1 ms
  duration: 20.5 ms
layers:
  - name: x
    type: input
  - name: hidden
    type: dense
    units: 2
    kernel: [[1, 0], [0, 1], [1, 1], [0, 0]]
    bias: [0.0, .nan]
    activation: softmax
    normalization: {lambda: 1.0}
    neuron: {tau_syn: 3 mV, synapse: exponential}
  - name: out
    type: dense
    units: 1
    kernel: [[1], [1]]
    activation: softmax
    normalization: {lambda: 1.0}
"""

SCHEMA_DEFECTS = """\
netspec: 1
name: three-defects
input:
  shape: [6, 6, 1]
  range: [0.0, 1.0]
  encoding: analog
layers:
  - name: x
    type: input
  - name: conv
    type: conv2d
    filters: 2
    kernel_size: [3, 3, 3]
    kernel: [[[[1.0, 1.0]]]]
    activation: relu
    normalization: {lambda: 1.0}
  - name: pool
    type: maxpool
    pool_size: 2
"""


def test_several_semantic_defects_are_all_reported_graph_first(tmp_path):
    path = tmp_path / "four.yaml"
    path.write_text(SEMANTIC_DEFECTS)
    spec, diagnostics = check_file(path)
    assert spec is None
    got = [(d.code, d.line, d.where) for d in diagnostics]
    assert got == [
        # the graph first: it decides what the rest means
        ("NS207", 18, "layer 'hidden' (layers[1]).activation"),
        ("NS505", 9, "simulation.duration"),
        ("NS502", 20, "layer 'hidden' (layers[1]).neuron.tau_syn"),
        ("NS408", 17, "layer 'hidden' (layers[1]).bias"),
    ]
    with pytest.raises(SpecError, match=r"\(and 3 more\)$"):
        load_spec(path)


def test_several_schema_defects_are_all_reported_shallowest_first(tmp_path):
    path = tmp_path / "three.yaml"
    path.write_text(SCHEMA_DEFECTS)
    got = [(d.code, d.line, d.col, d.where, d.message) for d in check_file(path)[1]]
    assert got[0] == ("NS101", 1, 1, "top level", "missing required property 'simulation'")
    # then in document order, each once, without if/then noise from the mistyped layer
    assert got[1:] == [
        ("NS106", 13, 5, "layer 'conv' (layers[1]).kernel_size", "expected 2 items, got 3"),
        ("NS104", 18, 5, "layer 'pool' (layers[2]).type",
         'string \'maxpool\' is not one of "input", "dense", "conv2d", "depthwise_conv2d", "avgpool2d", '
         '"maxpool2d", "global_avgpool2d", "flatten", "zeropad2d", "crop2d", "concatenate", "add"; did you mean \'maxpool2d\'?'),
    ]


# -- robustness -------------------------------------------------------------------------------------
def _mangle(text: str, rng: random.Random) -> str:
    lines = text.splitlines(keepends=True)
    i = rng.randrange(len(lines))
    how = rng.randrange(6)
    if how == 0:
        del lines[i]
    elif how == 1:
        lines.insert(i, lines[rng.randrange(len(lines))])
    elif how == 2:
        lines[i] = lines[i].replace(":", "", 1)
    elif how == 3:
        lines[i] = " " + lines[i]
    elif how == 4:
        words = ["0", "-1", "[]", "{}", "null", "x", "1e999", ".nan", "'3 mV'", "[1, [2]]", "&a 1", "*a", "!!str 1"]
        key = lines[i].split(":")[0]
        lines[i] = f"{key}: {rng.choice(words)}\n"
    else:
        cut = rng.randrange(len(text))
        return text[:cut]
    return "".join(lines)


def test_check_file_never_raises_on_mangled_specs(tmp_path):
    rng = random.Random(2017)
    sources = [p.read_text() for p in VALID] + [p.read_text() for p in INVALID if p.suffix == ".yaml"][:20]
    seen_codes = set()
    for n in range(300):
        text = _mangle(rng.choice(sources), rng)
        path = tmp_path / f"m{n}.yaml"
        path.write_text(text)
        spec, diagnostics = check_file(path)  # the point: no exception
        assert (spec is None) == bool(diagnostics)
        lines = text.count("\n") + 1
        for d in diagnostics:
            assert d.code in CODES and d.message
            assert 0 <= d.line <= lines, d.text()
            assert "\n" not in d.text()
            seen_codes.add(d.code)
    assert len(seen_codes) > 10  # the mangling reached many rules, not one early exit


def test_yaml_level_errors_name_the_layer_once_its_name_is_read():
    spec, diagnostics = check_file(HERE / "invalid" / "NS002-duplicate-key.yaml")
    assert diagnostics[0].where == "layer 'out' (layers[2]).units"
    spec, diagnostics = check_file(HERE / "invalid" / "NS005-merge-key.yaml")
    assert diagnostics[0].where == "layer 'out' (layers[2])"
