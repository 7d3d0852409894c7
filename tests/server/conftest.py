"""Fixtures for the MCP server tests: a fake ComfyUI with every model the library names, settings, a server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakecomfy import FakeComfyUI  # noqa: E402
from mcp_helpers import library_models, pixel_scorers, shared_library  # noqa: E402

from comfygen.tools.settings import Settings  # noqa: E402


@pytest.fixture
async def comfy():
    async with FakeComfyUI(models=library_models()) as fake:
        yield fake


@pytest.fixture
def settings(tmp_path: Path, comfy: FakeComfyUI) -> Settings:
    return Settings(home=tmp_path / "home", comfyui_urls=[comfy.url], read_timeout_s=10, connect_timeout_s=2)


@pytest.fixture
def server(settings: Settings):
    from comfygen.server.app import build_server

    return build_server(settings, scorer_factory=pixel_scorers, library=shared_library())
