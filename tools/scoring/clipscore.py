"""CLIPScore: cosine similarity of CLIP image and prompt embeddings (the noise-search seed's verifier).

The model is configurable (``COMFYGEN_CLIPSCORE_MODEL``):
* a transformers ``CLIPModel`` HF id or directory (default ``openai/clip-vit-large-patch14``, shared
  with the aesthetic head when both run);
* an open_clip checkpoint: a state-dict file, or a directory with ``open_clip_config.json`` +
  ``open_clip_pytorch_model.bin`` (or ``open_clip_model.safetensors``), as LAION publishes them. It is
  converted to a ``CLIPModel`` (no open_clip/torchvision needed); ``quick_gelu`` is read from the config.

Prompts longer than the text encoder's context (77 tokens) are truncated, keeping the end token:
scoring never fails on prompt length. The score is the raw cosine in [-1, 1] (no x100, no clamp).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from .base import Scorer, load_state_dict_file, load_strict, resize_center_crop, resolve_pretrained
from .clip_common import ClipPair, cosine_pairs, hf_config_from_open_clip, load_hf_clip, open_clip_to_hf, tiny_clip
from .clip_common import tokenize as clip_tokenize
from .tokenizers import CLIP_VOCAB_SIZE, load_clip_tokenizer

OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def open_clip_files(source: str) -> tuple[Path, dict[str, Any]] | None:
    """(weights file, model_cfg) when ``source`` is an open_clip checkpoint, else None."""
    p = Path(source).expanduser()
    if p.is_file():
        return p, {}
    if p.is_dir() and not (p / "config.json").exists():
        for name in OPEN_CLIP_WEIGHTS:
            if (p / name).is_file():
                cfg_file = p / "open_clip_config.json"
                cfg = json.loads(cfg_file.read_text()).get("model_cfg", {}) if cfg_file.exists() else {}
                return p / name, cfg
    return None


class ClipScoreScorer(Scorer):
    name = "clipscore"
    description = "CLIPScore: cosine of CLIP image and prompt embeddings (prompt alignment)"
    unit = "cosine"

    def __init__(self, *, model: str = "openai/clip-vit-large-patch14", tokenizer: str | None = None,
                 weights_dir: Path | None = None, **kw: Any):
        super().__init__(**kw)
        self.model_source = model
        self.tokenizer_source = tokenizer
        self.weights_dir = weights_dir

    def _build(self) -> None:
        if self.tiny:
            self.model, self.tokenizer = tiny_clip(seed=41)
            self.model.to(self.device, self.dtype)
        else:
            src = resolve_pretrained(self.model_source, weights_dir=self.weights_dir, setting="COMFYGEN_CLIPSCORE_MODEL")
            oc = open_clip_files(src)
            if oc is not None:
                self.model = self.load_open_clip(*oc).eval().to(self.device, self.dtype)
                tok_src = self.tokenizer_source or (src if (Path(src) / "vocab.json").exists() else
                                                    "openai/clip-vit-large-patch14")
            else:
                self.model = load_hf_clip(src, self.device, self.dtype, setting="COMFYGEN_CLIPSCORE_MODEL",
                                          what="CLIPScore model")
                tok_src = self.tokenizer_source or src
            self.tokenizer = load_clip_tokenizer(tok_src, what="CLIPScore tokenizer",
                                                 minimum=min(CLIP_VOCAB_SIZE, self.model.config.text_config.vocab_size))
        self.image_size = self.model.config.vision_config.image_size
        self.max_length = self.model.config.text_config.max_position_embeddings
        self.net = ClipPair(self.model).eval()

    @staticmethod
    def load_open_clip(path: Path, model_cfg: dict[str, Any]) -> nn.Module:
        from transformers import CLIPModel

        sd = load_state_dict_file(path)
        vision_hw = model_cfg.get("vision_cfg", {}).get("head_width")
        text_heads = model_cfg.get("text_cfg", {}).get("heads")
        model = CLIPModel(hf_config_from_open_clip(sd, vision_head_width=vision_hw, text_heads=text_heads,
                                                   quick_gelu=bool(model_cfg.get("quick_gelu", False))))
        load_strict(model, open_clip_to_hf(sd), f"CLIPScore open_clip checkpoint {path.name}")
        return model

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net} if hasattr(self, "net") else {}

    def _score_batch(self, images: list[Image.Image], prompts: list[str]) -> torch.Tensor:
        pixels = self._pixels(images, lambda im: resize_center_crop(im, self.image_size))
        ids, mask = clip_tokenize(self.tokenizer, prompts, self.max_length, self.device)
        return cosine_pairs(*self.net(pixels, ids, mask))
