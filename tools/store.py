"""The run store: one SQLite file (WAL) holding every run, its graph, outputs, timings and scores.

Safe for several processes at once: WAL journal, a busy timeout, and every write in a short
``BEGIN IMMEDIATE`` transaction. A run records the pid and host that drive it, so
:meth:`RunStore.recover_orphans` can tell runs whose process died from runs still in progress, and
the ComfyUI prompt id + endpoint, so a run whose caller went away can be resumed
(:func:`comfygen.tools.pipeline.resume_run`).

Seeds go up to 2**64-1 (ComfyUI's range), beyond SQLite's signed 64-bit integers: they are stored
as decimal text.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import errno
import os
import secrets
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from .errors import StoreError
from .files import pid_alive
from .run_scores import RunScores, legacy_row_scores, migrate_schema1

if TYPE_CHECKING:
    from .settings import Settings

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: score_breakdown holds a typed RunScores (1: one untyped shape per scoring path)
RunStatus = Literal["queued", "running", "succeeded", "failed", "interrupted", "cancelled"]
ACTIVE = ("queued", "running")
FINAL = ("succeeded", "failed", "interrupted", "cancelled")
# Finished for good: resuming never changes these (``interrupted`` may still be resumed).
FINISHED = ("succeeded", "failed", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    status TEXT NOT NULL,
    prompt TEXT NOT NULL,
    negative TEXT,
    flow_id TEXT NOT NULL,
    graph_hash TEXT NOT NULL,
    graph TEXT NOT NULL,
    seed TEXT,
    seeds TEXT NOT NULL DEFAULT '[]',
    params TEXT NOT NULL DEFAULT '{}',
    params_key TEXT NOT NULL,
    accelerate TEXT NOT NULL DEFAULT 'none',
    endpoint TEXT,
    comfy_prompt_id TEXT,
    pid INTEGER,
    host TEXT,
    timings TEXT NOT NULL DEFAULT '{}',
    outputs TEXT NOT NULL DEFAULT '[]',
    scores TEXT NOT NULL DEFAULT '{}',
    score_total REAL,
    score_breakdown TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS runs_reuse ON runs (flow_id, seed, params_key, status);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status);
"""


_FAIL_SQL = "UPDATE runs SET status=?, updated=?, error=?, timings=? WHERE id=?"


class OutputFile(BaseModel):
    """One image a run produced, as written to disk."""

    path: str = Field(description="Absolute path of the PNG.")
    sha256: str
    size: int = Field(description="File size in bytes.")
    width: int
    height: int
    node: str | None = Field(None, description="ComfyUI output node id that produced it.")
    index: int = Field(0, description="Position in the run's batch.")


class RunTimings(BaseModel):
    """Unix timestamps (seconds) and per-node execution seconds."""

    queued: float | None = Field(None, description="Recorded in the store (before submitting).")
    submitted: float | None = Field(None, description="POSTed to ComfyUI.")
    started: float | None = Field(None, description="ComfyUI started executing it.")
    finished: float | None = Field(None, description="ComfyUI's end-of-prompt marker (or the failure).")
    saved: float | None = Field(None, description="Images on disk and the run recorded as finished.")
    per_node: dict[str, float] = Field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        if self.finished is None or self.queued is None:
            return None
        return self.finished - self.queued


class RunError(BaseModel):
    type: str
    message: str
    hint: str | None = None
    details: dict[str, Any] | None = None


class RunRecord(BaseModel):
    """One run of a flow, as the store keeps it."""

    id: str
    created: float
    updated: float
    status: RunStatus
    prompt: str
    negative: str | None = None
    flow_id: str
    graph_hash: str
    graph: dict[str, Any]
    seed: int | None = None
    seeds: list[int] = Field(default_factory=list, description="Every seed used (noise search records several).")
    params: dict[str, Any] = Field(default_factory=dict, description="width, height, batch, ... as requested.")
    accelerate: str = "none"
    endpoint: str | None = None
    comfy_prompt_id: str | None = None
    pid: int | None = None
    host: str | None = None
    timings: RunTimings = Field(default_factory=RunTimings)
    outputs: list[OutputFile] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)
    score_total: float | None = None
    scoring: RunScores | None = Field(None, description="How the run was scored, per image (None: never scored).")
    error: RunError | None = None

    @property
    def best_output(self) -> OutputFile | None:
        """The image its scoring chose (the first when unscored); None when it has no image."""
        if not self.outputs:
            return None
        index = self.scoring.best if self.scoring is not None else None
        return self.outputs[index] if isinstance(index, int) and 0 <= index < len(self.outputs) else self.outputs[0]

    @property
    def resumable(self) -> bool:
        """Not finished, and ComfyUI may still hold the result (the prompt id is known).

        A ``queued`` run counts: its process may have handed it over just now; resuming one whose process
        is gone records it ``failed`` (it never reached ComfyUI).
        """
        return self.status in ("queued", "running", "interrupted") and bool(self.comfy_prompt_id) and not self.outputs


def params_key(params: dict[str, Any]) -> str:
    """Canonical hash of run parameters (key order does not matter)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def new_run_id(now: float | None = None) -> str:
    """Sortable, readable run ids: ``20261122-214900-3f9a2c1b``."""
    t = _dt.datetime.fromtimestamp(time.time() if now is None else now, tz=_dt.timezone.utc)
    return f"{t:%Y%m%d-%H%M%S}-{secrets.token_hex(4)}"


LOW_SPACE = 1024 * 1024  # below this much free space, an I/O error of SQLite is taken for a full disk
DISK_FULL_HINT = "free disk space (or point COMFYGEN_HOME at a larger disk) and retry"


def free_bytes(path: Path) -> int | None:
    for p in (path, *path.parents):
        try:
            return shutil.disk_usage(p).free
        except OSError:
            continue
    return None


def is_disk_full(e: BaseException, path: Path) -> bool:
    """SQLITE_FULL, ENOSPC/EDQUOT, or an I/O error (SQLite's answer when its WAL or -shm cannot grow) on a disk
    with next to no space left."""
    if getattr(e, "sqlite_errorcode", None) == 13 or "full" in str(e).lower():  # SQLITE_FULL
        return True
    if getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
        return True
    code = getattr(e, "sqlite_errorcode", None)
    io_error = (code is not None and code & 0xFF == 10) or "disk i/o error" in str(e).lower()  # SQLITE_IOERR_*
    free = free_bytes(path.parent) if io_error else None
    return free is not None and free < LOW_SPACE


def _store_error(e: sqlite3.Error, path: Path, action: str) -> StoreError:
    msg = str(e)
    low = msg.lower()
    if is_disk_full(e, path):
        free = free_bytes(path.parent)
        left = f" ({free // 1024} KiB free)" if free is not None else ""
        return StoreError(f"run store {path}: disk full{left} while {action}; nothing was written",
                          hint=DISK_FULL_HINT)
    if "disk i/o error" in low:
        return StoreError(f"run store {path}: the disk failed while {action} ({msg})",
                          hint="check the disk (free space, errors in the system log) and retry")
    if "locked" in low or "busy" in low:
        return StoreError(f"run store {path}: database stayed locked while {action}",
                          hint="another process holds a long write; retry, or raise the busy timeout")
    if "malformed" in low or "not a database" in low:
        return StoreError(f"run store {path} is corrupt ({msg})",
                          hint="move the file aside; a new empty store is created on next start")
    return StoreError(f"run store {path}: {action} failed: {msg}")


class RunStore:
    """SQLite-backed run records. One instance may be shared by threads and coroutines of a process."""

    def __init__(self, path: Path | str, *, busy_timeout_s: float = 30.0):
        self.path = Path(path)
        self.host = socket.gethostname()
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            with self._tx():
                for stmt in filter(str.strip, _SCHEMA.split(";")):
                    self._db.execute(stmt)
                row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                if row is not None and int(row[0]) > SCHEMA_VERSION:
                    raise StoreError(f"run store {self.path} has schema version {row[0]}, newer than this "
                                     f"comfygen understands ({SCHEMA_VERSION})", hint="upgrade comfygen")
                if row is None or int(row[0]) < 2:
                    migrate_schema1(self._db)
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.Error as e:
            raise _store_error(e, self.path, "opening") from e
        except OSError as e:
            if is_disk_full(e, self.path):
                raise StoreError(f"cannot open run store {self.path}: the disk is full", hint=DISK_FULL_HINT) from e
            raise StoreError(f"cannot open run store {self.path}: {e}",
                             hint="check COMFYGEN_HOME exists and is writable") from e
        self._pending: dict[str, tuple[Any, ...]] = {}  # failures that could not be written yet (disk full)
        self._sweep_temp()

    def _sweep_temp(self) -> None:
        """Delete the temp files of writers that were killed mid-write (images, reports, the score table)."""
        from .files import remove_stale_temp

        try:
            removed = remove_stale_temp(self.path.parent)
        except OSError as e:  # a sweep must never stop the store from opening
            log.debug("temp sweep of %s failed: %s", self.path.parent, e)
            return
        if removed:
            log.info("removed %d temp file(s) left by killed writers under %s", len(removed), self.path.parent)

    @classmethod
    def from_settings(cls, settings: Settings) -> RunStore:
        return cls(settings.store_path)

    def close(self) -> None:
        with self._lock:
            self._flush_pending()
            for run_id in self._pending:
                log.warning("run %s: its failure could not be recorded (disk full); the next `comfygen runs recover` "
                            "marks it interrupted", run_id)
            self._db.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                # SQLite rolls back by itself on some errors (SQLITE_FULL, SQLITE_IOERR): only roll back what is open.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _write(self, action: str, sql: str, args: tuple[Any, ...]) -> int:
        if self._pending:
            self._flush_pending()
        try:
            with self._tx() as db:
                return db.execute(sql, args).rowcount
        except sqlite3.Error as e:
            raise _store_error(e, self.path, action) from e

    # -- writes -------------------------------------------------------------------------------

    def create(self, *, prompt: str, flow_id: str, graph: dict[str, Any], graph_hash: str | None = None,
               negative: str | None = None, seed: int | None = None, seeds: list[int] | None = None,
               params: dict[str, Any] | None = None, accelerate: str = "none", endpoint: str | None = None,
               comfy_prompt_id: str | None = None, run_id: str | None = None) -> RunRecord:
        """Record a new run as ``queued`` (owned by this process)."""
        from ..flow_library.model import graph_hash as _graph_hash

        now = time.time()
        params = dict(params or {})
        seeds = list(seeds if seeds is not None else ([] if seed is None else [seed]))
        rec = RunRecord(
            id=run_id or new_run_id(now), created=now, updated=now, status="queued", prompt=prompt,
            negative=negative, flow_id=flow_id, graph_hash=graph_hash or _graph_hash(graph), graph=graph, seed=seed,
            seeds=seeds, params=params, accelerate=accelerate, endpoint=endpoint, comfy_prompt_id=comfy_prompt_id,
            pid=os.getpid(), host=self.host, timings=RunTimings(queued=now),
        )
        self._write("recording a new run", """
            INSERT INTO runs (id, created, updated, status, prompt, negative, flow_id, graph_hash, graph, seed, seeds,
                              params, params_key, accelerate, endpoint, comfy_prompt_id, pid, host, timings)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""", (
            rec.id, now, now, rec.status, prompt, negative, flow_id, rec.graph_hash, json.dumps(graph),
            None if seed is None else str(seed), json.dumps([str(s) for s in seeds]), json.dumps(params, default=str),
            params_key(params), accelerate, endpoint, comfy_prompt_id, rec.pid, rec.host,
            rec.timings.model_dump_json()))
        return rec

    def mark_running(self, run_id: str, *, endpoint: str | None = None, comfy_prompt_id: str | None = None,
                     started: float | None = None) -> None:
        """The run was handed to ComfyUI (or taken over by this process, e.g. when resuming).

        A finished run (succeeded, failed, cancelled) is left as it is, error included.
        """
        rec = self.get(run_id)
        timings = rec.timings.model_copy(update={"started": started or rec.timings.started or time.time()})
        self._write("marking a run running", """
            UPDATE runs SET status='running', updated=?, endpoint=COALESCE(?, endpoint),
                   comfy_prompt_id=COALESCE(?, comfy_prompt_id), pid=?, host=?, timings=?, error=NULL
            WHERE id=? AND status NOT IN ('succeeded', 'failed', 'cancelled')""",
                    (time.time(), endpoint, comfy_prompt_id, os.getpid(), self.host, timings.model_dump_json(),
                     run_id))

    def set_endpoint(self, run_id: str, endpoint: str, comfy_prompt_id: str | None = None) -> None:
        self._write("recording the endpoint", """
            UPDATE runs SET updated=?, endpoint=?, comfy_prompt_id=COALESCE(?, comfy_prompt_id) WHERE id=?""",
                    (time.time(), endpoint, comfy_prompt_id, run_id))

    def finish(self, run_id: str, *, outputs: list[OutputFile], timings: RunTimings | None = None,
               endpoint: str | None = None, comfy_prompt_id: str | None = None) -> RunRecord:
        """Mark a run succeeded with its output files; returns the updated record."""
        rec = self.get(run_id)
        merged = rec.timings.model_copy(update={k: v for k, v in (timings.model_dump() if timings else {}).items()
                                                 if v not in (None, {})})
        if merged.finished is None:
            merged.finished = time.time()
        try:
            self._write("recording a finished run", """
                UPDATE runs SET status='succeeded', updated=?, outputs=?, timings=?, endpoint=COALESCE(?, endpoint),
                       comfy_prompt_id=COALESCE(?, comfy_prompt_id), error=NULL
                WHERE id=?""", (time.time(), json.dumps([o.model_dump() for o in outputs]), merged.model_dump_json(),
                                endpoint, comfy_prompt_id, run_id))
        except StoreError:
            for o in outputs:  # not recorded, so not referenced: ComfyUI still has them for a resume
                Path(o.path).unlink(missing_ok=True)
            raise
        return self.get(run_id)

    def fail(self, run_id: str, error: BaseException | RunError | str, *,
             status: Literal["failed", "interrupted", "cancelled"] = "failed") -> RunRecord:
        """Record a failure (or interruption/cancellation) with a readable error."""
        if isinstance(error, RunError):
            err = error
        elif isinstance(error, BaseException):
            err = RunError(type=type(error).__name__, message=getattr(error, "message", None) or str(error) or
                           type(error).__name__, hint=getattr(error, "hint", None),
                           details=_jsonable(getattr(error, "details", None)))
        else:
            err = RunError(type="Error", message=str(error))
        rec = self.get(run_id)
        timings = rec.timings.model_copy(update={"finished": time.time()})
        args = (status, time.time(), err.model_dump_json(), timings.model_dump_json(), run_id)
        self._remove_partial_outputs(rec)
        try:
            self._write("recording a failed run", _FAIL_SQL, args)
        except StoreError as e:
            if not is_disk_full(e.__cause__ or e, self.path):
                raise
            # The failure itself cannot be written: keep it and write it with the next write or at close; if this
            # process ends first, the run's dead pid makes `recover_orphans` mark it interrupted.
            log.warning("run %s %s; recording that failed too (disk full): retried later", run_id, status)
            self._pending[run_id] = args
            return rec.model_copy(update={"status": status, "error": err, "timings": timings})
        return self.get(run_id)

    def _flush_pending(self) -> None:
        for run_id, args in list(self._pending.items()):
            try:
                with self._tx() as db:
                    db.execute(_FAIL_SQL + " AND status IN ('queued','running')", args)
            except sqlite3.Error:
                return  # still no space: keep them
            del self._pending[run_id]

    def _remove_partial_outputs(self, rec: RunRecord) -> None:
        """A failed run references no image: PNGs it saved before failing (``outputs/<day>/<id>_NN.png``) go."""
        referenced = {o.path for o in rec.outputs}
        day = _dt.datetime.fromtimestamp(rec.created, tz=_dt.timezone.utc).strftime("%Y-%m-%d")
        for png in (self.path.parent / "outputs" / day).glob(f"{rec.id}_*.png"):
            if str(png.resolve()) not in referenced:
                try:
                    png.unlink()
                except OSError as e:
                    log.debug("could not remove %s: %s", png, e)

    def set_scores(self, run_id: str, scores: RunScores) -> None:
        """The one writer of a run's scores: the typed record, and the ``scores`` / ``score_total`` columns
        (the run's per-scorer raw scores and total, which listing and reuse filter on) derived from it."""
        total = scores.total
        n = self._write("recording scores", """
            UPDATE runs SET updated=?, scores=?, score_total=?, score_breakdown=? WHERE id=?""",
                        (time.time(), json.dumps(scores.per_scorer()), None if total is None else float(total),
                         scores.model_dump_json(exclude_defaults=True), run_id))
        if n == 0:
            raise StoreError(f"unknown run {run_id!r}", hint="list runs with `comfygen runs list`")

    def recover_orphans(self, *, stale_after_s: float | None = None) -> list[RunRecord]:
        """Mark runs whose process is gone: ``running`` ones ``interrupted``, ``queued`` ones ``failed``; return them.

        A run belongs to a dead process when it was recorded on this host and its pid no longer exists
        (or, for runs from other hosts, when ``stale_after_s`` is given and it has not been updated for
        that long). A ``queued`` run was never handed to ComfyUI, so nothing can finish it. Returned
        records with ``resumable`` True can be finished with ``resume_run``: ComfyUI may well have
        completed them.
        """
        recovered: list[RunRecord] = []
        now = time.time()
        for rec in self.list(status=list(ACTIVE), limit=None):
            if rec.pid == os.getpid() and rec.host == self.host:
                continue
            if rec.host == self.host:
                dead = rec.pid is None or not pid_alive(rec.pid)
            else:
                dead = stale_after_s is not None and now - rec.updated > stale_after_s
            if not dead:
                continue
            submitted = rec.status == "running" and bool(rec.comfy_prompt_id)
            if submitted:
                err = RunError(type="Interrupted", message=f"the process that ran it (pid {rec.pid} on {rec.host}) "
                               "stopped before the run finished", hint=f"resume it with `comfygen runs show {rec.id} "
                                                                      "--resume`")
            else:
                err = RunError(type="NeverSubmitted", message=f"the process that ran it (pid {rec.pid} on "
                               f"{rec.host}) stopped before it was handed to ComfyUI", hint="run it again")
            try:
                with self._tx() as db:  # only if still active: another process may be recovering too
                    cur = db.execute("UPDATE runs SET status=?, updated=?, error=? "
                                     "WHERE id=? AND status IN ('queued','running')",
                                     ("interrupted" if submitted else "failed", now, err.model_dump_json(), rec.id))
            except sqlite3.Error as e:
                raise _store_error(e, self.path, "recovering orphaned runs") from e
            if cur.rowcount:
                recovered.append(self.get(rec.id))
        return recovered

    def delete(self, run_id: str) -> None:
        self._write("deleting a run", "DELETE FROM runs WHERE id=?", (run_id,))

    # -- reads --------------------------------------------------------------------------------

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        try:
            with self._lock:
                cur = self._db.execute(sql, args)
                cols = [c[0] for c in cur.description]
                return [dict(zip(cols, row)) for row in cur.fetchall()]  # type: ignore[misc]
        except sqlite3.Error as e:
            raise _store_error(e, self.path, "reading") from e

    def get(self, run_id: str) -> RunRecord:
        """A run by id, or by a unique id prefix (at least 6 characters)."""
        rows = self._query("SELECT * FROM runs WHERE id=?", (run_id,))
        if not rows and len(run_id) >= 6:
            rows = self._query("SELECT * FROM runs WHERE id LIKE ? ESCAPE '\\' LIMIT 2",
                               (run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",))
            if len(rows) > 1:
                raise StoreError(f"run id prefix {run_id!r} is ambiguous", hint="give more characters of the id")
        if not rows:
            raise StoreError(f"unknown run {run_id!r}", hint="list runs with `comfygen runs list`")
        return _record(rows[0])

    def list(self, *, flow_id: str | None = None, status: str | list[str] | None = None,
             prompt_contains: str | None = None, scored: bool | None = None, since: float | None = None,
             limit: int | None = 50, offset: int = 0, oldest_first: bool = False) -> list[RunRecord]:
        """Runs matching the filters, newest first (``limit=None`` for all)."""
        where, args = [], []
        if flow_id is not None:
            where.append("flow_id=?")
            args.append(flow_id)
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args += statuses
        if prompt_contains:
            where.append("instr(lower(prompt), lower(?)) > 0")
            args.append(prompt_contains)
        if scored is not None:
            where.append("score_total IS NOT NULL" if scored else "score_total IS NULL")
        if since is not None:
            where.append("created >= ?")
            args.append(since)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += f" ORDER BY created {'ASC' if oldest_first else 'DESC'}, id {'ASC' if oldest_first else 'DESC'}"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            args += [limit, offset]
        return [_record(r) for r in self._query(sql, tuple(args))]

    def count(self, *, status: str | None = None) -> int:
        sql, args = "SELECT COUNT(*) AS n FROM runs", ()
        if status:
            sql, args = sql + " WHERE status=?", (status,)
        return int(self._query(sql, args)[0]["n"])

    def find_existing(self, flow_id: str, prompt: str, seed: int | None, params: dict[str, Any], *,
                      graph_hash: str | None = None, scored: bool | None = None) -> RunRecord | None:
        """The newest succeeded run of the same flow, prompt, seed and parameters (for reuse), or None."""
        sql = ("SELECT * FROM runs WHERE flow_id=? AND prompt=? AND seed IS ? AND params_key=? "
               "AND status='succeeded'")
        args: list[Any] = [flow_id, prompt, None if seed is None else str(seed), params_key(params)]
        if graph_hash is not None:
            sql += " AND graph_hash=?"
            args.append(graph_hash)
        if scored:
            sql += " AND score_total IS NOT NULL"
        rows = self._query(sql + " ORDER BY created DESC LIMIT 1", tuple(args))
        if not rows:
            return None
        rec = _record(rows[0])
        if any(not Path(o.path).is_file() for o in rec.outputs):
            return None  # files were removed: the run cannot be reused
        return rec


def _record(row: dict[str, Any]) -> RunRecord:
    return RunRecord(
        id=row["id"], created=row["created"], updated=row["updated"], status=row["status"], prompt=row["prompt"],
        negative=row["negative"], flow_id=row["flow_id"], graph_hash=row["graph_hash"], graph=json.loads(row["graph"]),
        seed=None if row["seed"] is None else int(row["seed"]), seeds=[int(s) for s in json.loads(row["seeds"])],
        params=json.loads(row["params"]), accelerate=row["accelerate"], endpoint=row["endpoint"],
        comfy_prompt_id=row["comfy_prompt_id"], pid=row["pid"], host=row["host"],
        timings=RunTimings.model_validate_json(row["timings"]),
        outputs=[OutputFile.model_validate(o) for o in json.loads(row["outputs"])],
        scores=json.loads(row["scores"]), score_total=row["score_total"],
        scoring=_scoring(row),
        error=None if row["error"] is None else RunError.model_validate_json(row["error"]),
    )


def _scoring(row: dict[str, Any]) -> RunScores | None:
    try:
        return None if row["score_breakdown"] is None else RunScores.model_validate_json(row["score_breakdown"])
    except ValueError:  # a schema-1 shape that the migration did not see (e.g. a row copied in from an old file)
        return legacy_row_scores(row)


def _jsonable(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return {"repr": repr(value)}
