"""A process running a flow is killed (SIGKILL) mid-run: the store stays consistent and the run resumes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from fakecomfy import FakeComfyUI

from comfygen.tools.comfy.pool import EndpointPool
from comfygen.tools.pipeline import resume_run
from comfygen.tools.settings import Settings
from comfygen.tools.store import RunStore

pytestmark = pytest.mark.anyio

_CHILD = r"""
import asyncio, sys
sys.path.insert(0, sys.argv[3])
from conftest import make_flow
from comfygen.tools.comfy.pool import EndpointPool
from comfygen.tools.pipeline import run_flow
from comfygen.tools.settings import Settings
from comfygen.tools.store import RunStore

async def main():
    settings = Settings(home=sys.argv[2])
    with RunStore.from_settings(settings) as store:
        async with EndpointPool([sys.argv[1]]) as pool:
            def on_event(e):
                if e.kind == "progress":
                    print("progress", flush=True)
            await run_flow(make_flow(steps=20), "killed mid-run", seed=11, pool=pool, store=store,
                           settings=settings, on_event=on_event)
asyncio.run(main())
"""


async def test_sigkill_mid_run_then_resume(tmp_path):
    home = tmp_path / "home"
    async with FakeComfyUI(step_time=0.02) as fake:
        child = subprocess.Popen([sys.executable, "-c", _CHILD, fake.url, str(home), str(Path(__file__).parent)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = await _readline(child)
        assert line.startswith("progress"), child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        settings = Settings(home=home)
        conn = sqlite3.connect(settings.store_path)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
        with RunStore.from_settings(settings) as store:
            (orphan,) = store.recover_orphans()
            assert orphan.status == "interrupted" and orphan.resumable and orphan.endpoint == fake.url
            assert not settings.outputs_dir.exists() or not any(settings.outputs_dir.rglob("*.png"))
            async with EndpointPool([fake.url]) as pool:
                done = await resume_run(orphan.id, pool=pool, store=store, settings=settings)
        assert done.status == "succeeded" and done.prompt == "killed mid-run"
        assert Path(done.outputs[0].path).is_file()


async def _readline(proc: subprocess.Popen, timeout: float = 30.0) -> str:
    import asyncio

    return await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout)
