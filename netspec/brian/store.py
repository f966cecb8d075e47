"""The build store: where builds live, how they are checked, locked, installed and removed.

Every build lives in a folder of its own, ``.<name>.builds/<key prefix>/`` next to the build folder, which is
never written again once complete: it is generated (and compiled) in a temporary sibling and renamed into
place in one step (:func:`install`), so an interrupted build never looks complete. The build folder itself
(``build/<name>``) is a symbolic link to the latest build, swapped atomically (:func:`link`). A process using a
build holds a shared lock on it (:func:`hold`), and older builds are removed only when no process holds theirs
(:func:`prune`); replacing a build needs an exclusive lock (:func:`exclusive`). ``build.json`` records the key
and the size, modification time and sha256 of every file that runs; :func:`check_build` compares them.

Local builds (:func:`netspec.brian.build.build`) and cluster workers (:mod:`netspec.run.cluster`, which installs
a received build with :func:`adopt` and serializes a machine's builds with :func:`machine_lock`) share this store.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
from pathlib import Path

from ..errors import NetspecError
from ..hashing import file_sha256
from . import codegen

KEY_FILE = "build.json"
#: The runner package in the build folder, which ``network.py`` imports.
RUNNER_DIR = codegen.RUNNER_MODULE


# -- integrity ---------------------------------------------------------------------------------------
def content_files(folder: Path, standalone: bool) -> list[str]:
    """The files of a build that run, relative to its folder."""
    files = ["network.py", "arrays.npz", *(f"{RUNNER_DIR}/{name}" for name, _ in codegen.runner_files())]
    if standalone:
        files += ["cpp/main", "cpp/manifest.json"]
        static = folder / "cpp" / "static_arrays"
        if static.is_dir():
            files += sorted(f"cpp/static_arrays/{p.name}" for p in static.iterdir() if p.is_file())
    return files


def fingerprints(folder: Path, standalone: bool) -> dict[str, dict]:
    out = {}
    for rel in content_files(folder, standalone):
        st = (folder / rel).stat()
        out[rel] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": file_sha256(folder / rel)}
    return out


def check_build(folder: str | Path, key: str | None = None, full: bool = False) -> str | None:
    """Why the build in ``folder`` cannot be used as it is, or None when it is intact.

    Every file recorded in ``build.json`` must have its recorded size; with ``full`` (or when its modification
    time changed) its sha256 is compared too. ``key``, when given, must be the recorded key.
    """
    folder = Path(folder)
    try:
        info = json.loads((folder / KEY_FILE).read_text())
    except (OSError, ValueError):
        return f"{KEY_FILE} is missing or unreadable (an unfinished or damaged build)"
    files = info.get("files") if isinstance(info, dict) else None
    if not isinstance(files, dict) or not files:
        return f"{KEY_FILE} records no file hashes (made by an older netspec)"
    if key is not None and info.get("key") != key:
        return "it was built from another spec or with other options"
    for rel, rec in files.items():
        path = folder / rel
        try:
            st = path.stat()
        except OSError:
            return f"{rel} is missing"
        if st.st_size != rec.get("size"):
            return f"{rel} changed since the build completed (size {rec.get('size')} -> {st.st_size} bytes)"
        if full or st.st_mtime_ns != rec.get("mtime_ns"):
            try:
                digest = file_sha256(path)
            except OSError as exc:
                return f"{rel} cannot be read: {exc.strerror or exc}"
            if digest != rec.get("sha256"):
                return f"{rel} changed since the build completed (its sha256 differs)"
    return None


# -- the folder of one build -------------------------------------------------------------------------
def store_of(folder: Path) -> Path:
    """Where the builds behind the build folder ``folder`` live."""
    return folder.parent / f".{folder.name}.builds"


#: Build folders this process uses -> the open lock file holding a shared lock on it (until the process ends).
HELD: dict[str, int] = {}


def hold(home: Path) -> bool:
    """Take a shared lock on the build ``home`` for the rest of this process; False if it is gone."""
    key = str(home.resolve())
    if key in HELD:
        os.close(HELD.pop(key))
    try:
        fd = os.open(home / ".lock", os.O_RDONLY)
    except OSError:
        return False
    fcntl.flock(fd, fcntl.LOCK_SH)
    if not (home / ".lock").exists():  # removed while we waited for the lock
        os.close(fd)
        return False
    HELD[key] = fd
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def prune(store: Path, keep: Path) -> None:
    """Remove the builds in ``store`` other than ``keep`` that no process uses, and leftovers of
    interrupted builds whose process is gone."""
    try:
        entries = list(store.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name == keep.name or not entry.is_dir() or entry.is_symlink():
            continue
        if entry.name.startswith(("tmp-", "trash-")):
            try:
                pid = int(entry.name.split("-")[1])
            except (IndexError, ValueError):
                pid = 0
            if pid != os.getpid() and not _pid_alive(pid):
                shutil.rmtree(entry, ignore_errors=True)
            continue
        try:
            fd = os.open(entry / ".lock", os.O_RDONLY)
        except OSError:
            shutil.rmtree(entry, ignore_errors=True)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # in use by a running process
            os.close(fd)
            continue
        try:
            trash = store / f"trash-{os.getpid()}-{entry.name}"
            os.rename(entry, trash)
            (trash / ".lock").unlink(missing_ok=True)
        except OSError:
            trash = None
        finally:
            os.close(fd)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)


def _in_use(home: Path) -> str:
    """The refusal to replace ``home`` (``build --force``) while another process uses it."""
    return (f"build: {home} is in use by a running netspec process; --force can rebuild it once that ends "
            "(it is never rewritten while in use)")


@contextlib.contextmanager
def exclusive(home: Path):
    """An exclusive lock on the complete build ``home`` (this process's own shared lock let go first); a
    NetspecError if another process uses it. Nothing is held when ``home`` has no lock file."""
    held = HELD.pop(str(home.resolve()), None)
    if held is not None:
        os.close(held)
    try:
        fd = os.open(home / ".lock", os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise NetspecError(_in_use(home), 2) from None
        yield
    finally:
        os.close(fd)


def install(tmp: Path, home: Path) -> None:
    """Rename the complete build ``tmp`` to ``home`` in one step (an older ``home``, which no process may be
    using, is moved aside first)."""
    try:
        os.rename(tmp, home)
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    trash = home.parent / f"trash-{os.getpid()}-{home.name}"
    with exclusive(home):
        os.rename(home, trash)
        os.rename(tmp, home)
    shutil.rmtree(trash, ignore_errors=True)


def adopt(received: Path, out_dir: str | Path, key: str) -> None:
    """Install ``received``, a complete build folder of ``key`` made on another machine (a cluster worker gets
    the submitting machine's), as this machine's build of ``key`` behind ``out_dir``; :func:`build` then
    checks its file hashes like any other and reuses it, or builds again with the reason. ``received`` is
    moved (it must be on the same file system as ``out_dir``)."""
    folder = Path(out_dir)
    store = store_of(folder)
    store.mkdir(parents=True, exist_ok=True)
    (received / ".lock").touch()
    os.chmod(received, 0o755)
    install(received, store / key[:16])


def link(folder: Path, home: Path) -> None:
    """Make ``folder`` a symbolic link to ``home``, replacing the previous link in one step."""
    if folder.is_symlink() or not folder.exists():
        pass
    elif folder.is_dir() and ((folder / KEY_FILE).exists() or not any(folder.iterdir())):
        # a build folder of an older netspec, or an empty folder: replaced by the link
        trash = home.parent / f"trash-{os.getpid()}-old"
        os.rename(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        raise NetspecError(f"build: {folder} exists and is not a netspec build folder; give another output folder", 2)
    link = folder.parent / f".{folder.name}.link-{os.getpid()}"
    link.unlink(missing_ok=True)
    os.symlink(os.path.relpath(home, folder.parent), link)
    os.replace(link, folder)


@contextlib.contextmanager
def machine_lock(path: Path):
    """An exclusive lock on the file ``path`` (created if need be): the other processes of this machine wait."""
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling renamed into place: readers see all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
