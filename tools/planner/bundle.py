"""Build the bundled data from the real rating tables: rated flows, triplet CSVs, planner, score table.

Sources (``$SHARED/data/ratings``, provenance in its MANIFEST): GenAI-Bench (6 models, human 1-5 prompt
alignment, mean of 3 raters), AGIQA-3K (10 pipelines incl. step/CFG variants, MOS), TIFA160 (5 models, 1-5
Likert consistency, mean over raters). Each rated model or pipeline becomes a flow in
``flow_library/flows/rated/``: a ComfyUI graph where core ComfyUI can run it, else an ``external`` reference
flow (API-only or research models) that is kept as training signal only.

Run: ``python -m comfygen.tools.planner.bundle --ratings DIR [--planner] [--table]``.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from ...flow_library.model import Family, Flow, Provenance, Requirement

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
RATED_DIR = REPO / "flow_library" / "flows" / "rated"
BASE_DIR = REPO / "flow_library" / "flows" / "base"

SOURCES = {
    "genai": "GenAI-Bench 1600 (Li et al. 2024), human 1-5 alignment, mean of 3 raters",
    "agiqa": "AGIQA-3K (Li et al. 2023), human MOS",
    "tifa": "TIFA160 Likert (DSG, Cho et al. 2024), human 1-5 consistency, mean over raters",
}

# rating-table model name -> (flow id, local recipe or None for external, display name, note)
LOCAL = {
    # flow id: (base flow to copy, checkpoint, steps, cfg, size, name, description)
    "rated-sdxl-base": ("sdxl-base", "sd_xl_base_1.0.safetensors", 50, 5.0, 1024, "SDXL 1.0 base (as rated)",
                        "SDXL base at diffusers-default settings (50 steps, CFG 5), standing in for GenAI-Bench's run."),
    "rated-sdxl-turbo": ("sdxl-turbo", "sd_xl_turbo_1.0_fp16.safetensors", 1, 1.0, 512, "SDXL Turbo (as rated)",
                         "SDXL Turbo, 1 step, no CFG, 512 px."),
    "rated-sd21": ("sd15-base", "v2-1_768-ema-pruned.safetensors", 50, 7.5, 768, "Stable Diffusion 2.1 (as rated)",
                   "SD 2.1 768 at diffusers-default settings (50 steps, CFG 7.5)."),
    "rated-sd15": ("sd15-base", "v1-5-pruned-emaonly.safetensors", 50, 7.5, 512, "Stable Diffusion 1.5 (as rated)",
                   "SD 1.5 at default settings (50 steps, CFG 7.5)."),
    "rated-sd15-lowstep": ("sd15-base", "v1-5-pruned-emaonly.safetensors", 10, 7.5, 512, "SD 1.5, few steps",
                           "AGIQA-3K's low-step SD 1.5 variant (step count approximated as 10)."),
    "rated-sd15-lowcfg": ("sd15-base", "v1-5-pruned-emaonly.safetensors", 50, 3.0, 512, "SD 1.5, low CFG",
                          "AGIQA-3K's low-correlation (low CFG) SD 1.5 variant (CFG approximated as 3)."),
    "rated-sd15-highcfg": ("sd15-base", "v1-5-pruned-emaonly.safetensors", 50, 15.0, 512, "SD 1.5, high CFG",
                           "AGIQA-3K's high-correlation (high CFG) SD 1.5 variant (CFG approximated as 15)."),
    "rated-sd11": ("sd15-base", "sd-v1-1.ckpt", 50, 7.5, 512, "Stable Diffusion 1.1 (as rated)",
                   "SD 1.1 at default settings (50 steps, CFG 7.5)."),
}

EXTERNAL = {
    "rated-dalle3": ("DALL-E 3", Requirement(kind="api_key", name="OPENAI_API_KEY", note="OpenAI Images API")),
    "rated-midjourney6": ("Midjourney v6", Requirement(kind="external", name="Midjourney", url="https://midjourney.com")),
    "rated-midjourney": ("Midjourney (AGIQA-3K, 2023)", Requirement(kind="external", name="Midjourney")),
    "rated-midjourney-lowstep": ("Midjourney, low quality setting (AGIQA-3K)",
                                 Requirement(kind="external", name="Midjourney")),
    "rated-deepfloyd-if-xl": ("DeepFloyd IF-I-XL v1.0", Requirement(
        kind="node_pack", name="DeepFloyd IF nodes", note="core ComfyUI has no DeepFloyd IF pipeline nodes")),
    "rated-sdxl-beta-v2-2-2": ("Stability SDXL beta v2.2.2 (API, AGIQA-3K 'xl2.2')",
                               Requirement(kind="api_key", name="STABILITY_API_KEY", note="Stability API model")),
    "rated-dalle2": ("DALL-E 2", Requirement(kind="api_key", name="OPENAI_API_KEY", note="OpenAI Images API")),
    "rated-glide": ("GLIDE (OpenAI, research code)", Requirement(kind="external", name="openai/glide-text2im")),
    "rated-attngan": ("AttnGAN (research code)", Requirement(kind="external", name="taoxugit/AttnGAN")),
    "rated-mini-dalle": ("minDALL-E (research code)", Requirement(kind="external", name="kakaobrain/minDALL-E")),
    "rated-vq-diffusion": ("VQ-Diffusion (research code)", Requirement(kind="external", name="microsoft/VQ-Diffusion")),
}

MODEL_TO_FLOW = {
    "genai": {"DALLE_3": "rated-dalle3", "Midjourney_6": "rated-midjourney6",
              "DeepFloyd_I_XL_v1": "rated-deepfloyd-if-xl", "SDXL_Base": "rated-sdxl-base",
              "SDXL_Turbo": "rated-sdxl-turbo", "SDXL_2_1": "rated-sd21"},
    "agiqa": {"AttnGAN_normal": "rated-attngan", "DALLE2_normal": "rated-dalle2", "glide_normal": "rated-glide",
              "midjourney_normal": "rated-midjourney", "midjourney_lowstep": "rated-midjourney-lowstep",
              "sd1.5_normal": "rated-sd15", "sd1.5_lowstep": "rated-sd15-lowstep", "sd1.5_lowcorr": "rated-sd15-lowcfg",
              "sd1.5_highcorr": "rated-sd15-highcfg", "xl2.2_normal": "rated-sdxl-beta-v2-2-2"},
    "tifa": {"mini-dalle": "rated-mini-dalle", "vq-diffusion": "rated-vq-diffusion", "sd1dot1": "rated-sd11",
             "sd1dot5": "rated-sd15", "sd2dot1": "rated-sd21"},
}


def _sources_of(flow_id: str) -> list[str]:
    return [SOURCES[s] for s, m in MODEL_TO_FLOW.items() if flow_id in m.values()]


def build_flows() -> list[Flow]:
    flows: list[Flow] = []
    for fid, (base_id, ckpt, steps, cfg, size, name, desc) in LOCAL.items():
        base = Flow.model_validate_json((BASE_DIR / f"{base_id}.json").read_text())
        graph = copy.deepcopy(base.graph)
        for node in graph.values():
            inputs = node["inputs"]
            if node["class_type"] == "CheckpointLoaderSimple":
                inputs["ckpt_name"] = ckpt
            if "steps" in inputs and not isinstance(inputs["steps"], list):
                inputs["steps"] = steps
            if "cfg" in inputs and not isinstance(inputs["cfg"], list):
                inputs["cfg"] = cfg
            if node["class_type"] == "EmptyLatentImage":
                inputs["width"], inputs["height"] = size, size
            if node["class_type"] == "SaveImage":
                inputs["filename_prefix"] = f"comfygen/{fid}"
        family = {"rated-sdxl-base": Family.SDXL, "rated-sdxl-turbo": Family.SDXL,
                  "rated-sd21": Family.SD21}.get(fid, Family.SD15)
        flows.append(base.model_copy(update={
            "id": fid, "name": name, "description": desc, "family": family,
            "models": base.models.model_copy(update={"checkpoint": ckpt}), "steps": steps, "cfg": cfg,
            "width": size, "height": size, "tags": ["rated"],
            "provenance": Provenance(kind="rating-source", parent=base_id,
                                     source="; ".join(_sources_of(fid))), "graph": graph}))
    for fid, (name, req) in EXTERNAL.items():
        flows.append(Flow(id=fid, name=name, family=Family.EXTERNAL, tags=["rated", "external"],
                          description="Reference flow: human ratings exist for this model; it does not run in core "
                                      "ComfyUI, so it serves as training signal and comparison only.",
                          requires=[req], provenance=Provenance(kind="rating-source", source="; ".join(_sources_of(fid)))))
    return flows


def write_flows(out: Path = RATED_DIR) -> list[Flow]:
    out.mkdir(parents=True, exist_ok=True)
    flows = build_flows()
    for flow in flows:
        (out / f"{flow.id}.json").write_text(json.dumps(flow.model_dump(mode="json"), indent=1) + "\n")
    return flows


def read_ratings(ratings: Path, source: str, column: str = "score", tifa_texts: Path | None = None
                 ) -> list[dict[str, Any]]:
    """Rows ``prompt_id, prompt, flow (rated flow id), score, source, skills`` for one rating table."""
    mapping = MODEL_TO_FLOW[source]
    rows: list[dict[str, Any]] = []
    if source == "genai":
        for r in csv.DictReader((ratings / "genai_bench_dev.csv").open(encoding="utf-8")):
            rows.append({"prompt_id": r["prompt_id"], "prompt": r["prompt"], "flow": mapping[r["flow"]],
                         "score": float(r["score"]), "source": source, "skills": r.get("skills", "")})
    elif source == "agiqa":
        col = "alignment" if column == "score" else column
        for r in csv.DictReader((ratings / "agiqa3k_dev.csv").open(encoding="utf-8")):
            rows.append({"prompt_id": r["prompt_id"], "prompt": r["prompt"], "flow": mapping[r["flow"]],
                         "score": float(r[col]), "source": source, "skills": r.get("style", "")})
    elif source == "tifa":
        acc: dict[tuple[str, str], list[float]] = defaultdict(list)
        texts = _tifa_prompts(tifa_texts)
        for r in csv.DictReader((ratings / "tifa160_likert.csv").open(encoding="utf-8")):
            acc[(r["source_id"], r["t2i_model"])].append(float(r["answer"]))
        for (item, model), vals in sorted(acc.items()):
            if item in texts:
                rows.append({"prompt_id": item, "prompt": texts[item], "flow": mapping[model],
                             "score": sum(vals) / len(vals), "source": source, "skills": ""})
    return rows


TIFA_TEXTS = "j-min/DSG@7330119a:dsg/data/tifa160-dev-anns.csv"


def _tifa_prompts(texts_csv: Path | None) -> dict[str, str]:
    """TIFA160 prompt texts by source id: the Likert table has none, DSG's ``tifa160-dev-anns.csv``
    (same repository and commit) has ``item_id`` (= the Likert ``source_id``) and ``text``."""
    if texts_csv is None or not texts_csv.is_file():
        return {}
    return {r["item_id"]: r["text"] for r in csv.DictReader(texts_csv.open(encoding="utf-8"))}


def write_triplets(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["prompt_id", "prompt", "flow", "score", "source", "skills"])
        w.writeheader()
        w.writerows(rows)


def standardized(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-source z-scores: the sources rate on different scales (1-5 means, MOS), so the bundled planner
    learns in within-source standard units (``raw_score`` keeps the original)."""
    by_source: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        by_source[r["source"]].append(float(r["score"]))
    stats = {}
    for src, vals in by_source.items():
        mu = sum(vals) / len(vals)
        sd = (sum((v - mu) ** 2 for v in vals) / len(vals)) ** 0.5 or 1.0
        stats[src] = (mu, sd)
    return [{**r, "raw_score": r["score"], "score": round((float(r["score"]) - stats[r["source"]][0])
                                                          / stats[r["source"]][1], 5)} for r in rows]


SCORE_TABLE = REPO / "flow_library" / "data" / "score_table.json"


def write_score_table(bundled_csv: Path, path: Path = SCORE_TABLE) -> Any:
    """Cells (mean / n / std per flow x category, source per cell) from the per-source z-scored ratings;
    prompts are put in categories by the shipped category classifier."""
    from ..dataset.table import classifier_categorize, table_from_triplets

    rows = list(csv.DictReader(bundled_csv.open(encoding="utf-8")))
    table = table_from_triplets(
        rows, classifier_categorize(),
        metric="human rating, z-score within its source (GenAI-Bench alignment 1-5, AGIQA-3K alignment MOS, "
               "TIFA160 Likert 1-5); 0 = that source's average image",
        notes="Built from real human ratings only (see the README's planner section). Categories from the "
              "bundled classifier. Compare flows within a source; across sources the z-scores are only roughly "
              "comparable.",
        source_of=lambda r: SOURCES[r["source"]])
    table.save(path)
    return table


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ratings", type=Path, required=True, help="Directory with the rating tables.")
    ap.add_argument("--tifa-texts", type=Path, default=None, help=f"TIFA160 prompt texts ({TIFA_TEXTS}).")
    ap.add_argument("--out", type=Path, default=Path("bundle-work"), help="Work dir for triplet CSVs.")
    ap.add_argument("--table", action="store_true", help="Also write flow_library/data/score_table.json.")
    args = ap.parse_args(argv)
    flows = write_flows()
    print(f"wrote {len(flows)} rated flows to {RATED_DIR}")
    combined: list[dict[str, Any]] = []
    for source in SOURCES:
        rows = read_ratings(args.ratings, source, tifa_texts=args.tifa_texts)
        write_triplets(rows, args.out / f"{source}.csv")
        print(f"{source}: {len(rows)} triplets -> {args.out / f'{source}.csv'}")
        combined += rows
    combined = standardized(combined)
    path = args.out / "bundled.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(combined[0]))
        w.writeheader()
        w.writerows(combined)
    print(f"all sources, per-source z-scores: {len(combined)} triplets -> {path}")
    if args.table:
        table = write_score_table(path)
        print(f"score table: {len(table)} cells over {len(table.flows())} flows -> {SCORE_TABLE}")


if __name__ == "__main__":
    main()
