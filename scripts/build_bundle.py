"""Build the bundled data from the real rating tables: rated flows, triplet CSVs, planner, score table.

Sources (the project's ``data/ratings`` folder, provenance in its MANIFEST, registry in ``sources.py``):
GenAI-Bench, EvalMi-50K, AIGIQA-20K, AGIQA-3K, TIFA160. Each rated model or pipeline becomes a flow in
``flow_library/flows/rated/``: a ComfyUI graph where core ComfyUI can run it, else an ``external`` reference
flow (API-only or research models) that is kept as training signal only. All sources are put on one joint
scale (``linking.py``); the score table is that scale per prompt category, and the planner learns it per prompt.

Run: ``python scripts/build_bundle.py --ratings DIR --out DIR [--work DIR] [--table] [--planner DIR]``.

``--out`` is a folder laid out like ``flow_library/``: the rated flows go to ``OUT/flows/rated/`` and, with
``--table``, the score table to ``OUT/data/score_table.json``; pass ``--out flow_library`` to update the source
tree. Triplet CSVs, the category cache and ``joint_scale.json`` go to ``--work`` (default ``bundle-work``).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from comfygen import flow_library
from comfygen.flow_library.model import Family, Flow, Provenance, Requirement
from comfygen.flow_library.score_table import Cell, ScoreTable
from comfygen.tools.planner.linking import LinkedScale, ScaleData, fit_linked, leave_one_source_out
from comfygen.tools.planner.sources import SOURCES, read_source, scale_name, scale_title, source_of_flow

logger = logging.getLogger(__name__)

BASE_DIR = Path(flow_library.__file__).resolve().parent / "flows" / "base"  # the installed base flows (read only)
RATED = Path("flows") / "rated"  # under --out
SCORE_TABLE = Path("data") / "score_table.json"  # under --out

# flow id: (base flow to copy, model file, steps, cfg, size, name, description)
LOCAL = {
    "rated-sdxl-base": ("sdxl-base", "sd_xl_base_1.0.safetensors", 50, 5.0, 1024, "SDXL 1.0 base (as rated)",
                        "SDXL base at diffusers-default settings (50 steps, CFG 5): GenAI-Bench, EvalMi-50K and "
                        "AIGIQA-20K do not record theirs."),
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
    "rated-sd14": ("sd15-base", "sd-v1-4.ckpt", 50, 7.5, 512, "Stable Diffusion 1.4 (as rated)",
                   "SD 1.4 at default settings (50 steps, CFG 7.5)."),
    "rated-dreamlike-photoreal": ("sd15-base", "dreamlike-photoreal-2.0.safetensors", 50, 7.5, 768,
                                  "Dreamlike Photoreal 2.0 (as rated)",
                                  "Dreamlike Photoreal 2.0 (an SD 1.5 fine-tune trained at 768 px), 50 steps, CFG 7.5."),
    "rated-lcm-sd15": ("sd15-lcm", "v1-5-pruned-emaonly.safetensors", 4, 1.0, 512, "SD 1.5 LCM (as rated)",
                       "SD 1.5 with the LCM LoRA, 4 steps, CFG 1 (its model card's settings; AIGIQA-20K does not say "
                       "whether it used the LoRA or the distilled UNet)."),
    "rated-lcm-sdxl": ("sdxl-lcm", "sd_xl_base_1.0.safetensors", 4, 1.0, 1024, "SDXL LCM (as rated)",
                       "SDXL with the LCM LoRA, 4 steps, CFG 1 (model card settings; AIGIQA-20K does not say which LCM)."),
    "rated-lcm-pixart": ("pixart-lcm", "PixArt-LCM-XL-2-1024-MS.pth", 4, 1.0, 1024, "PixArt-LCM (as rated)",
                         "PixArt-alpha LCM, 4 steps, no CFG (model card)."),
    "rated-pixart-alpha": ("pixart-alpha", "PixArt-XL-2-1024-MS.pth", 20, 4.5, 1024, "PixArt-alpha (as rated)",
                           "PixArt-alpha XL 1024 at diffusers defaults (20 steps, CFG 4.5)."),
    "rated-pixart-sigma": ("pixart-sigma", "PixArt-Sigma-XL-2-1024-MS.pth", 20, 4.5, 1024, "PixArt-Sigma (as rated)",
                           "PixArt-Sigma XL 1024 at diffusers defaults (20 steps, CFG 4.5)."),
    "rated-ssd1b": ("ssd1b-base", "SSD-1B.safetensors", 50, 5.0, 1024, "SSD-1B (as rated)",
                    "Segmind SSD-1B at SDXL-pipeline defaults (50 steps, CFG 5)."),
    "rated-playground-v2": ("playground-v2", "playground-v2.fp16.safetensors", 50, 3.0, 1024, "Playground v2 (as rated)",
                            "Playground v2 1024px aesthetic, 50 steps, CFG 3 (model card)."),
    "rated-playground-v25": ("playground-v25", "playground-v2.5-1024px-aesthetic.fp16.safetensors", 50, 3.0, 1024,
                             "Playground v2.5 (as rated)", "Playground v2.5 1024px aesthetic, 50 steps, CFG 3 (model card)."),
    "rated-sd35-large": ("sd35-large", "sd3.5_large.safetensors", 28, 3.5, 1024, "SD 3.5 Large (as rated)",
                         "Stable Diffusion 3.5 Large, 28 steps, CFG 3.5 (model card)."),
    "rated-flux-schnell": ("flux-schnell", "flux1-schnell.safetensors", 4, 1.0, 1024, "FLUX.1 schnell (as rated)",
                           "FLUX.1 schnell, 4 steps, no CFG (model card)."),
}

_ext = Requirement(kind="external", name="research code")
EXTERNAL = {
    "rated-dalle3": ("DALL-E 3", Requirement(kind="api_key", name="OPENAI_API_KEY", note="OpenAI Images API")),
    "rated-midjourney6": ("Midjourney v6", Requirement(kind="external", name="Midjourney", url="https://midjourney.com")),
    "rated-midjourney": ("Midjourney (AGIQA-3K, 2023)", Requirement(kind="external", name="Midjourney")),
    "rated-midjourney-aigiqa": ("Midjourney (AIGIQA-20K, 2024)", Requirement(kind="external", name="Midjourney")),
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
    "rated-kolors": ("Kolors (Kuaishou)", Requirement(
        kind="node_pack", name="ComfyUI-KwaiKolorsWrapper", url="https://github.com/kijai/ComfyUI-KwaiKolorsWrapper",
        note="core ComfyUI 0.3.64 has no ChatGLM3 text encoder; Kolors runs with this node pack")),
    "rated-kandinsky3": ("Kandinsky 3", Requirement(kind="external", name="ai-forever/Kandinsky-3")),
    **{fid: (name, _ext) for fid, name in {
        "rated-ella": "ELLA (SD 1.5 with an LLM adapter)", "rated-emu3": "Emu3", "rated-infinity": "Infinity",
        "rated-janus": "Janus", "rated-llmga": "LLMGA", "rated-lwm": "Large World Model", "rated-lavi-bridge": "LaVi-Bridge",
        "rated-llamagen": "LlamaGen (256)", "rated-nova": "NOVA", "rated-show-o": "Show-o", "rated-hart": "HART",
        "rated-i-code-v3": "i-Code V3", "rated-omnigen": "OmniGen (v1)", "rated-seed-x": "SEED-X",
        "rated-vila-u": "VILA-U"}.items()},
}

FAMILY = {"rated-sdxl-base": Family.SDXL, "rated-sdxl-turbo": Family.SDXL, "rated-lcm-sdxl": Family.SDXL,
          "rated-sd21": Family.SD21, "rated-lcm-pixart": Family.PIXART, "rated-pixart-alpha": Family.PIXART,
          "rated-pixart-sigma": Family.PIXART, "rated-ssd1b": Family.SSD1B, "rated-playground-v2": Family.PLAYGROUND,
          "rated-playground-v25": Family.PLAYGROUND, "rated-sd35-large": Family.SD3, "rated-flux-schnell": Family.FLUX}
MODEL_FILE_NODES = {"CheckpointLoaderSimple": "ckpt_name", "UNETLoader": "unet_name"}


def _sources_of(flow_id: str) -> list[str]:
    return source_of_flow(flow_id)


def build_flows() -> list[Flow]:
    flows: list[Flow] = []
    for fid, (base_id, ckpt, steps, cfg, size, name, desc) in LOCAL.items():
        base = Flow.model_validate_json((BASE_DIR / f"{base_id}.json").read_text())
        graph = copy.deepcopy(base.graph)
        for node in graph.values():
            inputs = node["inputs"]
            if node["class_type"] in MODEL_FILE_NODES:
                inputs[MODEL_FILE_NODES[node["class_type"]]] = ckpt
            if "steps" in inputs and not isinstance(inputs["steps"], list):
                inputs["steps"] = steps
            if "cfg" in inputs and not isinstance(inputs["cfg"], list):
                inputs["cfg"] = cfg
            if node["class_type"] in ("EmptyLatentImage", "EmptySD3LatentImage"):
                inputs["width"], inputs["height"] = size, size
            if node["class_type"] == "SaveImage":
                inputs["filename_prefix"] = f"comfygen/{fid}"
        family = FAMILY.get(fid, Family.SD15)
        key = "unet" if base.models.unet else "checkpoint"
        flows.append(base.model_copy(update={
            "id": fid, "name": name, "description": desc, "family": family,
            "models": base.models.model_copy(update={key: ckpt}), "steps": steps, "cfg": cfg,
            "width": size, "height": size, "tags": ["rated"],
            "provenance": Provenance(kind="rating-source", parent=base_id,
                                     source="; ".join(_sources_of(fid))), "graph": graph}))
    for fid, (name, req) in EXTERNAL.items():
        flows.append(Flow(id=fid, name=name, family=Family.EXTERNAL, tags=["rated", "external"],
                          description="Reference flow: human ratings exist for this model; it does not run in core "
                                      "ComfyUI, so it serves as training signal and comparison only.",
                          requires=[req], provenance=Provenance(kind="rating-source", source="; ".join(_sources_of(fid)))))
    return flows


def write_flows(out: Path) -> list[Flow]:
    out.mkdir(parents=True, exist_ok=True)
    flows = build_flows()
    for flow in flows:
        (out / f"{flow.id}.json").write_text(json.dumps(flow.model_dump(mode="json"), indent=1) + "\n")
    return flows


def read_all(ratings: Path) -> dict[str, list[tuple[str, list[dict[str, Any]]]]]:
    """source -> [(scale name, rows)] for every source and score column."""
    return {src.name: [(scale_name(src, c), read_source(ratings, src, c)) for c in src.columns]
            for src in SOURCES.values()}


def category_weights(prompts: dict[str, str], cache: Path | None = None) -> dict[str, np.ndarray]:
    """Prompt id -> category weights (the classifier's detected categories, probabilities normalised to 1;
    zeros when none is detected or the prompt text is unknown)."""
    from comfygen.tools.categorize import CategoryClassifier

    clf = CategoryClassifier.load()
    ids = sorted(prompts)
    if cache is not None and cache.is_file():
        saved = json.loads(cache.read_text())
        if saved.get("ids") == ids:
            return {i: np.asarray(w) for i, w in zip(ids, saved["weights"])}
    texts = [prompts[i] for i in ids]
    probs = clf.probs(texts)
    w = np.where(probs >= 0.5, probs, 0.0)
    w = w / np.maximum(w.sum(1, keepdims=True), 1e-9)
    for k, i in enumerate(ids):  # TIFA160 rows carry ids, not texts
        if i.startswith("tifa-"):
            w[k] = 0.0
    if cache is not None:
        cache.write_text(json.dumps({"ids": ids, "weights": np.round(w, 4).tolist()}))
    return {i: w[k] for k, i in enumerate(ids)}


ANCHOR = "rated-sdxl-base"


def linked_scale(groups: dict[str, list[tuple[str, list[dict[str, Any]]]]], weights: dict[str, np.ndarray] | None,
                 bootstrap: int) -> LinkedScale:
    data = [ScaleData.from_rows(name, rows, paired=SOURCES[src].paired, weights_of=weights, source=src)
            for src, scales in groups.items() for name, rows in scales]
    return fit_linked(data, anchor=ANCHOR, bootstrap=bootstrap)


def write_score_table(linked: LinkedScale, path: Path, min_n: float = 5.0) -> ScoreTable:
    """Cells = each rated flow's joint-scale quality on prompts of each category (overall + category effect)."""
    from comfygen.flow_library.categories import category_ids

    cats = category_ids()
    noise = float(np.mean([s["sigma"] / s["b"] for s in linked.scales.values()]))
    table = ScoreTable(
        metric="human-rated quality on one joint scale linking GenAI-Bench, EvalMi-50K, AIGIQA-20K, AGIQA-3K and "
               "TIFA160 through the models they share (0 = SDXL 1.0 base; 1 unit = 1 point on GenAI-Bench's 1-5 "
               "alignment scale); cell = the flow's overall quality plus its fitted effect in the category",
        notes="Built from real human ratings only (see the README's selection section). Categories from the bundled "
              f"classifier. std = the noise of one rating in joint units ({noise:.2f}, pooled).")
    for j, f in enumerate(linked.flows):
        srcs = sorted({scale_title(s) for s in linked.flow_scales[f]})
        for c, cat in enumerate(cats):
            n = float(linked.category_n[j, c]) if linked.delta.shape[1] else 0.0
            if n < min_n:
                continue
            table.cells.setdefault(f, {})[cat] = Cell(mean=round(float(linked.theta[j] + linked.delta[j, c]), 4),
                                                      n=int(round(n)), std=round(noise, 4), sources=srcs)
    table.save(path)
    return table


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ratings", type=Path, required=True, help="Directory with the rating tables.")
    ap.add_argument("--out", type=Path, required=True,
                    help="Folder laid out like flow_library/ (flows/rated/, data/score_table.json); "
                         "flow_library to update the source tree.")
    ap.add_argument("--work", type=Path, default=Path("bundle-work"), help="Work dir for triplet CSVs and caches.")
    ap.add_argument("--table", action="store_true", help="Also write OUT/data/score_table.json.")
    ap.add_argument("--planner", type=Path, default=None, help="Train the bundled planner into this directory.")
    ap.add_argument("--bootstrap", type=int, default=100, help="Bootstrap resamples for the joint scale.")
    ap.add_argument("--time-budget", type=float, default=1800.0, help="Seconds for planner training.")
    args = ap.parse_args(argv)
    flows = write_flows(args.out / RATED)
    print(f"wrote {len(flows)} rated flows to {args.out / RATED}")
    args.work.mkdir(parents=True, exist_ok=True)
    groups = read_all(args.ratings)
    for src, scales in groups.items():
        for name, rows in scales:
            write_triplets(rows, args.work / f"{name}.csv")
            print(f"{name}: {len(rows)} triplets -> {args.work / f'{name}.csv'}")
    if args.table:
        prompts = {str(r["prompt_id"]): str(r["prompt"]) for scales in groups.values() for _, rows in scales
                   for r in rows}
        linked = linked_scale(groups, category_weights(prompts, args.work / "categories.json"), args.bootstrap)
        summary = joint_summary(linked)
        summary["leave_one_source_out"] = loso(groups)
        (args.work / "joint_scale.json").write_text(json.dumps(summary, indent=1))
        for r in summary["leave_one_source_out"]:
            print(f"leave out {r['source']}: Spearman rho {r['rho']} over {len(r['shared_flows'])} shared flows")
        table = write_score_table(linked, args.out / SCORE_TABLE)
        print(f"score table: {len(table)} cells over {len(table.flows())} flows -> {args.out / SCORE_TABLE}")
    if args.planner:
        from comfygen.tools.planner.data import table_from_rows
        from comfygen.tools.planner.net import TrainParams
        from comfygen.tools.planner.train import PlannerTrainConfig, train_planner

        tables = [(name, table_from_rows(rows)) for scales in groups.values() for name, rows in scales]
        source_of = {name: src for src, scales in groups.items() for name, _ in scales}
        cfg = PlannerTrainConfig(members=3, half=True, params=TrainParams(epochs=3.0), time_budget_s=args.time_budget)
        train_planner(tables, args.planner, cfg, source="bundled: " + ", ".join(n for n, _ in tables),
                      anchor=ANCHOR, bootstrap=args.bootstrap, on_progress=print, link_only={"tifa"},
                      source_of=source_of)


def joint_summary(linked: LinkedScale) -> dict[str, Any]:
    order = np.argsort(-linked.theta)
    names = {f.id: (f.name, f.executable) for f in build_flows()}
    return {"reference": linked.reference, "anchor": linked.anchor, "scales": linked.scales,
            "flows": [{"flow": linked.flows[j], "name": names.get(linked.flows[j], ("", False))[0].replace(
                " (as rated)", ""), "external": not names.get(linked.flows[j], ("", False))[1],
                       "quality": round(float(linked.theta[j]), 4), "sd": round(float(linked.theta_sd[j]), 4),
                       "n": linked.flow_n[linked.flows[j]], "scales": linked.flow_scales[linked.flows[j]]}
                      for j in order]}


def loso(groups: dict[str, list[tuple[str, list[dict[str, Any]]]]]) -> list[dict[str, Any]]:
    """Leave each source out, predict the order of its models from the others (Spearman rho)."""
    data = {src: [ScaleData.from_rows(name, rows, paired=SOURCES[src].paired, source=src) for name, rows in scales]
            for src, scales in groups.items()}
    return [{"source": r.source, "shared_flows": r.shared_flows,
             "rho": None if r.rho is None else round(r.rho, 3)}
            for r in leave_one_source_out(data, anchor=ANCHOR)]


def write_triplets(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["prompt_id", "prompt", "flow", "score"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    main()
