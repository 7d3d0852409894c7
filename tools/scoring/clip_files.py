"""CLIP weights in every layout the CLIP scorers meet, turned into one ``transformers.CLIPModel``.

Layouts of ``source``:
* a Hugging Face id or directory with ``config.json`` (``openai/clip-vit-large-patch14``, ``PickScore_v1``);
* an open_clip directory: ``open_clip_config.json`` + ``open_clip_pytorch_model.bin`` / ``open_clip_model.safetensors``;
* one file: OpenAI's TorchScript archive (``ViT-L-14.pt`` as ``clip`` downloads it), or a state dict in the
  OpenAI/open_clip key layout (``.pt``/``.pth``/``.bin``/``.safetensors``, optionally ``{'state_dict': ...}``).

The activation cannot be read from the tensors: OpenAI's models use QuickGELU, LAION's open_clip models GELU,
and the wrong one silently moves every score. It is decided, in this order, by
1. the explicit setting (``quick_gelu`` or ``gelu``);
2. an open_clip directory's ``open_clip_config.json`` (``quick_gelu``, false when absent, as open_clip reads it);
3. OpenAI's own marks: OpenAI's archives (and state dicts taken from them) carry ``input_resolution``,
   ``context_length`` and ``vocab_size`` entries, which ``clip.model.build_model`` deletes and which open_clip
   never writes -> QuickGELU;
4. otherwise the file is refused with an error naming the setting.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ScoringError
from .base import is_torchscript, load_state_dict_file, load_strict
from .clip_common import clear_hf_shared, hf_config_from_open_clip, load_hf_clip, open_clip_to_hf

ACTIVATIONS = ("quick_gelu", "gelu")
OPENAI_MARKS = ("input_resolution", "context_length", "vocab_size")
OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def open_clip_files(source: str | Path) -> tuple[Path, dict[str, Any] | None] | None:
    """(weights file, open_clip model_cfg or None for a bare file) when ``source`` is not an HF model, else None."""
    p = Path(source).expanduser()
    if p.is_file():
        return p, None
    if p.is_dir() and not (p / "config.json").exists():
        for name in OPEN_CLIP_WEIGHTS:
            if (p / name).is_file():
                cfg_file = p / "open_clip_config.json"
                cfg = json.loads(cfg_file.read_text()).get("model_cfg", {}) if cfg_file.exists() else None
                return p / name, cfg
    return None


def resolve_activation(sd: dict[str, torch.Tensor], model_cfg: dict[str, Any] | None, explicit: str | None, *,
                       path: Path, setting: str) -> str:
    """``quick_gelu`` or ``gelu`` by the rule in the module docstring; raises :class:`ScoringError` when unknowable."""
    if explicit:
        act = explicit.strip().lower().replace("-", "_")
        if act not in ACTIVATIONS:
            raise ScoringError(f"{setting}={explicit!r} is not an activation",
                               hint=f"use one of {', '.join(ACTIVATIONS)}")
        return act
    if model_cfg is not None:
        return "quick_gelu" if model_cfg.get("quick_gelu", False) else "gelu"
    if all(k in sd for k in OPENAI_MARKS):
        return "quick_gelu"
    raise ScoringError(
        f"cannot tell whether {path.name} uses QuickGELU (OpenAI's CLIP weights) or GELU (most LAION open_clip "
        "weights): it is a bare state dict without OpenAI's input_resolution/context_length/vocab_size entries "
        "and without an open_clip_config.json",
        hint=f"set {setting}=quick_gelu for OpenAI weights or {setting}=gelu for LAION/open_clip weights, or point "
             "the model setting at OpenAI's TorchScript .pt or at an open_clip directory with its config",
        details={"file": str(path), "setting": setting})


def clip_from_file(path: Path, model_cfg: dict[str, Any] | None, activation: str | None, *, setting: str,
                   what: str) -> nn.Module:
    """A CLIPModel from an open_clip/OpenAI-layout file (strict key conversion)."""
    from transformers import CLIPModel

    sd = load_state_dict_file(path)
    act = resolve_activation(sd, model_cfg, activation, path=path, setting=setting)
    sd = {k: v for k, v in sd.items() if k not in OPENAI_MARKS}
    cfg = model_cfg or {}
    try:
        hf_cfg = hf_config_from_open_clip(sd, vision_head_width=cfg.get("vision_cfg", {}).get("head_width"),
                                          text_heads=cfg.get("text_cfg", {}).get("heads"),
                                          quick_gelu=act == "quick_gelu")
        hf_sd = open_clip_to_hf(sd)
    except KeyError as e:
        raise ScoringError(f"{what}: {path.name} is not a CLIP checkpoint in the OpenAI/open_clip layout ({e})",
                           hint="point the setting at a CLIP model: an HF CLIPModel directory, OpenAI's ViT-*.pt, or "
                                "an open_clip checkpoint") from e
    model = CLIPModel(hf_cfg)
    load_strict(model, hf_sd, f"{what} ({path.name})")
    model.clip_source_format = "torchscript" if is_torchscript(path) else ("open_clip" if model_cfg else "state_dict")
    return model


_lock = threading.Lock()
_shared: dict[tuple[str, str, str, str | None], nn.Module] = {}


def load_clip(source: str, device: torch.device, dtype: torch.dtype, *, activation: str | None = None,
              setting: str, activation_setting: str, what: str) -> nn.Module:
    """A CLIPModel from any layout above, loaded once per (source, device, dtype, activation) and shared."""
    oc = open_clip_files(source)
    if oc is None:
        if activation:
            raise ScoringError(f"{activation_setting} only applies to open_clip/OpenAI files, not to {source!r}",
                               hint=f"unset {activation_setting}: a transformers model's config.json names its "
                                    "activation")
        return load_hf_clip(source, device, dtype, setting=setting, what=what)
    key = (str(oc[0].resolve()), str(device), str(dtype), activation)
    with _lock:
        if key not in _shared:
            model = clip_from_file(oc[0], oc[1], activation, setting=activation_setting, what=what)
            _shared[key] = model.eval().to(device, dtype)
        return _shared[key]


def clear_shared() -> None:
    """Forget every shared CLIP model: the file-based ones here and the Hugging Face ones of :mod:`.clip_common`."""
    clear_hf_shared()
    with _lock:
        _shared.clear()
