"""Streamable HTTP end to end: an image over HTTP, bearer tokens, foreign Origins, Host rebinding, body limits."""

from __future__ import annotations

import httpx
import httpx2
import pytest
from fakecomfy import FakeComfyUI
from http_helpers import ThreadedHTTP
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ImageContent
from mcp_helpers import library_models, pixel_scorers, shared_library
from typer.testing import CliRunner

from comfygen.server.app import build_server
from comfygen.server.mcp_http import check_bind, http_app, is_loopback
from comfygen.tools.errors import ConfigError
from comfygen.tools.settings import Settings

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def fake():
    fake = FakeComfyUI(models=library_models()).start_in_thread()
    yield fake
    fake.stop()


def app(tmp_path, fake, **kw):
    server = build_server(Settings(home=tmp_path, comfyui_urls=[fake.url]), scorer_factory=pixel_scorers,
                          library=shared_library())
    return http_app(server, **kw)


@pytest.mark.anyio
async def test_generate_over_http_returns_an_image_scored_by_the_tiny_ensemble(tmp_path, fake):
    from comfygen.tools.app.service import tiny_scorer_factory

    settings = Settings(home=tmp_path, comfyui_urls=[fake.url], scorers=["aesthetic", "clipscore"])
    server = build_server(settings, scorer_factory=tiny_scorer_factory, library=shared_library())
    with ThreadedHTTP(http_app(server)) as url:
        async with Client(url) as c:
            tools = (await c.list_tools()).tools
            r = await c.call_tool("generate", {"prompt": "a kite", "flow_id": "sd15-base", "size": "64x64"})
    assert len(tools) <= 10
    assert not r.is_error and r.structured_content["status"] == "succeeded"
    assert any(isinstance(b, ImageContent) for b in r.content)
    scores = r.structured_content["scores"]
    assert isinstance(scores["total"], float) and set(scores["per_scorer"]) == {"aesthetic", "clipscore"}


@pytest.mark.anyio
async def test_a_token_is_required_when_set(tmp_path, fake):
    with ThreadedHTTP(app(tmp_path, fake, token="s3cret")) as url:
        missing = httpx.post(url, json=INIT, headers=HEADERS)
        wrong = httpx.post(url, json=INIT, headers={**HEADERS, "Authorization": "Bearer nope"})
        good = httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret"})
        async with Client(streamable_http_client(url, http_client=good)) as c:
            r = await c.call_tool("list_categories", {})
    assert missing.status_code == 401 and "bearer token" in missing.json()["error"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status_code == 401
    assert not r.is_error


def test_without_a_token_loopback_requests_work(tmp_path, fake):
    with ThreadedHTTP(app(tmp_path, fake)) as url:
        r = httpx.post(url, json=INIT, headers=HEADERS)
    assert r.status_code == 200


def test_a_foreign_origin_is_refused(tmp_path, fake):
    with ThreadedHTTP(app(tmp_path, fake)) as url:
        evil = httpx.post(url, json=INIT, headers={**HEADERS, "Origin": "http://evil.example"})
        local = httpx.post(url, json=INIT, headers={**HEADERS, "Origin": "http://localhost:3000"})
    assert evil.status_code == 403 and "DNS-rebinding" in evil.json()["error"]
    assert local.status_code == 200


def test_an_allowed_origin_passes(tmp_path, fake):
    with ThreadedHTTP(app(tmp_path, fake, allowed_origins=["https://app.example"])) as url:
        r = httpx.post(url, json=INIT, headers={**HEADERS, "Origin": "https://app.example"})
    assert r.status_code == 200


def test_a_rebound_host_header_is_refused_on_loopback(tmp_path, fake):
    with ThreadedHTTP(app(tmp_path, fake)) as url:
        r = httpx.post(url, json=INIT, headers={**HEADERS, "Host": "evil.example"})
    assert r.status_code == 421


def test_oversized_requests_are_refused(tmp_path, fake):
    with ThreadedHTTP(app(tmp_path, fake, max_body=2048)) as url:
        big = {**INIT, "params": {**INIT["params"], "pad": "x" * 5000}}
        r = httpx.post(url, json=big, headers=HEADERS)
    assert r.status_code == 413


def test_a_non_loopback_bind_needs_a_token():
    with pytest.raises(ConfigError, match="without a token"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", "t")
    check_bind("127.0.0.1", None)
    assert is_loopback("::1") and is_loopback("localhost") and not is_loopback("192.168.1.4")


def test_serve_refuses_a_public_bind_without_a_token(monkeypatch):
    from comfygen.server.cli import app as cli_app
    from comfygen.server.commands import register_all

    monkeypatch.delenv("COMFYGEN_TOKEN", raising=False)
    if not any((c.name or c.callback.__name__) == "serve" for c in cli_app.registered_commands):
        register_all(cli_app)
    result = CliRunner().invoke(cli_app, ["serve", "--transport", "http", "--host", "0.0.0.0"])
    assert result.exit_code != 0
    assert "without a token" in str(result.exception) or "without a token" in result.output


@pytest.mark.anyio
async def test_the_bearer_scheme_is_case_insensitive(tmp_path, fake):
    with ThreadedHTTP(app(tmp_path, fake, token="s3cret")) as url:
        codes = [httpx.post(url, json=INIT, headers={**HEADERS, "Authorization": f"{scheme} s3cret"}).status_code
                 for scheme in ("bearer", "BEARER", "Bearer")]
        basic = httpx.post(url, json=INIT, headers={**HEADERS, "Authorization": "Basic s3cret"})
    assert codes == [200, 200, 200] and basic.status_code == 401


@pytest.mark.parametrize("origin", ["https://localhost", "https://127.0.0.1:8443", "http://[::1]"])
def test_every_loopback_origin_passes_and_a_refusal_is_ours(tmp_path, fake, origin):
    with ThreadedHTTP(app(tmp_path, fake)) as url:
        ok = httpx.post(url, json=INIT, headers={**HEADERS, "Origin": origin})
        evil = httpx.post(url, json=INIT, headers={**HEADERS, "Origin": "https://localhost.evil.example"})
    assert ok.status_code == 200, ok.text
    assert evil.status_code == 403 and "--allow-origin" in evil.json()["error"]
