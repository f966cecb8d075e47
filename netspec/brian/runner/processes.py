"""Process helpers shared by the runner and netspec (standard library only): a child never outlives its parent."""
from __future__ import annotations

import signal
import sys


def die_with_parent(signum: int = signal.SIGKILL) -> None:  # pragma: no cover - runs in a child between fork and exec
    """Ask the kernel to send ``signum`` (default SIGKILL) to this process when its parent dies (Linux; elsewhere
    nothing): a binary, a worker or a compiler never outlives the process that started it."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signum))  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
