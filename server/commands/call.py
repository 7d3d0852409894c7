"""``comfygen call OPERATION '{...}'``: any operation of the registry from a terminal or a script.

The same operations, arguments and results as the MCP tools (``comfygen call --list`` shows them with
their JSON schemas), printed as JSON, so a shell script gets what an MCP client gets without a client. A
``generate`` or ``noise_search`` that returns "running" after ``wait_s`` leaves its run to ComfyUI, as the
MCP server does: ``comfygen call get_run '{"run_id": ...}'`` finishes it later.
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

        async def main() -> None:
            # as over MCP, a run still going when the call returns (wait_s) goes on: ComfyUI finishes it, and
            # get_run (from this or any later process) picks it up; Ctrl-C while waiting cancels it
            async with ComfyGen(keep_runs_on_close=True) as cg:
                typer.echo((await invoke(cg, op.name, args)).model_dump_json(indent=1, exclude_none=True))
            if cg.jobs.detached:  # leave now: ending the event loop would cancel them
                from ..app import leave_runs_and_exit

                leave_runs_and_exit(len(cg.jobs.detached))

        anyio.run(main)
