"""EndpointPool: load spreading, model-aware routing, dead endpoints, status."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from comfy_graphs import modelfree, t2i
from fakecomfy import FakeComfyUI

from comfygen.tools.comfy.pool import EndpointPool, NoEndpoint, NoHealthyEndpoint

pytestmark = pytest.mark.anyio
FAST = {"retries": 1, "backoff_s": 0.01, "poll_interval_s": 0.02, "connect_timeout": 2.0, "health_interval_s": 0}


@contextlib.asynccontextmanager
async def fakes(*configs: dict):  # type: ignore[no-untyped-def]
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(FakeComfyUI(**cfg)) for cfg in configs]


async def test_concurrent_runs_spread_over_endpoints() -> None:
    async with fakes({"step_time": 0.02}, {"step_time": 0.02}) as (a, b):
        async with EndpointPool([a.url, b.url], **FAST) as pool:
            outs = await asyncio.gather(*(pool.run(t2i(seed=i)) for i in range(6)))
    used = [o.endpoint for o in outs]
    assert used.count(a.url) == 3 and used.count(b.url) == 3
    assert all(o.images for o in outs)


async def test_routes_to_endpoint_with_the_models() -> None:
    async with fakes({"models": {"checkpoints": ["other.safetensors"]}}, {}) as (a, b):
        async with EndpointPool([a.url, b.url], **FAST) as pool:
            need = [("checkpoints", "random_sd15.safetensors")]
            outs = [await pool.run(t2i(seed=i), required_models=need) for i in range(3)]
            assert {o.endpoint for o in outs} == {b.url}
            with pytest.raises(NoEndpoint, match="checkpoints/missing.safetensors") as ei:
                await pool.run(t2i(), required_models=[("checkpoints", "missing.safetensors")])
            assert ei.value.hint
            # a file installed later is found: the cached lists are refreshed before giving up
            a.set_models({"checkpoints": ["other.safetensors", "late.safetensors"]})
            out = await pool.run(t2i(ckpt="late.safetensors"), required_models=[("checkpoints", "late.safetensors")])
            assert out.endpoint == a.url


async def test_dead_endpoint_work_is_resubmitted_elsewhere() -> None:
    async with fakes({"step_time": 0.01, "fail": {"die_at": "KSampler"}}, {"step_time": 0.01}) as (a, b):
        async with EndpointPool([a.url, b.url], **FAST) as pool:
            dispatched: list[str] = []
            # both runs land on a (the first) or get spread; either way all finish on b after a dies
            outs = await asyncio.gather(*(pool.run(t2i(seed=i), on_dispatch=lambda u, p: dispatched.append(u))
                                          for i in range(4)))
            assert {o.endpoint for o in outs} == {b.url}
            assert a.url in dispatched
            status = {s.url: s for s in await pool.status()}
            assert status[a.url].healthy is False and status[a.url].error
            assert status[b.url].healthy and status[b.url].models["checkpoints"]


async def test_all_down_raises_no_endpoint() -> None:
    async with EndpointPool(["http://127.0.0.1:9", "http://127.0.0.1:10"], **FAST) as pool:
        with pytest.raises(NoHealthyEndpoint, match="no healthy ComfyUI endpoint"):
            await pool.run(modelfree())
        assert not any(s.healthy for s in await pool.status())
    # without the initial health check (no `async with`), a model lookup that fails means "down"
    pool = EndpointPool(["http://127.0.0.1:9"], **FAST)
    try:
        with pytest.raises(NoHealthyEndpoint, match="127.0.0.1:9"):
            await pool.run(modelfree(), required_models=[("checkpoints", "x.safetensors")])
    finally:
        await pool.close()


async def test_status_and_object_info() -> None:
    async with fakes({"step_time": 0.05}) as (a,):
        async with EndpointPool([a.url, a.url + "/"], **FAST) as pool:
            assert pool.urls == [a.url]  # duplicates collapse
            task = asyncio.create_task(pool.run(t2i(steps=5)))
            await asyncio.sleep(0.1)
            (st,) = await pool.status()
            assert st.healthy and st.queue_running == 1 and st.in_flight == 1
            await task
            assert "KSampler" in await pool.object_info()
