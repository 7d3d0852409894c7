"""CLIPScore: cosine similarity of CLIP image and prompt embeddings (the noise-search seed's verifier).

Reference: OpenAI ``clip`` (``encode_image(preprocess(image))``, ``encode_text(clip.tokenize(prompt,
truncate=True))``, cosine), as ImageReward's ``CLIPScore`` and the seed extension compute it.

The model is configurable (``COMFYGEN_CLIPSCORE_MODEL``), in any layout :mod:`.clip_files` reads: a
transformers ``CLIPModel`` id or directory (default ``openai/clip-vit-large-patch14``, shared with the aesthetic
head when both run), OpenAI's TorchScript ``ViT-L-14.pt``, an open_clip directory, or a bare state dict (whose
activation then has to be given: ``COMFYGEN_CLIPSCORE_ACTIVATION``).

Preprocessing is OpenAI clip's: text cleaned as its tokenizer does (ftfy, HTML entities, whitespace), images
resized and cropped in their own mode, then converted to RGB (:mod:`.preprocess`). Prompts longer than 77 tokens
are truncated, keeping the end token. The score is the raw cosine in [-1, 1] (no x100, no clamp).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from .base import Scorer, resize_center_crop, resolve_pretrained
from .clip_common import ClipPair, cosine_pairs, tiny_clip
from .clip_common import tokenize as clip_tokenize
from .clip_files import (
    load_clip,
    open_clip_files,  # noqa: F401  (re-exported: where CLIP checkpoint layouts are read)
)
from .tokenizers import CLIP_VOCAB_SIZE, check_clip_tokenizer, load_clip_tokenizer

DEFAULT_MODEL = "openai/clip-vit-large-patch14"


def default_tokenizer_source(model_source: str) -> str:
    """An HF id's or a model directory's own tokenizer; OpenAI's for a single file (OpenAI's archives hold none)."""
    p = Path(model_source).expanduser()
    if not p.exists():
        return model_source
    if p.is_dir() and (p / "vocab.json").is_file():
        return str(p)
    return DEFAULT_MODEL


class ClipScoreScorer(Scorer):
    name = "clipscore"
    description = "CLIPScore: cosine of CLIP image and prompt embeddings (prompt alignment)"
    unit = "cosine"
    setting = "COMFYGEN_CLIPSCORE_MODEL"

    def __init__(self, *, model: str = DEFAULT_MODEL, tokenizer: str | None = None, activation: str | None = None,
                 weights_dir: Path | None = None, **kw: Any):
        super().__init__(**kw)
        self.model_source = model
        self.tokenizer_source = tokenizer
        self.activation = activation
        self.weights_dir = weights_dir

    def _build(self) -> None:
        if self.tiny:
            self.model, self.tokenizer = tiny_clip(seed=41)
            self.model.to(self.device, self.dtype)
        else:
            src = resolve_pretrained(self.model_source, weights_dir=self.weights_dir, setting=self.setting)
            self.model = load_clip(src, self.device, self.dtype, activation=self.activation, setting=self.setting,
                                   activation_setting="COMFYGEN_CLIPSCORE_ACTIVATION", what="CLIPScore model")
            tok_src = self.tokenizer_source or default_tokenizer_source(src)
            text_cfg = self.model.config.text_config
            self.tokenizer = load_clip_tokenizer(tok_src, what="CLIPScore tokenizer (COMFYGEN_CLIPSCORE_TOKENIZER)",
                                                 minimum=min(CLIP_VOCAB_SIZE, text_cfg.vocab_size))
            check_clip_tokenizer(self.tokenizer, text_cfg, "CLIPScore", "COMFYGEN_CLIPSCORE_TOKENIZER")
        self.image_size = self.model.config.vision_config.image_size
        self.max_length = self.model.config.text_config.max_position_embeddings
        self.net = ClipPair(self.model).eval()

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net} if hasattr(self, "net") else {}

    def _score_batch(self, images: list[Image.Image], prompts: list[str]) -> torch.Tensor:
        pixels = self._pixels(images, lambda im: resize_center_crop(im, self.image_size))
        ids, mask = clip_tokenize(self.tokenizer, prompts, self.max_length, self.device, clean=True)
        return cosine_pairs(*self.net(pixels, ids, mask))
