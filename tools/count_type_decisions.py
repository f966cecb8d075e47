"""Count the decisions on a type name made with a string outside ``netspec/spec/`` (issue 21's measure).

A *type-string decision* is a comparison (``==``, ``!=``, ``in``, ``not in``) between a name or attribute that
holds a kind (``type``, ``kind``, ``cls``, ``mode``, ``layer_type``, ``node_type``, ``class_name``) and a string
literal (or a tuple, list or set of them; or a module-level string constant: ``mode == POOL``) that names a kind of
network element: a spec layer type (``"conv2d"``), a kernel window mode (``"full"``, ``"depth"``, ``"pool"``), or
a class (a Keras layer or NIR node class, capitalized: ``"Dense"``, ``"IF"``). Such decisions belong on the
classes (``netspec/spec/layers/``, the runner's window kinds), where a kind says what it is once; every one
elsewhere is a place a new kind can be missed. Words that name no kind (a reset mode, a message between
processes) are not counted.

    python tools/count_type_decisions.py [ROOT]      # default: this checkout; prints the count and each site
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

NAMES = {"type", "kind", "cls", "mode", "layer_type", "node_type", "class_name"}


def _terminal(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _kind_names() -> set[str]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from netspec.spec import LAYER_TYPES

    return set(LAYER_TYPES) | {"full", "depth", "pool"}


KINDS = _kind_names()


def _strings(node: ast.AST, constants: dict[str, str]) -> list[str] | None:
    """The strings a literal (or a collection of them, or a string constant) holds; None if it is not one."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name) and node.id in constants:
        return [constants[node.id]]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and node.elts:
        parts = [_strings(e, constants) for e in node.elts]
        return None if any(p is None for p in parts) else [v for p in parts for v in p]
    return None


def _names_a_kind(values: list[str]) -> bool:
    return any(v in KINDS or v[:1].isupper() for v in values)


def decisions(path: Path) -> list[tuple[int, str, list[str]]]:
    tree = ast.parse(path.read_text(), str(path))
    constants = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
                 and isinstance(n.value.value, str) for t in n.targets if isinstance(t, ast.Name)}
    for n in tree.body:  # FULL, DEPTH, POOL = "full", "depth", "pool"
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Tuple) and isinstance(n.targets[0], ast.Tuple):
            for t, v in zip(n.targets[0].elts, n.value.elts):
                if isinstance(t, ast.Name) and isinstance(v, ast.Constant) and isinstance(v.value, str):
                    constants[t.id] = v.value
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare) or len(node.ops) != 1:
            continue
        if not isinstance(node.ops[0], (ast.Eq, ast.NotEq, ast.In, ast.NotIn)):
            continue
        left, right = node.left, node.comparators[0]
        for a, b in ((left, right), (right, left)):
            values = _strings(b, constants)
            if _terminal(a) in NAMES and values is not None and _names_a_kind(values):
                found.append((node.lineno, ast.unparse(node), values))
                break
    return found


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
    ours = foreign = 0
    for path in sorted((root / "netspec").rglob("*.py")):
        if "spec" in path.relative_to(root / "netspec").parts[:1]:
            continue
        for line, text, values in decisions(path):
            mine = any(v in KINDS for v in values)
            ours += mine
            foreign += not mine
            print(f"{path.relative_to(root)}:{line}: {text}" + ("" if mine else "   (a Keras or NIR class)"))
    print(f"{ours + foreign} type-string decisions outside netspec/spec/: {ours} on netspec's own kinds (spec layer "
          f"types, window modes), {foreign} on another format's classes (Keras layers, NIR nodes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
