"""Output paths checked before any work starts: no command writes over one of its own inputs, into a
folder it cannot write, or onto a folder where a file belongs.

:func:`check_outputs` is shared by ``export`` and ``run``. Paths are compared resolved (symbolic links
followed) and, where both exist, with :func:`os.path.samefile` (hard links); nothing is created or left
behind by the checks.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from .errors import NetspecError


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same file: equal once resolved, or the same inode (hard links)."""
    try:
        if a.resolve() == b.resolve():
            return True
    except (OSError, RuntimeError):  # a symlink loop
        pass
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _existing_ancestor(path: Path) -> Path:
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def check_file_output(path: Path, label: str) -> None:
    """A file can be written at ``path``: not a folder, not a device; an existing file writable; else its
    nearest existing folder writable (folders in between are made when it is written)."""
    if path.is_dir():
        raise NetspecError(f"{label} {path}: is a folder; give a file name", 2)
    if path.exists():
        if not path.is_file():
            raise NetspecError(f"{label} {path}: is not a regular file", 2)
        if not os.access(path, os.W_OK):
            raise NetspecError(f"{label} {path}: the file is not writable", 2)
        folder = path.absolute().parent
    else:
        folder = _existing_ancestor(path)
    if not folder.is_dir():
        raise NetspecError(f"{label} {path}: {folder} is not a folder", 2)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise NetspecError(f"{label} {path}: the folder {folder} is not writable", 2)


def check_folder_output(path: Path, label: str) -> None:
    """A folder can be made (or written) at ``path``."""
    if path.exists() and not path.is_dir():
        raise NetspecError(f"{label} {path}: exists and is not a folder", 2)
    folder = path if path.is_dir() else _existing_ancestor(path)
    if not folder.is_dir():
        raise NetspecError(f"{label} {path}: {folder} is not a folder", 2)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise NetspecError(f"{label} {path}: the folder {folder} is not writable", 2)


def check_outputs(outputs: Mapping[str, Path | None], inputs: Mapping[str, Path | None],
                  folders: Mapping[str, Path | None] | None = None) -> None:
    """Refuse, before any work, outputs that would overwrite an input or each other, or cannot be written.

    Parameters
    ----------
    outputs : mapping
        What each output file is called in messages (``"--report"``) -> its path (None: not written).
    inputs : mapping
        What each input is (``"the data"``, ``"the model"``) -> its path (None: none).
    folders : mapping, optional
        Output folders (``"--plots"``): no input may be one of them, and each can be made and written (the
        files written inside them are given in ``outputs``).

    Raises
    ------
    NetspecError
        Exit code 2, one line naming both sides: ``--report d.npz: is the data (d.npz); ...``.
    """
    outs = {k: Path(v) for k, v in outputs.items() if v is not None}
    dirs = {k: Path(v) for k, v in (folders or {}).items() if v is not None}
    ins = {k: Path(v) for k, v in inputs.items() if v is not None}
    for label, out in outs.items():
        for what, src in ins.items():
            if same_file(out, src):
                raise NetspecError(f"{label} {out}: is {what} ({src}); a command never writes over its own input", 2)
    for label, out in dirs.items():
        for what, src in ins.items():
            if same_file(out, src):
                raise NetspecError(f"{label} {out}: is {what} ({src}); a command never writes over its own input", 2)
    named = list(outs.items()) + list(dirs.items())
    for i, (label, out) in enumerate(named):
        for other, path in named[i + 1:]:
            if same_file(out, path):
                raise NetspecError(f"{label} {out}: is also {other} ({path}); give each output its own path", 2)
    for label, out in outs.items():
        check_file_output(out, label)
    for label, out in dirs.items():
        check_folder_output(out, label)


def check_export_outputs(model: str | Path, spec: str | Path, calibration: str | Path) -> None:
    """``netspec export``: the spec and its sidecar ``.npz`` are neither the model nor a calibration file
    (nor each other), and can be written."""
    from .datasets import data_files

    spec = Path(spec)
    inputs: dict[str, Path | None] = {"the model": Path(model)}
    for i, f in enumerate(data_files(calibration, prefer=("train", "t10k"))):
        inputs["the calibration data" if i == 0 else "the calibration labels"] = f
    check_outputs({"-o": spec, "-o (its weights)": spec.with_suffix(".npz")}, inputs)
