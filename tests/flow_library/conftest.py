"""The import tests build their workflows with ``workflow_builders`` (a plain module beside them)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
