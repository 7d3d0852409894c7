"""ImageReward (Xu et al., 2023): BLIP ViT-L image encoder + BERT text encoder with cross-attention + MLP.

The ``image-reward`` package cannot be used with this stack: it pins ``timm==0.6.13`` (clashes with
open_clip's ``timm>=1.0.17``), imports ``clip``/``pkg_resources``, and its BERT code uses internals
that transformers 5 removed. The same architecture exists in transformers as ``BlipVisionModel`` +
``BlipTextModel``; the official ``ImageReward.pt`` state dict loads into it by renaming keys
(:func:`convert_official_state_dict`), strictly: every key is used except BLIP's unused
``vision_proj``/``text_proj`` heads.

Reward = ``(mlp(text_cls) - 0.16717362830052426) / 1.0333394966054072`` (ImageReward's own
normalisation constants), text tokenized to ``max_length=35`` with padding (BERT's own normalisation, no
ftfy), image preprocessed as ImageReward's ``_transform``: bicubic short-side resize to 224 and center crop in
the image's own mode, then RGB, CLIP mean/std (:mod:`.preprocess`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from .base import RewardMLP, Scorer, init_random_, load_state_dict_file, load_strict, resize_center_crop, resolve_file

REWARD_MEAN = 0.16717362830052426
REWARD_STD = 1.0333394966054072
MAX_TEXT_LEN = 35
CHECKPOINT = "ImageReward.pt"

# med_config.json of THUDM/ImageReward (BERT-base + cross-attention to the ViT-L/16 features)
REAL_VISION = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                   image_size=224, patch_size=16, layer_norm_eps=1e-6)
REAL_TEXT = dict(vocab_size=30524, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=512, encoder_hidden_size=1024, layer_norm_eps=1e-12)
TINY_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                   image_size=32, patch_size=8, layer_norm_eps=1e-6)
TINY_TEXT = dict(vocab_size=30524, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64, max_position_embeddings=64, encoder_hidden_size=32, layer_norm_eps=1e-12)


class ImageRewardModel(nn.Module):
    def __init__(self, vision: dict[str, Any], text: dict[str, Any]):
        super().__init__()
        from transformers import BlipTextConfig, BlipTextModel, BlipVisionConfig, BlipVisionModel

        self.vision = BlipVisionModel(BlipVisionConfig(**vision))
        # is_decoder=True only makes BlipTextLayer build its cross-attention block; forward() runs it as an
        # encoder (bidirectional mask), as ImageReward's BertModel does in "multimodal" mode.
        self.text = BlipTextModel(BlipTextConfig(**text, is_decoder=True), add_pooling_layer=False)
        self.mlp = RewardMLP(text["hidden_size"])
        self.image_size = vision["image_size"]

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        image_embeds = self.vision(pixel_values=pixel_values).last_hidden_state
        image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        out = self.text(input_ids=input_ids, attention_mask=attention_mask, encoder_hidden_states=image_embeds,
                        encoder_attention_mask=image_atts, is_decoder=False)
        cls = out.last_hidden_state[:, 0, :]
        raw = self.mlp(cls).squeeze(-1)
        return (raw - REWARD_MEAN) / REWARD_STD


_VISION_RENAMES = [
    (r"^cls_token$", "embeddings.class_embedding"),
    (r"^pos_embed$", "embeddings.position_embedding"),
    (r"^patch_embed\.proj\.", "embeddings.patch_embedding."),
    (r"^blocks\.(\d+)\.norm1\.", r"encoder.layers.\1.layer_norm1."),
    (r"^blocks\.(\d+)\.norm2\.", r"encoder.layers.\1.layer_norm2."),
    (r"^blocks\.(\d+)\.attn\.qkv\.", r"encoder.layers.\1.self_attn.qkv."),
    (r"^blocks\.(\d+)\.attn\.proj\.", r"encoder.layers.\1.self_attn.projection."),
    (r"^blocks\.(\d+)\.mlp\.", r"encoder.layers.\1.mlp."),
    (r"^norm\.", "post_layernorm."),
]
#: keys of the official checkpoint that ImageReward's reward path never uses
UNUSED_PREFIXES = ("blip.vision_proj.", "blip.text_proj.", "blip.itm_head.", "blip.temp")


def convert_official_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``ImageReward.pt`` keys (``blip.visual_encoder.*``, ``blip.text_encoder.*``, ``mlp.layers.*``) ->
    :class:`ImageRewardModel` keys. Unused BLIP heads and ``position_ids`` buffers are dropped."""
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key.startswith(UNUSED_PREFIXES) or key.endswith("position_ids"):
            continue
        if key.startswith("blip.visual_encoder."):
            k = key[len("blip.visual_encoder."):]
            for pat, rep in _VISION_RENAMES:
                k, n = re.subn(pat, rep, k)
                if n:
                    break
            out["vision." + k] = value
        elif key.startswith("blip.text_encoder."):
            out["text." + key[len("blip.text_encoder."):]] = value
        else:
            out[key] = value  # mlp.layers.* (unchanged) and anything unknown (reported by the strict load)
    return out


class ImageRewardScorer(Scorer):
    name = "imagereward"
    description = "ImageReward v1.0 (BLIP + MLP), human preference reward, normalised (about mean 0, std 1)"
    unit = "reward (z)"

    def __init__(self, *, checkpoint: str | Path | None = None, repo_id: str = "THUDM/ImageReward",
                 weights_dir: Path | None = None, vocab_dir: str | Path | None = None,
                 vision_config: dict[str, Any] | None = None, text_config: dict[str, Any] | None = None, **kw: Any):
        """``vision_config``/``text_config`` override the architecture of a checkpoint (default: ImageReward v1.0's)."""
        super().__init__(**kw)
        self.vision_config = vision_config or REAL_VISION
        self.text_config = text_config or REAL_TEXT
        self.checkpoint = checkpoint
        self.repo_id = repo_id
        self.weights_dir = weights_dir
        self.vocab_dir = vocab_dir

    def _build(self) -> None:
        from .tokenizers import imagereward_tokenizer

        self.tokenizer = imagereward_tokenizer(str(self.vocab_dir) if self.vocab_dir else None)
        if self.tiny:
            torch.manual_seed(0)
            self.model = init_random_(ImageRewardModel(TINY_VISION, TINY_TEXT), seed=1)
        else:
            path = resolve_file(filename=CHECKPOINT, repo_id=self.repo_id, setting="COMFYGEN_IMAGEREWARD_PATH",
                                local=self.checkpoint, weights_dir=self.weights_dir, what="ImageReward")
            model = ImageRewardModel(self.vision_config, self.text_config)
            self.load_official(model, load_state_dict_file(path))
            self.model = model
        from .tokenizers import check_bert_tokenizer

        check_bert_tokenizer(self.tokenizer, self.model.text.config.vocab_size, "ImageReward", "COMFYGEN_IMAGEREWARD_VOCAB")
        self.image_size = self.model.image_size
        self.model.eval().to(self.device, self.dtype)

    @staticmethod
    def load_official(model: ImageRewardModel, sd: dict[str, torch.Tensor]) -> None:
        load_strict(model, convert_official_state_dict(sd), "ImageReward")

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model} if hasattr(self, "model") else {}

    def _score_batch(self, images: list[Image.Image], prompts: list[str]) -> torch.Tensor:
        pixels = self._pixels(images, lambda im: resize_center_crop(im, self.image_size))
        tok = self.tokenizer(prompts, padding="max_length", truncation=True, max_length=MAX_TEXT_LEN, return_tensors="pt")
        return self.model(pixels, tok["input_ids"].to(self.device), tok["attention_mask"].to(self.device))
