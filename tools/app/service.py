"""comfygen's operations as plain async Python: what the MCP tools, the CLI and the agent loop call.

One ``ComfyGen`` object holds the long-lived parts (flow library, score table, run store, ComfyUI
endpoint pool) and loads the heavy ones lazily (planner, category classifier, scorers). It never
imports ``mcp``: the server is a thin layer over it, and the eval harness can run the agent loop
in-process against the same object.

Runs started by :meth:`generate` are jobs owned by this object, not by the call that started them: a
call that has waited ``wait_s`` returns the run id with status "running", the job goes on, and
:meth:`get_run` waits for it (or resumes it from the run store after a restart). Cancelling the call
cancels the job, which interrupts ComfyUI, when ``cancel_if`` says the cancel was asked for (see
``runs.py``). On leaving ``async with``, jobs in flight are cancelled (the CLI), or with
``keep_runs_on_close`` left to ComfyUI for a later ``get_run`` (the MCP server).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ...flow_library.categories import CATEGORIES, category_ids
from ...flow_library.library import FlowLibrary
from ...flow_library.model import Flow
from ..errors import (
    ComfyGenError, ComfyUIError, ConfigError, FlowError, FlowNotFound, GuardError, PlannerError, ScoringError, StoreError,
)
from ..settings import Settings, get_settings
from .models import (
    MAX_SEED, CategoriesOut, CategoryOut, DetectedCategory, EndpointOut, FlowOut, FlowSuggestion, RunOut, ScoresOut,
    ScoreTableOut, StatusOut, SuggestOut, TableEntry,
)
from .progress import ProgressTracker, ReportFn
from ..run_scores import RunScores
from .jobs import Job, RunJobs, lookup, record_to_out
from .ranking import planner_why, rank_flows, table_why, user_cells
from ..graph.accel import ACCEL_MODES
from .requests import check_prompt

if TYPE_CHECKING:
    from ...flow_library.score_table import ScoreTable
    from ..comfy.pool import EndpointPool
    from ..planner import Planner
    from ..scoring.ensemble import Ensemble, ScoreResult
    from ..store import RunRecord, RunStore

logger = logging.getLogger(__name__)

PER_MODEL = 2  # suggestions show at most two flows of one model file, so the alternatives span models


class Classifier(Protocol):
    def predict(self, prompt: str, threshold: float = 0.5) -> list[tuple[str, float]]: ...


ScorerFactory = Callable[[Settings], "Ensemble"]


def default_scorer_factory(settings: Settings) -> Ensemble:
    """The real ensemble from ``settings.scorers``, loaded now (raises WeightsMissing when weights are absent).

    ``COMFYGEN_SCORERS=`` (empty) turns scoring off: images come back unscored, and torch is never imported.
    """
    if not settings.scorers:
        raise ScoringError("scoring is turned off (COMFYGEN_SCORERS is empty)",
                           hint="set COMFYGEN_SCORERS, e.g. imagereward,hpsv21,pickscore,aesthetic")
    from ..scoring.ensemble import Ensemble

    return Ensemble.from_settings(settings).load()


def tiny_scorer_factory(settings: Settings) -> Ensemble:
    """Random-weight tiny scorers with the real architectures: for tests and demos, the scores mean nothing."""
    from ..scoring.ensemble import Ensemble

    return Ensemble.from_settings(settings, tiny=True).load()


class ComfyGen:
    """The comfygen service. ``async with ComfyGen(settings) as cg:`` opens the store and the ComfyUI pool."""

    def __init__(self, settings: Settings | None = None, *, library: FlowLibrary | None = None,
                 table: ScoreTable | None = None, scorer_factory: ScorerFactory | None = None,
                 planner: Planner | None = None, classifier: Classifier | None = None,
                 pool: EndpointPool | None = None, store: RunStore | None = None, keep_runs_on_close: bool = False):
        self.settings = settings or get_settings()
        self.keep_runs_on_close = keep_runs_on_close
        self._library = library
        self._table = table
        self._scorer_factory = scorer_factory or default_scorer_factory
        self._scorer: Ensemble | None = None
        self._scorer_error: ComfyGenError | None = None
        self._scorer_lock = asyncio.Lock()
        self._planner = planner
        self._classifier = classifier
        self._pool = pool
        self._own_pool = pool is None
        self._store = store
        self._installed: dict[str, list[str]] | None = None
        self._user_table: ScoreTable | None = None
        self._categories: dict[tuple[str, float], list[DetectedCategory]] = {}
        self.jobs = RunJobs(lambda: self.store)

    # ---------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> "ComfyGen":
        self.settings.home.mkdir(parents=True, exist_ok=True)
        if self._pool is None and self.settings.comfyui_urls:
            from ..comfy.pool import EndpointPool

            self._pool = EndpointPool.from_settings(self.settings)
            await self._pool.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.keep_runs_on_close:
            if self.jobs.detach():
                return  # the jobs still use the pool; the process ends without interrupting them (server/app.py)
        else:
            await self.jobs.close()
        if self._pool is not None and self._own_pool:
            await self._pool.__aexit__(None, None, None)
            self._pool = None

    # ---------------------------------------------------------------- lazy parts
    @property
    def library(self) -> FlowLibrary:
        if self._library is None:
            self._library = FlowLibrary.default(self.settings.user_flows_dir)
        return self._library

    @property
    def table(self) -> ScoreTable:
        """The shipped score table merged with the user's own (``$COMFYGEN_HOME/score_table.json``)."""
        if self._table is None:
            from ...flow_library.score_table import ScoreTable

            shipped = ScoreTable.shipped()
            path = self.settings.score_table_path
            self._user_table = ScoreTable.load(path) if path.is_file() else ScoreTable(metric=shipped.metric)
            self._table = shipped.merge(self._user_table)
        return self._table

    @property
    def store(self) -> RunStore:
        if self._store is None:
            from ..store import RunStore

            self._store = RunStore(self.settings.store_path)
        return self._store

    @property
    def pool(self) -> EndpointPool:
        if self._pool is None:
            raise ConfigError(
                "no ComfyUI server is configured",
                hint="set COMFYGEN_COMFYUI_URLS=http://127.0.0.1:8188 (comma-separate several) and restart the server; "
                     "suggest_flows and get_flow work without one")
        return self._pool

    @property
    def has_pool(self) -> bool:
        return self._pool is not None

    def planner(self) -> Planner:
        if self._planner is None:
            from ..planner import Planner

            self._planner = Planner.load(self.settings.planner_dir)
        return self._planner

    def classifier(self) -> Classifier:
        if self._classifier is None:
            from ..categorize import CategoryClassifier

            self._classifier = CategoryClassifier.load()
        return self._classifier

    async def scorer(self) -> Ensemble:
        """The scoring ensemble, built once; raises the (cached) build error, e.g. WeightsMissing."""
        async with self._scorer_lock:
            if self._scorer is None and self._scorer_error is None:
                try:
                    self._scorer = await asyncio.to_thread(self._scorer_factory, self.settings)
                except ComfyGenError as e:
                    self._scorer_error = e
                except Exception as e:  # scoring is optional: a broken scorer must not fail a run
                    logger.exception("could not build the scorers")
                    self._scorer_error = ScoringError(f"the scorers could not be built ({type(e).__name__}: {e})",
                                                      hint="check `comfygen score` or the scorer settings")
            if self._scorer_error is not None:
                raise self._scorer_error
            return self._scorer

    # ---------------------------------------------------------------- catalogue
    def list_categories(self) -> CategoriesOut:
        return CategoriesOut(categories=[CategoryOut(id=c.id, name=c.name, kind=c.kind, description=c.description)
                                         for c in CATEGORIES])

    def check_categories(self, categories: list[str] | None) -> list[str]:
        valid = category_ids()
        if not categories:
            return valid
        unknown = [c for c in categories if c not in valid]
        if unknown:
            raise GuardError(f"unknown categories {unknown}", hint=f"use ids from list_categories: {', '.join(valid)}")
        return list(dict.fromkeys(categories))

    def score_table(self, categories: list[str] | None = None, top_k: int = 5) -> ScoreTableOut:
        if not 1 <= top_k <= 50:
            raise GuardError(f"top_k={top_k} is out of range", hint="use 1..50 (5 is plenty for choosing)")
        cats = self.check_categories(categories)
        entries = {cat: [self._entry(r.flow_id, cat) for r in self.table.top_k([cat], top_k)] for cat in cats}
        text = self.table.render_text(cats, top_k)
        return ScoreTableOut(categories=cats, top_k=top_k, text=text, entries=entries,
                             empty=not any(entries.values()))

    def _entry(self, flow_id: str, cat: str) -> TableEntry:
        cell = self.table.cell(flow_id, cat)
        return TableEntry(flow_id=flow_id, mean=round(cell.mean, 5), n=cell.n, sources=list(cell.sources))

    def get_flow(self, flow_id: str) -> Flow:
        if not isinstance(flow_id, str) or not flow_id.strip():
            raise FlowNotFound("flow_id is empty", hint="pick an id from suggest_flows or get_score_table")
        return self.library.get(flow_id.strip())

    def flow_out(self, flow: Flow, *, include_graph: bool = False) -> FlowOut:
        return FlowOut(
            id=flow.id, name=flow.name, description=flow.description, family=str(flow.family),
            models=[f"{folder}/{name}" for folder, name in flow.models.files()], sampler=flow.sampler,
            scheduler=flow.scheduler, steps=flow.steps, cfg=flow.cfg, width=flow.width, height=flow.height,
            tags=list(flow.tags), requires=[f"{r.kind}: {r.name}" for r in flow.requires],
            provenance=flow.provenance.kind + (f" of {flow.provenance.parent}" if flow.provenance.parent else "")
            + (f" ({'; '.join(flow.provenance.changes)})" if flow.provenance.changes else ""),
            executable=flow.executable, node_count=len(flow.graph), uri=f"flow://{flow.id}",
            graph=flow.graph if include_graph else None)

    # ---------------------------------------------------------------- choosing a flow
    def detect_categories(self, prompt: str, threshold: float = 0.5) -> list[DetectedCategory]:
        """The prompt's categories; remembered for recent prompts, since a generate asks twice (to pick the flow,
        then to file the run's score under them)."""
        if self._classifier is False:
            return []
        key = (prompt, threshold)
        if key in self._categories:
            return list(self._categories[key])
        try:
            found = self.classifier().predict(prompt, threshold=threshold)
        except (PlannerError, ImportError, FileNotFoundError) as e:
            logger.info("category classifier unavailable: %s", e)
            self._classifier = False  # do not retry (and warn) on every call
            return []
        cats = [DetectedCategory(id=cid, probability=round(float(p), 4)) for cid, p in found]
        if len(self._categories) >= 256:
            self._categories.pop(next(iter(self._categories)))
        self._categories[key] = cats
        return list(cats)

    def why(self, flow: Flow, cats: list[DetectedCategory], source: str = "planner") -> str:
        return table_why(self.table, flow, cats, source)

    def suggest(self, prompt: str, k: int = 5, target_score: float | None = None) -> SuggestOut:
        prompt = check_prompt(prompt)
        if not 1 <= k <= 20:
            raise GuardError(f"k={k} is out of range", hint="ask for 1..20 flows")
        if target_score is not None and not 0.0 <= target_score <= 1.0:
            raise GuardError(f"target_score={target_score} is outside [0, 1]",
                             hint="leave it empty for the best flows, or give e.g. 0.7 for fast flows that reach 0.7")
        cats = self.detect_categories(prompt)
        note = None
        executable, runnable = self._candidates()
        allowed = runnable or executable
        if not runnable:
            note = ("none of the configured ComfyUI's model files can run a ranked flow: these are the best flows "
                    "overall; `comfygen flows show ID` lists the files each needs")
        flows: list[FlowSuggestion] = []
        try:
            flows = self._planner_ranking(prompt, cats, k, target_score, allowed)
            source = "planner"
        except (PlannerError, ImportError, FileNotFoundError) as e:
            preds = self._table_rank([c.id for c in cats])
            if any(score is not None for _, score in preds):
                note, source = f"planner unavailable ({e}); ranked by the score table's means", "score table"
            else:
                note, source = (f"planner unavailable ({e}) and no table scores yet: flows in library order, "
                                "no prediction", "none")
            for flow_id, score in preds:
                if flow_id not in allowed:
                    continue
                flow = self.library.get(flow_id)
                flows.append(FlowSuggestion(flow_id=flow.id, name=flow.name, family=str(flow.family),
                                            predicted_score=None if score is None else round(score, 4),
                                            score_source=source, why=self.why(flow, cats, source),
                                            runnable=self.runnable(flow)))
                if len(flows) == k:
                    break
        if not flows:
            raise PlannerError("no runnable flow could be ranked for this prompt",
                               hint="check `comfygen flows list`; the flow library or planner data may be missing")
        return SuggestOut(prompt=prompt, mode="planner", note=note, categories=cats, flows=flows)

    def _planner_ranking(self, prompt: str, cats: list[DetectedCategory], k: int, target_score: float | None,
                         allowed: set[str]) -> list[FlowSuggestion]:
        planner = self.planner()
        ranked = rank_flows(planner, prompt, self.library, k=k, allowed=allowed, target_score=target_score,
                            user=self._user_cells([c.id for c in cats]), per_model=PER_MODEL)
        out = []
        for p in ranked:
            flow = self.library.get(p.flow_id)
            norm = None if p.provenance == "none" else round(planner.normalized(p.score), 4)
            out.append(FlowSuggestion(flow_id=flow.id, name=flow.name, family=str(flow.family), predicted_score=norm,
                                      score_source="planner", provenance=p.provenance,
                                      why=planner_why(flow, p, cats, planner), runnable=self.runnable(flow)))
        return out

    def _user_cells(self, cats: list[str]) -> dict[str, tuple[float, float, int]]:
        _ = self.table  # loads the user's table
        return user_cells(self._user_table, cats)

    def _table_rank(self, cats: list[str]) -> list[tuple[str, float | None]]:
        ranked: list[tuple[str, float | None]] = [(r.flow_id, r.score)
                                                  for r in self.table.top_k(cats or category_ids(), 10_000)]
        if not ranked:
            ranked = [(f.id, None) for f in self.library if f.executable]
        return ranked

    def _candidates(self) -> tuple[set[str], set[str]]:
        """(executable flow ids, those the configured ComfyUI's model files can run), bound once per snapshot of
        its models rather than on every suggestion."""
        key = getattr(self, "_cand_key", (None, None))
        if key[0] is not self.library or key[1] is not self._installed:
            executable = {f.id for f in self.library if f.executable}
            runnable = executable if self._installed is None else {
                fid for fid in executable if self.runnable(self.library.get(fid))}
            self._cand_key, self._cand = (self.library, self._installed), (executable, runnable)
        return self._cand

    def runnable(self, flow: Flow) -> bool | None:
        if self._installed is None:
            return None
        from ...flow_library.binding import bind

        return bind(flow, self._installed).status == "runnable"

    def pick_flow(self, prompt: str, flow_id: str | None) -> tuple[Flow, str]:
        """The flow to run: the given one, or the planner's top pick (preferring flows this ComfyUI can run)."""
        if flow_id:
            flow = self.get_flow(flow_id)
            if not flow.executable:
                raise FlowError(f"flow {flow.id!r} is a reference flow ({flow.family}) that ComfyUI cannot run",
                                hint="pick an executable flow from suggest_flows")
            return flow, "chosen by the caller"
        out = self.suggest(prompt, k=10)
        pick = next((f for f in out.flows if f.runnable), out.flows[0])
        predicted = f" (predicted {pick.predicted_score})" if pick.predicted_score is not None else ""
        why = (f"top pick of the {pick.score_source}{predicted}; {pick.why}" if pick.score_source != "none"
               else f"first runnable flow (no planner or score table data here); {pick.why}")
        return self.library.get(pick.flow_id), why

    # ---------------------------------------------------------------- ComfyUI status
    async def refresh_installed(self) -> None:
        """Learn the installed model files once (for 'runnable' in suggestions); quiet when ComfyUI is down."""
        if self._installed is None and self.has_pool:
            try:
                await self.status()
            except ComfyGenError as e:
                logger.info("could not list installed models: %s", e)

    async def status(self) -> StatusOut:
        flows = [f for f in self.library if f.executable]
        if not self.has_pool:
            return StatusOut(configured=False, endpoints=[], flows_total=len(flows), runnable=[], runnable_count=0,
                             hint="no ComfyUI configured: set COMFYGEN_COMFYUI_URLS (e.g. http://127.0.0.1:8188)")
        statuses = await self.pool.status()
        endpoints, installed = [], {}
        for st in statuses:
            files = sum(len(v) for v in (st.models or {}).values())
            endpoints.append(EndpointOut(url=st.url, healthy=st.healthy, queue_running=st.queue_running or 0,
                                         queue_pending=st.queue_pending or 0, model_files=files, error=st.error))
            for folder, names in (st.models or {}).items():
                installed.setdefault(folder, set()).update(names)
        self._installed = {k: sorted(v) for k, v in installed.items()} if installed else self._installed
        counts = {"runnable": [], "mappable": 0, "missing": 0}
        if self._installed is not None:
            from ...flow_library.binding import bind

            for flow in flows:
                status = bind(flow, self._installed).status
                if status == "runnable":
                    counts["runnable"].append(flow.id)
                elif status == "mappable":
                    counts["mappable"] += 1
                else:
                    counts["missing"] += 1
        healthy = any(e.healthy for e in endpoints)
        hint = None if healthy else "no ComfyUI endpoint answers: start ComfyUI or fix COMFYGEN_COMFYUI_URLS"
        models = {folder: names[:30] for folder, names in sorted((self._installed or {}).items()) if names}
        return StatusOut(configured=True, endpoints=endpoints, flows_total=len(flows), runnable=counts["runnable"][:50],
                         models=models,
                         runnable_count=len(counts["runnable"]), mappable_count=counts["mappable"],
                         missing_count=counts["missing"], hint=hint)

    # ---------------------------------------------------------------- scoring
    async def score_images(self, paths: list[Path], prompt: str) -> tuple[list[ScoreResult] | None, str | None]:
        """Score images; returns (results, None) or (None, why scoring was skipped). Never raises for weights."""
        try:
            ensemble = await self.scorer()
        except ComfyGenError as e:
            return None, f"{e.message}" + (f" ({e.hint})" if e.hint else "")

        def run() -> list[ScoreResult]:
            from ..scoring.stored_runs import load_images  # as stored: each scorer converts by its original's rule

            images = load_images(paths)
            return list(ensemble.score(images, [prompt] * len(images)))

        try:
            return await asyncio.to_thread(run), None
        except ComfyGenError as e:
            return None, str(e)
        except Exception as e:  # e.g. out of memory on the scorer device: keep the image, say why
            logger.exception("scoring failed")
            return None, f"scoring failed ({type(e).__name__}: {e})"

    def readable_image(self, path: str) -> Path:
        """``path`` resolved, when it is an image file inside COMFYGEN_HOME or a folder of COMFYGEN_IMAGE_DIRS.

        Every refusal (outside those folders, missing, not a file, not an image) gives the same message,
        so a caller cannot learn whether a file exists elsewhere on the server's disk.
        """
        roots = [self.settings.home, *(Path(d) for d in self.settings.image_dirs)]
        refused = GuardError(f"cannot score {path}: not an image file inside COMFYGEN_HOME or COMFYGEN_IMAGE_DIRS",
                             hint="pass a run_id, or the image_path a run returned; to score images from another "
                                  "folder, add it to COMFYGEN_IMAGE_DIRS on the server")
        try:
            p = Path(path).expanduser().resolve(strict=True)  # symlinks resolved: a link out of home is outside
            allowed = [r.expanduser().resolve() for r in roots]
        except (OSError, RuntimeError, ValueError):
            raise refused from None
        if not any(p == r or p.is_relative_to(r) for r in allowed) or not p.is_file():
            raise refused
        if p.stat().st_size > 64 * 1024 * 1024:
            raise GuardError(f"{path} is larger than 64 MB", hint="score a smaller image")
        try:
            from PIL import Image

            with Image.open(p) as im:
                im.verify()
        except Exception:  # PIL raises many types for non-images
            raise refused from None
        return p

    async def score_path(self, path: str, prompt: str) -> ScoresOut:
        prompt = check_prompt(prompt)
        p = self.readable_image(path)
        results, skipped = await self.score_images([p], prompt)
        if results is None:
            return ScoresOut(skipped=skipped)
        return ScoresOut(total=round(float(results[0].total), 5),
                         per_scorer={k: round(float(v), 5) for k, v in results[0].raw.items()})

    def observe(self, flow_id: str, prompt: str, total: float) -> None:
        """Feed a scored run back into the user's score table (the closed loop)."""
        if not self.settings.online_table_updates:
            return
        cats = [c.id for c in self.detect_categories(prompt)]
        if not cats:
            return
        try:
            self.table.observe(flow_id, cats, total, source="own runs")  # the merged view, for this process
            if self._user_table is not None:  # None when a table was injected: nothing to save
                from ..dataset.table import add_to_score_table, observation

                self._user_table.observe(flow_id, cats, total, source="own runs")
                add_to_score_table(self.settings.score_table_path,
                                   observation(flow_id, cats, total, "own runs", metric=self._user_table.metric))
        except (ComfyGenError, OSError) as e:
            logger.warning("could not update the score table: %s", e)

    # ---------------------------------------------------------------- runs
    async def generate(self, prompt: str, *, flow_id: str | None = None, negative: str | None = None,
                       seed: int | None = None, width: int | None = None, height: int | None = None,
                       accelerate: str = "none", candidates: int = 1, wait_s: float | None = None,
                       report: ReportFn | None = None, cancel_if: Callable[[], bool] | None = None) -> RunOut:
        """Run a flow for the prompt, score the images, keep the best. Returns a RunOut."""
        prompt = check_prompt(prompt)
        if accelerate not in ACCEL_MODES:
            raise GuardError(f"accelerate={accelerate!r} is not a mode", hint=f"use one of {', '.join(ACCEL_MODES)}")
        if not 1 <= candidates <= min(16, self.settings.max_batch):
            raise GuardError(f"candidates={candidates} is out of range",
                             hint=f"use 1..{min(16, self.settings.max_batch)}; more candidates = more GPU time")
        for name, value in (("width", width), ("height", height)):
            if value is not None and (value < 64 or value > self.settings.max_side or value % 8):
                raise GuardError(f"{name}={value} is not allowed",
                                 hint=f"use a multiple of 8 between 64 and {self.settings.max_side}")
        if seed is not None and not 0 <= seed <= MAX_SEED:
            raise GuardError(f"seed={seed} is out of range", hint=f"use 0..{MAX_SEED} (ComfyUI's range), or leave it "
                                                                  "empty for a random seed")
        pool = self.pool
        if flow_id is None:
            await self.refresh_installed()  # so the pick prefers flows that can run here
        flow, why = self.pick_flow(prompt, flow_id)
        tracker = ProgressTracker(report, class_types={n: d.get("class_type", "") for n, d in flow.graph.items()})
        params: dict[str, Any] = dict(negative=negative, seed=seed, width=width, height=height, batch=candidates,
                                      accelerate=accelerate)
        job = self.jobs.start(lambda job: self._run(job, flow, pool, params), flow_id=flow.id, why=why,
                              prompt=prompt, tracker=tracker)
        try:
            return await self.jobs.wait(job, wait_s, cancel_if=cancel_if)
        except ComfyUIError as e:
            if not e.url:  # say which servers were tried
                e.url = ", ".join(self.settings.comfyui_urls)
            raise

    async def get_run(self, run_id: str, *, wait_s: float | None = 0.0, report: ReportFn | None = None,
                      cancel_if: Callable[[], bool] | None = None) -> RunOut:
        if not isinstance(run_id, str) or not run_id.strip():
            raise StoreError("run_id is empty", hint="pass the run_id that generate returned")
        return await self.jobs.get(run_id.strip(), wait_s=wait_s, report=report, cancel_if=cancel_if,
                                   resume=self._resume if self.has_pool else None)

    async def _run(self, job: Job, flow: Flow, pool: EndpointPool, params: dict[str, Any]) -> RunOut:
        """A generate job's body: run the flow on ComfyUI (the record exists from submission on), then finish it."""
        from ..pipeline import run_flow

        record = await run_flow(flow, job.prompt, pool=pool, store=self.store, settings=self.settings,
                                on_event=job.tracker, on_record=lambda rec: self.jobs.record_created(job, rec),
                                **params)
        self.jobs.record_created(job, record)
        return await self._finish(job, record)

    async def _resume(self, record: RunRecord, job: Job) -> RunOut:
        """A run an earlier process left running: wait for it on ComfyUI, then finish it here."""
        from ..pipeline import resume_run

        rec = await resume_run(record.id, pool=self.pool, store=self.store, settings=self.settings,
                               on_event=job.tracker)
        return await self._finish(job, rec)

    async def _finish(self, job: Job, record: RunRecord) -> RunOut:
        """Score a finished record's images, store the scores, feed the score table, return the result."""
        paths = [Path(o.path) for o in record.outputs]
        if record.status != "succeeded" or not paths:
            return record_to_out(record, why_flow=job.why)
        await job.tracker.note("scoring")
        results, skipped = await self.score_images(paths, job.prompt)
        scores: RunScores | None = None
        if results:
            scores = RunScores.from_results(results, [str(p) for p in paths], scored_by="generate")
            self.store.set_scores(record.id, scores)
            self.observe(record.flow_id, job.prompt, float(scores.total))  # type: ignore[arg-type]
            record = self.store.get(record.id)
        elif skipped:  # keep the reason, so get_run after a restart says it too
            scores = RunScores.unscored(skipped, scored_by="generate")
            try:
                self.store.set_scores(record.id, scores)
            except Exception:  # noqa: BLE001 - the run itself is recorded; the reason is a courtesy
                logger.warning("could not record why run %s is unscored", record.id, exc_info=True)
        totals = scores.totals(len(paths)) if scores is not None else [None] * len(paths)
        best = (scores.best if scores is not None else None) or 0
        await job.tracker.note("done", best_score=totals[best])
        return record_to_out(record, why_flow=job.why, totals=totals, best=best, skipped=skipped)

    def record(self, run_id: str) -> RunRecord:
        return lookup(self.store, run_id)

    def run_out(self, record: RunRecord, **extra: Any) -> RunOut:
        return record_to_out(record, **extra)

    def now(self) -> float:
        return time.monotonic()
