"""LAION improved aesthetic predictor ("sac+logos+ava1-l14-linearMSE"): an MLP over CLIP ViT-L/14 image
embeddings, predicting a 1-10 aesthetic rating. The prompt is not used.

Head: the 10-tensor ``layers.{0,2,4,6,7}`` state dict (d -> 1024 -> 128 -> 64 -> 16 -> 1, no activations; d is
read from the file, 768 for ViT-L/14), by default from HF ``trl-lib/ddpo-aesthetic-predictor``
(``aesthetic-model.pth``, the same weights TRL's DDPO example uses), or any local ``.pth``
(``COMFYGEN_AESTHETIC_PATH``). Input: the L2-normalised image embedding of OpenAI CLIP ViT-L/14, from
``openai/clip-vit-large-patch14`` or any layout :mod:`.clip_files` reads (OpenAI's ``ViT-L-14.pt`` included).

Reference: ``simple_inference.py`` of improved-aesthetic-predictor (as ImageReward's ``AestheticScore``
re-implements it): OpenAI clip's preprocess (resize + crop in the image's own mode, then RGB; :mod:`.preprocess`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..errors import ScoringError
from .base import (
    RewardMLP,
    Scorer,
    init_random_,
    load_state_dict_file,
    load_strict,
    resize_center_crop,
    resolve_file,
    resolve_pretrained,
)
from .clip_common import image_embeds, tiny_clip
from .clip_files import load_clip


class AestheticNet(nn.Module):
    def __init__(self, clip: nn.Module, head: RewardMLP):
        super().__init__()
        self.clip = clip
        self.head = head

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        emb = F.normalize(image_embeds(self.clip, pixels).float(), dim=-1)
        return self.head(emb.to(next(self.head.parameters()).dtype)).squeeze(-1)


def load_head(path: Path) -> RewardMLP:
    sd = load_state_dict_file(path)
    w = sd.get("layers.0.weight")
    head = RewardMLP(int(w.shape[1]) if isinstance(w, torch.Tensor) and w.ndim == 2 else 768)
    load_strict(head, sd, "LAION aesthetic head")
    return head


class AestheticScorer(Scorer):
    name = "aesthetic"
    description = "LAION improved aesthetic predictor (MLP over CLIP ViT-L/14 image embeddings), about 1-10"
    unit = "rating 1-10"

    def __init__(self, *, clip: str = "openai/clip-vit-large-patch14", head: str | Path | None = None,
                 repo_id: str = "trl-lib/ddpo-aesthetic-predictor", filename: str = "aesthetic-model.pth",
                 activation: str | None = None, weights_dir: Path | None = None, **kw: Any):
        super().__init__(**kw)
        self.clip_source = clip
        self.head_path = head
        self.repo_id = repo_id
        self.filename = filename
        self.activation = activation
        self.weights_dir = weights_dir

    def _build(self) -> None:
        if self.tiny:
            clip, _ = tiny_clip(seed=31)
            head = init_random_(RewardMLP(clip.config.projection_dim), seed=32)
        else:
            path = resolve_file(filename=self.filename, repo_id=self.repo_id, setting="COMFYGEN_AESTHETIC_PATH",
                                local=self.head_path, weights_dir=self.weights_dir, what="LAION aesthetic head")
            head = load_head(path)
            src = resolve_pretrained(self.clip_source, weights_dir=self.weights_dir, setting="COMFYGEN_AESTHETIC_CLIP")
            clip = load_clip(src, self.device, self.dtype, activation=self.activation,
                             setting="COMFYGEN_AESTHETIC_CLIP", activation_setting="COMFYGEN_AESTHETIC_ACTIVATION",
                             what="CLIP ViT-L/14 for the aesthetic head")
        if head.layers[0].in_features != clip.config.projection_dim:
            raise ScoringError(f"the aesthetic head takes {head.layers[0].in_features}-d embeddings but the CLIP model "
                               f"gives {clip.config.projection_dim}-d ones",
                               hint="COMFYGEN_AESTHETIC_CLIP must be the CLIP the head was trained on "
                                    "(OpenAI ViT-L/14)")
        self.image_size = clip.config.vision_config.image_size
        self.net = AestheticNet(clip, head).eval().to(self.device, self.dtype)

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net} if hasattr(self, "net") else {}

    def _score_batch(self, images: list[Image.Image], prompts: list[str]) -> torch.Tensor:
        return self.net(self._pixels(images, lambda im: resize_center_crop(im, self.image_size)))
