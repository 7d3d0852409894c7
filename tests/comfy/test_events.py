"""Event parsing against the websocket transcript a real ComfyUI v0.3.64 produced."""

from __future__ import annotations

import json
import struct

import pytest
from fakecomfy import _SHARED as SHARED

from comfygen.tools.comfy import events as ev

TRANSCRIPT = SHARED / "comfyui" / "ws_transcript.jsonl"
pytestmark = pytest.mark.skipif(not TRANSCRIPT.exists(), reason="recorded transcript not available")


def _runs() -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {}
    for line in TRANSCRIPT.read_text().splitlines():
        rec = json.loads(line)
        runs.setdefault(rec["run"], []).append(rec)
    return runs


def _events(run: str) -> list[ev.Event]:
    out = []
    for rec in _runs()[run]:
        if "text" in rec:
            e = ev.parse_message(rec["text"], {"3": "KSampler", "4": "CheckpointLoaderSimple"})
            if e is not None:
                out.append(e)
    return out


def test_t2i_sequence_parses_in_order() -> None:
    evs = _events("t2i_sd15_cold_featureflags")
    kinds = [e.kind for e in evs]
    assert kinds[0] == "started" and kinds[1] == "cached" and kinds[-1] == "finished"
    assert [e.value for e in evs if isinstance(e, ev.Progress)] == [1, 2, 3, 4]
    outs = [e for e in evs if isinstance(e, ev.NodeOutput)]
    assert outs[0].node == "9" and [i["filename"] for i in outs[0].output["images"]] == ["t2i_00001_.png",
                                                                                         "t2i_00002_.png"]
    started = [e for e in evs if isinstance(e, ev.NodeStarted)]
    assert ("3", "KSampler") in [(e.node, e.class_type) for e in started]


def test_duplicate_run_lists_all_nodes_cached() -> None:
    evs = _events("t2i_sd15_duplicate_cached")
    cached = next(e for e in evs if isinstance(e, ev.Cached))
    assert cached.nodes == ["4", "6", "7", "5", "3", "8", "9"]
    assert not any(isinstance(e, ev.NodeStarted) for e in evs)


def test_runtime_error_and_interrupt_messages() -> None:
    err = next(e for e in _events("runtime_error_broken_ckpt") if isinstance(e, ev.ExecutionFailed))
    assert (err.node, err.class_type) == ("4", "CheckpointLoaderSimple")
    assert err.exception_type.endswith("SafetensorError") and "header too large" in err.exception_message
    intr = next(e for e in _events("t2i_sd15_interrupt_in_ksampler") if isinstance(e, ev.Interrupted))
    assert (intr.node, intr.class_type, intr.executed) == ("3", "KSampler", ["5"])


def test_every_recorded_message_is_handled() -> None:
    surfaced = {"execution_start", "execution_cached", "executing", "progress", "executed", "execution_error",
                "execution_interrupted", "execution_success", "status", "progress_state", "feature_flags"}
    for recs in _runs().values():
        for rec in recs:
            if "text" in rec:
                assert rec["text"]["type"] in surfaced
                ev.parse_message(rec["text"])  # never raises


def test_binary_preview_framings_from_transcript() -> None:
    jpeg = bytes.fromhex("ffd8ffe0") + b"\0" * 20
    for recs in _runs().values():
        for rec in recs:
            if not rec.get("binary"):
                continue
            if rec["event"] == 4:
                meta = json.dumps(rec["metadata"]).encode()
                frame = struct.pack(">II", 4, len(meta)) + meta + jpeg
                p = ev.parse_binary(frame)
                assert p is not None and p.mime == "image/jpeg" and p.data == jpeg
                assert p.prompt_id == rec["metadata"]["prompt_id"] and p.node == rec["metadata"]["node_id"]
            else:
                frame = struct.pack(">II", rec["event"], rec["image_type"]) + jpeg
                p = ev.parse_binary(frame)
                assert p is not None and p.mime == "image/jpeg" and p.data == jpeg and p.prompt_id is None


def test_encode_roundtrip_and_unknown_binary() -> None:
    png = b"\x89PNG" + b"x" * 10
    assert ev.parse_binary(ev.encode_preview(png, mime="image/png")).mime == "image/png"  # type: ignore[union-attr]
    p = ev.parse_binary(ev.encode_preview(png, metadata={"node_id": "3", "prompt_id": "p"}))
    assert p is not None and (p.node, p.prompt_id, p.data) == ("3", "p", png)
    assert ev.parse_binary(struct.pack(">II", 3, 0) + b"text") is None
    assert ev.parse_binary(b"\0\0") is None
