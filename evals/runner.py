"""Run an evaluation from a config: prompts × seeds × strategies -> images -> scores -> report.

Resumable and economical at two levels: the run directory's ``samples.jsonl`` says which
(strategy, prompt, seed) are done, and the run store's :meth:`find_existing` hands back any image made
before with the same (flow, prompt, seed, parameters), even by another evaluation or a user run.
Scores already in the store are reused too (real scorers only; tiny test scorers never touch the store).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from ..flow_library.library import FlowLibrary
from ..tools.errors import ComfyGenError, ConfigError
from ..tools.settings import Settings, get_settings

if TYPE_CHECKING:
    from ..tools.comfy.pool import EndpointPool
    from ..tools.store import RunStore
from .geneval import DEFAULT_CLIP, DEFAULT_DETECTOR, GENEVAL_RULES, OWLV2_RULES, GenEvalRules
from .metrics import Sample
from .prompts import Prompt, load_set, sample
from .samples import error_sample, sample_from_record
from .strategies import Strategy, StrategySpec, build_strategies
from .summary import RUN_FILE, SAMPLES_FILE, load_samples

log = logging.getLogger(__name__)


class PromptSpec(BaseModel):
    set: str = Field(description="Built-in set name (parti, drawbench, geneval, ...) or a prompt file path.")
    n: int | None = Field(None, description="Total prompts (spread over categories).")
    per_category: int | None = Field(None, description="At most this many prompts per category.")
    categories: list[str] | None = Field(None, description="Only these categories.")
    seed: int = Field(0, description="Sampling seed.")


class GenEvalSpec(BaseModel):
    tiny: bool = Field(False, description="Random tiny OWLv2/CLIP (tests); verdicts are meaningless.")
    detector: str = DEFAULT_DETECTOR
    clip: str = DEFAULT_CLIP
    rules: Literal["owlv2", "geneval"] = Field("owlv2", description="Threshold preset (see evals/geneval.py).")
    overrides: dict[str, float] = Field(default_factory=dict, description="Override rule fields (threshold, ...).")

    def build_rules(self) -> GenEvalRules:
        base = GENEVAL_RULES if self.rules == "geneval" else OWLV2_RULES
        return base.model_copy(update=self.overrides)


class EvalConfig(BaseModel):
    name: str
    description: str = ""
    data_dir: str | None = None
    prompts: PromptSpec
    seeds: int = Field(1, ge=1, description="Seeds per prompt (the same for every strategy).")
    seed: int = Field(0, description="Base seed: per-prompt seeds derive from it and the prompt id.")
    width: int | None = None
    height: int | None = None
    negative: str | None = None
    accelerate: str = "none"
    strategies: list[StrategySpec]
    scorers: list[str] = Field(default_factory=list, description="Scorers to run on every image.")
    heldout: str | None = Field(None, description="Scorer for win rates (must be in scorers).")
    baseline: str | None = Field(None, description="Strategy the summary's win-rate column compares against.")
    tiny_scorers: bool = Field(False, description="Tiny random scorers (CI smoke runs only).")
    geneval: GenEvalSpec | None = None
    comfyui_urls: list[str] = Field(default_factory=list, description="Default: COMFYGEN_COMFYUI_URLS.")
    concurrency: int | None = None
    n_boot: int = 2000
    out_dir: str | None = Field(None, description="Default: $COMFYGEN_HOME/evals/<name>.")


def load_config(path: str | Path) -> EvalConfig:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config {p} not found", hint="see evals/configs/ for examples")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
        cfg = EvalConfig.model_validate(data)
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}", hint="check indentation and quoting") from e
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"{p}: {where}: {first['msg']}", hint="see evals/configs/smoke.yaml for a valid config") from e
    if cfg.heldout and cfg.heldout not in cfg.scorers:
        cfg.scorers.append(cfg.heldout)
    return cfg


def prompt_seeds(prompt: Prompt, base: int, n: int) -> list[int]:
    """Seeds for one prompt: a function of (base seed, prompt id, k) only, so every strategy and every rerun
    gets the same ones whatever the sampling order."""
    return [int(hashlib.sha256(f"{base}:{prompt.id}:{k}".encode()).hexdigest()[:8], 16) for k in range(n)]


class SampleLog:
    """Append-only samples.jsonl (a later line for the same key replaces an earlier one when loaded)."""

    def __init__(self, run_dir: Path, on_write: Callable[[Sample], None] | None = None):
        self.path = run_dir / SAMPLES_FILE
        self._lock = threading.Lock()
        self.on_write = on_write

    def write(self, s: Sample) -> None:
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(s.model_dump_json() + "\n")
        if self.on_write is not None:
            try:
                self.on_write(s)
            except Exception:  # a broken progress display must not stop the evaluation
                log.exception("progress callback failed")


def _check_scorers(cfg: EvalConfig) -> None:
    """Unknown scorer names fail before any image is made."""
    from ..tools.scoring.registry import canonical_name

    for name in cfg.scorers + [v for st in cfg.strategies if st.search for v in st.search.verifiers]:
        canonical_name(name)


def _heldout_in_ensemble(cfg: EvalConfig, settings: Settings, strategies: Sequence[Strategy]) -> bool:
    """True when the win-rate scorer also steers a strategy: the planner's / agent's scoring ensemble, or a
    noise search's verifiers."""
    if not cfg.heldout:
        return False
    from ..tools.scoring.registry import canonical_name

    held = canonical_name(cfg.heldout)
    ensemble = {canonical_name(n) for n in settings.scorers}
    for st in strategies:
        uses_planner = st.kind in ("planner", "agent") or (st.kind == "planner_search" and not st.spec.flow)
        if uses_planner and held in ensemble:
            return True
        if st.spec.search and held in {canonical_name(v) for v in st.spec.search.verifiers}:
            return True
    return False


def run_dir_for(cfg: EvalConfig, settings: Settings) -> Path:
    return Path(cfg.out_dir) if cfg.out_dir else Path(settings.home) / "evals" / cfg.name


async def run_eval(cfg: EvalConfig, *, settings: Settings | None = None, pool: EndpointPool | None = None,
                   store: RunStore | None = None, out_dir: str | Path | None = None, report: bool = True,
                   on_sample: Callable[[Sample], None] | None = None) -> Path:
    """Run (or resume) an evaluation and build its report. Returns the run directory.

    ``on_sample`` sees every sample as it is written (generated, failed, then again once scored)."""
    from ..tools.store import RunStore

    settings = settings or get_settings()
    run_dir = Path(out_dir) if out_dir else run_dir_for(cfg, settings)
    run_dir.mkdir(parents=True, exist_ok=True)
    library = FlowLibrary.default(settings.user_flows_dir)
    strategies = build_strategies(cfg.strategies, library)
    prompts = sample(load_set(cfg.prompts.set, cfg.data_dir), n=cfg.prompts.n, per_category=cfg.prompts.per_category,
                     categories=cfg.prompts.categories, seed=cfg.prompts.seed)
    if not prompts:
        raise ConfigError("the prompt selection is empty", hint="check prompts.set / categories / n")
    _check_scorers(cfg)
    names = [s.name for s in strategies]
    if cfg.baseline and cfg.baseline not in names:
        raise ConfigError(f"baseline {cfg.baseline!r} is not a strategy", hint=f"strategies: {names}")
    leak = _heldout_in_ensemble(cfg, settings, strategies)
    if leak:
        log.warning("held-out scorer %s is in the scoring ensemble (%s) that trains and guides the adaptive "
                    "strategies: its win rates are not held out", cfg.heldout, ", ".join(settings.scorers))
    (run_dir / RUN_FILE).write_text(json.dumps({
        "heldout_in_ensemble": leak,
        "name": cfg.name, "description": cfg.description, "config": cfg.model_dump(mode="json"),
        "strategies": names, "heldout": cfg.heldout, "baseline": cfg.baseline, "prompt_set": cfg.prompts.set,
        "tiny": cfg.tiny_scorers, "seed": cfg.seed, "n_prompts": len(prompts), "started": time.time(),
    }, indent=2), encoding="utf-8")

    own_store = store is None
    store = store or RunStore(settings.store_path)
    log_ = SampleLog(run_dir, on_sample)
    try:
        done = {(s.strategy, s.prompt_id, s.seed) for s in load_samples(run_dir) if s.error is None}
        todo = [(st, p, seed) for st in strategies for p in prompts for seed in prompt_seeds(p, cfg.seed, cfg.seeds)
                if (st.name, p.id, seed) not in done]
        log.info("%d prompts × %d seeds × %d strategies: %d to generate", len(prompts), cfg.seeds, len(strategies),
                 len(todo))
        if todo:
            await _generate(cfg, todo, settings=settings, pool=pool, store=store, log_=log_)
        from .scoring import score_samples

        score_samples(load_samples(run_dir), cfg, {p.id: p for p in prompts}, settings=settings, store=store,
                      write=log_.write)
    finally:
        if own_store:
            store.close()
    if report:
        from .report import build_report

        build_report(run_dir, n_boot=cfg.n_boot)
    return run_dir


async def _generate(cfg: EvalConfig, todo: Sequence[tuple[Strategy, Prompt, int]], *, settings: Settings,
                    pool: EndpointPool, store: RunStore, log_: SampleLog) -> None:
    if pool is None:
        from ..tools.comfy.pool import EndpointPool

        urls = cfg.comfyui_urls or settings.comfyui_urls
        if not urls:
            raise ConfigError("no ComfyUI endpoint configured",
                              hint="set comfyui_urls in the config or COMFYGEN_COMFYUI_URLS")
        async with EndpointPool.from_settings(settings, urls) as p:
            await _generate(cfg, todo, settings=settings, pool=p, store=store, log_=log_)
        return
    from ..tools.pipeline import RunRequest, run_many

    jobs: list[RunRequest] = []
    special: list[tuple[Strategy, Prompt, int]] = []
    for st, p, seed in todo:
        if st.kind in ("planner_search", "agent"):
            special.append((st, p, seed))
            continue
        try:
            choice = st.choose(p)
        except ComfyGenError as e:
            log_.write(error_sample(st.name, p, seed, e))
            continue
        jobs.append(RunRequest(flow=choice.flow, prompt=p.text, seed=seed, negative=cfg.negative, width=cfg.width,
                        height=cfg.height, accelerate=cfg.accelerate, tag=(st.name, p, seed, choice.note)))

    def done(res: Any) -> None:
        name, p, seed, note = res.request.tag
        if res.ok:
            log_.write(sample_from_record(name, p, seed, res.record, reused=res.reused, note=note))
        else:
            log_.write(error_sample(name, p, seed, res.error or RuntimeError("no record"), res.request.flow.id))

    if jobs:
        await run_many(jobs, pool=pool, store=store, settings=settings, concurrency=cfg.concurrency, reuse=True,
                       on_done=done)
    if special:
        from .multi_run import produce

        await produce(cfg, special, settings=settings, pool=pool, store=store, write=log_.write)


def run_config(path: str | Path, *, settings: Settings | None = None, out_dir: str | Path | None = None) -> Path:
    """Synchronous entry point (CLI). SIGTERM then cancels like Ctrl-C (``COMFYGEN_ON_SIGTERM=leave`` to not)."""
    from ..tools.sigterm import sigterm_as_ctrl_c

    sigterm_as_ctrl_c()
    return asyncio.run(run_eval(load_config(path), settings=settings, out_dir=out_dir))


def plan_eval(cfg: EvalConfig, *, settings: Settings | None = None, out_dir: str | Path | None = None) -> dict[str, Any]:
    """What `run` would do, without running anything: per strategy, how many images are done in the run
    directory, how many the run store already holds (reused, not regenerated) and how many would be made."""
    from ..tools.pipeline import run_params
    from ..tools.store import RunStore

    settings = settings or get_settings()
    run_dir = Path(out_dir) if out_dir else run_dir_for(cfg, settings)
    library = FlowLibrary.default(settings.user_flows_dir)
    strategies = build_strategies(cfg.strategies, library)
    _check_scorers(cfg)
    prompts = sample(load_set(cfg.prompts.set, cfg.data_dir), n=cfg.prompts.n, per_category=cfg.prompts.per_category,
                     categories=cfg.prompts.categories, seed=cfg.prompts.seed)
    done = {(s.strategy, s.prompt_id, s.seed) for s in load_samples(run_dir) if s.error is None}
    rows = []
    with RunStore(settings.store_path) as store:
        for st in strategies:
            row = {"strategy": st.name, "kind": st.kind, "images": 0, "done": 0, "in_store": 0, "to_generate": 0,
                   "runs_per_image": 1, "errors": 0}
            if st.kind == "planner_search" and st.spec.search:
                row["runs_per_image"] = st.spec.search.candidates
            for p in prompts:
                for seed in prompt_seeds(p, cfg.seed, cfg.seeds):
                    row["images"] += 1
                    if (st.name, p.id, seed) in done:
                        row["done"] += 1
                        continue
                    if st.kind in ("flow", "planner"):
                        try:
                            flow = st.choose(p).flow
                        except ComfyGenError:
                            row["errors"] += 1
                            continue
                        params = run_params(flow, negative=cfg.negative, width=cfg.width, height=cfg.height, batch=1,
                                            accelerate=cfg.accelerate)
                        if store.find_existing(flow.id, p.text, seed, params) is not None:
                            row["in_store"] += 1
                            continue
                    row["to_generate"] += 1
            rows.append(row)
    return {"name": cfg.name, "run_dir": str(run_dir), "prompts": len(prompts), "seeds_per_prompt": cfg.seeds,
            "strategies": rows}
