"""Brian2's unique names through netspec's cache of taken names (netspec/brian/runner/names.py): the same
answers as Brian2's own find_name (which scans every live object) while objects are created and collected."""
import gc
import sys

import brian2.core.names as names_module

from netspec.brian.runner import names


def test_cached_names_are_brians_own_while_objects_come_and_go():
    from brian2 import NeuronGroup

    names.install()
    cached = names_module.find_name
    own = cached.original

    def same(name):
        assert cached(name) == own(name)
        return cached(name)

    groups = [NeuronGroup(1, "v : 1", name="netspec_names_probe*") for _ in range(3)]
    assert [g.name for g in groups] == ["netspec_names_probe", "netspec_names_probe_1", "netspec_names_probe_2"]
    assert same("netspec_names_probe*") == "netspec_names_probe_3"
    del groups[1]
    gc.collect()
    assert same("netspec_names_probe*") == "netspec_names_probe_1"  # the collected group's name is free again
    groups.append(NeuronGroup(1, "v : 1", name="netspec_names_probe*"))
    assert groups[-1].name == "netspec_names_probe_1"
    assert same("netspec_names_probe*") == "netspec_names_probe_3"
    assert same("netspec_names_probe_new*") == "netspec_names_probe_new"
    assert same("explicit_name") == "explicit_name"  # a name without '*' is used as given
    names.install()  # idempotent
    assert names_module.find_name is cached
    for module in ("brian2.devices.device", "brian2.groups.group"):  # the modules that call it
        assert sys.modules[module].find_name is cached
