"""Seeds: exact in JavaScript MCP clients (at most 2^53-1 in the schemas), ComfyUI's full range from Python/CLI."""

from __future__ import annotations

import json

import pytest
from mcp import Client
from mcp_helpers import pixel_scorers, shared_library

from comfygen.tools.app.models import MAX_SAFE_SEED, MAX_SEED
from comfygen.tools.app.service import ComfyGen

pytestmark = pytest.mark.anyio


async def test_seed_schemas_stop_at_javascripts_largest_safe_integer(server):
    async with Client(server) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        too_big = await c.call_tool("generate", {"prompt": "a cat", "flow_id": "sd15-base", "size": "64x64",
                                                 "seed": MAX_SAFE_SEED + 1})
        largest = await c.call_tool("generate", {"prompt": "a cat", "flow_id": "sd15-base", "size": "64x64",
                                                 "seed": MAX_SAFE_SEED})
    for name in ("generate", "noise_search"):
        seed = tools[name].input_schema["properties"]["seed"]
        schema = next((s for s in seed.get("anyOf", [seed]) if s.get("type") == "integer"), seed)
        assert schema["maximum"] == 9007199254740991 and isinstance(schema["maximum"], int), name
        assert '"maximum": 9007199254740991' in json.dumps(schema)  # written as an integer, not 9.007e15
        assert "2^53-1" in seed["description"]
    assert too_big.is_error and "9007199254740991" in too_big.content[0].text
    assert not largest.is_error and largest.structured_content["seed"] == MAX_SAFE_SEED
    assert "seed_text" not in largest.structured_content or largest.structured_content["seed_text"] is None


async def test_the_python_api_takes_comfyuis_whole_seed_range_and_reports_big_seeds_as_text(settings):
    async with ComfyGen(settings, scorer_factory=pixel_scorers, library=shared_library()) as cg:
        out = await cg.generate("a cat", flow_id="sd15-base", width=64, height=64, seed=MAX_SEED, wait_s=None)
        with pytest.raises(Exception, match="out of range"):
            await cg.generate("a cat", flow_id="sd15-base", width=64, height=64, seed=MAX_SEED + 1, wait_s=None)
        record = cg.record(out.run_id)
    assert out.status == "succeeded" and out.seed == MAX_SEED == 0xFFFFFFFFFFFFFFFF
    assert out.seed_text == "18446744073709551615" and record.seed == MAX_SEED
    assert MAX_SEED in [v for n in record.graph.values() for v in n["inputs"].values()]
