"""The Brian2 builder: a spec -> a readable Brian2 script (runtime or C++ standalone) and its simulation.

:func:`build` writes ``network.py`` and ``arrays.npz`` into a build folder keyed by content (and compiles the
standalone project under ``cpp/``); :func:`simulate` runs a build on inputs and returns a
:class:`SimResult`; :func:`build_command` is ``netspec build``. Modules: ``connectivity`` (index maps of
every layer kind), ``plan`` (what each layer becomes in the SNN), ``codegen`` and ``templates/``
(the script), ``runner`` (the code every script runs, copied into the build folder), ``build`` (the folder and
its key), ``simulate`` (running it).
"""
from .build import Build, BuildOptions, build, build_command, check_build, forget_brian_temp_files
from .simulate import SimResult, simulate

forget_brian_temp_files()

__all__ = ["Build", "BuildOptions", "build", "build_command", "check_build", "SimResult", "simulate"]
