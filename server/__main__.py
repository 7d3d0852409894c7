"""``python -m comfygen.server``: the MCP server over stdio (same as ``comfygen serve``)."""

from .cli import main

if __name__ == "__main__":
    main(["serve", *__import__("sys").argv[1:]])
