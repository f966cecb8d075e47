"""The CPU as ``/proc/cpuinfo`` describes it, read in one place for the two questions netspec asks of it:
which CPU a standalone binary is compiled for (``netspec.brian.build.cpu_signature``, part of the build key,
since the binary is compiled with ``-march=native``), and whether a binary compiled elsewhere runs here
(``netspec.run.cluster.cpu_compatibility``)."""
from __future__ import annotations

from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpuinfo_fields() -> dict[str, str] | None:
    """The first value of every field of ``/proc/cpuinfo`` (the first processor's), or None where it cannot
    be read (not Linux)."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def instruction_sets(fields: dict[str, str] | None) -> list[str] | None:
    """The CPU's instruction-set flags, sorted (``flags`` on x86, ``Features`` on ARM); None where unknown."""
    if not fields:
        return None
    line = fields.get("flags", fields.get("Features"))
    return None if line is None else sorted(set(line.split()))
