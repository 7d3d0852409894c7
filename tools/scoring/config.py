"""Per-scorer settings: where each scorer's weights come from (HF ids or local paths), batch size, VLM.

Read from ``COMFYGEN_*`` environment variables like the main settings, e.g.
``COMFYGEN_HPS_PATH=/models/HPS_v2.1_compressed.pt`` or ``COMFYGEN_PICKSCORE_MODEL=/models/PickScore_v1``.
The device and the shared weights directory come from :class:`comfygen.tools.settings.Settings`
(``COMFYGEN_SCORER_DEVICE``, ``COMFYGEN_WEIGHTS_DIR``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LAION_H14 = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
Activation = Literal["quick_gelu", "gelu"]


class ScoringConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COMFYGEN_", extra="ignore")

    score_batch_size: int = Field(8, description="Images per forward pass for every scorer.")
    score_compile: bool = Field(False, description="Wrap scorer models with torch.compile.")

    imagereward_path: Path | None = Field(None, description="Local ImageReward.pt (file or directory holding it).")
    imagereward_repo: str = Field("THUDM/ImageReward", description="HF repo with ImageReward.pt.")
    imagereward_vocab: Path | None = Field(
        None, description="Directory with a bert-base-uncased vocab.txt (default: the bundled MiniLM vocabulary).")

    hps_path: Path | None = Field(None, description="Local HPS_v2.1_compressed.pt (open_clip state dict).")
    hps_repo: str = Field("xswu/HPSv2", description="HF repo with the HPS v2.1 checkpoint.")
    hps_file: str = Field("HPS_v2.1_compressed.pt", description="Checkpoint file name inside hps_repo.")
    hps_tokenizer: str = Field(LAION_H14, description="CLIP tokenizer (HF id or directory) for HPS v2.1.")

    hpsv20_path: Path | None = Field(None, description="Local HPS_v2_compressed.pt (HPS v2.0, held-out judge).")
    hpsv20_file: str = Field("HPS_v2_compressed.pt", description="HPS v2.0 checkpoint file name inside hps_repo.")

    pickscore_model: str = Field("yuvalkirstain/PickScore_v1", description="PickScore CLIPModel (HF id or directory).")
    pickscore_processor: str = Field(LAION_H14, description="Tokenizer source for PickScore (HF id or directory).")

    aesthetic_clip: str = Field("openai/clip-vit-large-patch14", description="CLIP ViT-L/14 (HF id or directory).")
    aesthetic_path: Path | None = Field(None, description="Local aesthetic head (.pth with layers.0..7).")
    aesthetic_repo: str = Field("trl-lib/ddpo-aesthetic-predictor", description="HF repo with the aesthetic head.")
    aesthetic_file: str = Field("aesthetic-model.pth",
                                description="Head file in aesthetic_repo (sac+logos+ava1-l14-linearMSE weights).")
    aesthetic_activation: Activation | None = Field(
        None, description="quick_gelu (OpenAI weights) or gelu: only for a bare CLIP state-dict file whose "
                          "activation cannot be told from the file.")

    clipscore_model: str = Field(
        "openai/clip-vit-large-patch14",
        description="CLIPScore model: HF CLIPModel id/dir, OpenAI's TorchScript .pt, an open_clip directory "
                    "(open_clip_config.json + open_clip_pytorch_model.bin) or a CLIP state-dict file.")
    clipscore_tokenizer: str | None = Field(
        None, description="CLIP tokenizer (HF id or directory); default: the model directory's own, else OpenAI's.")
    clipscore_activation: Activation | None = Field(
        None, description="quick_gelu (OpenAI weights) or gelu: only for a bare CLIP state-dict file whose "
                          "activation cannot be told from the file.")

    vlm_url: str | None = Field(None, description="OpenAI-compatible base URL for the VLM grader (off when unset).")
    vlm_model: str = Field("Qwen/Qwen2.5-VL-7B-Instruct", description="Model name sent to the VLM endpoint.")
    vlm_api_key: str | None = Field(None, description="API key for the VLM endpoint (default: OPENAI_API_KEY or 'none').")
    vlm_aspect: str = Field("overall_score", description="Which rubric key becomes the score.")
    vlm_timeout_s: float = Field(120.0, description="Timeout per VLM request.")

    ensemble_weights: dict[str, float] | None = Field(None, description="Per-scorer ensemble weights (JSON).")


def load_config() -> ScoringConfig:
    return ScoringConfig()
