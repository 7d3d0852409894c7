"""The agent tests reuse the server tests' helpers (fake ComfyUI models, scoring double)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
