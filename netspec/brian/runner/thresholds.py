"""Standalone thresholds without a branch per neuron: Brian2's threshold template, with the loop that lists the
neurons that fire replaced.

Brian2's C++ threshold tests every neuron in one loop and appends the ones that fire (``if (_cond)
spikespace[_count++] = _idx``): at the few to tens of per cent of neurons that fire per step in a converted
network, that branch is mispredicted about as often as a neuron fires, and the loop costs ~2 ns per neuron (VGG-16,
batch 8: 12 % of the simulation). Here the conditions of a block of neurons are computed first (Brian2's own
vector code, in a loop without branches), then ``netspec::pack_indices`` (``netspec_kernels.h``) appends the
indices of those that fire, eight at a time. The spike list is the same, in the same (ascending) order, and the
condition code is Brian2's, evaluated in the same order (so random numbers, as in a poisson input's ``rand() <
p``, are drawn as before). Thresholds with refractoriness (which also write ``not_refractory`` and
``lastspike``) keep Brian2's loop.

:func:`use_packed_thresholds` gives every threshold of a network this template; only for the C++ standalone device.
"""
from __future__ import annotations

from typing import Any

from .operations import HEADER

#: Brian2's ``threshold.cpp`` (cpp_standalone), with the loop of a threshold without refractoriness replaced.
TEMPLATE = """{# USES_VARIABLES { N } #}
{% extends 'common_group.cpp' %}
{% block extra_headers %}
#include "%HEADER%"
{% endblock %}
{% block maincode %}
    //// MAIN CODE ////////////
    // scalar code
    const int _vectorisation_idx = -1;
    {{scalar_code|autoindent}}

    {% set _eventspace = get_array_name(eventspace_variable) %}

    long _count = 0;
    {% if _uses_refractory %}
    for(size_t _idx=0; _idx<N; _idx++)
    {
        const size_t _vectorisation_idx = _idx;
        {{vector_code|autoindent}}
        if(_cond) {
            {{_eventspace}}[_count++] = _idx;
            {{not_refractory}}[_idx] = false;
            {{lastspike}}[_idx] = {{t}};
        }
    }
    {% else %}
    // netspec: the conditions of a block of neurons (no branch), then the indices of those that fire, packed
    char _cond_block[1024];
    for(size_t _start=0; _start<N; _start+=1024)
    {
        const size_t _n_block = N - _start < 1024 ? N - _start : 1024;
        for(size_t _k=0; _k<_n_block; _k++)
        {
            const size_t _idx = _start + _k;
            const size_t _vectorisation_idx = _idx;
            {{vector_code|autoindent}}
            _cond_block[_k] = _cond;
        }
        _count = netspec::pack_indices(_cond_block, _n_block, _start, {{_eventspace}}, _count);
    }
    {% endif %}
    {{_eventspace}}[N] = _count;
{% endblock %}

{% block after_code %}
{% set _eventspace = get_array_name(eventspace_variable) %}
{{_eventspace}}[N] = 0;  // Note that this is not an off-by-1-error: the array has N+1 elements
{% endblock %}
""".replace("%HEADER%", HEADER)

_code_object_class = None


def packed_threshold_class() -> type:
    """Brian2's standalone code object class, its templates Brian2's except ``threshold`` (:data:`TEMPLATE`)."""
    global _code_object_class  # one class per process: Brian2 compares code object classes by identity
    if _code_object_class is None:
        from brian2.codegen.templates import LazyTemplateLoader
        from brian2.devices.cpp_standalone.codeobject import CPPStandaloneCodeObject
        from jinja2 import ChoiceLoader, DictLoader

        templater = CPPStandaloneCodeObject.templater.derive("brian2.devices.cpp_standalone")
        templater.env.loader = ChoiceLoader([DictLoader({"threshold.cpp": TEMPLATE}), templater.env.loader])
        templater.templates = LazyTemplateLoader(templater.env, templater.extension)
        _code_object_class = type("PackedThresholdCodeObject", (CPPStandaloneCodeObject,), {"templater": templater})
    return _code_object_class


def use_packed_thresholds(net: Any) -> int:
    """Give every threshold of ``net`` (Brian2 ``Thresholder``\\ s) the packed template; returns how many."""
    from brian2.groups.neurongroup import Thresholder

    cls = packed_threshold_class()
    found = 0
    for obj in net.objects:
        for contained in [obj, *getattr(obj, "contained_objects", [])]:
            if isinstance(contained, Thresholder):
                contained.codeobj_class = cls
                found += 1
    return found


__all__ = ["TEMPLATE", "packed_threshold_class", "use_packed_thresholds"]
