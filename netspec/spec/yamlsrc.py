"""Safe YAML reading that remembers where every node came from.

Only plain YAML data is accepted: mappings, sequences, strings, numbers, booleans and null. Python tags,
merge keys, duplicate keys, oversized files and alias bombs are refused with a :class:`Diagnostic`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .diagnostics import Diagnostic, describe_path

MAX_BYTES = 16 * 1024 * 1024
MAX_NODES = 2_000_000
MAX_DEPTH = 64

_PLAIN_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
# YAML 1.1 reads an unquoted 1e-3 (no dot) as a string; people mean a number.
_FLOAT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


@dataclass(frozen=True)
class Document:
    """A parsed YAML document: plain data plus 1-based (line, col) of every value and mapping key."""

    file: str
    data: Any
    marks: dict  # path tuple -> (line, col) of the value
    key_marks: dict  # path tuple -> (line, col) of the key that holds the value


class YamlError(Exception):
    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic
        super().__init__(diagnostic.text())


def read_document(path: str | Path, display: str | None = None) -> Document:
    """Read and parse a YAML file; raise :class:`YamlError` with a located diagnostic on failure."""
    display = display or str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise YamlError(Diagnostic("NS006", f"cannot read file: {exc.strerror or exc}", file=display)) from None
    if len(raw) > MAX_BYTES:
        raise YamlError(Diagnostic("NS004", f"file is larger than {MAX_BYTES // (1024 * 1024)} MiB", file=display))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        msg = f"not UTF-8 text: byte 0x{raw[exc.start]:02x} (save the file as UTF-8)"
        raise YamlError(Diagnostic("NS006", msg, file=display, line=line, col=col)) from None
    return parse_document(text, display)


def parse_document(text: str, display: str = "<string>") -> Document:
    """Parse YAML text into a :class:`Document`."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.composer.ComposerError as exc:
        raise _error("NS001", exc, display) from None
    except yaml.YAMLError as exc:
        raise _error("NS001", exc, display) from None
    except RecursionError:
        raise YamlError(Diagnostic("NS003", "nested too deeply to read (hundreds of levels)", file=display)) from None
    if node is None:
        raise YamlError(Diagnostic("NS007", "the document is empty", file=display, line=1, col=1))
    _measure(node, display)
    builder = _Builder(display)
    data = builder.build(node, ())
    if not isinstance(data, dict):
        line, col = _mark(node)
        raise YamlError(Diagnostic("NS007", "the document must be a mapping (key: value lines)", file=display, line=line, col=col))
    return Document(display, data, builder.marks, builder.key_marks)


def _children(node: yaml.Node):
    """(path part, node to point at, child) for every child of a composed node."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            yield key_node.value, key_node, key_node
            yield key_node.value, key_node, value_node
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield i, item, item


def _measure(root: yaml.Node, display: str) -> None:
    """Refuse an alias bomb or deep nesting before building anything. An alias is the very node its
    anchor names, so the expanded size and the height of each distinct node are computed once; a
    document of a few lines that would expand to a billion values costs a few microseconds."""
    memo: dict[int, tuple[float, float]] = {}

    def measure(node: yaml.Node) -> tuple[float, float]:
        key = id(node)
        if key not in memo:
            memo[key] = (float("inf"), float("inf"))  # an alias inside its own anchor never ends
            size, height = 1.0, 0.0
            for _part, _at, child in _children(node):
                child_size, child_height = measure(child)
                size += child_size
                height = max(height, child_height)
            memo[key] = (size, height + 1)
        return memo[key]

    size, height = measure(root)
    if size <= MAX_NODES and height <= MAX_DEPTH + 1:
        return
    # walk down to where it happens: the smallest part too large, or the first value too deep
    too_big = size > MAX_NODES
    path: tuple = ()
    node = at = root
    seen = {id(root)}
    while True:
        for part, child_at, child in _children(node):
            child_size, child_height = measure(child)
            if too_big:
                deeper = child_size > MAX_NODES and id(child) not in seen
            else:
                deeper = len(path) <= MAX_DEPTH and len(path) + child_height > MAX_DEPTH + 1
            if deeper:
                path, node, at = path + (part,), child, child_at
                seen.add(id(child))
                break
        else:
            break
    where = _where(path)
    line, col = _mark(at)
    if too_big:
        count = "infinitely many" if size == float("inf") else f"{int(measure(node)[0]):,}"
        msg = f"expands to {count} values once aliases are expanded (at most {MAX_NODES:,})"
    else:
        msg = f"nested more than {MAX_DEPTH} levels deep"
    raise YamlError(Diagnostic("NS003", msg, path, where, display, line, col))


def _where(path: tuple, layer_names: dict | None = None) -> str:
    """A document path for people, naming the layer where its name was read already, cut short when a
    runaway nesting made it long."""
    known = None
    if layer_names and len(path) > 1 and path[0] == "layers" and path[1] in layer_names:
        known = {"layers": [{"name": layer_names.get(i)} for i in range(path[1] + 1)]}
    return describe_path(path[:12], known) + ("…" if len(path) > 12 else "")


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


#: PyYAML problems that have a likelier cause than their wording says, and a hint at it.
_HINTS = (
    ("cannot start any token", "tabs cannot indent YAML; use spaces"),
    ("expected <block end>", "check the indentation of this line"),
    ("mapping values are not allowed here", "a ':' inside a value needs quotes, or the line above lacks one"),
    ("could not find expected ':'", "a key needs a ':' after it, or a long value needs quotes"),
    ("expected a single document", "a spec is one YAML document: remove this '---' and what follows"),
)


def _error(code: str, exc: yaml.YAMLError, display: str) -> YamlError:
    problem_mark = getattr(exc, "problem_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    mark = problem_mark or context_mark
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    msg = str(problem)
    if context and context.startswith(("while parsing a", "while scanning a")):
        # "while parsing a flow sequence" -> "in a flow sequence started at line 24: ..."
        started = ""
        if context_mark is not None and problem_mark is not None and context_mark.line != problem_mark.line:
            started = f" started at line {context_mark.line + 1}"
        msg = f"in {context.split(' ', 2)[2]}{started}: {msg}"
    elif context:
        msg = f"{context}, {msg}"
    hint = next((h for pattern, h in _HINTS if pattern in msg), None)
    if hint:
        msg += f" ({hint})"
    line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    return YamlError(Diagnostic(code, msg, file=display, line=line, col=col))


class _Builder:
    """Turns composed YAML nodes into plain data, recording positions and enforcing the limits."""

    def __init__(self, display: str):
        self.display = display
        self.marks: dict = {}
        self.key_marks: dict = {}
        self.count = 0
        self.constructor = yaml.SafeLoader("")
        self.layer_names: dict[int, str] = {}  # layers[i] -> its name, once read

    def fail(self, code: str, msg: str, node: yaml.Node, path: tuple = ()) -> YamlError:
        line, col = _mark(node)
        where = _where(path, self.layer_names)
        return YamlError(Diagnostic(code, msg, path, where, file=self.display, line=line, col=col))

    def build(self, node: yaml.Node, path: tuple) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail("NS003", f"more than {MAX_NODES} values once aliases are expanded", node, path)
        if len(path) > 64:
            raise self.fail("NS003", "nested more than 64 levels deep", node, path)
        self.marks.setdefault(path, _mark(node))
        if isinstance(node, yaml.MappingNode):
            if node.tag != "tag:yaml.org,2002:map":
                raise self.fail("NS005", f"tag {node.tag!r} is not allowed in a spec", node, path)
            out: dict = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise self.fail("NS005", "merge keys ('<<') are not allowed in a spec; write the values out", key_node, path)
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.fail("NS005", "mapping keys must be plain strings", key_node, path)
                key = self.scalar(key_node, path)
                if not isinstance(key, (str, int)) or isinstance(key, bool):
                    raise self.fail("NS005", f"mapping key {key_node.value!r} must be a string", key_node, path)
                key = str(key)
                if key in out:
                    first = self.key_marks[path + (key,)]
                    raise self.fail("NS002", f"duplicate key '{key}' (first at line {first[0]})", key_node, path + (key,))
                self.key_marks[path + (key,)] = _mark(key_node)
                out[key] = self.build(value_node, path + (key,))
                if key == "name" and len(path) == 2 and path[0] == "layers" and isinstance(out[key], str):
                    self.layer_names[path[1]] = out[key]
            return out
        if isinstance(node, yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                raise self.fail("NS005", f"tag {node.tag!r} is not allowed in a spec", node, path)
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        return self.scalar(node, path)

    def scalar(self, node: yaml.ScalarNode, path: tuple) -> Any:
        if node.tag == _TIMESTAMP:
            return node.value  # `name: 2024-01-01` is text in a spec, not a date
        if node.tag not in _PLAIN_TAGS:
            raise self.fail("NS005", f"tag {node.tag!r} is not allowed in a spec (only plain YAML data)", node, path)
        if node.tag == "tag:yaml.org,2002:str" and node.style is None and _FLOAT_RE.match(node.value):
            return float(node.value)
        try:
            return self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError) as exc:
            raise self.fail("NS001", f"bad value {node.value!r}: {exc}", node, path) from None
