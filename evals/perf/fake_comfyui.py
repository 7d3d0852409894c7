"""The ComfyUI test double (``tests/fakecomfy.py``) in its own process, for the benchmarks that run against it.

The double stays in ``tests/`` (the tests import it, and its siblings, by their bare names), so it is not
installed: benchmarks that need it (bench_client, bench_overhead, bench_pool, bench_search and the server's
bench_mcp) run from a source checkout (``pip install -e ".[test]"`` there; the double needs aiohttp) and stop
with :class:`FakeComfyUIMissing` naming that, rather than a traceback, in an install without one.

Its own process, so it shares neither our event loop nor our GIL. The child prints its URL, then
serves until its stdin closes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]  # the source checkout, when this file is in one
TESTS = REPO / "tests"


class FakeComfyUIMissing(SystemExit):
    """The benchmark needs the ComfyUI test double, which only a source checkout has."""

    def __init__(self) -> None:
        super().__init__(f"this benchmark runs against the fake ComfyUI in tests/fakecomfy.py, which is not "
                         f"installed (looked in {TESTS}): run it from a source checkout of comfygen "
                         f"(pip install -e \".[test]\" there)")

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
    if not (TESTS / "fakecomfy.py").exists():
        raise FakeComfyUIMissing()
    proc = subprocess.Popen([sys.executable, "-c", _MAIN.format(script=script), str(TESTS), json.dumps(kwargs)],
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
