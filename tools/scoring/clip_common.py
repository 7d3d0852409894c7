"""CLIP plumbing shared by HPS v2.1, PickScore, the aesthetic head and CLIPScore, on transformers only.

* :func:`open_clip_to_hf` converts an open_clip state dict (the layout of ``HPS_v2.1_compressed.pt``
  and of ``open_clip_pytorch_model.bin`` files) into ``transformers.CLIPModel`` keys: ``in_proj``
  split into q/k/v, ``ln_*``/``c_fc``/``c_proj`` renamed, the two projections transposed.
  :func:`hf_config_from_open_clip` infers the matching ``CLIPConfig`` from the tensor shapes.
  This is how the open_clip checkpoints run here without open_clip (which needs torchvision).
* :func:`tiny_clip` builds a small CLIPModel with seeded random weights and the tiny BPE tokenizer.
* :func:`load_hf_clip` loads (and shares) full CLIPModels from HF ids or directories.
"""

from __future__ import annotations

import threading
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import from_pretrained, init_random_

OPENAI_EOS = 49407
OPENAI_BOS = 49406


def tiny_clip_config(vocab_size: int, *, bos: int, eos: int, pad: int, image_size: int = 32, patch_size: int = 8,
                     projection_dim: int = 16, width: int = 32, gelu: str = "gelu"):
    from transformers import CLIPConfig

    text = dict(vocab_size=vocab_size, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=77, hidden_act=gelu, bos_token_id=bos,
                eos_token_id=eos, pad_token_id=pad)
    vision = dict(hidden_size=width + 16, intermediate_size=2 * (width + 16), num_hidden_layers=2,
                  num_attention_heads=2, image_size=image_size, patch_size=patch_size, hidden_act=gelu)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)


def tiny_clip(seed: int, **kw: Any):
    """(CLIPModel, CLIPTokenizer): the same classes as the real scorers, tiny and deterministic."""
    from transformers import CLIPModel

    from .tokenizers import tiny_clip_tokenizer

    tok = tiny_clip_tokenizer()
    cfg = tiny_clip_config(len(tok), bos=tok.bos_token_id, eos=tok.eos_token_id, pad=tok.pad_token_id, **kw)
    model = init_random_(CLIPModel(cfg), seed=seed).eval()
    return model, tok


def image_embeds(model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    out = model.get_image_features(pixel_values=pixels)
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def text_embeds(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    out = model.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def cosine_pairs(img: torch.Tensor, txt: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity of matching (image, text) pairs, computed in fp32."""
    return (F.normalize(img.float(), dim=-1) * F.normalize(txt.float(), dim=-1)).sum(-1)


def tokenize(tok: Any, prompts: list[str], max_length: int, device: torch.device, *,
             clean: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad + truncate to the text encoder's length: a long prompt is cut (keeping the end token), never an error.
    ``clean=True`` first applies open_clip/OpenAI clip's text cleaning (:func:`~.text.clean_clip_text`)."""
    if clean:
        from .text import clean_clip_text

        prompts = [clean_clip_text(p) for p in prompts]
    enc = tok(prompts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)


# ---------------------------------------------------------------- open_clip -> transformers


def _block(prefix_in: str, prefix_out: str, sd: dict[str, torch.Tensor], out: dict[str, torch.Tensor]) -> None:
    w = sd[prefix_in + "attn.in_proj_weight"]
    b = sd[prefix_in + "attn.in_proj_bias"]
    for name, wq, bq in zip(("q_proj", "k_proj", "v_proj"), w.chunk(3, 0), b.chunk(3, 0), strict=True):
        out[f"{prefix_out}self_attn.{name}.weight"] = wq.clone()
        out[f"{prefix_out}self_attn.{name}.bias"] = bq.clone()
    ren = {"attn.out_proj.": "self_attn.out_proj.", "ln_1.": "layer_norm1.", "ln_2.": "layer_norm2.",
           "mlp.c_fc.": "mlp.fc1.", "mlp.c_proj.": "mlp.fc2."}
    for src, dst in ren.items():
        for suffix in ("weight", "bias"):
            out[prefix_out + dst + suffix] = sd[prefix_in + src + suffix]


def open_clip_to_hf(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """open_clip ``CLIP`` state dict -> ``transformers.CLIPModel`` state dict (every key consumed).

    Raises ``KeyError`` for a key this mapping does not know, so a strict load cannot silently skip one.
    """
    sd = {k: v for k, v in sd.items() if k != "attn_mask" and not k.endswith(".attn_mask")}
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    n_vis = _count_blocks(sd, "visual.transformer.resblocks.")
    n_txt = _count_blocks(sd, "transformer.resblocks.")
    for i in range(n_vis):
        _block(f"visual.transformer.resblocks.{i}.", f"vision_model.encoder.layers.{i}.", sd, out)
    for i in range(n_txt):
        _block(f"transformer.resblocks.{i}.", f"text_model.encoder.layers.{i}.", sd, out)
    used |= {k for k in sd if k.startswith(("visual.transformer.resblocks.", "transformer.resblocks."))}
    simple = {
        "visual.class_embedding": "vision_model.embeddings.class_embedding",
        "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
        "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
        "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight",
        "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
        "visual.ln_post.weight": "vision_model.post_layernorm.weight",
        "visual.ln_post.bias": "vision_model.post_layernorm.bias",
        "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
        "positional_embedding": "text_model.embeddings.position_embedding.weight",
        "ln_final.weight": "text_model.final_layer_norm.weight",
        "ln_final.bias": "text_model.final_layer_norm.bias",
        "logit_scale": "logit_scale",
    }
    for src, dst in simple.items():
        out[dst] = sd[src]
        used.add(src)
    out["visual_projection.weight"] = sd["visual.proj"].t().contiguous()
    out["text_projection.weight"] = sd["text_projection"].t().contiguous()
    used |= {"visual.proj", "text_projection"}
    leftover = sorted(set(sd) - used)
    if leftover:
        raise KeyError(f"open_clip keys with no transformers counterpart: {leftover[:8]}")
    return out


def _count_blocks(sd: dict[str, torch.Tensor], prefix: str) -> int:
    idx = {int(k[len(prefix):].split(".")[0]) for k in sd if k.startswith(prefix)}
    return max(idx) + 1 if idx else 0


#: open_clip's vision ``head_width`` for its big towers (ViT-H-14: 80, ViT-g-14: 88, ViT-bigG-14: 104); else 64
VISION_HEAD_WIDTH = {1280: 80, 1408: 88, 1664: 104}


def hf_config_from_open_clip(sd: dict[str, torch.Tensor], *, vision_head_width: int | None = None,
                             text_heads: int | None = None, quick_gelu: bool = False, layer_norm_eps: float = 1e-5):
    """The ``CLIPConfig`` whose CLIPModel has exactly the shapes of an open_clip state dict.

    Head counts follow open_clip's configs: vision ``width // head_width`` (64, or 80 for ViT-H-14's 1280-wide
    tower), text ``width // 64`` unless given.
    ViT-H-14 / ViT-L-14 LAION models use plain GELU; OpenAI's checkpoints use QuickGELU.
    """
    from transformers import CLIPConfig

    vocab = sd["token_embedding.weight"].shape[0]
    # open_clip pools the text at argmax(token ids) (the end token has the largest id). transformers'
    # CLIPTextTransformer does exactly that when eos_token_id == 2 (its legacy branch), whatever the vocabulary.
    eos_token_id, bos_token_id, pad_token_id = 2, vocab - 2, 0
    v_width = sd["visual.conv1.weight"].shape[0]
    patch = sd["visual.conv1.weight"].shape[-1]
    n_pos = sd["visual.positional_embedding"].shape[0] - 1
    grid = int(round(n_pos ** 0.5))
    t_width = sd["token_embedding.weight"].shape[1]
    act = "quick_gelu" if quick_gelu else "gelu"
    text = dict(vocab_size=vocab, hidden_size=t_width,
                intermediate_size=sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
                num_hidden_layers=_count_blocks(sd, "transformer.resblocks."),
                num_attention_heads=text_heads or max(1, t_width // 64),
                max_position_embeddings=sd["positional_embedding"].shape[0], hidden_act=act,
                eos_token_id=eos_token_id, bos_token_id=bos_token_id, pad_token_id=pad_token_id,
                layer_norm_eps=layer_norm_eps)
    vision = dict(hidden_size=v_width, intermediate_size=sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
                  num_hidden_layers=_count_blocks(sd, "visual.transformer.resblocks."),
                  num_attention_heads=max(1, v_width // (vision_head_width or VISION_HEAD_WIDTH.get(v_width, 64))),
                  image_size=grid * patch, patch_size=patch,
                  hidden_act=act, layer_norm_eps=layer_norm_eps)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=sd["text_projection"].shape[1])


# ---------------------------------------------------------------- shared full-size models

_lock = threading.Lock()
_shared: dict[tuple[str, str, str], nn.Module] = {}


def load_hf_clip(source: str, device: torch.device, dtype: torch.dtype, *, setting: str, what: str) -> nn.Module:
    """A CLIPModel from an HF id or directory, loaded once per (source, device, dtype) and shared
    (the aesthetic head and CLIPScore both use ViT-L/14 by default)."""
    from transformers import CLIPModel

    key = (source, str(device), str(dtype))
    with _lock:
        if key not in _shared:
            model = from_pretrained(CLIPModel, source, setting=setting, what=what, dtype=dtype)
            _shared[key] = model.eval().to(device)
        return _shared[key]


def clear_hf_shared() -> None:
    """Forget the shared Hugging Face CLIP models (:func:`.clip_files.clear_shared` forgets every kind)."""
    with _lock:
        _shared.clear()


class ClipPair(nn.Module):
    """``forward(pixels, ids, mask) -> (image_embeds, text_embeds)``: one module to ``torch.compile``/smash
    (compiling a CLIPModel itself only compiles ``forward``, not ``get_*_features``)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.clip = model

    def forward(self, pixels: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        return image_embeds(self.clip, pixels), text_embeds(self.clip, input_ids, attention_mask)
