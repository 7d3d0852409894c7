"""Prompt categories: a multi-label classifier on the bundled MiniLM."""
