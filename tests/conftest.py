"""Shared fixtures. Tests never reach the network: HF offline, data under a temp COMFYGEN_HOME."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PRUNA_METRICS_ENABLED", "false")

# Test helpers (the fake ComfyUI, fake LLM servers) are plain modules in tests/.
sys.path.insert(0, str(Path(__file__).resolve().parent))

SHARED = Path(__file__).resolve().parents[2] / "shared"
REPO = Path(__file__).resolve().parents[1]
OBJECT_INFO = REPO / "flow_library" / "data" / "object_info.json"  # recorded from ComfyUI v0.3.64


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own COMFYGEN_HOME, so nothing touches the user's data dir."""
    home = tmp_path_factory.mktemp("comfygen_home")
    monkeypatch.setenv("COMFYGEN_HOME", str(home))
    from comfygen.tools.settings import get_settings

    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake_comfyui():
    """A running fake ComfyUI (tests/fakecomfy.py) on 127.0.0.1 in a background thread.

    Works for sync and async tests (``fake_comfyui.url``); stopped after the test. Build your own
    ``FakeComfyUI(...)`` for custom models, latency, failures or executors.
    """
    from fakecomfy import FakeComfyUI

    fake = FakeComfyUI().start_in_thread()
    yield fake
    fake.stop()
