"""The ComfyGen-IC agent: an LLM choosing, running, scoring and retrying flows through a tool box (in-process or
over MCP), with its LLM adapters. No ``mcp`` here."""
