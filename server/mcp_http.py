"""Streamable HTTP transport with the safety the MCP spec asks for.

- Binds 127.0.0.1 by default; a non-loopback bind refuses to start without a bearer token.
- A bearer token (``--token`` / ``COMFYGEN_TOKEN``), when set, is required on every request (constant-time check;
  the scheme is case-insensitive).
- Requests whose ``Origin`` is not loopback (http or https, any port) or explicitly allowed are refused with a
  403 that says why: DNS-rebinding protection. This check is the only Origin check.
  On a loopback bind the SDK also checks the ``Host`` header.
- Request bodies are capped (``max_body`` bytes, 1 MiB by default: tool arguments are small).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from typing import Any
from urllib.parse import urlsplit

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from ..tools.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 1024 * 1024
TOKEN_ENV = "COMFYGEN_TOKEN"


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    if not is_loopback(host) and not token:
        raise ConfigError(f"refusing to listen on {host} without a token: anyone who can reach it could run GPU jobs",
                          hint=f"set {TOKEN_ENV} (or pass --token), or bind 127.0.0.1 and tunnel")


def origin_allowed(origin: str, allowed: list[str]) -> bool:
    if origin in allowed or "*" in allowed:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.hostname is not None and is_loopback(parts.hostname)


def bearer_matches(authorization: str, token: str) -> bool:
    """``Authorization: Bearer <token>``, the scheme in any case (RFC 7235), the token compared in constant time."""
    scheme, _, given = authorization.strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


class HttpGuard:
    """ASGI middleware: Origin check, then bearer token, before the MCP app sees the request."""

    def __init__(self, app: Any, *, token: str | None, allowed_origins: list[str]):
        self.app = app
        self.token = token
        self.allowed_origins = allowed_origins

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        origin = headers.get("origin")
        if origin and not origin_allowed(origin, self.allowed_origins):
            logger.warning("refused a request from Origin %r", origin)
            await _reply(send, 403, f"Origin {origin} is not allowed (DNS-rebinding protection); "
                                    "start the server with --allow-origin to allow it")
            return
        if self.token and not bearer_matches(headers.get("authorization", ""), self.token):
            await _reply(send, 401, "missing or wrong bearer token (send 'Authorization: Bearer <token>')",
                         extra=[(b"www-authenticate", b'Bearer realm="comfygen"')])
            return
        if origin:  # checked here, once: the SDK's narrower list would refuse e.g. https://localhost with a bare 403
            scope = {**scope, "headers": [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"origin"]}
        await self.app(scope, receive, send)


async def _reply(send: Any, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())] + (extra or [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def http_app(mcp: MCPServer, *, host: str = "127.0.0.1", token: str | None = None,
             allowed_origins: list[str] | None = None, max_body: int = DEFAULT_MAX_BODY, path: str = "/mcp") -> Any:
    """The ASGI app for ``comfygen serve --transport http`` (also used by tests and the benchmark)."""
    check_bind(host, token)
    allowed = list(allowed_origins or [])
    if is_loopback(host):
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", *allowed])
    else:  # host names we are reached by are unknown here; the token and the Origin check protect
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    app = mcp.streamable_http_app(streamable_http_path=path, host=host, transport_security=security,
                                  max_request_body_size=max_body)
    return HttpGuard(app, token=token, allowed_origins=allowed)


async def serve_http(mcp: MCPServer, *, host: str, port: int, token: str | None,
                     allowed_origins: list[str] | None = None, max_body: int = DEFAULT_MAX_BODY) -> None:
    import uvicorn

    app = http_app(mcp, host=host, token=token, allowed_origins=allowed_origins, max_body=max_body)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    await uvicorn.Server(config).serve()
