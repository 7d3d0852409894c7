"""SIGTERM behaves like Ctrl-C in comfygen's long commands.

A service manager, ``timeout``, or a closing terminal sends SIGTERM, and Python's default is to die on
the spot: the run stayed "running" in the store and ComfyUI went on working. With
:func:`sigterm_as_ctrl_c` installed, SIGTERM raises SIGINT instead, so ``asyncio.run`` cancels the
command's task exactly as for Ctrl-C: the ComfyUI client interrupts the running prompt and removes the
queued ones, and each run is recorded ``cancelled``.

``COMFYGEN_ON_SIGTERM=leave`` (or ``comfygen --on-sigterm leave``) keeps the old way on purpose: the
process ends at once, ComfyUI finishes what it was given, and the runs stay "running" until
``comfygen runs recover`` marks them interrupted (``runs show --resume ID`` then finishes them).
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

ENV = "COMFYGEN_ON_SIGTERM"
MODES = ("cancel", "leave")


def sigterm_as_ctrl_c(mode: str | None = None) -> str:
    """Install the SIGTERM policy ``mode`` (default: ``$COMFYGEN_ON_SIGTERM``, else 'cancel'); return it."""
    mode = (mode or os.environ.get(ENV) or "cancel").strip().lower()
    if mode not in MODES:
        from .errors import ConfigError

        raise ConfigError(f"{ENV}={mode!r} is not a SIGTERM policy", hint="use 'cancel' (default) or 'leave'")
    if threading.current_thread() is not threading.main_thread():
        return mode  # signal handlers can only be set from the main thread
    if mode == "leave":
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    else:
        signal.signal(signal.SIGTERM, _as_sigint)
    return mode


def _as_sigint(signum: int, frame: Any) -> None:
    signal.raise_signal(signal.SIGINT)  # whatever handles Ctrl-C now (asyncio.run's, or KeyboardInterrupt)
