"""One small error hierarchy for comfygen (import errors from here).

Every error a caller (or an LLM) can fix says what to change. ``hint`` is the "what to do next"
part; ``str(err)`` is message + hint, ready to show.
"""

from __future__ import annotations

from typing import Any

from ..flow_library.errors import ComfyGenError, FlowError, FlowNotFound, FlowValidationError

__all__ = [
    "ComfyGenError", "ConfigError", "FlowNotFound", "FlowError", "FlowValidationError", "GuardError",
    "ComfyUIError", "ComfyUIUnavailable", "ComfyUIValidationError", "ComfyUIExecutionError", "Cancelled",
    "DeadlineExceeded", "ScoringError", "WeightsMissing", "PlannerError", "StoreError",
]


class ConfigError(ComfyGenError):
    """Bad or missing configuration (settings, env vars, config files)."""


class GuardError(ComfyGenError):
    """A graph or parameter was refused by a safety bound (sizes, steps, node allowlist, paths)."""


class ComfyUIError(ComfyGenError):
    """Base for problems talking to, or reported by, a ComfyUI server."""

    def __init__(self, message: str, *, url: str | None = None, hint: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message, hint=hint, details=details)
        self.url = url


class ComfyUIUnavailable(ComfyUIError):
    """The server could not be reached (down, refused, timed out)."""


class ComfyUIValidationError(ComfyUIError):
    """ComfyUI refused a prompt (HTTP 400). Keeps ComfyUI's ``error`` and ``node_errors`` intact."""

    def __init__(self, message: str, *, error: dict[str, Any], node_errors: dict[str, Any], url: str | None = None,
                 hint: str | None = None):
        super().__init__(message, url=url, hint=hint, details={"error": error, "node_errors": node_errors})
        self.error = error
        self.node_errors = node_errors


class ComfyUIExecutionError(ComfyUIError):
    """A prompt failed while running (``execution_error`` on the websocket)."""


class Cancelled(ComfyGenError):
    """The run was interrupted or cancelled."""


class DeadlineExceeded(ComfyGenError):
    """A run did not finish within its overall deadline (it may still finish on the server)."""


class ScoringError(ComfyGenError):
    """A scorer could not be built or could not score."""


class WeightsMissing(ScoringError):
    """Model weights are not available locally (and cannot or may not be downloaded)."""


class PlannerError(ComfyGenError):
    """The planner could not be trained, loaded or queried."""


class StoreError(ComfyGenError):
    """The run store could not read or write (disk full, corrupt file, unknown run id)."""
