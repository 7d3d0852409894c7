"""The ``comfygen`` command line. Each area registers its commands from ``server/commands/<area>.py``."""

from __future__ import annotations

import logging
import sys
import warnings

import typer
from rich.console import Console

from ..tools.errors import ComfyGenError

app = typer.Typer(
    name="comfygen",
    help="Prompt-adaptive ComfyUI workflows (ComfyGen): pick the right flow for a prompt, run it, score it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug output to stderr."),
          on_sigterm: str | None = typer.Option(
              None, "--on-sigterm", envvar="COMFYGEN_ON_SIGTERM", show_default=False,
              help="What SIGTERM does to a running command: 'cancel' (default, like Ctrl-C: ComfyUI's prompts are "
                   "interrupted and removed, the runs recorded cancelled) or 'leave' (exit at once; ComfyUI "
                   "finishes them; `comfygen runs recover` then lists them).")) -> None:
    from ..tools.sigterm import sigterm_as_ctrl_c

    sigterm_as_ctrl_c(on_sigterm)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    if not verbose:  # deprecation chatter from transformers/peft internals is not the user's business
        for category in (FutureWarning, DeprecationWarning):
            warnings.filterwarnings("ignore", category=category)


def _register(argv: list[str] | None = None) -> None:
    # Imported here so `comfygen --help` stays fast and each area owns its own module.
    from .commands import register_all

    command = next((a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")), None)
    register_all(app, command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the app and turns ComfyGenError into a clean message + exit 1."""
    _register(argv)
    try:
        app(args=argv, standalone_mode=True)
    except ComfyGenError as e:
        err_console.print(f"[bold red]error:[/] {e.message}")
        url = getattr(e, "url", None)
        if url and url not in e.message:
            err_console.print(f"[bold]ComfyUI URL tried:[/] {url}")
        if e.hint:
            err_console.print(f"[yellow]hint:[/] {e.hint}")
        raise SystemExit(1) from None


if __name__ == "__main__":  # pragma: no cover
    main()
