"""The MCP server (``app.py``; its tools, generated from ``tools/app/operations.py``, in ``mcp_tools.py``) and the
``comfygen`` CLI (``cli.py``, one module per area in ``commands/``)."""
