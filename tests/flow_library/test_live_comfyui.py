"""Contract check against a real ComfyUI: offline validation answers what ComfyUI answers.

Runs only when COMFYUI_URL points at a ComfyUI (e.g. the CPU one described in the README); never in CI.
Every base flow is rendered and POSTed to /prompt; since the shipped model files are not installed
there, ComfyUI rejects each one (nothing executes), and its error body must equal our offline report.
"""

from __future__ import annotations

import os

import pytest

from comfygen.flow_library.library import FlowLibrary
from comfygen.flow_library.render import render
from comfygen.flow_library.schema import NodeSchema, validate_graph

URL = os.environ.get("COMFYUI_URL")
pytestmark = [pytest.mark.comfyui, pytest.mark.skipif(not URL, reason="set COMFYUI_URL to run against a real ComfyUI")]


def _shape(error: dict | None, node_errors: dict) -> tuple:
    top = (error["type"], error["message"], error["details"]) if error else None
    nodes = {nid: (sorted((e["type"], e["message"], e["details"]) for e in ne["errors"]),
                   sorted(ne["dependent_outputs"]), ne["class_type"]) for nid, ne in node_errors.items()}
    return top, nodes


def test_offline_validation_matches_live_comfyui() -> None:
    import httpx

    with httpx.Client(base_url=URL, timeout=30) as http:
        live = NodeSchema(http.get("/object_info").json())
        for flow in FlowLibrary.default(variants=False):
            graph = render(flow, "a contract test", seed=1, width=64, height=64)
            offline = validate_graph(graph, live, check_model_files=True, check_v3_combos=False)
            if offline.ok:
                continue  # would execute on that server: not what this test is for
            resp = http.post("/prompt", json={"prompt": graph})
            if resp.status_code == 200:  # pragma: no cover - clean up before failing
                http.post("/queue", json={"delete": [resp.json()["prompt_id"]]})
            assert resp.status_code == 400, flow.id
            body = resp.json()
            assert _shape(body["error"], body["node_errors"]) == _shape(offline.error, offline.node_errors), flow.id
