"""The root of comfygen's error hierarchy, and the flow errors.

They live here because ``flow_library`` must not import ``tools``; ``comfygen.tools.errors`` re-exports
them with the rest of the hierarchy, and that is the module to import from.
"""

from __future__ import annotations

from typing import Any


class ComfyGenError(Exception):
    """Base class: an error the user or the calling model can act on."""

    def __init__(self, message: str, *, hint: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details or {}

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class FlowNotFound(ComfyGenError, KeyError):
    """No flow with that id in the shipped or user library."""


class FlowError(ComfyGenError, ValueError):
    """A flow file is malformed, or a flow cannot be rendered as asked."""


class FlowValidationError(FlowError):
    """A graph failed validation against a node schema.

    ``errors`` mirrors ComfyUI's own ``node_errors`` shape:
    ``{node_id: {"errors": [{type, message, details, extra_info}], "class_type": str, "dependent_outputs": [...]}}``
    and ``error`` mirrors ComfyUI's top-level ``{type, message, details, extra_info}``.
    """

    def __init__(self, message: str, *, error: dict[str, Any], node_errors: dict[str, Any], hint: str | None = None):
        super().__init__(message, hint=hint, details={"error": error, "node_errors": node_errors})
        self.error = error
        self.node_errors = node_errors
