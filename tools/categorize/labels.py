"""Real labelled prompts for the category classifier, mapped from public benchmark taxonomies.

Each source labels only some of our categories. An example carries positives and the negatives the source
can vouch for; every other category is unknown for it (masked in training and evaluation). The mapping is
documented in MAPPING.md next to this file.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

COMPOSITION_SKILLS = {"counting", "spatial relation", "comparison", "differentiation", "negation", "universal"}
PARTI_CATEGORY = {"Animals": "animals", "Artifacts": "objects", "Food & Beverage": "food", "People": "people",
                  "Vehicles": "vehicles", "Indoor Scenes": "interior", "Illustrations": "illustration",
                  "Arts": "painting", "Abstract": "abstract"}
PARTI_EXCLUSIVE = {"animals", "food", "people", "vehicles", "objects"}
# Parti files a prompt under its main subject: a scene or a plant is not about animals, people or vehicles
# (of 221 such prompts, 10 mention a vehicle and 14 an animal in passing, none a person)
PARTI_SCENES = {"Outdoor Scenes": {"animals", "people", "vehicles", "food"},
                "Indoor Scenes": {"animals", "people", "vehicles", "food"},
                "Produce & Plants": {"animals", "people", "vehicles"}}
PARTI_STYLE_CATS = {"Illustrations", "Arts", "Abstract"}
STYLE_IDS = {"illustration", "painting", "abstract", "anime"}
AGIQA_STYLE = {"anime style": "anime", "realistic style": "photorealistic", "sci-fi style": "scifi",
               "abstract style": "abstract", "baroque style": "painting"}
DRAWBENCH = {"Text": "text", "Colors": "composition", "Counting": "composition", "Positional": "composition"}


@dataclass
class Example:
    prompt: str
    source: str
    pos: set[str] = field(default_factory=set)
    neg: set[str] = field(default_factory=set)


def _parti(data: Path) -> list[Example]:
    out = []
    for r in csv.DictReader((data / "prompts" / "PartiPrompts.tsv").open(encoding="utf-8"), delimiter="\t"):
        ex = Example(r["Prompt"], "parti")
        cat = PARTI_CATEGORY.get(r["Category"])
        if cat:
            ex.pos.add(cat)
            if cat in PARTI_EXCLUSIVE:
                ex.neg |= PARTI_EXCLUSIVE - {cat}
        ex.neg |= PARTI_SCENES.get(r["Category"], set())
        if r["Category"] in ("Outdoor Scenes", "Animals", "Vehicles", "Abstract"):
            ex.neg.add("interior")
        if r["Category"] not in PARTI_STYLE_CATS and r["Challenge"] != "Style & Format":
            ex.neg |= STYLE_IDS
        if r["Challenge"] == "Writing & Symbols":
            ex.pos.add("text")
        else:
            ex.neg.add("text")
        if r["Challenge"] in ("Quantity", "Properties & Positioning"):
            ex.pos.add("composition")
        elif r["Challenge"] == "Basic":
            ex.neg.add("composition")
        out.append(ex)
    return out


def _drawbench(data: Path) -> list[Example]:
    out = []
    for r in csv.DictReader((data / "prompts" / "DrawBench.tsv").open(encoding="utf-8"), delimiter="\t"):
        cat = DRAWBENCH.get(r["Category"].strip())
        if cat:
            out.append(Example(r["Prompts"], "drawbench", {cat}))
    return out


def _geneval(data: Path) -> list[Example]:
    out = []
    for line in (data / "prompts" / "geneval_evaluation_metadata.jsonl").open(encoding="utf-8"):
        r = json.loads(line)
        if r["tag"] == "single_object":
            out.append(Example(r["prompt"], "geneval", set(), {"composition", "text"}))
        else:
            out.append(Example(r["prompt"], "geneval", {"composition"}, {"text"}))
    return out


def _compbench(data: Path, per_file: int = 80) -> list[Example]:
    out = []
    for path in sorted((data / "prompts" / "t2i_compbench").glob("*_val.txt")):
        lines = [ln.strip() for ln in path.open(encoding="utf-8") if ln.strip()]
        step = max(1, len(lines) // per_file)
        out += [Example(p, "t2i-compbench", {"composition"}, {"text"}) for p in lines[::step][:per_file]]
    return out


def _gecko(data: Path) -> list[Example]:
    out = []
    for r in csv.DictReader((data / "prompts" / "gecko_prompts.csv").open(encoding="utf-8")):
        d = r["dataset_id"]
        if d.startswith("render/text"):
            out.append(Example(r["prompt"], "gecko", {"text"}))
        elif d.startswith(("att/count", "rel/spatial", "lang/compositional")):
            out.append(Example(r["prompt"], "gecko", {"composition"}))
        elif d.startswith("ne/artwork"):
            out.append(Example(r["prompt"], "gecko", {"painting"}))
    return out


def _genai(data: Path) -> list[Example]:
    seen: dict[str, Example] = {}
    for r in csv.DictReader((data / "ratings" / "genai_bench_dev.csv").open(encoding="utf-8")):
        if r["prompt_id"] in seen:
            continue
        skills = set(filter(None, r["skills"].split("|")))
        ex = Example(r["prompt"], "genai-bench")
        if skills & COMPOSITION_SKILLS:
            ex.pos.add("composition")
        elif skills and "spatial relation" not in skills and "advanced" not in skills:
            ex.neg.add("composition")
        seen[r["prompt_id"]] = ex
    return [e for e in seen.values() if e.pos or e.neg]


def _agiqa(data: Path) -> list[Example]:
    seen: dict[str, Example] = {}
    for r in csv.DictReader((data / "ratings" / "agiqa3k_dev.csv").open(encoding="utf-8")):
        cat = AGIQA_STYLE.get(r["style"].strip())
        if cat and r["prompt"] not in seen:
            seen[r["prompt"]] = Example(r["prompt"], "agiqa-3k", {cat}, set(AGIQA_STYLE.values()) - {cat})
    return list(seen.values())


SOURCES = {"parti": _parti, "drawbench": _drawbench, "geneval": _geneval, "t2i-compbench": _compbench,
           "gecko": _gecko, "genai-bench": _genai, "agiqa-3k": _agiqa}


def load_examples(data: Path) -> list[Example]:
    """All labelled prompts from the shared data directory (``prompts/`` and ``ratings/``)."""
    out: list[Example] = []
    for fn in SOURCES.values():
        out += fn(data)
    # one example per prompt text: merge labels of duplicates (a label both positive and negative is dropped)
    merged: dict[str, Example] = {}
    for ex in out:
        key = ex.prompt.strip().lower()
        if key in merged:
            m = merged[key]
            m.pos |= ex.pos
            m.neg |= ex.neg
        else:
            merged[key] = Example(ex.prompt.strip(), ex.source, set(ex.pos), set(ex.neg))
    for m in merged.values():
        clash = m.pos & m.neg
        m.pos -= clash
        m.neg -= clash | m.pos
    return [m for m in merged.values() if m.pos or m.neg]
