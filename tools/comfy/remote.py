"""What a ComfyUI server offers, and what it knows about one prompt (mixed into :class:`ComfyClient`).

ComfyUI changed under its API clients after 0.3.64. What matters here, detected rather than assumed:

- the version, from ``/system_stats`` (``system.comfyui_version``);
- the **jobs API** (newer servers): ``GET /api/jobs/{id}`` says in one call whether the server knows a
  prompt and what became of it (``pending``, ``in_progress``, ``completed``, ``failed``, ``cancelled``, or
  404), and ``POST /api/jobs/{id}/cancel`` dequeues or interrupts it atomically. Its presence is probed
  once with ``GET /api/jobs?limit=1``; 0.3.64 answers 404 there;
- the server's feature flags, from its ``feature_flags`` answer on the websocket (kept by the client).

Without the jobs API the same questions are answered the 0.3.64 way: ``/history/{id}``, then ``/queue``,
then ``/history/{id}`` again (ComfyUI moves a prompt from "running" to history atomically, so asking the
queue first and history last cannot miss a prompt that finishes in between); cancelling is
``POST /queue {"delete": [id]}`` plus ``POST /interrupt {"prompt_id": id}``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..errors import ComfyUIError, DeadlineExceeded

__all__ = ["ServerInfo", "PromptState", "RemoteMixin", "PromptVanished", "parse_version", "canonical_prompt_id"]

log = logging.getLogger(__name__)

PromptState = Literal["pending", "running", "done", "unknown"]
_JOB_STATES: dict[str, PromptState] = {"pending": "pending", "in_progress": "running", "completed": "done",
                                       "failed": "done", "cancelled": "done"}


class PromptVanished(ComfyUIError):
    """The server is up but no longer knows the prompt: not queued, not running, not in its history."""


def parse_version(text: str | None) -> tuple[int, ...]:
    """``"0.38.1"`` -> ``(0, 38, 1)``; ``()`` when unknown."""
    if not text:
        return ()
    m = re.match(r"v?(\d+(?:\.\d+)*)", str(text).strip())
    return tuple(int(p) for p in m.group(1).split(".")) if m else ()


class ServerInfo(BaseModel):
    """What one ComfyUI server offers (detected by :meth:`RemoteMixin.server_info`)."""

    url: str
    version: str | None = Field(None, description="system.comfyui_version of /system_stats")
    os: str | None = Field(None, description="system.os ('posix' on 0.3.64, sys.platform e.g. 'linux' later)")
    jobs_api: bool = Field(False, description="The server offers /api/jobs")
    features: dict[str, Any] = Field(default_factory=dict, description="Feature flags the server sent on the socket")

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return parse_version(self.version)

    def describe(self) -> str:
        extras = ["jobs API" if self.jobs_api else "no jobs API"]
        if self.features:
            extras.append("features " + ", ".join(sorted(k for k, v in self.features.items() if v)))
        return f"ComfyUI {self.version or '(version unknown)'} at {self.url} ({'; '.join(extras)})"


def canonical_prompt_id(pid: str | None) -> str:
    """A prompt id as newer ComfyUI servers require it: a UUID in canonical lowercase hyphenated form."""
    if pid is None:
        return str(uuid.uuid4())
    try:
        return str(uuid.UUID(str(pid)))
    except ValueError:
        raise ComfyUIError(f"prompt id {pid!r} is not a UUID", hint="Pass a UUID (or none: one is made).") from None


class RemoteMixin:
    """Needs ``url``, ``_request``, ``_json``, ``delete_queued``, ``interrupt``, ``history`` and ``server_features``."""

    url: str
    retries: int
    connect_timeout: float
    _info: ServerInfo | None
    server_features: dict[str, Any]

    async def server_info(self, refresh: bool = False) -> ServerInfo:
        """Version, OS, jobs API and socket feature flags of this server (probed once, then cached)."""
        if self._info is None or refresh:
            stats = await self._json("GET", "/system_stats")  # type: ignore[attr-defined]
            system = (stats or {}).get("system") or {}
            resp = await self._request("GET", "/api/jobs", params={"limit": 1})  # type: ignore[attr-defined]
            jobs = resp.status_code == 200 and _is_jobs_page(resp)
            self._info = ServerInfo(url=self.url, version=system.get("comfyui_version"), os=system.get("os"),
                                    jobs_api=jobs)
        self._info.features = dict(self.server_features)
        return self._info

    async def job(self, prompt_id: str) -> dict[str, Any] | None:
        """The jobs API's record of ``prompt_id`` (``None`` when the server does not know it)."""
        resp = await self._request("GET", f"/api/jobs/{prompt_id}")  # type: ignore[attr-defined]
        if resp.status_code == 404:
            return None
        if resp.status_code >= 400:
            raise ComfyUIError(f"ComfyUI at {self.url} answered HTTP {resp.status_code} on /api/jobs/{prompt_id}",
                               url=self.url, hint="See the ComfyUI server log.")
        return resp.json()

    async def prompt_state(self, prompt_id: str) -> tuple[PromptState, dict[str, Any] | None]:
        """What the server knows about ``prompt_id``: its state, and its history entry once it is done."""
        info = await self.server_info()
        if info.jobs_api:
            job = await self.job(prompt_id)
            if job is None:
                return "unknown", None
            state = _JOB_STATES.get(str(job.get("status")), "running")
            if state != "done":
                return state, None
            entry = (await self.history(prompt_id)).get(prompt_id)  # type: ignore[attr-defined]
            return "done", entry
        entry = (await self.history(prompt_id)).get(prompt_id)  # type: ignore[attr-defined]
        if entry:
            return "done", entry
        q = await self._json("GET", "/queue")  # type: ignore[attr-defined]
        if any(item[1] == prompt_id for item in (q or {}).get("queue_running", [])):
            return "running", None
        if any(item[1] == prompt_id for item in (q or {}).get("queue_pending", [])):
            return "pending", None
        entry = (await self.history(prompt_id)).get(prompt_id)  # type: ignore[attr-defined]
        return ("done", entry) if entry else ("unknown", None)

    async def cancel_prompt(self, prompt_id: str) -> None:
        """Dequeue ``prompt_id`` or interrupt it if it runs (nothing else); the jobs API does both atomically."""
        info = await self.server_info()
        if info.jobs_api:
            await self._request("POST", f"/api/jobs/{prompt_id}/cancel")  # type: ignore[attr-defined]
            return
        await self.delete_queued([prompt_id])  # type: ignore[attr-defined]
        await self.interrupt(prompt_id)  # type: ignore[attr-defined]

    async def _deadline_error(self, pid: str, deadline_s: float) -> DeadlineExceeded:
        """The deadline error, saying whether the prompt really is still on the server (one quick look)."""
        state: str | None = None
        saved = self.retries
        self.retries = 0
        try:
            state, _ = await asyncio.wait_for(self.prompt_state(pid), timeout=self.connect_timeout)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - the server may be down or hung: say we do not know
            log.debug("prompt %s: state after the deadline unknown: %s", pid, exc)
        finally:
            self.retries = saved
        msg = f"prompt {pid} on {self.url} did not finish within {deadline_s:.0f}s"
        details = {"prompt_id": pid, "url": self.url, "on_server": state in ("pending", "running", "done"),
                   "state": state}
        if state in ("pending", "running"):
            hint = f"It keeps {state} on the server: resume it later (wait({pid!r})) or raise the deadline."
        elif state == "done":
            hint = "It has just finished on the server: resume it to collect the images."
        elif state == "unknown":
            hint = "The server no longer knows the prompt (restarted, or deleted from its queue): run it again."
        else:
            hint = "The server did not answer, so whether it still runs there is unknown; resume it when it answers."
        return DeadlineExceeded(msg, details=details, hint=hint)

    def vanished(self, prompt_id: str) -> PromptVanished:
        return PromptVanished(
            f"prompt {prompt_id} is gone from ComfyUI at {self.url}: it is not queued, not running and not in its "
            "history (the server restarted, or the prompt was deleted from its queue)",
            url=self.url, details={"prompt_id": prompt_id, "url": self.url},
            hint="Nothing will arrive for it: run it again.")


def _is_jobs_page(resp: Any) -> bool:
    try:
        body = resp.json()
    except ValueError:
        return False
    return isinstance(body, dict) and "jobs" in body
