"""Diagnostics: what is wrong with a spec, where, under a stable code.

Every check in :mod:`netspec.spec` reports :class:`Diagnostic` objects; reporters (text, JSON) only
format them. Codes are stable and documented in ``CODES``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

#: Stable diagnostic codes and what each means.
CODES: Mapping[str, str] = {
    # reading the file
    "NS001": "YAML syntax error",
    "NS002": "duplicate mapping key",
    "NS003": "document too large or too deeply aliased (alias bomb)",
    "NS004": "file too large",
    "NS005": "YAML tag or construct not allowed in a spec",
    "NS006": "file cannot be read",
    "NS007": "document is not a mapping",
    # schema
    "NS101": "required property missing",
    "NS102": "unknown property",
    "NS103": "wrong type",
    "NS104": "value not allowed",
    "NS105": "number out of range",
    "NS106": "wrong number of items",
    "NS107": "value matches none of the allowed forms",
    "NS100": "other schema violation",
    # graph
    "NS201": "duplicate layer name",
    "NS202": "reference to an unknown layer",
    "NS203": "the layer graph has a cycle",
    "NS204": "not exactly one input layer",
    "NS205": "layer does not reach the output, or several outputs",
    "NS206": "wrong number of inputs for the layer type",
    "NS207": "activation (or its clip or levels) not allowed here",
    "NS208": "input layer misplaced",
    "NS209": "the output layer has no neurons",
    # shapes
    "NS301": "input shape does not fit the layer",
    "NS302": "kernel or pool larger than its input",
    "NS303": "concatenated shapes differ",
    "NS304": "added shapes differ",
    "NS305": "axis out of range",
    "NS306": "layer size does not match its tensor or declaration",
    # weights
    "NS401": "weights file missing",
    "NS402": "weights path absolute or outside the spec's folder",
    "NS403": "weights file sha256 mismatch",
    "NS404": "weights file unreadable or corrupt",
    "NS405": "tensor key not in the weights file",
    "NS406": "tensor has the wrong shape",
    "NS407": "tensor is not floating point",
    "NS408": "tensor holds NaN or Inf",
    "NS409": "tensor referenced by key but the spec has no weights file",
    "NS410": "inline tensor is ragged",
    # units and parameters
    "NS501": "quantity cannot be parsed",
    "NS502": "quantity has the wrong dimension",
    "NS503": "normalization factor not positive",
    "NS504": "threshold not above reset or rest",
    "NS505": "time not positive, or not a whole number of time steps",
    "NS506": "voltages mix units and plain numbers",
    "NS507": "parameter required by the chosen model is missing",
    "NS508": "parameter does not apply to the chosen model",
    "NS509": "input range or rate invalid",
    "NS510": "input encoding does not fit the first layers",
    "NS511": "per-channel lambda does not match the layer's channels",
    "NS512": "a channel read by a layer has several lambdas",
    "NS513": "time constant not longer than dt where forward Euler integrates it",
    "NS514": "bias correction does not fit the layer",
    # resources (estimated before anything is allocated; see netspec/spec/resources.py)
    "NS601": "more time steps per sample than the limit (--max-steps)",
    "NS602": "estimated memory above the limit (--max-memory)",
    "NS603": "layer too large for 32-bit indices",
}


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in a spec.

    Parameters
    ----------
    code : str
        Stable code from :data:`CODES`.
    message : str
        What is wrong, in one line.
    path : tuple
        Location in the document: keys and list indices, e.g. ``("layers", 3, "kernel_size")``.
    where : str
        The path written for people, naming entities: ``layer 'conv2' (layers[3]).kernel_size``.
    file, line, col : str, int, int
        Source position (1-based); line 0 when unknown.
    """

    code: str
    message: str
    path: tuple = ()
    where: str = ""
    file: str = ""
    line: int = 0
    col: int = 0

    def text(self) -> str:
        pos = f"{self.file}:{self.line}:{self.col}" if self.line else f"{self.file}"
        where = f"{self.where}: " if self.where else ""
        return f"{pos}: {self.code}: {where}{self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.col,
            "code": self.code,
            "path": list(self.path),
            "where": self.where,
            "message": self.message,
        }


class SpecError(Exception):
    """A spec is invalid; carries every diagnostic found (the most relevant first)."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = list(diagnostics)
        first = self.diagnostics[0].text() if self.diagnostics else "invalid spec"
        more = len(self.diagnostics) - 1
        super().__init__(first + (f" (and {more} more)" if more > 0 else ""))


def describe_path(path: tuple, data: Any) -> str:
    """Write a document path for people, naming layers: ``layer 'conv2' (layers[3]).kernel_size``."""
    out = ""
    node = data
    for i, part in enumerate(path):
        if isinstance(part, int):
            piece = f"[{part}]"
            if i == 1 and path[0] == "layers" and isinstance(node, list) and 0 <= part < len(node):
                item = node[part]
                name = item.get("name") if isinstance(item, dict) else None
                if isinstance(name, str):
                    out = f"layer '{name}' (layers[{part}])"
                    node = item
                    continue
            out += piece
        else:
            out += ("." if out else "") + str(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return out


@dataclass
class Reporter:
    """Collects diagnostics for one document, filling in positions and entity names."""

    file: str
    data: Any
    marks: Mapping[tuple, tuple[int, int]] = field(default_factory=dict)
    key_marks: Mapping[tuple, tuple[int, int]] = field(default_factory=dict)
    items: list[Diagnostic] = field(default_factory=list)

    def position(self, path: tuple) -> tuple[int, int]:
        """Where a path points in the file: the key that holds the value when the path ends in a mapping
        key (as ``12:5`` for ``    kernel_size: [3, 3, 3]``), the item itself when it ends in a list
        index. A path into something the document lacks (a missing property) points at the nearest
        enclosing entry that exists."""
        path = tuple(path)
        while path:
            if path in self.key_marks:
                return self.key_marks[path]
            if path in self.marks:
                return self.marks[path]
            path = path[:-1]
        return self.marks.get((), (0, 0))  # (0, 0): a document built in memory has no positions

    def add(self, code: str, message: str, path: tuple = ()) -> None:
        """Record a diagnostic; the same code, message and path twice (a shared default checked for
        every layer that uses it) is recorded once."""
        if code not in CODES:
            raise ValueError(f"unknown diagnostic code {code!r}")
        path = tuple(path)
        if any(d.code == code and d.path == path and d.message == message for d in self.items):
            return
        where = describe_path(path, self.data) if path else "top level"
        line, col = self.position(path)
        self.items.append(Diagnostic(code, message, path, where, self.file, line, col))
