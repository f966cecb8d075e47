"""Quantities in a spec: plain numbers or a number with a Brian2 unit name ('20 ms', '-50 mV').

Parsing never evaluates text: the string is split by a regular expression and the unit name is looked up
in Brian2's table of units.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

_QUANTITY_RE = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*$")

#: Dimension names used in the spec, as Brian2 writes them (``str(get_dimensions(unit))``).
TIME, VOLTAGE, FREQUENCY, DIMENSIONLESS = "s", "m^2 kg s^-3 A^-1", "s^-1", "1"
DIMENSION_WORDS = {TIME: "a time", VOLTAGE: "a voltage", FREQUENCY: "a frequency", DIMENSIONLESS: "a plain number"}


@dataclass(frozen=True)
class Quantity:
    """A parsed quantity.

    Attributes
    ----------
    value : float
        Magnitude in SI base units (seconds, volts, hertz), or the plain number.
    dim : str
        Dimension as Brian2 writes it: ``"s"`` for time, ``"1"`` for dimensionless, …
    text : str | float
        What the spec said, for writing it back unchanged.
    """

    value: float
    dim: str
    text: str | float

    @property
    def is_plain(self) -> bool:
        return self.dim == DIMENSIONLESS


@lru_cache(maxsize=1)
def _unit_table() -> dict:
    from brian2.units.allunits import all_units
    from brian2.units.fundamentalunits import get_dimensions

    table = {}
    for unit in all_units:
        table[str(unit)] = (float(unit), str(get_dimensions(unit)))
    # Brian2's names for the base units; str(second) is 's'
    for alias, name in (("second", "s"), ("volt", "V"), ("hertz", "Hz"), ("amp", "A"), ("siemens", "S")):
        if name in table:
            table.setdefault(alias, table[name])
    return table


#: Unit spellings people write that Brian2 does not know, and the Brian2 name.
_SPELLINGS = {"sec": "s", "secs": "s", "seconds": "s", "msec": "ms", "usec": "us", "volts": "V", "hertz": "Hz"}


class QuantityError(ValueError):
    pass


def parse_quantity(raw: object) -> Quantity:
    """Parse a spec value into a :class:`Quantity`; raise :class:`QuantityError` with the reason."""
    if isinstance(raw, bool):
        raise QuantityError(f"expected a number or a quantity such as '20 ms', got {raw!r}")
    if isinstance(raw, (int, float)):
        try:
            value = float(raw)
        except OverflowError:  # an integer with hundreds of digits
            value = math.inf
        if not math.isfinite(value):
            raise QuantityError(f"expected a finite number, got {str(raw)[:40]}")
        return Quantity(value, DIMENSIONLESS, raw)
    if not isinstance(raw, str):
        raise QuantityError(f"expected a number or a quantity such as '20 ms', got {raw!r}")
    match = _QUANTITY_RE.match(raw)
    if not match:
        raise QuantityError(f"cannot read {raw!r} as a quantity: write a number and a unit, e.g. '20 ms'")
    number, unit = float(match.group(1)), match.group(2)
    if not math.isfinite(number):
        raise QuantityError(f"{raw!r} is too large to be a number")
    if not unit:
        return Quantity(number, DIMENSIONLESS, raw)
    table = _unit_table()
    if unit not in table:
        near = [_SPELLINGS[unit]] if unit in _SPELLINGS else [u for u in table if u.lower() == unit.lower()]
        hint = "did you mean " + " or ".join(f"'{u}'" for u in sorted(near)) + "? " if near else ""
        raise QuantityError(f"unknown unit {unit!r} in {raw!r} ({hint}Brian2 unit names: ms, mV, Hz, nA, ...)")
    scale, dim = table[unit]
    if not math.isfinite(number * scale):
        raise QuantityError(f"{raw!r} is too large to be a number")
    return Quantity(number * scale, dim, raw)


def dimension_word(dim: str) -> str:
    return DIMENSION_WORDS.get(dim, f"a quantity of dimension {dim}")


def steps_in(duration: "Quantity | float", dt: "Quantity | float") -> int:
    """Whole time steps of ``dt`` in ``duration`` (rounded to the nearest): the one place a duration becomes
    steps (the simulation's length, refractory periods, delays, ``run --duration``)."""
    d = duration.value if isinstance(duration, Quantity) else float(duration)
    step = dt.value if isinstance(dt, Quantity) else float(dt)
    return int(round(d / step))
