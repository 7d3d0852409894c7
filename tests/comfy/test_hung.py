"""A hung ComfyUI (alive, accepting connections, answering nothing: SIGSTOP) is noticed in seconds.

Two shapes of the fault: a port whose connections are accepted by the kernel and never served, and
a test double frozen mid-run (``freeze()``: requests, messages and execution wait until ``thaw()``,
then go on, as a process continued after SIGSTOP does).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from comfy_graphs import modelfree, t2i
from fakecomfy import FakeComfyUI
from fakecomfy_v038 import FakeComfyUI038

from comfygen.tools.comfy.pool import EndpointPool
from comfygen.tools.errors import ComfyUIUnavailable

pytestmark = pytest.mark.anyio
CKPT = ("checkpoints", "random_sd15.safetensors")
FAST = {"health_interval_s": 0.2, "health_timeout_s": 0.4, "retries": 1, "backoff_s": 0.02, "poll_interval_s": 0.05}


@pytest.fixture
def hung_url() -> Iterator[str]:
    """A listening socket nobody accepts on: TCP connects (the kernel's backlog), nothing ever answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


async def _until(cond, timeout: float = 10.0) -> float:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while not cond():
        if loop.time() - t0 > timeout:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
    return loop.time() - t0


async def test_hung_port_is_marked_down_in_seconds_and_skipped(hung_url: str) -> None:
    async with FakeComfyUI() as fake:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        async with EndpointPool([hung_url, fake.url], **FAST) as pool:
            assert loop.time() - t0 < 3.0
            assert not pool._ep(hung_url).healthy and "not reachable" in (pool._ep(hung_url).error or "")
            out = await pool.run(modelfree(color=1))
    assert out.endpoint == fake.url


@pytest.mark.parametrize("cls", [FakeComfyUI, FakeComfyUI038])
async def test_frozen_endpoint_fails_over_and_its_copy_is_cancelled_on_wake(cls) -> None:
    async with cls(step_time=0.05, steps=60) as a, FakeComfyUI(models={"checkpoints": []}) as b:
        dispatched: list[str] = []
        async with EndpointPool([a.url, b.url], **FAST) as pool:
            task = asyncio.create_task(pool.run(t2i(seed=3), required_models=[CKPT],
                                                on_dispatch=lambda url, pid: dispatched.append(url)))
            await _until(lambda: a.running is not None)
            pid = a.running[1]
            b.set_models({"checkpoints": [CKPT[1]]})  # now the other server can take it
            a.freeze()
            t0 = asyncio.get_running_loop().time()
            out = await asyncio.wait_for(task, 15)
            took = asyncio.get_running_loop().time() - t0
            assert out.endpoint == b.url and out.images and dispatched == [a.url, b.url]
            assert took < 5.0, f"fail-over took {took:.1f}s"
            assert not pool._ep(a.url).healthy and pool._ep(a.url).left_behind == {pid}
            a.thaw()  # the process continues: the left-behind prompt must not be run to the end there
            await _until(lambda: not pool._ep(a.url).left_behind)
            await _until(lambda: pid in a.history)
    assert a.history[pid]["status"]["messages"][-1][0] == "execution_interrupted"
    assert (pid, "9") not in a.executed  # its SaveImage never ran on the server it left
    assert b.history[pid]["status"]["status_str"] == "success"


async def test_single_frozen_endpoint_fails_the_run_quickly() -> None:
    async with FakeComfyUI(node_time=0.5) as a:
        async with EndpointPool([a.url], **FAST) as pool:
            task = asyncio.create_task(pool.run(modelfree(color=2)))
            await _until(lambda: a.running is not None)
            a.freeze()
            t0 = asyncio.get_running_loop().time()
            with pytest.raises(ComfyUIUnavailable) as ei:
                await asyncio.wait_for(task, 15)
            assert f"ComfyUI at {a.url} stopped answering" in ei.value.message and ei.value.url == a.url
            assert asyncio.get_running_loop().time() - t0 < 5.0
            a.thaw()
            await _until(lambda: not pool._ep(a.url).left_behind)
