"""Calling user callbacks (progress, events, records) that may be sync or async."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


async def call(cb: Callable[..., Any], *args: Any) -> Any:
    """Call ``cb(*args)``, awaiting it when it returns an awaitable; what it raises reaches the caller.

    For hooks the caller depends on (``on_dispatch`` records where a run lives); observers use :func:`notify`.
    """
    result = cb(*args)
    if inspect.isawaitable(result):
        return await result
    return result


async def notify(cb: Callable[..., Any] | None, *args: Any, what: str = "callback") -> None:
    """Call ``cb(*args)``, awaiting it when it returns an awaitable.

    A callback that raises is logged and ignored: a broken progress display must never break the run.
    """
    if cb is None:
        return
    try:
        await call(cb, *args)
    except Exception:
        log.exception("%s failed", what)
