"""Writing a spec back to YAML: block style, short lists of numbers inline, a schema pointer first."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SCHEMA_COMMENT = "# yaml-language-server: $schema={}\n"


class _Dumper(yaml.SafeDumper):
    pass


def _list(dumper: yaml.SafeDumper, data: list):
    flow = all(not isinstance(v, (dict,)) for v in data) and len(data) <= 64
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _list)
_Dumper.add_representer(tuple, _list)


def spec_yaml(data: dict[str, Any], schema_ref: str | None = "../schemas/netspec.schema.json") -> str:
    """YAML text of spec data (as :meth:`Spec.to_yaml` gives it)."""
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110, default_flow_style=False)
    return (SCHEMA_COMMENT.format(schema_ref) if schema_ref else "") + body


def dump_spec(data: dict[str, Any], path: str | Path, schema_ref: str | None = "../schemas/netspec.schema.json") -> None:
    Path(path).write_text(spec_yaml(data, schema_ref), encoding="utf-8")
