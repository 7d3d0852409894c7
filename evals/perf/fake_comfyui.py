"""The fake ComfyUI (tests/fakecomfy.py, source checkout only) in its own process, for benchmarks.

Its own process, so it shares neither our event loop nor our GIL. The child prints its URL, then
serves until its stdin closes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

# A script gets ``sys.argv[1]`` = tests dir (already on sys.path) and ``kw`` = the keyword arguments;
# it must define ``make_fake(kw) -> FakeComfyUI``.
PLAIN = """
from fakecomfy import FakeComfyUI
def make_fake(kw):
    return FakeComfyUI(**kw)
"""

_MAIN = """
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
kw = json.loads(sys.argv[2])
{script}
async def main():
    async with make_fake(kw) as fake:
        print(fake.url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""


def start_fake(script: str = PLAIN, **kwargs: Any) -> tuple[subprocess.Popen[str], str]:
    """Start a fake ComfyUI process; returns (process, url). Stop it with :func:`stop_fake`."""
    tests = REPO / "tests"
    if not (tests / "fakecomfy.py").exists():
        raise SystemExit("the fake ComfyUI lives in tests/fakecomfy.py: run this from a source checkout")
    proc = subprocess.Popen([sys.executable, "-c", _MAIN.format(script=script), str(tests), json.dumps(kwargs)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise RuntimeError("the fake ComfyUI did not start (is aiohttp installed?)")
    return proc, url


def stop_fake(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
