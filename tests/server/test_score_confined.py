"""score_image reads images only inside COMFYGEN_HOME and the folders the user allows, and says nothing else."""

from __future__ import annotations

import pytest
from mcp import Client
from mcp_helpers import pixel_scorers, shared_library
from PIL import Image

from comfygen.server.app import build_server
from comfygen.tools.settings import Settings

pytestmark = pytest.mark.anyio


def _png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), "white").save(path)
    return path


async def _score(server, path):
    async with Client(server) as c:
        return await c.call_tool("score_image", {"path": str(path), "prompt": "white"})


async def test_paths_outside_home_are_refused_with_one_message_whether_or_not_they_exist(tmp_path):
    home = tmp_path / "home"
    outside = _png(tmp_path / "elsewhere" / "real.png")
    (home / "links").mkdir(parents=True)
    (home / "links" / "out.png").symlink_to(outside)  # a link inside home that points out of it
    server = build_server(Settings(home=home), scorer_factory=pixel_scorers, library=shared_library())
    texts = {}
    for name, path in {"existing image": outside, "missing": tmp_path / "elsewhere" / "nope.png",
                       "system file": "/etc/passwd", "link out of home": home / "links" / "out.png",
                       "dot-dot": f"{home}/../elsewhere/real.png", "folder": tmp_path / "elsewhere"}.items():
        r = await _score(server, path)
        assert r.is_error, name
        texts[name] = r.content[0].text.replace(str(path), "PATH")
    assert len(set(texts.values())) == 1, texts  # no existence oracle
    assert "COMFYGEN_IMAGE_DIRS" in texts["missing"]


async def test_images_in_home_and_in_allowed_folders_are_scored(tmp_path):
    home, extra = tmp_path / "home", tmp_path / "pictures"
    inside, allowed = _png(home / "outputs" / "a.png"), _png(extra / "b.png")
    refused = await _score(build_server(Settings(home=home), scorer_factory=pixel_scorers,
                                        library=shared_library()), allowed)
    server = build_server(Settings(home=home, image_dirs=str(extra)), scorer_factory=pixel_scorers,
                          library=shared_library())
    ok_home, ok_extra = await _score(server, inside), await _score(server, allowed)
    assert refused.is_error
    assert not ok_home.is_error and ok_home.structured_content["total"] == pytest.approx(1.0)
    assert not ok_extra.is_error and ok_extra.structured_content["total"] == pytest.approx(1.0)
