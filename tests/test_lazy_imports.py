"""The serving commands must not import torch, transformers or peft (seconds of start-up each)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "transformers", "peft")

PLAN = """
import sys
from comfygen.server.cli import main
try:
    main(["plan", "a red fox in the snow"])
except SystemExit as e:
    assert not e.code, e.code
"""

GENERATE = """
import sys
from comfygen.server.cli import main
try:
    main(["generate", "a lighthouse at dusk", "--out", sys.argv[1]])
except SystemExit as e:
    assert not e.code, e.code
"""

SUGGEST = """
import asyncio
from pathlib import Path
from mcp import Client
from comfygen.server.app import build_server
from comfygen.tools.settings import Settings

async def go():
    async with Client(build_server(Settings(home=Path(__import__("sys").argv[1]), comfyui_urls=[]))) as c:
        r = await c.call_tool("suggest_flows", {"prompt": "a bowl of ramen", "k": 3})
        assert not r.is_error, r.content[0].text
        assert r.structured_content["flows"], r.structured_content

asyncio.run(go())
"""

REPORT = "\nimport json, sys\nprint('@@' + json.dumps([m for m in %r if m in sys.modules]))\n" % (HEAVY,)


def _heavy_modules_after(code: str, *args: str, home: Path) -> list[str]:
    env = {**os.environ, "COMFYGEN_HOME": str(home), "COMFYGEN_COMFYUI_URLS": ""}
    env.pop("COMFYGEN_PLANNER_BACKEND", None)
    proc = subprocess.run([sys.executable, "-c", code + REPORT, *args], env=env, capture_output=True, text=True,
                          timeout=300, cwd=home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("@@"))
    return json.loads(line[2:])


def test_plan_does_not_import_torch(tmp_path):
    assert _heavy_modules_after(PLAN, home=tmp_path) == []


def test_generate_without_comfyui_does_not_import_torch(tmp_path):
    out = tmp_path / "graph.json"
    assert _heavy_modules_after(GENERATE, str(out), home=tmp_path) == []
    assert json.loads(out.read_text())  # it did write the API graph


def test_suggest_flows_does_not_import_torch(tmp_path):
    assert _heavy_modules_after(SUGGEST, str(tmp_path), home=tmp_path) == []


def test_the_check_can_fail(tmp_path):
    assert _heavy_modules_after("import torch\n", home=tmp_path) == ["torch"]
