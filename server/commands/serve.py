"""``comfygen serve``: the MCP server over stdio (Claude Desktop, Cursor, Claude Code) or streamable HTTP."""

from __future__ import annotations

import os
from enum import StrEnum

import typer


class Transport(StrEnum):
    stdio = "stdio"
    http = "http"


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        transport: Transport = typer.Option(Transport.stdio, "--transport", "-t", help="stdio (default) or http."),
        host: str = typer.Option("127.0.0.1", help="HTTP bind address. Non-loopback needs a token."),
        port: int = typer.Option(8765, help="HTTP port."),
        token: str | None = typer.Option(None, help="Bearer token required on HTTP requests "
                                                    "(default: $COMFYGEN_TOKEN).", show_default=False),
        allow_origin: list[str] = typer.Option([], "--allow-origin",
                                               help="Extra browser Origin allowed over HTTP (repeatable)."),
        max_body: int = typer.Option(1024 * 1024, help="Largest HTTP request body in bytes."),
        endpoint: list[str] = typer.Option([], "--endpoint", "-e",
                                           help="ComfyUI URL (repeatable; default: $COMFYGEN_COMFYUI_URLS)."),
    ) -> None:
        """Run the comfygen MCP server. Runs in flight when it stops (session closed, SIGTERM, Ctrl-C) go on
        on ComfyUI; get_run in a later session finishes them."""
        import anyio

        from ...tools.sigterm import sigterm_as_ctrl_c

        sigterm_as_ctrl_c("leave")  # a stopped server leaves its runs to ComfyUI (uvicorn handles HTTP's itself)

        from ...tools.settings import get_settings
        from ..app import build_server
        from ..mcp_http import TOKEN_ENV, check_bind, serve_http

        settings = get_settings()
        if endpoint:
            settings = settings.model_copy(update={"comfyui_urls": list(endpoint)})
        mcp = build_server(settings, exit_when_detached=True)
        if transport is Transport.stdio:
            mcp.run("stdio")
            return
        token = token or os.environ.get(TOKEN_ENV) or None
        check_bind(host, token)
        typer.echo(f"comfygen MCP server on http://{host}:{port}/mcp"
                   + (" (bearer token required)" if token else ""), err=True)
        anyio.run(lambda: serve_http(mcp, host=host, port=port, token=token, allowed_origins=list(allow_origin),
                                     max_body=max_body))
