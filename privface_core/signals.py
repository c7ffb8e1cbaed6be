"""The process keeps its own signal handling when native code is loaded that would take it.

Concrete's compiler library installs C-level handlers for SIGINT, SIGTERM and SIGQUIT when it is imported, and
its runtime more when it starts: Ctrl-C then ended a command with status 0 or a crash and no message, was
ignored by a server still loading its circuits, and an app's handlers (Streamlit's, uvicorn's) were gone.
`kept()` puts back, after its block, the handlers these signals had before it (Python's own, or a framework's),
from any thread: signal dispositions belong to the process.
"""

from __future__ import annotations

import ctypes
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["INTERRUPT_SIGNALS", "kept"]

INTERRUPT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGQUIT") if hasattr(signal, name))
_ACTION_BYTES = 512  # larger than any libc's struct sigaction: the bytes are read and written back as they are


def _libc_sigaction():
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sigaction
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
    function.restype = ctypes.c_int
    return function


_sigaction = _libc_sigaction()


@contextmanager
def kept(signals: tuple[int, ...] = INTERRUPT_SIGNALS) -> Iterator[None]:
    """Whatever the block installs for `signals` is undone when it ends: the earlier handlers are back."""
    if _sigaction is not None:
        saved = []
        for sig in signals:
            action = ctypes.create_string_buffer(_ACTION_BYTES)
            if _sigaction(sig, None, action) == 0:
                saved.append((sig, action))
        try:
            yield
        finally:
            for sig, action in saved:
                _sigaction(sig, action, None)
        return
    # Elsewhere: what Python believes is installed, installed again (signal.signal: main thread only).
    try:
        yield
    finally:
        if threading.current_thread() is threading.main_thread():
            for sig in signals:
                handler = signal.getsignal(sig)
                if handler is not None:
                    signal.signal(sig, handler)
