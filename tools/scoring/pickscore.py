"""PickScore (Kirstain et al., 2023): CLIP ViT-H/14 fine-tuned on Pick-a-Pic preferences.

Model ``yuvalkirstain/PickScore_v1`` (a transformers ``CLIPModel``), text processed as the
``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` processor does (transformers' CLIP BPE, 77 tokens, truncation; no
ftfy/HTML cleaning, since PickScore's recipe has none), image through transformers' PIL ``CLIPImageProcessor``
(transparency composited onto white, bicubic short side 224, center crop, OpenAI mean/std), with the
processor directory's ``preprocessor_config.json`` when it has one. Score = ``logit_scale.exp() * cosine`` (about 18-24 for typical generations).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from .base import Scorer, from_pretrained, resolve_pretrained
from .clip_common import ClipPair, cosine_pairs, tiny_clip
from .clip_common import tokenize as clip_tokenize
from .preprocess import clip_image_processor
from .tokenizers import CLIP_VOCAB_SIZE, check_clip_tokenizer, load_clip_tokenizer


class PickScoreScorer(Scorer):
    name = "pickscore"
    description = "PickScore v1 (CLIP ViT-H/14 fine-tuned on Pick-a-Pic), logit_scale * cosine"
    unit = "scaled cosine"

    def __init__(self, *, model: str = "yuvalkirstain/PickScore_v1",
                 processor: str = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", weights_dir: Path | None = None, **kw: Any):
        super().__init__(**kw)
        self.model_source = model
        self.processor_source = processor
        self.weights_dir = weights_dir

    def _build(self) -> None:
        proc = None
        if self.tiny:
            self.model, self.tokenizer = tiny_clip(seed=21)
        else:
            from transformers import CLIPModel

            src = resolve_pretrained(self.model_source, weights_dir=self.weights_dir, setting="COMFYGEN_PICKSCORE_MODEL")
            proc = resolve_pretrained(self.processor_source, weights_dir=self.weights_dir,
                                      setting="COMFYGEN_PICKSCORE_PROCESSOR")
            self.model = from_pretrained(CLIPModel, src, setting="COMFYGEN_PICKSCORE_MODEL", what="PickScore",
                                         dtype=self.dtype)
            text_cfg = self.model.config.text_config
            self.tokenizer = load_clip_tokenizer(proc, what="PickScore tokenizer (COMFYGEN_PICKSCORE_PROCESSOR)",
                                                 minimum=min(CLIP_VOCAB_SIZE, text_cfg.vocab_size))
            check_clip_tokenizer(self.tokenizer, text_cfg, "PickScore", "COMFYGEN_PICKSCORE_PROCESSOR")
        self.image_size = self.model.config.vision_config.image_size
        self.max_length = self.model.config.text_config.max_position_embeddings
        self.image_processor = clip_image_processor(proc, self.image_size)
        self.model.eval().to(self.device, self.dtype)
        self.net = ClipPair(self.model)

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net} if hasattr(self, "net") else {}

    def _score_batch(self, images: list[Image.Image], prompts: list[str]) -> torch.Tensor:
        pixels = self.image_processor(images=images, return_tensors="pt")["pixel_values"].to(self.device, self.dtype)
        ids, mask = clip_tokenize(self.tokenizer, prompts, self.max_length, self.device)
        scale = self.model.logit_scale.float().exp()
        return scale * cosine_pairs(*self.net(pixels, ids, mask))
