"""The application: what every surface (MCP server, CLI, in-process agent, eval harness) calls. No ``mcp`` here.

- ``operations.py``: the registry; each operation a typed request, a handler and a typed result.
- ``requests.py`` / ``models.py``: what operations take / return (the descriptions and limits an LLM reads).
- ``service.py``: ``ComfyGen``, the long-lived parts (library, table, store, pool, planner, scorers) and the
  operations' logic; ``ranking.py``: how flows are ranked and explained for a prompt.
- ``jobs.py``: runs that outlive the call that started them; ``progress.py``: monotonic progress.
- ``noise_search.py``: the one door to noise search; ``client_choice.py``: the caller's model choosing flows.
"""
