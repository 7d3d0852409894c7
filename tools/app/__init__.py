"""The application: ``ComfyGen`` (the service every surface calls), its typed operations and results, run jobs,
progress, and noise search as an operation. No ``mcp`` here."""
