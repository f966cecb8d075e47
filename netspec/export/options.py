"""What an export is asked to do: :class:`ExportOptions`, the one place every export default lives.

This module imports nothing heavy, so that the command line can show these defaults in its help without
loading the exporter.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import NetspecError

#: Normalization methods the exporter computes (see :mod:`netspec.export.normalize`).
METHODS = ("percentile", "max", "channel")
#: Input encodings the exporter writes.
ENCODINGS = ("analog", "poisson")
#: Read-outs the exporter writes (``simulation.readout``).
READOUTS = ("membrane", "spike_count")


@dataclass(frozen=True)
class ExportOptions:
    """Options of :func:`netspec.export.export`, checked when constructed.

    Attributes
    ----------
    calibration : str | Path
        Calibration data (see :func:`netspec.datasets.load_dataset`; labels are not needed). From an
        npz the first of ``x_norm``, ``x_train``, ``x``, ``x_test``; from an MNIST folder the train files.
    method : {"percentile", "max", "channel"}
        λ of a layer: the ``percentile``-th percentile of its non-zero activations, their maximum, or
        (``channel``) the ``percentile``-th percentile per output channel.
    percentile : float
        p in (0, 100] for ``method="percentile"`` and ``"channel"`` (ignored by ``max``).
    samples : int | None
        Use the first ``samples`` calibration samples (None: all).
    encoding : {"analog", "poisson"}
        The input encoding written to the spec.
    duration : str
        Presentation time per sample written to the spec, a Brian2 time (``"100 ms"``).
    readout : {"membrane", "spike_count"}
        ``simulation.readout`` written to the spec. ``membrane`` (default): the output layer integrates its
        input without spiking and the class is the highest membrane, an answer from the first step.
    initial : float
        ``neuron.initial`` written to the spec, in [0, 1): every membrane starts each sample this far to
        threshold (default 0.5: first spikes a step sooner on average, rates rounded rather than floored).
    calibrate_bias : bool
        Bias calibration after normalization (:mod:`netspec.export.calibrate`; needs analog input): each
        layer's ``normalization.bias_correction`` closes its mean SNN-ANN gap at ``bias_steps`` steps. Off by
        default: with the read-out, initial potential and per-channel λ above, the three MNIST nets of
        tools/bench_lowlat.py are within 0.2 points of their ANN at T = 16 without it, and it costs a numpy
        simulation of the network on ``bias_samples`` samples at export (README: Export defaults).
    bias_steps : int
        Time steps T the bias calibration simulates (default 16).
    bias_samples : int
        Calibration samples the bias calibration uses (the first ones; default 1000, or all if fewer).
    bias_rounds : int
        Secant rounds per layer after the bias calibration's first correction (default 2; 0: the gap alone, one
        correction per layer): a channel's rate does not follow its input one for one (silent and saturated
        neurons do not move), so the first correction falls short.
    progress : bool
        Report calibration progress on stderr.
    quantized_initial : float
        ``neuron.initial`` written on every quantized layer (netspec's QuantizedClip, QCFS): where its membranes
        start, as a fraction of the threshold, in [0, 1). 0.5, the default, is the method's (Bu et al. 2022):
        with it the spiking layer's expected output is the quantized activation. 0 writes nothing.

    Raises
    ------
    NetspecError
        An option out of range (exit code 2), named as its command-line flag.
    """

    calibration: str | Path
    method: str = "channel"
    percentile: float = 99.9
    samples: int | None = None
    encoding: str = "analog"
    duration: str = "100 ms"
    readout: str = "membrane"
    initial: float = 0.5
    calibrate_bias: bool = False
    bias_steps: int = 16
    bias_samples: int = 1000
    bias_rounds: int = 2
    progress: bool = True
    quantized_initial: float = 0.5

    def __post_init__(self) -> None:
        from ..spec import parse_quantity
        from ..spec.units import TIME

        if self.method not in METHODS:
            raise NetspecError(f"--normalization: expected {', '.join(METHODS[:-1])} or {METHODS[-1]}, got {self.method!r}", 2)
        if self.method in ("percentile", "channel") and not (0 < self.percentile <= 100):
            raise NetspecError(f"--percentile: must be in (0, 100], got {self.percentile:g}", 2)
        if self.samples is not None and self.samples < 1:
            raise NetspecError(f"--samples: must be at least 1, got {self.samples}", 2)
        if self.encoding not in ENCODINGS:
            raise NetspecError(f"--input-encoding: expected {' or '.join(ENCODINGS)}, got {self.encoding!r}", 2)
        if not (0 <= self.quantized_initial < 1):
            raise NetspecError(f"--quantized-initial: must be in [0, 1), got {self.quantized_initial:g}", 2)
        if self.readout not in READOUTS:
            raise NetspecError(f"--readout: expected {' or '.join(READOUTS)}, got {self.readout!r}", 2)
        if not (0 <= self.initial < 1):
            raise NetspecError(f"--initial: must be in [0, 1) (a fraction of the threshold), got {self.initial:g}", 2)
        if self.calibrate_bias:
            if not isinstance(self.bias_steps, int) or self.bias_steps < 1:
                raise NetspecError(f"--bias-steps: must be a whole number of time steps >= 1, got {self.bias_steps}", 2)
            if not isinstance(self.bias_samples, int) or self.bias_samples < 1:
                raise NetspecError(f"--bias-samples: must be at least 1, got {self.bias_samples}", 2)
            if not isinstance(self.bias_rounds, int) or self.bias_rounds < 0:
                raise NetspecError(f"--bias-rounds: must be a whole number >= 0, got {self.bias_rounds}", 2)
            if self.encoding != "analog":
                raise NetspecError("--calibrate-bias: bias calibration simulates analog input, not --input-encoding poisson", 2)
        try:
            q = parse_quantity(self.duration)
        except ValueError as exc:
            raise NetspecError(f"--duration: {exc}", 2) from exc
        if q.dim != TIME or not q.value > 0:
            raise NetspecError(f"--duration: expected a positive time such as '100 ms', got {self.duration!r}", 2)

    @property
    def provenance(self) -> dict:
        """How the λs are computed, as the spec's ``source.normalization`` records it once for all layers."""
        return {"method": self.method, **({"percentile": float(self.percentile)} if self.method != "max" else {})}

    def describe(self) -> str:
        """The method in words: ``the 99.9th percentile`` or ``the maximum``."""
        if self.method == "channel":
            return f"the {self.percentile:g}th percentile per channel"
        return f"the {self.percentile:g}th percentile" if self.method == "percentile" else "the maximum"
