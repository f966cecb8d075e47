"""The JSON Schema: the two copies agree, it is a valid 2020-12 schema, it documents every property,
its objects are closed, it matches the typed layers, and its errors come out best first without
if/then noise."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from netspec.spec import LAYER_TYPES, check_file, schema, schema_text

HERE = Path(__file__).parent
REPO = HERE.parent.parent
TOP = REPO / "schemas" / "netspec.schema.json"
PACKAGED = REPO / "netspec" / "schemas" / "netspec.schema.json"


def _deref(node: dict, root: dict) -> dict:
    """Follow ``$ref`` until a schema that documents itself (has a description) or has no ref."""
    while "$ref" in node and "description" not in node:
        target = root
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


def _property_schemas(node, root, where="#"):
    """(where, schema) of every property definition, skipping `if` conditions (they test a value, they
    do not define one)."""
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            yield f"{where}/properties/{name}", _deref(sub, root)
        for key, sub in node.items():
            if key != "if":
                yield from _property_schemas(sub, root, f"{where}/{key}")
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            yield from _property_schemas(sub, root, f"{where}/{i}")


def test_the_two_copies_are_identical():
    """schemas/ (where users and editors look) is a link to the copy inside the package: one file to edit."""
    assert TOP.is_symlink() and TOP.resolve() == PACKAGED.resolve()
    assert TOP.read_bytes() == PACKAGED.read_bytes()
    assert schema_text() == TOP.read_text(encoding="utf-8")


def test_it_is_a_valid_draft_2020_12_schema():
    Draft202012Validator.check_schema(schema())
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_every_property_has_a_description():
    root = schema()
    found = list(_property_schemas(root, root))
    assert len(found) > 80
    missing = [where for where, sub in found if not str(sub.get("description", "")).strip()]
    assert missing == []


def test_every_definition_has_a_description():
    defs = schema()["$defs"]
    # `common` only gathers property snippets that the layer kinds share, each with its own description
    assert [name for name, sub in defs.items() if name != "common" and not sub.get("description")] == []


def test_objects_are_closed():
    root = schema()
    open_objects = []

    def walk(node, where):
        if isinstance(node, dict):
            if "properties" in node and where != "#/$defs/layer" and "/if" not in where:
                if node.get("additionalProperties") is not False:
                    open_objects.append(where)
            for key, sub in node.items():
                walk(sub, f"{where}/{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{where}/{i}")

    walk(root, "#")
    # the generic layer only picks the kind by `type`; each kind's own schema is closed (checked above)
    assert open_objects == []


def test_layer_kinds_match_the_typed_layers():
    root = schema()
    enum = root["$defs"]["layer"]["properties"]["type"]["enum"]
    assert sorted(enum) == sorted(LAYER_TYPES)
    for rule in root["$defs"]["layer"]["allOf"]:
        kind = rule["if"]["properties"]["type"]["const"]
        assert rule["if"]["required"] == ["type"]  # without it, a layer lacking `type` matches every kind
        props = _deref(rule["then"], root)["properties"]
        cls = LAYER_TYPES[kind]
        fields = {f.name for f in dataclasses.fields(cls)} - {"inputs_written"}
        # every property the schema allows reaches the typed layer (none is silently dropped)
        assert set(props) - {"type"} <= fields, kind
        assert props["type"]["const"] == kind


def _spec_with_layer(tmp_path, layer_lines: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(
        "netspec: 1\nname: s\ninput: {shape: [4, 4, 1], range: [0, 1], encoding: analog}\n"
        "simulation: {dt: 1 ms, duration: 10 ms}\nlayers:\n  - {name: x, type: input}\n" + layer_lines
    )
    return path


@pytest.mark.parametrize("kind", sorted(LAYER_TYPES))
def test_a_typo_in_type_reports_the_enum_error_only(tmp_path, kind):
    typo = kind[:-1] if len(kind) > 4 else kind + "s"
    path = _spec_with_layer(tmp_path, f"  - name: y\n    type: {typo}\n    units: 3\n    pool_size: 2\n")
    (d,) = check_file(path)[1]
    assert (d.code, d.line, d.col, d.where) == ("NS104", 8, 5, "layer 'y' (layers[1]).type")
    assert d.message.endswith(f"did you mean '{kind}'?")


def test_a_layer_without_type_reports_that_only(tmp_path):
    path = _spec_with_layer(tmp_path, "  - name: y\n    units: 3\n")
    (d,) = check_file(path)[1]
    assert (d.code, d.line, d.col, d.message) == ("NS101", 7, 5, "missing required property 'type'")


def test_a_layer_that_is_not_a_mapping(tmp_path):
    path = _spec_with_layer(tmp_path, "  - dense\n")
    (d,) = check_file(path)[1]
    assert (d.code, d.line, d.col, d.where, d.message) == ("NS103", 7, 5, "layers[1]", "expected a mapping, got string 'dense'")


def test_two_missing_properties_are_both_named(tmp_path):
    path = _spec_with_layer(tmp_path, "  - name: y\n    type: conv2d\n    kernel: k\n    activation: relu\n")
    got = [(d.code, d.message) for d in check_file(path)[1]]
    assert got == [
        ("NS101", "missing required property 'filters'"),
        ("NS101", "missing required property 'kernel_size'"),
        ("NS101", "missing required property 'normalization'"),
    ]


def test_wrong_form_inside_a_pair_points_at_the_item(tmp_path):
    path = _spec_with_layer(tmp_path, "  - name: y\n    type: maxpool2d\n    pool_size: [2, 0]\n")
    (d,) = check_file(path)[1]
    assert (d.code, d.line, d.col, d.where, d.message) == ("NS105", 9, 20, "layer 'y' (layers[1]).pool_size[1]", "expected a number >= 1, got 0")


def test_integers_are_strict(tmp_path):
    path = _spec_with_layer(tmp_path, "  - name: y\n    type: maxpool2d\n    pool_size: 2.0\n")
    (d,) = check_file(path)[1]
    assert (d.code, d.where) == ("NS107", "layer 'y' (layers[1]).pool_size")
    assert d.message.endswith("Got number 2.0")


def test_schema_text_is_json_the_cli_can_print():
    assert json.loads(schema_text()) == schema()
