"""What the comfygen operations return: pydantic models an LLM reads (MCP structured output, agent tool results)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ..store import RunRecord

RunStatus = Literal["queued", "running", "succeeded", "failed", "interrupted", "cancelled"]


class CategoryOut(BaseModel):
    id: str = Field(description="Stable category id, as used by get_score_table and suggest_flows.")
    name: str
    kind: str = Field(description="object, scene or style.")
    description: str


class CategoriesOut(BaseModel):
    categories: list[CategoryOut]


class TableEntry(BaseModel):
    flow_id: str
    mean: float = Field(description="Mean quality score of this flow on prompts of this category (higher is better).")
    n: int = Field(description="How many scored images the mean is based on.")
    sources: list[str] = Field(default_factory=list, description="Where the scores come from (datasets, own runs).")


class ScoreTableOut(BaseModel):
    categories: list[str] = Field(description="Categories shown.")
    top_k: int
    text: str = Field(description="The table as compact text: per category, the best flows with mean score and n.")
    entries: dict[str, list[TableEntry]] = Field(description="The same rows, per category.")
    empty: bool = Field(False, description="True when no scores are known yet for these categories.")


class DetectedCategory(BaseModel):
    id: str
    probability: float = Field(description="Classifier probability that the prompt belongs to this category.")


class FlowSuggestion(BaseModel):
    flow_id: str
    name: str
    family: str = Field(description="Model family, e.g. sdxl, sd15, flux.")
    predicted_score: float | None = Field(None, description="Predicted quality for this prompt, higher is better "
                                                            "(planner: in [0, 1] over its training range; score table: "
                                                            "mean ensemble score).")
    score_source: str = Field(description="Where predicted_score comes from: planner, score table, or client LLM.")
    provenance: str | None = Field(None, description="Planner only: rated (its own human ratings), inherited (the "
                                   "same model as a rated flow, other settings), family prior (an unrated checkpoint "
                                   "of a rated architecture), measured (your own scored runs), none (no data).")
    why: str = Field(description="One line: why this flow fits the prompt.")
    runnable: bool | None = Field(None, description="Whether the configured ComfyUI has its models (None: not checked).")


class SuggestOut(BaseModel):
    prompt: str
    mode: Literal["planner", "llm"] = Field(description="Who chose the ranking: the bundled planner or the client's LLM.")
    note: str | None = Field(None, description="Anything worth knowing about how the ranking was made.")
    categories: list[DetectedCategory] = Field(description="Categories detected in the prompt.")
    flows: list[FlowSuggestion] = Field(description="Flows, best first. Pass flow_id to generate.")


class FlowOut(BaseModel):
    id: str
    name: str
    description: str
    family: str
    models: list[str] = Field(description="Model files as folder/file (ComfyUI's models folders).")
    sampler: str | None = None
    scheduler: str | None = None
    steps: int | None = None
    cfg: float | None = None
    width: int
    height: int
    tags: list[str]
    requires: list[str] = Field(description="What it needs beyond core ComfyUI (node packs, API keys).")
    provenance: str
    executable: bool = Field(description="False for reference flows that ComfyUI cannot run locally.")
    node_count: int
    uri: str = Field(description="Read this resource for the full ComfyUI API JSON.")
    graph: dict | None = Field(None, description="The ComfyUI API graph (only when include_graph=true).")


class ScoresOut(BaseModel):
    total: float | None = Field(None, description="Ensemble score of the chosen image (higher is better).")
    per_scorer: dict[str, float] = Field(default_factory=dict, description="Raw score from each scorer.")
    skipped: str | None = Field(None, description="Why scoring was skipped, when it was.")


class CandidateOut(BaseModel):
    index: int
    path: str
    total: float | None = None


MAX_SAFE_SEED = 2**53 - 1  # Number.MAX_SAFE_INTEGER: larger integers lose digits in JavaScript MCP clients
MAX_SEED = 2**64 - 1  # ComfyUI's own maximum (0xffffffffffffffff), reachable from the CLI


class RunOut(BaseModel):
    run_id: str
    status: RunStatus
    prompt: str
    flow_id: str
    why_flow: str | None = Field(None, description="Why this flow was used.")
    seed: int | None = Field(None, description="The seed used (also in seed_text when above 2**53-1, the largest "
                                              "integer a JavaScript client keeps exact).")
    seed_text: str | None = Field(None, description="The seed as decimal text, when it is too large for a "
                                                    "JavaScript number (runs started from the CLI).")
    width: int | None = None
    height: int | None = None
    endpoint: str | None = Field(None, description="ComfyUI URL that ran it.")
    image_path: str | None = Field(None, description="Full-resolution PNG on the server's disk.")
    image_uri: str | None = Field(None, description="Resource with the full-resolution image and run record.")
    scores: ScoresOut = Field(default_factory=ScoresOut)
    candidates: list[CandidateOut] = Field(default_factory=list, description="All images of the run with their scores.")
    seconds: float | None = Field(None, description="Wall time of the ComfyUI run.")
    progress: str | None = Field(None, description="Last progress seen while the run is still going.")
    error: str | None = None
    next_step: str | None = Field(None, description="What to do next, when the run is not finished.")
    note: str | None = Field(None, description="For a noise search's best run: how many candidates, why it stopped.")


class EndpointOut(BaseModel):
    url: str
    healthy: bool
    queue_running: int = 0
    queue_pending: int = 0
    model_files: int = Field(0, description="Number of model files ComfyUI reports.")
    error: str | None = None


class StatusOut(BaseModel):
    configured: bool = Field(description="Whether any ComfyUI URL is configured.")
    endpoints: list[EndpointOut]
    flows_total: int
    runnable: list[str] = Field(description="Flow ids whose models are all installed (first 50).")
    runnable_count: int
    mappable_count: int = Field(0, description="Flows that can run after mapping to similar installed models.")
    models: dict[str, list[str]] = Field(default_factory=dict, description="Installed model files per folder "
                                                                           "(first 30 per folder, all endpoints).")
    missing_count: int = Field(0, description="Flows that lack model files here.")
    hint: str | None = None


class FlowRow(BaseModel):
    id: str
    family: str
    name: str
    tags: list[str]
    steps: int | None = None
    cfg: float | None = None
    provenance: str
    parent: str | None = None
    score: float | None = Field(None, description="Score-table rank score for the requested categories.")
    measured: bool | None = Field(None, description="Whether the table has scores for it (None: no categories asked).")


class FlowsOut(BaseModel):
    categories: list[str] = Field(description="Categories the flows are ranked for (empty: library order).")
    flows: list[FlowRow]


class RunsOut(BaseModel):
    runs: list[RunRecord] = Field(description="Runs, newest first (graphs left out).")


class SearchStepOut(BaseModel):
    step: int
    best_score: float
    best_seed: int | None = None


class SearchOut(BaseModel):
    method: str
    flow_id: str
    best: RunOut = Field(description="The best image found.")
    best_score: float | None
    evaluated: int = Field(description="How many candidate noises were scored.")
    history: list[SearchStepOut] = Field(default_factory=list)
    note: str | None = None
