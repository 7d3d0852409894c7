"""Run stores of schema 1 (one untyped score shape per scoring path) open as schema 2 with typed scores.

The old file is built with raw SQL, as comfygen up to schema 1 wrote it, with a row in each shape: a
generate job's (scored, and unscored with the reason), ``tools/scoring/stored_runs.py``'s, a noise search's, and
scores an evaluation merged into the ``scores`` column (alone, and on top of a job's breakdown).
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from comfygen.tools.scoring.stored_runs import stored_raw_scores
from comfygen.tools.store import SCHEMA_VERSION, RunStore

SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id TEXT PRIMARY KEY, created REAL NOT NULL, updated REAL NOT NULL, status TEXT NOT NULL, prompt TEXT NOT NULL,
    negative TEXT, flow_id TEXT NOT NULL, graph_hash TEXT NOT NULL, graph TEXT NOT NULL, seed TEXT,
    seeds TEXT NOT NULL DEFAULT '[]', params TEXT NOT NULL DEFAULT '{}', params_key TEXT NOT NULL,
    accelerate TEXT NOT NULL DEFAULT 'none', endpoint TEXT, comfy_prompt_id TEXT, pid INTEGER, host TEXT,
    timings TEXT NOT NULL DEFAULT '{}', outputs TEXT NOT NULL DEFAULT '[]', scores TEXT NOT NULL DEFAULT '{}',
    score_total REAL, score_breakdown TEXT, error TEXT
);
INSERT INTO meta VALUES ('schema_version', '1');
"""

NOISE = {"terms": [{"seed": 5, "index": 1, "coef": 1.0}]}
STATS = {"pickscore": {"mean": 21.0, "std": 1.0, "n": None, "source": "prior"}}
ROWS = {
    "job": ({"best": 1, "totals": [-0.5, 0.25], "raw": [{"pickscore": 20.5}, {"pickscore": 21.25}]},
            {"pickscore": 21.25}, 0.25, 2),
    "job-skipped": ({"skipped": "no scorer weights (run comfygen scorers check)"}, {}, None, 1),
    "scored": ({"aggregate": "mean over images", "weights": {"pickscore": 1.0}, "stats": STATS, "z": {"pickscore": 0.5},
                "images": [{"index": 0, "path": "/o/scored_00.png", "total": 0.0, "raw": {"pickscore": 21.0},
                            "z": {"pickscore": 0.0}, "mean_rank": 2.0},
                           {"index": 1, "path": "/o/scored_01.png", "total": 1.0, "raw": {"pickscore": 22.0},
                            "z": {"pickscore": 1.0}, "mean_rank": 1.0}]},
               {"pickscore": 21.5}, 0.5, 2),
    "search": ({"noise_search": "abc123", "aggregation": "mean_rank", "candidates": [
        {"candidate": 3, "rank": 4, "raw": {"pickscore": 19.0}, "total": -2.0, "noise": NOISE},
        {"candidate": 4, "rank": 1, "raw": {"pickscore": 23.0}, "total": -1.0, "noise": NOISE}]},
        {"pickscore": 23.0}, -1.0, 2),
    "eval": (None, {"clipscore": 0.31}, None, 1),
    "job+eval": ({"best": 0, "totals": [0.75], "raw": [{"pickscore": 21.75}]},
                 {"pickscore": 21.75, "clipscore": 0.28}, 0.75, 1),
    "unscored": (None, {}, None, 1),
}


def _outputs(rid: str, n: int) -> list[dict]:
    return [{"path": f"/o/{rid}_{i:02d}.png", "sha256": "0", "size": 1, "width": 8, "height": 8, "index": i}
            for i in range(n)]


@pytest.fixture
def old_store(tmp_path):
    path = tmp_path / "runs.sqlite"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_1)
    for k, (rid, (breakdown, scores, total, n)) in enumerate(ROWS.items()):
        db.execute("INSERT INTO runs (id, created, updated, status, prompt, flow_id, graph_hash, graph, params_key, "
                   "outputs, scores, score_total, score_breakdown) VALUES (?, ?, ?, 'succeeded', 'a fox', 'sd15-base', "
                   "'h', '{}', 'k', ?, ?, ?, ?)",
                   (rid, 1000.0 + k, 1000.0 + k, json.dumps(_outputs(rid, n)), json.dumps(scores), total,
                    None if breakdown is None else json.dumps(breakdown)))
    db.commit()
    db.close()
    return path


def test_every_schema_1_shape_reads_back_typed(old_store):
    with RunStore(old_store) as store:
        got = {r.id: r for r in store.list(limit=None)}
        version = store._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    assert int(version) == SCHEMA_VERSION == 2
    for rid, (_, scores, total, _) in ROWS.items():  # the columns readers filter on are untouched
        assert got[rid].scores == scores and got[rid].score_total == total

    job = got["job"].scoring
    assert job.scored_by == "generate" and job.best == 1 and job.totals(2) == [-0.5, 0.25]
    assert job.images[1].raw == {"pickscore": 21.25} and job.images[1].path == "/o/job_01.png"
    assert job.total == 0.25 and job.per_scorer() == {"pickscore": 21.25}

    skipped = got["job-skipped"].scoring
    assert skipped.skipped.startswith("no scorer weights") and skipped.images == [] and skipped.total is None

    scored = got["scored"].scoring
    assert scored.scored_by == "score" and scored.aggregate == "mean" and scored.best == 1
    assert scored.total == pytest.approx(0.5) and scored.per_scorer() == {"pickscore": pytest.approx(21.5)}
    assert scored.images[0].z == {"pickscore": 0.0} and scored.images[0].mean_rank == 2.0
    assert scored.weights == {"pickscore": 1.0} and scored.stats["pickscore"].source == "prior"

    search = got["search"].scoring
    assert search.scored_by == "noise_search" and search.method == "mean_rank" and search.search_id == "abc123"
    assert [im.candidate for im in search.images] == [3, 4] and search.best == 1 and search.total == -1.0
    assert search.images[1].rank == 1 and search.images[1].noise == NOISE

    ev = got["eval"].scoring
    assert ev.scored_by == "unknown" and ev.method == "none" and ev.total is None
    assert ev.images[0].raw == {"clipscore": 0.31} and ev.images[0].path == "/o/eval_00.png"

    both = got["job+eval"].scoring
    assert both.images[0].raw == {"pickscore": 21.75, "clipscore": 0.28} and both.total == 0.75

    assert got["unscored"].scoring is None


def test_migrated_store_feeds_calibration_and_opens_again_unchanged(old_store):
    with RunStore(old_store) as store:
        raw = stored_raw_scores(store)
        first = {r.id: r.scoring for r in store.list(limit=None)}
    assert sorted(raw["pickscore"]) == [19.0, 20.5, 21.0, 21.25, 21.75, 22.0, 23.0]
    assert sorted(raw["clipscore"]) == [0.28, 0.31]
    with RunStore(old_store) as store:
        assert {r.id: r.scoring for r in store.list(limit=None)} == first


def test_a_schema_1_shape_written_after_the_migration_is_still_read(old_store):
    RunStore(old_store).close()
    db = sqlite3.connect(old_store)
    db.execute("UPDATE runs SET score_breakdown=? WHERE id='job'", (json.dumps(ROWS["job"][0]),))
    db.commit()
    db.close()
    with RunStore(old_store) as store:
        assert store.get("job").scoring.best == 1
