"""The comfygen operations (``ComfyGen``) and the ComfyGen-IC agent loop with its LLM adapters. No ``mcp`` here."""
