"""Readable renderings of ComfyUI's error bodies (validation 400s and ``execution_error`` messages)."""

from __future__ import annotations

from typing import Any

from ..errors import ComfyUIExecutionError, ComfyUIValidationError

__all__ = ["render_node_error", "render_validation", "validation_error", "execution_error"]


def render_node_error(err: dict[str, Any]) -> str:
    """One entry of ``node_errors[id]["errors"]`` as a short sentence.

    ``value_smaller_than_min`` with details ``steps`` reads "steps 0 is below min 1".
    """
    etype = err.get("type", "")
    extra = err.get("extra_info") or {}
    name = extra.get("input_name") or err.get("details") or ""
    received = extra.get("received_value")
    cfg = extra.get("input_config")
    opts = cfg[1] if isinstance(cfg, list) and len(cfg) > 1 and isinstance(cfg[1], dict) else {}
    if etype == "value_smaller_than_min":
        return f"{name} {received!r} is below min {opts.get('min', '?')}"
    if etype == "value_bigger_than_max":
        return f"{name} {received!r} is above max {opts.get('max', '?')}"
    if etype == "value_not_in_list":
        choices = cfg[0] if isinstance(cfg, list) and cfg and isinstance(cfg[0], list) else opts.get("options")
        if not choices:  # long lists come without input_config: ComfyUI's details say "not in (list of length 42)"
            details = err.get("details")
            return f"{name} {received!r} is not an allowed value" + (f" ({details})" if details else "")
        shown = ", ".join(repr(c) for c in choices[:8])
        more = "" if len(choices) <= 8 else f", ... ({len(choices)} choices)"
        return f"{name} {received!r} is not one of [{shown}{more}]"
    if etype == "required_input_missing":
        return f"required input {name!r} is missing"
    if etype == "invalid_input_type":
        return f"{name} {received!r}: {err.get('message', '')}"
    if etype == "return_type_mismatch":
        return f"{name}: {err.get('details') or err.get('message', '')}"
    msg = err.get("message", etype)
    details = err.get("details")
    return f"{msg}: {details}" if details else str(msg)


def render_validation(error: dict[str, Any], node_errors: dict[str, Any]) -> str:
    """A whole 400 body as text: the top-level message, then one line per node error."""
    lines: list[str] = []
    for node_id, entry in node_errors.items():
        cls = entry.get("class_type", "?")
        for err in entry.get("errors") or []:
            lines.append(f"node {node_id} {cls}: {render_node_error(err)}")
    head = str(error.get("message") or error.get("type") or "invalid prompt")
    details = error.get("details")
    if not lines and details:
        head = f"{head} ({details})"
    return head if not lines else head + ": " + "; ".join(lines)


def validation_error(body: dict[str, Any], *, url: str | None) -> ComfyUIValidationError:
    error = body.get("error") if isinstance(body.get("error"), dict) else {"type": "invalid_prompt",
                                                                          "message": str(body.get("error")),
                                                                          "details": "", "extra_info": {}}
    node_errors = body.get("node_errors") or {}
    hint = "Fix the inputs named above (values, choices, links) and submit again."
    missing = _missing_node_class(error)
    if missing is not None:
        hint = (f"Install the custom node pack that provides {missing} on the ComfyUI server (e.g. with "
                "ComfyUI-Manager) and restart it, or use a flow without it.") if missing else (
                "A node has no class_type: the workflow is corrupt, or was saved with a custom node that is missing.")
    elif any(e.get("type") == "value_not_in_list" and (e.get("extra_info") or {}).get("input_name", "").endswith(
            ("ckpt_name", "lora_name", "vae_name", "unet_name", "clip_name", "model_name"))
            for ne in node_errors.values() for e in ne.get("errors") or []):
        hint = "A model file is not installed on this server: pick one from its model list or install the file."
    return ComfyUIValidationError(render_validation(error, node_errors), error=error, node_errors=node_errors,
                                  url=url, hint=hint)


def _missing_node_class(error: dict[str, Any]) -> str | None:
    """The node class a server does not have ('' when the node named none), or None for other errors.

    0.3.64: ``invalid_prompt`` "Cannot execute because node X does not exist."; 0.36+: ``missing_node_type``
    "Node 'title' not found. The custom node may not be installed." with ``extra_info.class_type``.
    """
    message = str(error.get("message", ""))
    if error.get("type") == "missing_node_type":
        return str((error.get("extra_info") or {}).get("class_type") or "")
    if error.get("type") == "invalid_prompt" and "does not exist" in message:
        return message.removeprefix("Cannot execute because node ").removesuffix(" does not exist.")
    return None


def execution_error(data: dict[str, Any], *, url: str | None, tail: int = 3) -> ComfyUIExecutionError:
    """``execution_error`` data -> an error naming node, class, exception and the traceback's last lines."""
    node = data.get("node_id") or data.get("node")
    cls = data.get("node_type") or data.get("class_type")
    etype = data.get("exception_type", "Exception")
    emsg = str(data.get("exception_message", "")).strip()
    tb = [str(t).rstrip() for t in data.get("traceback") or [] if str(t).strip() and str(t).strip() != "..."]
    last = "\n".join(tb[-tail:])
    message = f"node {node} {cls} failed: {etype}: {emsg}"
    if last:
        message += "\n" + last
    return ComfyUIExecutionError(message, url=url, details=dict(data),
                                 hint="Check the node's inputs and the model files it loads; the server log has "
                                      "the full traceback.")
