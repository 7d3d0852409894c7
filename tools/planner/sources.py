"""The human-rating sources comfygen learns from, and how their model names map onto rated flows.

Each source rates (prompt, model) pairs on its own scale. A *scale* is one score column of one source
(EvalMi-50K has two: alignment and quality). Models shared between sources are what link the scales
(``linking.py``); here each model name becomes the id of the rated flow that stands for it in
``flow_library/flows/rated/``.

The tables live in a folder of CSVs (``ratings/`` of the project's data); file names and columns are as
that folder's MANIFEST describes them.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PlannerError


@dataclass(frozen=True)
class Source:
    name: str  # short id used on the command line, e.g. "evalmi"
    title: str  # how the README and the "why" texts cite it
    file: str
    models: dict[str, str]  # model name in the file -> rated flow id
    columns: tuple[str, ...] = ("score",)  # score columns (each one a scale)
    paired: bool = True  # False when prompts are (almost) never shared between models
    model_column: str = "flow"
    extra: dict[str, str] = field(default_factory=dict)  # column -> meaning, for the docs


GENAI = Source(
    "genai", "GenAI-Bench (Li et al. 2024), human 1-5 prompt alignment, mean of 3 raters", "genai_bench_dev.csv",
    {"DALLE_3": "rated-dalle3", "Midjourney_6": "rated-midjourney6", "DeepFloyd_I_XL_v1": "rated-deepfloyd-if-xl",
     "SDXL_Base": "rated-sdxl-base", "SDXL_Turbo": "rated-sdxl-turbo", "SDXL_2_1": "rated-sd21"})
AGIQA = Source(
    "agiqa", "AGIQA-3K (Li et al. 2023), human MOS", "agiqa3k_dev.csv",
    {"AttnGAN_normal": "rated-attngan", "DALLE2_normal": "rated-dalle2", "glide_normal": "rated-glide",
     "midjourney_normal": "rated-midjourney", "midjourney_lowstep": "rated-midjourney-lowstep",
     "sd1.5_normal": "rated-sd15", "sd1.5_lowstep": "rated-sd15-lowstep", "sd1.5_lowcorr": "rated-sd15-lowcfg",
     "sd1.5_highcorr": "rated-sd15-highcfg", "xl2.2_normal": "rated-sdxl-beta-v2-2-2"},
    columns=("alignment", "quality"))
TIFA = Source(
    "tifa", "TIFA160 Likert (DSG, Cho et al. 2024), human 1-5 consistency, mean over raters", "tifa160_likert.csv",
    {"mini-dalle": "rated-mini-dalle", "vq-diffusion": "rated-vq-diffusion", "sd1dot1": "rated-sd11",
     "sd1dot5": "rated-sd15", "sd2dot1": "rated-sd21"},
    model_column="t2i_model")
EVALMI = Source(
    "evalmi", "EvalMi-50K (Wang et al. 2025), human MOS", "evalmi50k_dev.csv",
    {"DALLE3": "rated-dalle3", "ELLA": "rated-ella", "EMU3": "rated-emu3", "Infinity": "rated-infinity",
     "Janus": "rated-janus", "Kandinsky-3": "rated-kandinsky3", "Kolors": "rated-kolors", "LLMGA": "rated-llmga",
     "LWM": "rated-lwm", "LaVi-Bridge": "rated-lavi-bridge", "LlamaGen_256": "rated-llamagen", "NOVA": "rated-nova",
     "PixArt-sigma": "rated-pixart-sigma", "Show-o": "rated-show-o", "ali_flux_schnell": "rated-flux-schnell",
     "hart": "rated-hart", "i-Code-V3": "rated-i-code-v3", "omnigen": "rated-omnigen",
     "playground": "rated-playground-v25", "sd3_5_large": "rated-sd35-large", "sd_v2-1": "rated-sd21",
     "sdxl_base_1": "rated-sdxl-base", "seed-xi": "rated-seed-x", "vila-u": "rated-vila-u"},
    columns=("alignment", "quality"), extra={"task": "the source's task tag"})
AIGIQA20K = Source(
    "aigiqa20k", "AIGIQA-20K (NTIRE 2024), human MOS 0-5", "aigiqa20k_dev.csv",
    {"DALLE2": "rated-dalle2", "DALLE3": "rated-dalle3", "Dream": "rated-dreamlike-photoreal",
     "IF": "rated-deepfloyd-if-xl", "LCM_Pixart": "rated-lcm-pixart", "LCM_SD1.5": "rated-lcm-sd15",
     "LCM_SDXL": "rated-lcm-sdxl", "MJ": "rated-midjourney-aigiqa", "Pixart": "rated-pixart-alpha",
     "Playground": "rated-playground-v2", "SD1.4": "rated-sd14", "SD1.5": "rated-sd15", "SDXL": "rated-sdxl-base",
     "SDXL_Turbo": "rated-sdxl-turbo", "SSD1B": "rated-ssd1b"},
    paired=False)

SOURCES: dict[str, Source] = {s.name: s for s in (GENAI, EVALMI, AIGIQA20K, AGIQA, TIFA)}


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise PlannerError(f"unknown rating source {name!r}",
                           hint=f"use one of: {', '.join(SOURCES)}") from None


def scale_name(source: Source, column: str) -> str:
    return source.name if len(source.columns) == 1 else f"{source.name}-{column}"


def scale_title(scale: str) -> str:
    """The citation of the source a scale name (``scale_name``) belongs to, e.g. 'evalmi-quality' -> EvalMi-50K's."""
    src = SOURCES.get(scale.split("-")[0])
    return src.title if src else scale


def source_of_flow(flow_id: str) -> list[str]:
    """Titles of the sources that rated this flow's model."""
    return [s.title for s in SOURCES.values() if flow_id in s.models.values()]


def read_source(ratings: Path, source: Source, column: str | None = None) -> list[dict[str, object]]:
    """Triplet rows ``prompt_id, prompt, flow (rated flow id), score`` of one scale of one source.

    TIFA160's Likert table holds one row per rater: they are averaged per (prompt, model). Its prompt texts
    are not in the table; the prompt id stands in (the joint scale needs ids, not texts)."""
    column = column or source.columns[0]
    path = Path(ratings) / source.file
    if not path.is_file():
        raise PlannerError(f"rating table {path} not found", hint="pass the folder that holds the rating CSVs")
    rows: list[dict[str, object]] = []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if source is TIFA:
            acc: dict[tuple[str, str], list[float]] = defaultdict(list)
            for r in reader:
                acc[(r["source_id"], r["t2i_model"])].append(float(r["answer"]))
            for (item, model), vals in sorted(acc.items()):
                rows.append({"prompt_id": f"tifa-{item}", "prompt": item, "flow": source.models[model],
                             "score": sum(vals) / len(vals)})
            return rows
        col = "score" if source.columns == ("score",) else column
        for r in reader:
            raw = r.get(col, "")
            if raw in ("", None):
                continue
            row: dict[str, object] = {"prompt_id": r["prompt_id"], "prompt": r["prompt"],
                                      "flow": source.models[r[source.model_column]], "score": float(raw)}
            if "task" in r:
                row["task"] = r["task"]
            rows.append(row)
    return rows


def map_models(rows: list[dict[str, object]], source: Source) -> list[dict[str, object]]:
    """Rename a test file's model names (as the source spells them) to rated flow ids; unknown names stay."""
    return [{**r, "flow": source.models.get(str(r["flow"]), str(r["flow"]))} for r in rows]
