"""Independent re-implementations of the ORIGINAL forward passes, written against the official key names.

They read the official state dicts directly (no key conversion, no transformers classes), so a test
that compares them with the converted transformers models checks the conversion and the semantics:
* ImageReward: timm-style BLIP ViT (``blocks.i.attn.qkv``) + BLIP's med.py BERT with cross-attention,
  CLS token -> MLP -> (x - mean) / std.
* open_clip CLIP: ``in_proj_weight`` attention through ``F.multi_head_attention_forward``, causal text
  mask, argmax (end-token) pooling, ``x @ proj``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

T = dict[str, torch.Tensor]


def _ln(x: torch.Tensor, sd: T, p: str, eps: float) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], sd[p + ".weight"], sd[p + ".bias"], eps)


def _lin(x: torch.Tensor, sd: T, p: str) -> torch.Tensor:
    return F.linear(x, sd[p + ".weight"], sd.get(p + ".bias"))


def _attn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, mask: torch.Tensor | None) -> torch.Tensor:
    b, n, d = q.shape
    hd = d // heads

    def split(x: torch.Tensor) -> torch.Tensor:
        return x.view(b, -1, heads, hd).transpose(1, 2)

    att = split(q) @ split(k).transpose(-1, -2) / hd ** 0.5
    if mask is not None:
        att = att + mask
    return (att.softmax(-1) @ split(v)).transpose(1, 2).reshape(b, n, d)


# ------------------------------------------------------------------ ImageReward (BLIP)

def imagereward_forward(sd: T, pixels: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, *, v_heads: int,
                        t_heads: int, mean: float, std: float) -> torch.Tensor:
    v = "blip.visual_encoder."
    x = F.conv2d(pixels, sd[v + "patch_embed.proj.weight"], sd[v + "patch_embed.proj.bias"],
                 stride=sd[v + "patch_embed.proj.weight"].shape[-1])
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([sd[v + "cls_token"].expand(x.shape[0], -1, -1), x], 1) + sd[v + "pos_embed"]
    i = 0
    while f"{v}blocks.{i}.norm1.weight" in sd:
        p = f"{v}blocks.{i}."
        h = _ln(x, sd, p + "norm1", 1e-6)
        q, k, vv = _lin(h, sd, p + "attn.qkv").chunk(3, -1)
        x = x + _lin(_attn(q, k, vv, v_heads, None), sd, p + "attn.proj")
        h = _ln(x, sd, p + "norm2", 1e-6)
        x = x + _lin(F.gelu(_lin(h, sd, p + "mlp.fc1")), sd, p + "mlp.fc2")
        i += 1
    img = _ln(x, sd, v + "norm", 1e-6)

    t = "blip.text_encoder."
    pos = torch.arange(ids.shape[1])
    y = sd[t + "embeddings.word_embeddings.weight"][ids] + sd[t + "embeddings.position_embeddings.weight"][pos]
    y = _ln(y, sd, t + "embeddings.LayerNorm", 1e-12)
    ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min  # padding mask, bidirectional
    j = 0
    while f"{t}encoder.layer.{j}.attention.self.query.weight" in sd:
        p = f"{t}encoder.layer.{j}."
        a = _attn(_lin(y, sd, p + "attention.self.query"), _lin(y, sd, p + "attention.self.key"),
                  _lin(y, sd, p + "attention.self.value"), t_heads, ext)
        y = _ln(_lin(a, sd, p + "attention.output.dense") + y, sd, p + "attention.output.LayerNorm", 1e-12)
        c = _attn(_lin(y, sd, p + "crossattention.self.query"), _lin(img, sd, p + "crossattention.self.key"),
                  _lin(img, sd, p + "crossattention.self.value"), t_heads, None)
        y = _ln(_lin(c, sd, p + "crossattention.output.dense") + y, sd, p + "crossattention.output.LayerNorm", 1e-12)
        h = F.gelu(_lin(y, sd, p + "intermediate.dense"))
        y = _ln(_lin(h, sd, p + "output.dense") + y, sd, p + "output.LayerNorm", 1e-12)
        j += 1
    z = y[:, 0, :]
    for k_ in (0, 2, 4, 6, 7):  # Dropouts are identity at inference, no activations
        z = _lin(z, sd, f"mlp.layers.{k_}")
    return ((z - mean) / std).squeeze(-1)


# ------------------------------------------------------------------ open_clip CLIP

def _oc_blocks(x: torch.Tensor, sd: T, prefix: str, heads: int, attn_mask: torch.Tensor | None) -> torch.Tensor:
    i = 0
    x = x.transpose(0, 1)  # open_clip's classic (L, N, D) layout for nn.MultiheadAttention
    while f"{prefix}{i}.ln_1.weight" in sd:
        p = f"{prefix}{i}."
        h = _ln(x, sd, p + "ln_1", 1e-5)
        a, _ = F.multi_head_attention_forward(
            h, h, h, h.shape[-1], heads, sd[p + "attn.in_proj_weight"], sd[p + "attn.in_proj_bias"], None, None, False,
            0.0, sd[p + "attn.out_proj.weight"], sd[p + "attn.out_proj.bias"], training=False, need_weights=False,
            attn_mask=attn_mask)
        x = x + a
        h = _ln(x, sd, p + "ln_2", 1e-5)
        x = x + _lin(F.gelu(_lin(h, sd, p + "mlp.c_fc")), sd, p + "mlp.c_proj")
        i += 1
    return x.transpose(0, 1)


def open_clip_image(sd: T, pixels: torch.Tensor, heads: int) -> torch.Tensor:
    w = sd["visual.conv1.weight"]
    x = F.conv2d(pixels, w, stride=w.shape[-1]).flatten(2).transpose(1, 2)
    cls = sd["visual.class_embedding"].expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], 1) + sd["visual.positional_embedding"]
    x = _ln(x, sd, "visual.ln_pre", 1e-5)
    x = _oc_blocks(x, sd, "visual.transformer.resblocks.", heads, None)
    return _ln(x[:, 0], sd, "visual.ln_post", 1e-5) @ sd["visual.proj"]


def open_clip_text(sd: T, ids: torch.Tensor, heads: int) -> torch.Tensor:
    n = ids.shape[1]
    x = sd["token_embedding.weight"][ids] + sd["positional_embedding"][:n]
    causal = torch.full((n, n), float("-inf")).triu(1)
    x = _oc_blocks(x, sd, "transformer.resblocks.", heads, causal)
    x = _ln(x, sd, "ln_final", 1e-5)
    return x[torch.arange(x.shape[0]), ids.argmax(-1)] @ sd["text_projection"]
