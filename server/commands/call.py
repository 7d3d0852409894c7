"""``comfygen call OPERATION '{...}'``: any operation of the registry from a terminal or a script.

The same operations, arguments and results as the MCP tools (``comfygen call --list`` shows them with
their JSON schemas), printed as JSON, so a shell script gets what an MCP client gets without a client.
"""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    @app.command("call")
    def call(
        operation: str = typer.Argument(None, help="Operation name, e.g. suggest_flows (see --list).",
                                        show_default=False),
        arguments: str = typer.Argument("{}", help="Its arguments as a JSON object, e.g. '{\"prompt\": \"a fox\"}'."),
        list_: bool = typer.Option(False, "--list", help="List the operations with their argument schemas."),
    ) -> None:
        """Run one operation (the MCP server's tools) and print its result as JSON."""
        import anyio

        from ...tools.app.operations import invoke, operation as lookup, served_on
        from ...tools.app.service import ComfyGen
        from ...tools.errors import GuardError

        if list_ or not operation:
            typer.echo(json.dumps({op.name: {"title": op.title, "description": op.description,
                                             "arguments": op.request.model_json_schema()}
                                   for op in served_on("cli")}, indent=1))
            return
        op = lookup(operation)
        try:
            args = json.loads(arguments)
        except json.JSONDecodeError as e:
            raise GuardError(f"arguments are not JSON ({e.msg})", hint="pass a JSON object, e.g. '{\"prompt\": \"a fox\"}'")
        if not isinstance(args, dict):
            raise GuardError("arguments must be a JSON object", hint="e.g. '{\"prompt\": \"a fox\"}'")

        async def main() -> str:
            async with ComfyGen() as cg:
                return (await invoke(cg, op.name, args)).model_dump_json(indent=1, exclude_none=True)

        typer.echo(anyio.run(main))
