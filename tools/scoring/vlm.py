"""Optional VLM grader: any OpenAI-compatible vision chat endpoint (vLLM/SGLang serving Qwen2.5-VL, OpenAI,
...) grades each image on five aspects with a short justification, and answers in JSON.

Off by default: it needs ``COMFYGEN_VLM_URL`` (and usually ``COMFYGEN_VLM_MODEL``/``COMFYGEN_VLM_API_KEY``).
The rubric follows the noise-search verifiers' grading scheme: accuracy to prompt, creativity and
originality, visual quality and realism, consistency and cohesion, emotional or thematic resonance,
each 0-10, plus an overall score; the explanation comes before each number so the model reasons first.
The score is one rubric key (``overall_score`` by default).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from PIL import Image
from pydantic import BaseModel, Field, ValidationError

from ..errors import ScoringError
from .base import Scorer

log = logging.getLogger(__name__)

ASPECTS = ("accuracy_to_prompt", "creativity_and_originality", "visual_quality_and_realism",
           "consistency_and_cohesion", "emotional_or_thematic_resonance", "overall_score")


class Aspect(BaseModel):
    explanation: str = Field("", description="One or two sentences justifying the score.")
    score: float = Field(ge=0, le=10, description="0 (worst) to 10 (best).")


class Grading(BaseModel):
    accuracy_to_prompt: Aspect
    creativity_and_originality: Aspect
    visual_quality_and_realism: Aspect
    consistency_and_cohesion: Aspect
    emotional_or_thematic_resonance: Aspect
    overall_score: Aspect


SYSTEM_PROMPT = """You are an expert judge of AI-generated images. You receive an image and the text prompt it was generated from.
Grade the image on each aspect below from 0 (very poor) to 10 (excellent), with a one or two sentence explanation written BEFORE the score:
a) accuracy_to_prompt: does the image show what the prompt asks for (objects, counts, attributes, relations, style)?
b) creativity_and_originality: is the interpretation inventive rather than generic?
c) visual_quality_and_realism: sharpness, lighting, anatomy, absence of artifacts; realism where the prompt implies it.
d) consistency_and_cohesion: do the parts fit together (perspective, style, composition)?
e) emotional_or_thematic_resonance: does it convey the mood or theme of the prompt?
Then give overall_score: your overall judgement (a weighted average, weighting accuracy and quality most).
Answer with ONE JSON object and nothing else, exactly of this shape:
{"accuracy_to_prompt": {"explanation": "...", "score": 0-10}, "creativity_and_originality": {...}, "visual_quality_and_realism": {...}, "consistency_and_cohesion": {...}, "emotional_or_thematic_resonance": {...}, "overall_score": {"explanation": "...", "score": 0-10}}"""


def image_data_url(img: Image.Image, max_side: int = 1024) -> str:
    img = img.convert("RGB")
    if max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def parse_grading(text: str) -> Grading:
    """The model's answer -> :class:`Grading`. Accepts code fences and text around the JSON object;
    bare numbers in place of ``{"score": x}`` are accepted too. Raises ScoringError otherwise."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for cand in candidates:
        start, end = cand.find("{"), cand.rfind("}")
        if start < 0 or end <= start:
            continue
        try:
            data = json.loads(cand[start:end + 1])
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            data = {k: ({"explanation": "", "score": v} if isinstance(v, int | float) else v) for k, v in data.items()}
            try:
                return Grading.model_validate(data)
            except ValidationError as e:
                raise ScoringError(f"VLM answer is JSON but not the rubric: {e.errors()[:2]}",
                                   hint="use a model that follows JSON instructions (or enable JSON mode on the server)") from e
    raise ScoringError(f"VLM answer has no JSON object: {text[:200]!r}",
                       hint="use a model that follows JSON instructions (or enable JSON mode on the server)")


class VLMGrader(Scorer):
    name = "vlm"
    description = "VLM grader (OpenAI-compatible vision endpoint), five-aspect rubric, 0-10"
    unit = "rating 0-10"

    def __init__(self, *, base_url: str | None = None, model: str = "Qwen/Qwen2.5-VL-7B-Instruct",
                 api_key: str | None = None, aspect: str = "overall_score", timeout_s: float = 120.0,
                 json_mode: bool = True, max_tokens: int = 1024, **kw: Any):
        kw.pop("compile", None)
        super().__init__(device="cpu", **kw)
        if aspect not in ASPECTS:
            raise ScoringError(f"unknown VLM rubric key {aspect!r}", hint=f"choose from {', '.join(ASPECTS)}")
        self.base_url, self.model, self.api_key, self.aspect = base_url, model, api_key, aspect
        self.timeout_s, self.json_mode, self.max_tokens = timeout_s, json_mode, max_tokens
        self.last_gradings: list[Grading] = []

    def _build(self) -> None:
        if not self.base_url:
            raise ScoringError("the VLM grader is off (no endpoint configured)",
                               hint="set COMFYGEN_VLM_URL to an OpenAI-compatible base URL (e.g. http://host:8000/v1) "
                                    "and COMFYGEN_VLM_MODEL to the served vision model")
        from openai import OpenAI

        key = self.api_key or os.environ.get("OPENAI_API_KEY") or "none"
        self.client = OpenAI(base_url=self.base_url, api_key=key, timeout=self.timeout_s, max_retries=1)

    def grade(self, image: Image.Image, prompt: str) -> Grading:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": image_data_url(image)}},
                {"type": "text", "text": f"Prompt: {prompt}\nGrade this image. Answer with the JSON object only."},
            ]},
        ]
        extra: dict[str, Any] = {"response_format": {"type": "json_object"}} if self.json_mode else {}
        last: Exception | None = None
        for _attempt in range(2):
            try:
                resp = self.client.chat.completions.create(model=self.model, messages=messages, temperature=0.0,
                                                           max_tokens=self.max_tokens, **extra)
            except Exception as e:
                raise ScoringError(f"VLM endpoint {self.base_url} failed: {type(e).__name__}: {e}",
                                   hint="check COMFYGEN_VLM_URL / COMFYGEN_VLM_MODEL and that the server is up") from e
            text = resp.choices[0].message.content or ""
            try:
                return parse_grading(text)
            except ScoringError as e:
                last = e
                log.info("VLM answer did not parse, retrying once: %s", e)
        assert last is not None
        raise last

    def _score_batch(self, images: list[Image.Image], prompts: list[str]) -> torch.Tensor:
        with ThreadPoolExecutor(max_workers=min(len(images), self.batch_size)) as pool:
            gradings = list(pool.map(self.grade, images, prompts))
        self.last_gradings = gradings
        return torch.tensor([getattr(g, self.aspect).score for g in gradings], dtype=torch.float32)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "base_url": self.base_url, "model": self.model, "aspect": self.aspect}
