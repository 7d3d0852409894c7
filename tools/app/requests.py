"""What each comfygen operation takes: typed request models with the descriptions and limits an LLM reads.

The MCP tools, the in-process agent tool box and the CLI all read these models (see ``operations.py``),
so a field's description, range and default are written once. Field limits are JSON-schema limits a
client sees before it calls; what a schema cannot say (exactly one of two fields, a well-formed size,
a readable prompt) is checked by ``check()``, which raises a ``GuardError`` that says what to change, in
the spirit of diffusers' ``check_inputs``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import GuardError
from ..graph.accel import AccelMode
from .jobs import DEFAULT_WAIT_S
from .models import MAX_SAFE_SEED, MAX_SEED, RunStatus

MAX_PROMPT_CHARS = 4000
SIZE_RE = re.compile(r"^\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*$")

Prompt = Annotated[str, Field(description="What the image should show, in plain words (the text-to-image prompt).",
                              min_length=1, max_length=MAX_PROMPT_CHARS)]
Size = Annotated[str | None, Field(description="WIDTHxHEIGHT, multiples of 8, e.g. 1024x768; empty for the flow's "
                                               "own size.", max_length=20)]
WaitS = Annotated[float, Field(description="Seconds to wait before returning the run id of a run that is still going "
                                           "(then call get_run).", ge=0, le=3600)]


def check_prompt(prompt: object) -> str:
    """The prompt, stripped; a ``GuardError`` saying what to change when it is empty, too long or not text."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise GuardError("prompt is empty", hint="describe the image to make, e.g. 'a red fox in fresh snow, dawn light'")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise GuardError(f"prompt has {len(prompt)} characters, more than {MAX_PROMPT_CHARS}",
                         hint="shorten the prompt; text encoders read at most a few hundred tokens anyway")
    if "\x00" in prompt:
        raise GuardError("prompt contains a NUL character", hint="send plain text")
    return prompt.strip()


def parse_size(size: str | None, *, what: str = "size") -> tuple[int | None, int | None]:
    """``"1024x768"`` -> (1024, 768); empty -> (None, None): the one reader of WIDTHxHEIGHT (MCP, agent, CLI)."""
    if size is None or not size.strip():
        return None, None
    m = SIZE_RE.match(size)
    if not m:
        raise GuardError(f"{what} {size!r} is not WIDTHxHEIGHT",
                         hint="write it like 1024x768, or leave it empty for the flow's own size")
    return int(m.group(1)), int(m.group(2))


class Request(BaseModel):
    """A request: unknown fields are refused (a misspelt ``seeds`` must not run with defaults)."""

    model_config = ConfigDict(extra="forbid")

    def check(self) -> None:
        """Checks a JSON schema cannot express; raise ``GuardError`` with a hint."""


class NoArgs(Request):
    pass


class ScoreTableRequest(Request):
    categories: Annotated[list[str] | None, Field(
        description="Category ids from list_categories; empty for all categories.", max_length=30)] = None
    top_k: Annotated[int, Field(description="Best flows to show per category.", ge=1, le=50)] = 5


class SuggestRequest(Request):
    prompt: Prompt
    k: Annotated[int, Field(description="How many flows to return, best first.", ge=1, le=20)] = 5
    target_score: Annotated[float | None, Field(
        description="Optional quality target in [0, 1]: prefer cheaper flows predicted to reach it.",
        ge=0.0, le=1.0)] = None
    mode: Annotated[Literal["planner", "llm"], Field(
        description="'planner': the bundled planner ranks flows (fast). 'llm': your own model chooses from the "
                    "score table via MCP sampling, if this client supports sampling.")] = "planner"

    def check(self) -> None:
        self.prompt = check_prompt(self.prompt)


class FlowRequest(Request):
    flow_id: Annotated[str, Field(description="A flow id from suggest_flows or get_score_table.",
                                  min_length=1, max_length=200)]
    include_graph: Annotated[bool, Field(description="Include the full ComfyUI API graph (large).")] = False


class GenerateRequest(Request):
    prompt: Prompt
    flow_id: Annotated[str | None, Field(
        description="Flow to run; empty: the planner's top pick for this prompt.", max_length=200)] = None
    negative: Annotated[str | None, Field(description="Negative prompt; empty keeps the flow's own.",
                                          max_length=MAX_PROMPT_CHARS)] = None
    seed: Annotated[int | None, Field(description="Seed for reproducibility, an integer 0..9007199254740991 "
                                                  "(2^53-1, exact in every JSON client); empty for random.",
                                      ge=0, le=MAX_SAFE_SEED)] = None
    size: Size = None
    accelerate: Annotated[AccelMode, Field(description="Speed-up rewrite (Pruna or core ComfyUI nodes).")] = "none"
    candidates: Annotated[int, Field(description="Images to make in one batch; the best-scoring is returned.",
                                     ge=1, le=16)] = 1
    wait_s: WaitS = DEFAULT_WAIT_S

    def check(self) -> None:
        self.prompt = check_prompt(self.prompt)
        parse_size(self.size)


class FullRangeGenerateRequest(GenerateRequest):
    """``generate`` from a terminal: ComfyUI's whole seed range (no JavaScript number in between), and the call
    waits for the run however long it takes (``wait_s`` empty)."""

    seed: Annotated[int | None, Field(description="Seed 0..2^64-1, ComfyUI's range; empty for random.",
                                      ge=0, le=MAX_SEED)] = None
    wait_s: Annotated[float | None, Field(description="Seconds to wait; empty: until the run ends.",
                                          ge=0)] = None


class GetRunRequest(Request):
    run_id: Annotated[str, Field(description="The run id that generate (or noise_search) returned.",
                                 min_length=1, max_length=100)]
    wait_s: Annotated[float, Field(description="Seconds to wait if the run is still going.",
                                   ge=0, le=3600)] = DEFAULT_WAIT_S


class ListFlowsRequest(Request):
    family: Annotated[str | None, Field(description="Only this family (sd15, sdxl, flux, ...).", max_length=40)] = None
    tag: Annotated[str | None, Field(description="Only flows with this tag.", max_length=80)] = None
    categories: Annotated[list[str], Field(description="Rank by the score table for these category ids (unmeasured "
                                                       "flows last).", max_length=30)] = []
    base_only: Annotated[bool, Field(description="Only hand-built and rated flows (no generated variants).")] = False


class ListRunsRequest(Request):
    flow_id: Annotated[str | None, Field(description="Only runs of this flow.", max_length=200)] = None
    status: Annotated[RunStatus | None, Field(description="Only runs with this status.")] = None
    prompt_contains: Annotated[str | None, Field(description="Only prompts containing this text.",
                                                 max_length=MAX_PROMPT_CHARS)] = None
    limit: Annotated[int, Field(description="At most this many runs, newest first.", ge=1, le=10_000)] = 20


class ScoreRequest(Request):
    run_id: Annotated[str | None, Field(description="A run id from generate.", max_length=100)] = None
    path: Annotated[str | None, Field(description="Or: an image file on the server's disk.", max_length=4096)] = None
    prompt: Annotated[str | None, Field(description="Prompt to score against; defaults to the run's prompt.",
                                        max_length=MAX_PROMPT_CHARS)] = None

    def check(self) -> None:
        if bool(self.run_id) == bool(self.path):
            raise GuardError("give exactly one of run_id or path", hint="pass the run_id that generate returned")
        if self.path and not self.prompt:
            raise GuardError("prompt is required when scoring a path", hint="pass the prompt the image was made for")


class SearchRequest(Request):
    prompt: Prompt
    flow_id: Annotated[str | None, Field(description="Flow to search with; empty: the planner's top pick.",
                                         max_length=200)] = None
    algorithm: Annotated[Literal["random", "zero-order"], Field(
        description="'random': best of N seeds. 'zero-order': walk from the best noise to similar ones.")] = "random"
    budget: Annotated[int, Field(description="Candidate images to generate and score.", ge=2, le=64)] = 8
    size: Annotated[str | None, Field(description="WIDTHxHEIGHT; empty for the flow's own size.", max_length=20)] = None
    seed: Annotated[int, Field(description="Base seed all candidate noises derive from (reproducible), "
                                           "an integer 0..9007199254740991 (2^53-1).", ge=0, le=MAX_SAFE_SEED)] = 0
    negative: Annotated[str | None, Field(description="Negative prompt.", max_length=MAX_PROMPT_CHARS)] = None
    wall_time_s: Annotated[float, Field(description="Stop after this many seconds with the best so far.",
                                        gt=0, le=3600)] = 45.0
    wait_s: Annotated[float, Field(description="Seconds to wait before returning the id of a search that is still "
                                               "going (then call get_run with it).", ge=0, le=3600)] = DEFAULT_WAIT_S

    def check(self) -> None:
        self.prompt = check_prompt(self.prompt)
        parse_size(self.size)
