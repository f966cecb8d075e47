"""netspec.export options: every default lives on ExportOptions and nowhere else (the CLI, export_model and
the λ computation take it from there), options are checked when made, and the written normalization
entries say how a λ was obtained only where it differs from the spec's source. No TensorFlow needed."""
from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys

import pytest

from netspec import cli
from netspec.errors import NetspecError
from netspec.export import ExportOptions, export_model
from netspec.export.normalize import compute_lambdas
from netspec.export.writer import normalization_entry, with_normalization
from netspec.spec import Normalization

FIELDS = {f.name: f for f in dataclasses.fields(ExportOptions)}
OPTION_FLAGS = {"method": "normalization", "percentile": "percentile", "samples": "samples", "encoding": "input_encoding",
                "duration": "duration", "readout": "readout", "initial": "initial", "calibrate_bias": "calibrate_bias",
                "bias_steps": "bias_steps", "bias_samples": "bias_samples", "bias_rounds": "bias_rounds"}


def export_args(*extra: str):
    return cli._parser().parse_args(["export", "m.keras", "-o", "s.yaml", "--calibration", "cal.npz", *extra])


def test_the_defaults_are_the_dataclass_defaults():
    options = ExportOptions("cal.npz")
    assert (options.method, options.percentile, options.samples, options.encoding, options.duration, options.progress) == (
        "channel", 99.9, None, "analog", "100 ms", True)
    # the low-latency defaults (issue 18): membrane read-out, membranes from half the threshold, bias calibration
    assert (options.readout, options.initial, options.calibrate_bias, options.bias_steps, options.bias_samples,
            options.bias_rounds) == ("membrane", 0.5, False, 16, 1000, 2)
    assert all(getattr(options, name) == f.default for name, f in FIELDS.items() if name != "calibration")
    assert FIELDS["calibration"].default is dataclasses.MISSING
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.percentile = 50.0


def test_nothing_else_repeats_a_default():
    """export_model passes its keywords on; compute_lambdas must be told the method; the CLI leaves an
    option it was not given unset (None), so ExportOptions' default applies."""
    params = inspect.signature(export_model).parameters.values()
    assert [p.name for p in params if p.default is not inspect.Parameter.empty] == []
    assert [p.kind for p in params][-1] is inspect.Parameter.VAR_KEYWORD
    lam_params = inspect.signature(compute_lambdas).parameters
    assert lam_params["method"].default is inspect.Parameter.empty and lam_params["percentile"].default is inspect.Parameter.empty
    args = export_args()
    assert all(getattr(args, flag) is None for flag in OPTION_FLAGS.values())
    assert cli._export_options(args) == ExportOptions("cal.npz")


def test_the_cli_help_shows_the_dataclass_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["export", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for expected in (f"(default {ExportOptions.percentile:g})", f"(default {ExportOptions.method})",
                     f"(default {ExportOptions.encoding})", f"(default '{ExportOptions.duration}')",
                     f"(default {ExportOptions.readout})", f"(default {ExportOptions.initial:g})",
                     f"(default {ExportOptions.bias_steps})", f"(default {ExportOptions.bias_samples})",
                     f"(default {ExportOptions.bias_rounds})", "(default off)"):
        assert expected in help_text


def test_the_cli_passes_what_it_was_given():
    args = export_args("--normalization", "max", "--samples", "20", "--input-encoding", "poisson", "--duration", "50 ms")
    assert cli._export_options(args) == ExportOptions("cal.npz", method="max", samples=20, encoding="poisson", duration="50 ms")
    assert cli._export_options(export_args("--percentile", "99")) == ExportOptions("cal.npz", percentile=99.0)
    args = export_args("--readout", "spike_count", "--initial", "0", "--calibrate-bias", "--bias-steps", "8", "--bias-samples", "100",
                       "--bias-rounds", "0")
    assert cli._export_options(args) == ExportOptions("cal.npz", readout="spike_count", initial=0.0, calibrate_bias=True,
                                                      bias_steps=8, bias_samples=100, bias_rounds=0)
    assert cli._export_options(export_args("--no-calibrate-bias")) == ExportOptions("cal.npz")


@pytest.mark.parametrize("kw, message", [
    ({"method": "mean"}, "--normalization: expected percentile, max or channel, got 'mean'"),
    ({"percentile": 0}, "--percentile: must be in (0, 100], got 0"),
    ({"percentile": 100.5}, "--percentile: must be in (0, 100], got 100.5"),
    ({"samples": 0}, "--samples: must be at least 1, got 0"),
    ({"encoding": "rate"}, "--input-encoding: expected analog or poisson, got 'rate'"),
    ({"duration": "5 mV"}, "--duration: expected a positive time such as '100 ms', got '5 mV'"),
    ({"duration": "-1 ms"}, "--duration: expected a positive time such as '100 ms', got '-1 ms'"),
    # the low-latency options: read-out, initial potential, bias calibration
    ({"calibrate_bias": True, "bias_steps": 0}, "--bias-steps: must be a whole number of time steps >= 1, got 0"),
    ({"calibrate_bias": True, "bias_samples": 0}, "--bias-samples: must be at least 1, got 0"),
    ({"calibrate_bias": True, "bias_rounds": -1}, "--bias-rounds: must be a whole number >= 0, got -1"),
    ({"encoding": "poisson", "calibrate_bias": True},
     "--calibrate-bias: bias calibration simulates analog input, not --input-encoding poisson"),
    ({"initial": 1.0}, "--initial: must be in [0, 1) (a fraction of the threshold), got 1"),
    ({"readout": "softmax"}, "--readout: expected membrane or spike_count, got 'softmax'"),
])
def test_bad_options_are_refused_when_made(kw, message):
    with pytest.raises(NetspecError) as e:
        ExportOptions("cal.npz", **kw)
    assert str(e.value) == message and e.value.exit_code == 2


def test_a_bad_option_on_the_command_line_is_one_line(tmp_path, capsys):
    rc = cli.main(["export", "m.keras", "-o", str(tmp_path / "s.yaml"), "--calibration", "cal.npz", "--percentile", "120"])
    assert rc == 2
    assert capsys.readouterr().err == "netspec: error: --percentile: must be in (0, 100], got 120\n"
    assert list(tmp_path.iterdir()) == []


def test_provenance_is_what_source_records():
    assert ExportOptions("c").provenance == {"method": "channel", "percentile": 99.9}
    assert ExportOptions("c", method="max", percentile=50).provenance == {"method": "max"}


# -- normalization entries against the provenance ----------------------------------------------------
PROVENANCE = {"method": "percentile", "percentile": 99.9}


@pytest.mark.parametrize("norm, entry", [
    (Normalization(2.5, "percentile", 99.9, 100), {"lambda": 2.5}),
    (Normalization(1.0), {"lambda": 1.0}),
    (Normalization(2.5, "max", None, 100), {"lambda": 2.5, "method": "max"}),
    (Normalization(2.5, "percentile", 99.0, 100), {"lambda": 2.5, "method": "percentile", "percentile": 99.0}),
    (Normalization(2.5, "percentile", 99.9, 30), {"lambda": 2.5, "samples": 30}),
    (Normalization(2.5, "manual"), {"lambda": 2.5, "method": "manual"}),
])
def test_a_layer_says_only_how_it_differs(norm, entry):
    assert normalization_entry(norm, PROVENANCE, 100) == entry


def test_with_normalization_adds_entries_last_and_leaves_the_document_alone():
    doc = {"source": {"normalization": dict(PROVENANCE), "calibration": {"samples": 100}},
           "layers": [{"name": "x", "type": "input"}, {"name": "d", "type": "dense", "units": 2, "activation": "relu"},
                      {"name": "f", "type": "flatten"}]}
    out = with_normalization(doc, {"x": Normalization(1.0), "d": Normalization(3.0, "max", None, 100)})
    assert out["layers"] == [{"name": "x", "type": "input", "normalization": {"lambda": 1.0}},
                             {"name": "d", "type": "dense", "units": 2, "activation": "relu",
                              "normalization": {"lambda": 3.0, "method": "max"}},
                             {"name": "f", "type": "flatten"}]
    assert "normalization" not in doc["layers"][0] and "normalization" not in doc["layers"][1]


def test_the_cli_does_not_load_the_exporter_to_show_its_defaults():
    code = ("import sys; from netspec import cli; cli._parser(); "
            "print(sorted(m for m in ('netspec.export.pipeline', 'numpy', 'netspec.spec') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_percentile_with_max_is_refused_and_channel_takes_it():
    with pytest.raises(NetspecError, match="--percentile: not used by --normalization max"):
        cli._export_options(export_args("--normalization", "max", "--percentile", "99"))
    assert cli._export_options(export_args("--normalization", "channel", "--percentile", "99")) == \
        ExportOptions("cal.npz", method="channel", percentile=99.0)
    assert ExportOptions("c", method="channel").provenance == {"method": "channel", "percentile": 99.9}
