"""HPS v2.1 (Wu et al., 2023): a CLIP ViT-H-14 fine-tuned on 798k human preference pairs.

The official checkpoint ``HPS_v2.1_compressed.pt`` (HF ``xswu/HPSv2``) is an open_clip state dict
(``{'state_dict': {...}}``). It is converted to ``transformers.CLIPModel`` keys
(:func:`~comfygen.tools.scoring.clip_common.open_clip_to_hf`) and loaded strictly, so neither
``hpsv2`` (its wheel lacks the BPE vocabulary) nor ``open_clip`` (needs torchvision) is required.
Preprocessing is hpsv2's: the image as a float tensor, long side resized to 224 (bicubic, unclamped, not
rounded to 8 bits), zero-padded to a square (no crop), OpenAI mean/std (:mod:`.preprocess`); the prompt
cleaned as open_clip's tokenizer does (ftfy, HTML entities, whitespace: :mod:`.text`). The architecture is
hpsv2's ViT-H-14: GELU. Score = cosine(image, text) of the normalised features, without
``logit_scale``, as ``hpsv2.score`` returns it (about 0.2-0.35 for typical generations).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from .base import Scorer, load_state_dict_file, load_strict, resize_long_side_pad, resolve_file
from .clip_common import ClipPair, cosine_pairs, hf_config_from_open_clip, open_clip_to_hf, tiny_clip
from .clip_common import tokenize as clip_tokenize
from .tokenizers import CLIP_VOCAB_SIZE, check_clip_tokenizer, load_clip_tokenizer

CHECKPOINT = "HPS_v2.1_compressed.pt"


class HPSv21Scorer(Scorer):
    name = "hpsv21"
    description = "HPS v2.1 (CLIP ViT-H-14 fine-tuned on human preferences), cosine of image and prompt"
    unit = "cosine"
    tiny_seed = 11
    setting = "COMFYGEN_HPS_PATH"

    def __init__(self, *, checkpoint: str | Path | None = None, repo_id: str = "xswu/HPSv2", filename: str = CHECKPOINT,
                 tokenizer: str = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", weights_dir: Path | None = None, **kw: Any):
        super().__init__(**kw)
        self.checkpoint = checkpoint
        self.repo_id = repo_id
        self.filename = filename
        self.tokenizer_source = tokenizer
        self.weights_dir = weights_dir

    def _build(self) -> None:
        if self.tiny:
            self.model, self.tokenizer = tiny_clip(seed=self.tiny_seed)
        else:
            from transformers import CLIPModel

            path = resolve_file(filename=self.filename, repo_id=self.repo_id, setting=self.setting,
                                local=self.checkpoint, weights_dir=self.weights_dir, what=self.description.split(" (")[0])
            self.model = self.load_open_clip_checkpoint(CLIPModel, load_state_dict_file(path))
            text_cfg = self.model.config.text_config
            self.tokenizer = load_clip_tokenizer(self.tokenizer_source, what="HPS tokenizer (COMFYGEN_HPS_TOKENIZER)",
                                                 minimum=min(CLIP_VOCAB_SIZE, text_cfg.vocab_size))
            check_clip_tokenizer(self.tokenizer, text_cfg, "HPS", "COMFYGEN_HPS_TOKENIZER")
        self.image_size = self.model.config.vision_config.image_size
        self.max_length = self.model.config.text_config.max_position_embeddings
        self.model.eval().to(self.device, self.dtype)
        self.net = ClipPair(self.model)

    @staticmethod
    def load_open_clip_checkpoint(cls: Any, sd: dict[str, torch.Tensor]) -> nn.Module:
        """Build the CLIPModel matching an open_clip state dict and load it strictly."""
        sd = {k.removeprefix("module."): v for k, v in sd.items()}  # hpsv2's ViT-H-14: GELU, never QuickGELU
        model = cls(hf_config_from_open_clip(sd))
        load_strict(model, open_clip_to_hf(sd), "HPS v2.1")
        return model

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net} if hasattr(self, "net") else {}

    def _score_batch(self, images: list[Image.Image], prompts: list[str]) -> torch.Tensor:
        pixels = self._pixels(images, lambda im: resize_long_side_pad(im, self.image_size))
        ids, mask = clip_tokenize(self.tokenizer, prompts, self.max_length, self.device, clean=True)
        return cosine_pairs(*self.net(pixels, ids, mask))


class HPSv20Scorer(HPSv21Scorer):
    """HPS v2.0: same ViT-H-14 architecture and scoring, checkpoint ``HPS_v2_compressed.pt``. Not in the default
    ensemble: the paper uses it as a held-out judge (the training ensemble excludes it)."""

    name = "hpsv20"
    description = "HPS v2.0 (CLIP ViT-H-14 fine-tuned on human preferences), cosine; held-out judge"
    tiny_seed = 12
    setting = "COMFYGEN_HPSV20_PATH"
