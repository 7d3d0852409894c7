"""``comfygen chat``: an LLM drives this server as an MCP client (over stdio), choosing flows ComfyGen-IC style."""
