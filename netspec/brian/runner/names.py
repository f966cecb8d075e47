"""Brian2's unique names, found in time that does not grow with the network.

Every Brian2 object whose name ends in ``*`` (every code object: ``<owner>_<kind>_codeobject*``) gets a unique
name from ``brian2.core.names.find_name``, which collects the names of *all* live objects at each call: a network
of N objects spends time in N^2 there (DenseNet121, some 20,000 objects: most of the generation of its standalone
project). :func:`install` gives Brian2 the same function with the set of taken names kept up to date from the
objects created and collected since the last call, so each call costs two set differences at C speed. The names
it returns are those Brian2's own would return.
"""
from __future__ import annotations

from typing import Any


class _TakenNames:
    """The names of the live ``Nameable`` objects, updated at each call from the ones created and collected."""

    def __init__(self) -> None:
        self.refs: set[Any] = set()  # weak references (Brian2's own) to the objects whose name is counted
        self.names: dict[Any, str] = {}
        self.count: dict[str, int] = {}

    def __call__(self) -> dict[str, int]:
        from brian2.core.names import Nameable

        live = Nameable.__instances__()
        for ref in self.refs.difference(live):  # collected since the last call
            self.refs.discard(ref)
            name = self.names.pop(ref)
            self.count[name] -= 1
            if not self.count[name]:
                del self.count[name]
        for ref in live.difference(self.refs):
            obj = ref()
            if obj is None or not hasattr(obj, "name"):  # not named yet (being built): looked at again next time
                continue
            self.refs.add(ref)
            self.names[ref] = obj.name
            self.count[obj.name] = self.count.get(obj.name, 0) + 1
        return self.count


def install() -> None:
    """Make Brian2's ``find_name`` (in the modules that call it) use :class:`_TakenNames`; idempotent."""
    import importlib

    # by module name: the attribute brian2.devices.device is the current device, not the module
    names_module, device_module, group_module = (importlib.import_module(f"brian2.{m}")
                                                 for m in ("core.names", "devices.device", "groups.group"))
    if getattr(names_module.find_name, "netspec", False):
        return
    original = names_module.find_name
    taken = _TakenNames()

    def find_name(name: str, names: Any = None) -> str:
        if names is None and name.endswith("*"):
            names = taken()
        return original(name, names)

    find_name.netspec = True
    find_name.original = original  # Brian2's own (tests compare the two)
    for module in (names_module, device_module, group_module):
        module.find_name = find_name
