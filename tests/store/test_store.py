from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from comfygen.tools.errors import StoreError
from comfygen.tools.run_scores import ImageScore, RunScores
from comfygen.tools.store import OutputFile, RunStore, RunTimings

GRAPH = {"1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}}


@pytest.fixture
def store(tmp_path):
    with RunStore(tmp_path / "runs.sqlite") as s:
        yield s


def _scores(raw, total, **kw):
    return RunScores(scored_by="score", images=[ImageScore(index=0, total=total, raw=raw, **kw)], best=0)


def _create(store, **kw):
    args = dict(prompt="a red fox", flow_id="sd15-base", graph=GRAPH, seed=7, params={"width": 64, "height": 64})
    args.update(kw)
    return store.create(**args)


def _outfile(tmp_path, name="a.png") -> OutputFile:
    p = tmp_path / name
    p.write_bytes(b"x")
    return OutputFile(path=str(p), sha256="00", size=1, width=64, height=64)


def test_lifecycle(store, tmp_path):
    rec = _create(store, negative="blurry", seed=2**64 - 1, comfy_prompt_id="p1")
    assert rec.status == "queued" and rec.pid == os.getpid() and rec.graph == GRAPH and rec.graph_hash
    store.mark_running(rec.id, endpoint="http://h:8188")
    got = store.get(rec.id)
    assert got.status == "running" and got.endpoint == "http://h:8188" and got.seed == 2**64 - 1
    assert got.timings.started is not None
    done = store.finish(rec.id, outputs=[_outfile(tmp_path)], timings=RunTimings(per_node={"3": 1.5}))
    assert done.status == "succeeded" and done.outputs[0].width == 64 and done.timings.per_node == {"3": 1.5}
    assert done.timings.queued == rec.timings.queued and done.timings.finished >= done.timings.queued
    store.set_scores(rec.id, _scores({"pickscore": 21.5, "clip": 0.3}, 0.7, z={"clip": 1.0}))
    got = store.get(rec.id[:12])
    assert got.scores == {"pickscore": 21.5, "clip": 0.3} and got.score_total == 0.7
    assert got.scoring.images[0].z == {"clip": 1.0} and got.scoring.best == 0
    with pytest.raises(StoreError):
        store.set_scores("nope", RunScores.unscored("no scorers", scored_by="generate"))


def test_get_unknown_and_ambiguous(store):
    with pytest.raises(StoreError) as e:
        store.get("missing-run")
    assert "comfygen runs list" in e.value.hint
    a, b = _create(store), _create(store)
    common = os.path.commonprefix([a.id, b.id])
    if len(common) >= 6:
        with pytest.raises(StoreError, match="ambiguous"):
            store.get(common)


def test_fail_records_error(store):
    from comfygen.tools.errors import ComfyUIExecutionError

    rec = _create(store)
    out = store.fail(rec.id, ComfyUIExecutionError("node 3 KSampler raised", hint="lower the steps"))
    assert out.status == "failed" and out.error.type == "ComfyUIExecutionError" and out.error.hint == "lower the steps"
    out = store.fail(_create(store).id, "gone", status="cancelled")
    assert out.status == "cancelled" and out.error.message == "gone"


def test_list_filters(store, tmp_path):
    ids = [_create(store, flow_id=f"f{i % 2}", prompt=f"prompt {i}").id for i in range(5)]
    store.finish(ids[0], outputs=[_outfile(tmp_path)])
    store.set_scores(ids[0], _scores({"a": 1.0}, 1.0))
    assert [r.id for r in store.list()] == ids[::-1]
    assert len(store.list(flow_id="f0")) == 3
    assert [r.id for r in store.list(status="succeeded")] == [ids[0]]
    assert [r.id for r in store.list(scored=True)] == [ids[0]]
    assert [r.id for r in store.list(prompt_contains="PROMPT 3")] == [ids[3]]
    assert len(store.list(limit=2)) == 2 and store.count() == 5 and store.count(status="queued") == 4
    assert [r.id for r in store.list(limit=None, oldest_first=True)] == ids


def test_find_existing(store, tmp_path):
    params = {"width": 64, "height": 64, "negative": None}
    rec = _create(store, params=params)
    assert store.find_existing("sd15-base", "a red fox", 7, params) is None  # not finished yet
    store.finish(rec.id, outputs=[_outfile(tmp_path)])
    assert store.find_existing("sd15-base", "a red fox", 7, dict(reversed(list(params.items())))).id == rec.id
    assert store.find_existing("sd15-base", "a red fox", 8, params) is None
    assert store.find_existing("sd15-base", "a red fox", 7, {**params, "width": 128}) is None
    assert store.find_existing("sd15-base", "a red fox", 7, params, graph_hash="other") is None
    assert store.find_existing("sd15-base", "a red fox", 7, params, scored=True) is None
    Path(rec.outputs[0].path if rec.outputs else store.get(rec.id).outputs[0].path).unlink()
    assert store.find_existing("sd15-base", "a red fox", 7, params) is None  # files gone: cannot reuse


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_recover_orphans(store):
    mine = _create(store)
    dead_no_prompt = _create(store)
    dead_resumable = _create(store, comfy_prompt_id="abc")
    other_host = _create(store)
    pid = _dead_pid()
    never_sent = _create(store, comfy_prompt_id="def")
    with store._tx() as db:
        db.execute("UPDATE runs SET pid=? WHERE id IN (?, ?, ?)",
                   (pid, dead_no_prompt.id, dead_resumable.id, never_sent.id))
        db.execute("UPDATE runs SET status='running' WHERE id IN (?, ?)", (dead_no_prompt.id, dead_resumable.id))
        db.execute("UPDATE runs SET host='elsewhere', status='running', updated=? WHERE id=?",
                   (time.time() - 3600, other_host.id))
    got = {r.id: r for r in store.recover_orphans()}
    assert set(got) == {dead_no_prompt.id, dead_resumable.id, never_sent.id}
    # handed to ComfyUI: interrupted and resumable; never handed over (queued, or no prompt id): failed
    assert got[dead_resumable.id].status == "interrupted" and got[dead_resumable.id].error.type == "Interrupted"
    assert got[dead_resumable.id].resumable
    for lost in (got[dead_no_prompt.id], got[never_sent.id]):
        assert lost.status == "failed" and lost.error.type == "NeverSubmitted" and not lost.resumable
    assert store.get(mine.id).status == "queued"
    assert store.get(other_host.id).status == "running"
    assert [r.id for r in store.recover_orphans(stale_after_s=60)] == [other_host.id]
    assert store.recover_orphans() == []


_WRITER = r"""
import sys
from comfygen.tools.run_scores import ImageScore, RunScores
from comfygen.tools.store import RunStore, OutputFile
path, n, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = RunStore(path, busy_timeout_s=30)
for i in range(n):
    r = s.create(prompt=f"{tag} {i}", flow_id=tag, graph={"1": {"class_type": "X", "inputs": {"i": i}}}, seed=i)
    s.mark_running(r.id, endpoint="http://e")
    s.finish(r.id, outputs=[OutputFile(path="/nonexistent", sha256="0", size=1, width=1, height=1)])
    s.set_scores(r.id, RunScores(scored_by="score", images=[ImageScore(index=0, total=i, raw={"a": i})], best=0))
"""


def test_concurrent_writer_processes(tmp_path):
    path = tmp_path / "runs.sqlite"
    RunStore(path).close()
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), "25", f"w{k}"], stderr=subprocess.PIPE)
             for k in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    with RunStore(path) as s:
        assert s.count() == 100 and s.count(status="succeeded") == 100
        assert len({r.id for r in s.list(limit=None)}) == 100
        assert all(r.score_total is not None for r in s.list(limit=None))
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_full_disk_gives_store_error_and_keeps_db(tmp_path):
    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    keep = _create(store)
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages + 1}")  # the file cannot grow: SQLITE_FULL
    big = {str(i): {"class_type": "X", "inputs": {"blob": "y" * 4000}} for i in range(50)}
    with pytest.raises(StoreError) as e:
        _create(store, graph=big)
    assert "disk full" in e.value.message and "free disk space" in e.value.hint
    store.close()
    with RunStore(path) as again:
        assert again._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert [r.id for r in again.list()] == [keep.id]
        _create(again)  # usable once space is back


def test_schema_version_guard(tmp_path):
    path = tmp_path / "runs.sqlite"
    RunStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer"):
        RunStore(path)


def test_record_json_roundtrip(store):
    rec = _create(store, params={"nested": {"a": [1, 2]}}, seeds=[1, 2, 3])
    again = store.get(rec.id)
    assert again.params == {"nested": {"a": [1, 2]}} and again.seeds == [1, 2, 3]
    assert json.loads(again.model_dump_json())["id"] == rec.id
