"""A run outlives its MCP session: closing the session (or stopping or killing the server) leaves it to ComfyUI,
and get_run in a later session finishes it. Only an explicit cancel cancels. Real server processes over stdio."""

from __future__ import annotations


import pytest

from comfygen.tools.errors import ComfyUIError
from fakecomfy import FakeComfyUI
from mcp_helpers import library_models
from stdio_helpers import RawServer, server_env, wait_for

from comfygen.tools.store import RunStore

GEN = {"prompt": "a slow red fox", "flow_id": "sd15-base", "size": "64x64", "seed": 3}


@pytest.fixture
def slow():
    fake = FakeComfyUI(models=library_models(), steps=60, step_time=0.08).start_in_thread()  # ~5 s per run
    yield fake
    fake.stop()


@pytest.fixture
def servers():
    started: list[RawServer] = []

    def start(env):
        started.append(RawServer(env))
        return started[-1]

    yield start
    for s in started:
        s.kill()


def _only_run(home):
    with RunStore(home / "runs.sqlite") as store:
        runs = store.list()
    assert len(runs) == 1
    return runs[0]


@pytest.mark.parametrize("how", ["close", "sigint", "sigterm", "sigkill"])
def test_a_session_that_ends_mid_run_leaves_the_run_to_comfyui_and_a_later_get_run_finishes_it(
        slow, servers, tmp_path, how):
    env = server_env(tmp_path / "home", slow.url)
    first = servers(env)
    reply = first.call("generate", {**GEN, "wait_s": 0.5})
    out = reply["structuredContent"]
    assert out["status"] == "running" and out["run_id"] and out["endpoint"] == slow.url  # endpoint is known
    rid = first.start("tools/call", {"name": "get_run", "arguments": {"run_id": out["run_id"], "wait_s": 600}})
    wait_for(lambda: slow.running is not None, what="ComfyUI to execute the prompt")
    first.end(how)  # the client goes away while get_run waits: no notifications/cancelled
    record = _only_run(tmp_path / "home")
    assert record.status == "running" and record.error is None
    assert not slow.interrupts  # ComfyUI was not told to stop
    wait_for(lambda: slow.running is None and slow.history, what="ComfyUI to finish the prompt")

    second = servers(env)  # a later session, a new server process
    done = second.call("get_run", {"run_id": out["run_id"], "wait_s": 30})["structuredContent"]
    assert done["status"] == "succeeded" and done["image_path"], done
    assert done["scores"]["skipped"] and "turned off" in done["scores"]["skipped"]
    assert len(slow.history) == 1  # the prompt ran once
    again = servers(env).call("get_run", {"run_id": out["run_id"]})["structuredContent"]
    assert again["scores"]["skipped"] == done["scores"]["skipped"]  # the reason survives a restart
    assert rid


@pytest.fixture
def slower():
    fake = FakeComfyUI(models=library_models(), steps=600, step_time=0.05).start_in_thread()  # ~30 s unless cancelled
    yield fake
    fake.stop()


def test_an_explicit_cancel_interrupts_comfyui_and_records_the_run_cancelled(slower, servers, tmp_path):
    slow = slower  # a loaded machine must not let the run end before the cancel arrives
    server = servers(server_env(tmp_path / "home", slow.url))
    rid = server.start("tools/call", {"name": "generate", "arguments": {**GEN, "wait_s": 600}})
    wait_for(lambda: slow.running is not None, what="ComfyUI to execute the prompt")
    server.notify("notifications/cancelled", {"requestId": rid, "reason": "user pressed stop"})
    wait_for(lambda: _only_run(tmp_path / "home").status == "cancelled", what="the run to be recorded cancelled")
    assert slow.interrupts
    assert server.call("list_categories", {})["structuredContent"]["categories"]  # the server is still fine


def test_over_http_a_dropped_stream_and_a_deleted_session_do_not_cancel_the_run(slow, tmp_path):
    import httpx
    from http_helpers import ThreadedHTTP
    from mcp_helpers import pixel_scorers, shared_library

    from comfygen.server.app import build_server
    from comfygen.server.mcp_http import http_app
    from comfygen.tools.settings import Settings

    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    home = tmp_path / "home"
    server = build_server(Settings(home=home, comfyui_urls=[slow.url]), scorer_factory=pixel_scorers,
                          library=shared_library())
    with ThreadedHTTP(http_app(server)) as url, httpx.Client(timeout=30) as http:
        r = http.post(url, json=init, headers=headers)
        session = {**headers, "mcp-session-id": r.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
        http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": "generate", "arguments": {**GEN, "wait_s": 600}}}
        with http.stream("POST", url, json=call, headers=session) as stream:
            wait_for(lambda: slow.running is not None, what="ComfyUI to execute the prompt")
        # the stream is dropped mid-call, then the client ends its session
        assert http.delete(url, headers=session).status_code in (200, 204)
        wait_for(lambda: _only_run(home).status not in ("queued", "running"), timeout=30, what="the run to end")
        record = _only_run(home)
        assert record.status == "succeeded" and record.outputs and not slow.interrupts
        assert stream is not None


@pytest.mark.anyio
async def test_a_long_noise_search_returns_an_id_and_get_run_returns_its_best_image(tmp_path):
    from mcp import Client
    from mcp_helpers import pixel_scorers, shared_library

    from comfygen.server.app import build_server
    from comfygen.tools.settings import Settings

    async with FakeComfyUI(models=library_models(), steps=20, step_time=0.05) as fake:
        server = build_server(Settings(home=tmp_path / "home", comfyui_urls=[fake.url]), scorer_factory=pixel_scorers,
                              library=shared_library())
        async with Client(server) as c:
            r = await c.call_tool("noise_search", {"prompt": "a red apple", "flow_id": "sd15-base", "size": "64x64",
                                                   "budget": 2, "wait_s": 0.2})
            assert not r.is_error, r.content[0].text
            first = r.structured_content
            best = await c.call_tool("get_run", {"run_id": first["best"]["run_id"], "wait_s": 60})
            unknown = await c.call_tool("get_run", {"run_id": "search-20990101-000000-00000000"})
    assert first["best"]["status"] == "running" and first["best"]["run_id"].startswith("search-")
    assert "get_run" in first["note"] and "get_run" in first["best"]["next_step"]
    out = best.structured_content
    assert not best.is_error and out["status"] == "succeeded" and out["image_path"], out
    assert not out["run_id"].startswith("search-") and out["scores"]["total"] is not None
    assert "stopped" in out["note"]
    assert unknown.is_error and "ended with the server process" in unknown.content[0].text


@pytest.mark.anyio
async def test_a_run_another_live_process_drives_is_followed_not_run_a_second_time(tmp_path):
    import subprocess
    import sys

    from mcp_helpers import pixel_scorers, shared_library

    from comfygen.tools.app.service import ComfyGen
    from comfygen.tools.settings import Settings

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # "another comfygen process"
    try:
        async with FakeComfyUI(models=library_models()) as fake:
            settings = Settings(home=tmp_path / "home", comfyui_urls=[fake.url])
            async with ComfyGen(settings, scorer_factory=pixel_scorers, library=shared_library()) as cg:
                graph = {"1": {"class_type": "X", "inputs": {}}}
                rec = cg.store.create(prompt="a fox", flow_id="sd15-base", graph=graph, comfy_prompt_id="p-1",
                                      endpoint=fake.url)
                cg.store.mark_running(rec.id)
                cg.store._db.execute("UPDATE runs SET pid=? WHERE id=?", (other.pid, rec.id))
                out = await cg.get_run(rec.id, wait_s=0.6)
                asked = [p for m, p in fake.requests if "p-1" in p or "/history" in p]
                other.kill()
                other.wait()
                # its driver died: this process takes it over, asks ComfyUI, and (the double never had p-1)
                # ends it as gone instead of waiting
                with pytest.raises(ComfyUIError, match="is gone"):
                    await cg.get_run(rec.id, wait_s=0.5)
                final = cg.store.get(rec.id)
    finally:
        if other.poll() is None:
            other.kill()
    assert out.status == "running" and f"pid {other.pid}" in out.next_step and not asked
    assert final.status == "failed" and final.error is not None and "is gone" in final.error.message


def test_sigterm_to_the_http_server_leaves_the_run_to_comfyui_and_exits_promptly(slow, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    import httpx
    from http_helpers import free_port

    home, port = tmp_path / "home", free_port()
    proc = subprocess.Popen([sys.executable, "-m", "comfygen.server", "--transport", "http", "--port", str(port)],
                            env=server_env(home, slow.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/mcp"
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    try:
        wait_for(lambda: _answers(url, init, headers), timeout=60, what="the HTTP server to start")
        with httpx.Client(timeout=30) as http:
            r = http.post(url, json=init, headers=headers)
            session = {**headers, "mcp-session-id": r.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
            http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
            call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                    "params": {"name": "generate", "arguments": {**GEN, "wait_s": 600}}}
            with http.stream("POST", url, json=call, headers=session):
                wait_for(lambda: slow.running is not None, what="ComfyUI to execute the prompt")
                t0 = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
                stopped_in = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    record = _only_run(home)
    assert record.status == "running" and not slow.interrupts, proc.stderr.read().decode() if proc.stderr else ""
    assert stopped_in < 15  # a call waiting on a run does not hold the stop up for its wait_s


def _answers(url, init, headers) -> bool:
    import httpx

    try:
        return httpx.post(url, json=init, headers=headers, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.anyio
async def test_a_get_run_waiting_on_a_run_another_call_cancels_answers_with_the_cancelled_run(tmp_path):
    import anyio
    from mcp_helpers import pixel_scorers, shared_library

    from comfygen.tools.app.service import ComfyGen
    from comfygen.tools.settings import Settings

    async with FakeComfyUI(models=library_models(), steps=200, step_time=0.05) as fake:
        settings = Settings(home=tmp_path / "home", comfyui_urls=[fake.url])
        async with ComfyGen(settings, scorer_factory=pixel_scorers, library=shared_library()) as cg:
            first = await cg.generate("a slow fox", flow_id="sd15-base", width=64, height=64, wait_s=0)
            answers, caller = [], anyio.CancelScope()

            async def other_waiter():
                answers.append(await cg.get_run(first.run_id, wait_s=600))

            async def cancelling_caller():
                with caller:
                    await cg.get_run(first.run_id, wait_s=600)

            async with anyio.create_task_group() as tg:
                tg.start_soon(other_waiter)
                tg.start_soon(cancelling_caller)
                with anyio.fail_after(10):
                    while fake.running is None:
                        await anyio.sleep(0.02)
                await anyio.sleep(0.3)  # both calls are waiting on the run now
                assert fake.running is not None
                caller.cancel()  # an in-process caller's own cancel: it cancels the run
    assert len(answers) == 1 and answers[0].status == "cancelled" and fake.interrupts
