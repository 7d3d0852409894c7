"""Real loading paths, on checkpoint files this test writes with random weights in each OFFICIAL key layout:

* ``ImageReward.pt``: a plain state dict with ``blip.visual_encoder.*``, ``blip.text_encoder.*``, BLIP's
  unused ``blip.vision_proj``/``blip.text_proj`` and ``mlp.layers.{0,2,4,6,7}`` (names as in THUDM's code);
* ``HPS_v2.1_compressed.pt``: ``{'state_dict': <open_clip CLIP keys>}``;
* an open_clip model directory (``open_clip_config.json`` + ``open_clip_pytorch_model.bin``) for CLIPScore;
* PickScore: a transformers ``CLIPModel`` directory (``save_pretrained``) + CLIP tokenizer files;
* the LAION aesthetic head: ``layers.{0,2,4,6,7}`` in a ``.pth``.

Every key must load (strict), outputs must be deterministic, and the converted models must match the
independent re-implementations of the original forward passes in ``reference_impl``.
"""

from __future__ import annotations

import json

import pytest
import torch
from reference_impl import imagereward_forward, open_clip_image, open_clip_text
from scoring_helpers import PROMPTS, images

from comfygen.tools.errors import ScoringError
from comfygen.tools.scoring.base import resize_center_crop, resize_long_side_pad
from comfygen.tools.scoring.tokenizers import tiny_clip_tokenizer, tiny_clip_vocab, write_clip_tokenizer_files


def _rand(g: torch.Generator, *shape: int, scale: float | None = None) -> torch.Tensor:
    fan_in = shape[-1] if len(shape) > 1 else 1
    s = scale if scale is not None else (1.0 / fan_in ** 0.5 if len(shape) > 1 else 0.1)
    return torch.randn(*shape, generator=g) * s


def _norm(g: torch.Generator, sd: dict, key: str, d: int) -> None:
    sd[key + ".weight"] = 1 + 0.1 * torch.randn(d, generator=g)
    sd[key + ".bias"] = 0.1 * torch.randn(d, generator=g)


def _linear(g: torch.Generator, sd: dict, key: str, out: int, inp: int, bias: bool = True) -> None:
    sd[key + ".weight"] = _rand(g, out, inp)
    if bias:
        sd[key + ".bias"] = _rand(g, out)


# ------------------------------------------------------------------ ImageReward

VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32,
              patch_size=8, layer_norm_eps=1e-6)
TEXT = dict(vocab_size=30524, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=40, encoder_hidden_size=32, layer_norm_eps=1e-12)


def official_imagereward_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    D, I, P = VISION["hidden_size"], VISION["intermediate_size"], VISION["patch_size"]
    n = (VISION["image_size"] // P) ** 2
    sd: dict[str, torch.Tensor] = {}
    v = "blip.visual_encoder."
    sd[v + "cls_token"] = _rand(g, 1, 1, D, scale=0.5)
    sd[v + "pos_embed"] = _rand(g, 1, n + 1, D, scale=0.5)
    sd[v + "patch_embed.proj.weight"] = _rand(g, D, 3, P, P, scale=0.1)
    sd[v + "patch_embed.proj.bias"] = _rand(g, D)
    for i in range(VISION["num_hidden_layers"]):
        b = f"{v}blocks.{i}."
        _norm(g, sd, b + "norm1", D)
        _linear(g, sd, b + "attn.qkv", 3 * D, D)
        _linear(g, sd, b + "attn.proj", D, D)
        _norm(g, sd, b + "norm2", D)
        _linear(g, sd, b + "mlp.fc1", I, D)
        _linear(g, sd, b + "mlp.fc2", D, I)
    _norm(g, sd, v + "norm", D)
    t = "blip.text_encoder."
    H, TI, L = TEXT["hidden_size"], TEXT["intermediate_size"], TEXT["max_position_embeddings"]
    sd[t + "embeddings.word_embeddings.weight"] = _rand(g, TEXT["vocab_size"], H, scale=0.5)
    sd[t + "embeddings.position_embeddings.weight"] = _rand(g, L, H, scale=0.5)
    sd[t + "embeddings.position_ids"] = torch.arange(L).unsqueeze(0)  # a persistent buffer in BLIP's med.py
    _norm(g, sd, t + "embeddings.LayerNorm", H)
    for j in range(TEXT["num_hidden_layers"]):
        p = f"{t}encoder.layer.{j}."
        for att, kv_dim in (("attention", H), ("crossattention", D)):
            _linear(g, sd, p + f"{att}.self.query", H, H)
            _linear(g, sd, p + f"{att}.self.key", H, kv_dim)
            _linear(g, sd, p + f"{att}.self.value", H, kv_dim)
            _linear(g, sd, p + f"{att}.output.dense", H, H)
            _norm(g, sd, p + f"{att}.output.LayerNorm", H)
        _linear(g, sd, p + "intermediate.dense", TI, H)
        _linear(g, sd, p + "output.dense", H, TI)
        _norm(g, sd, p + "output.LayerNorm", H)
    _linear(g, sd, "blip.vision_proj", 256, D)
    _linear(g, sd, "blip.text_proj", 256, H)
    for k, (o, i_) in zip((0, 2, 4, 6, 7), ((1024, H), (128, 1024), (64, 128), (16, 64), (1, 16)), strict=True):
        _linear(g, sd, f"mlp.layers.{k}", o, i_)
    return sd


@pytest.fixture(scope="module")
def imagereward_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ir") / "ImageReward.pt"
    torch.save(official_imagereward_state_dict(), path)
    return path


def _ir_scorer(path):
    from comfygen.tools.scoring.imagereward import ImageRewardScorer

    return ImageRewardScorer(checkpoint=path, vision_config=VISION, text_config=TEXT, device="cpu")


def test_imagereward_official_layout_loads_strictly_and_matches_original_forward(imagereward_file):
    from comfygen.tools.scoring.imagereward import MAX_TEXT_LEN, REWARD_MEAN, REWARD_STD

    s = _ir_scorer(imagereward_file).load()
    sd = torch.load(imagereward_file, weights_only=True)
    # every tensor of the file is in the model (or is one of BLIP's heads ImageReward never uses)
    assert torch.equal(s.model.vision.encoder.layers[1].self_attn.qkv.weight, sd["blip.visual_encoder.blocks.1.attn.qkv.weight"])
    assert torch.equal(s.model.mlp.layers[7].weight, sd["mlp.layers.7.weight"])
    imgs, prompts = images(4), PROMPTS[:4]
    ours = s.score(imgs, prompts)
    pixels = torch.stack([resize_center_crop(im, 32) for im in imgs])
    tok = s.tokenizer(prompts, padding="max_length", truncation=True, max_length=MAX_TEXT_LEN, return_tensors="pt")
    ref = imagereward_forward(sd, pixels, tok["input_ids"], tok["attention_mask"], v_heads=2, t_heads=2,
                              mean=REWARD_MEAN, std=REWARD_STD)
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-5)
    assert ours.std() > 1e-3
    assert torch.equal(ours, _ir_scorer(imagereward_file).score(imgs, prompts))  # deterministic reload


def test_imagereward_rejects_a_checkpoint_with_a_missing_key(tmp_path):
    sd = official_imagereward_state_dict()
    del sd["blip.text_encoder.encoder.layer.1.crossattention.self.key.weight"]
    path = tmp_path / "ImageReward.pt"
    torch.save(sd, path)
    with pytest.raises(ScoringError, match="missing"):
        _ir_scorer(path).load()


def test_imagereward_rejects_unknown_keys(tmp_path):
    sd = official_imagereward_state_dict()
    sd["blip.visual_encoder.blocks.9.attn.qkv.weight"] = torch.zeros(3)
    path = tmp_path / "ImageReward.pt"
    torch.save(sd, path)
    with pytest.raises(ScoringError, match="unexpected"):
        _ir_scorer(path).load()


# ------------------------------------------------------------------ open_clip layout (HPS v2.1, CLIPScore)

# open_clip's head rule: width // 64 (vision ViT-H-14: // 80), so 128-wide towers have 2 heads
OC = dict(v_width=128, v_layers=2, v_heads=2, patch=8, image=32, t_width=128, t_layers=2, t_heads=2, embed=16, ctx=77)


def official_open_clip_state_dict(vocab: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    Dv, Dt, P = OC["v_width"], OC["t_width"], OC["patch"]
    n = (OC["image"] // P) ** 2
    sd: dict[str, torch.Tensor] = {
        "visual.class_embedding": _rand(g, Dv, scale=0.5),
        "visual.positional_embedding": _rand(g, n + 1, Dv, scale=0.5),
        "visual.conv1.weight": _rand(g, Dv, 3, P, P, scale=0.1),
        "visual.proj": _rand(g, Dv, OC["embed"]),
        "token_embedding.weight": _rand(g, vocab, Dt, scale=0.5),
        "positional_embedding": _rand(g, OC["ctx"], Dt, scale=0.5),
        "text_projection": _rand(g, Dt, OC["embed"]),
        "logit_scale": torch.tensor(4.6052),
    }
    _norm(g, sd, "visual.ln_pre", Dv)
    _norm(g, sd, "visual.ln_post", Dv)
    _norm(g, sd, "ln_final", Dt)
    for prefix, d, layers in (("visual.transformer.resblocks.", Dv, OC["v_layers"]),
                              ("transformer.resblocks.", Dt, OC["t_layers"])):
        for i in range(layers):
            p = f"{prefix}{i}."
            _norm(g, sd, p + "ln_1", d)
            sd[p + "attn.in_proj_weight"] = _rand(g, 3 * d, d)
            sd[p + "attn.in_proj_bias"] = _rand(g, 3 * d)
            _linear(g, sd, p + "attn.out_proj", d, d)
            _norm(g, sd, p + "ln_2", d)
            _linear(g, sd, p + "mlp.c_fc", 4 * d, d)
            _linear(g, sd, p + "mlp.c_proj", d, 4 * d)
    return sd


def _oc_reference(sd, imgs, prompts, tok, preprocess):
    pixels = torch.stack([preprocess(im, OC["image"]) for im in imgs])
    ids = tok(prompts, padding="max_length", truncation=True, max_length=77, return_tensors="pt")["input_ids"]
    i = open_clip_image(sd, pixels, OC["v_heads"])
    t = open_clip_text(sd, ids, OC["t_heads"])
    return torch.nn.functional.cosine_similarity(i, t, dim=-1)


def test_hps_open_clip_checkpoint_loads_strictly_and_matches_open_clip_forward(tmp_path):
    from comfygen.tools.scoring.hps import HPSv21Scorer

    tok = tiny_clip_tokenizer()
    sd = official_open_clip_state_dict(len(tok))
    ckpt = tmp_path / "HPS_v2.1_compressed.pt"
    torch.save({"state_dict": {"module." + k if k.startswith("visual") else k: v for k, v in sd.items()}}, ckpt)
    tok_dir = write_clip_tokenizer_files(tmp_path / "tok", *tiny_clip_vocab())
    s = HPSv21Scorer(checkpoint=ckpt, tokenizer=str(tok_dir), device="cpu")
    imgs, prompts = images(4), PROMPTS[:4]
    ours = s.score(imgs, prompts)
    ref = _oc_reference(sd, imgs, prompts, tok, resize_long_side_pad)
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-5)
    assert s.model.config.vision_config.num_attention_heads == 2
    assert torch.equal(ours, HPSv21Scorer(checkpoint=ckpt, tokenizer=str(tok_dir), device="cpu").score(imgs, prompts))
    assert torch.equal(s.model.visual_projection.weight, sd["visual.proj"].t())


def test_open_clip_conversion_refuses_unknown_keys():
    from comfygen.tools.scoring.clip_common import open_clip_to_hf

    sd = official_open_clip_state_dict(600)
    sd["visual.attn_pool.query"] = torch.zeros(2)
    with pytest.raises(KeyError, match="attn_pool"):
        open_clip_to_hf(sd)


def test_clipscore_open_clip_directory(tmp_path):
    from comfygen.tools.scoring.clipscore import ClipScoreScorer

    tok = tiny_clip_tokenizer()
    sd = official_open_clip_state_dict(len(tok), seed=3)
    d = tmp_path / "oc_model"
    d.mkdir()
    torch.save(sd, d / "open_clip_pytorch_model.bin")
    (d / "open_clip_config.json").write_text(json.dumps({"model_cfg": {
        "embed_dim": 16, "vision_cfg": {"width": 128, "layers": 2, "patch_size": 8, "image_size": 32, "head_width": 64},
        "text_cfg": {"width": 128, "layers": 2, "heads": 2, "context_length": 77, "vocab_size": len(tok)}}}))
    write_clip_tokenizer_files(d, *tiny_clip_vocab())
    s = ClipScoreScorer(model=str(d), device="cpu")
    imgs = images(3)
    prompts = PROMPTS[:2] + ["word " * 300]  # a long prompt is truncated, not an error
    ours = s.score(imgs, prompts)
    ref = _oc_reference(sd, imgs, prompts, tok, resize_center_crop)
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-5)


# ------------------------------------------------------------------ PickScore (HF layout) and the aesthetic head

def _save_tiny_hf_clip(directory, projection_dim=16, seed=5):
    from comfygen.tools.scoring.base import init_random_
    from comfygen.tools.scoring.clip_common import tiny_clip_config

    from transformers import CLIPModel

    tok = tiny_clip_tokenizer()
    cfg = tiny_clip_config(len(tok), bos=tok.bos_token_id, eos=tok.eos_token_id, pad=tok.pad_token_id,
                           projection_dim=projection_dim)
    model = init_random_(CLIPModel(cfg), seed=seed).eval()
    model.save_pretrained(directory)
    write_clip_tokenizer_files(directory, *tiny_clip_vocab())
    return model, tok


def test_pickscore_hf_directory(tmp_path):
    from comfygen.tools.scoring.clip_common import cosine_pairs, image_embeds, text_embeds
    from comfygen.tools.scoring.pickscore import PickScoreScorer

    model, tok = _save_tiny_hf_clip(tmp_path / "pick")
    s = PickScoreScorer(model=str(tmp_path / "pick"), processor=str(tmp_path / "pick"), device="cpu")
    imgs, prompts = images(3), PROMPTS[:3]
    ours = s.score(imgs, prompts)
    pixels = torch.stack([resize_center_crop(im, 32) for im in imgs])
    enc = tok(prompts, padding="max_length", truncation=True, max_length=77, return_tensors="pt")
    with torch.no_grad():
        ref = model.logit_scale.exp() * cosine_pairs(image_embeds(model, pixels),
                                                     text_embeds(model, enc["input_ids"], enc["attention_mask"]))
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_pickscore_directory_missing_weights_is_an_error(tmp_path):
    from comfygen.tools.scoring.pickscore import PickScoreScorer

    _save_tiny_hf_clip(tmp_path / "pick")
    (tmp_path / "pick" / "model.safetensors").unlink()
    with pytest.raises(ScoringError):
        PickScoreScorer(model=str(tmp_path / "pick"), processor=str(tmp_path / "pick"), device="cpu").load()


def test_aesthetic_pth_head_over_clip_l14_embeddings(tmp_path):
    from comfygen.tools.scoring.aesthetic import AestheticScorer
    from comfygen.tools.scoring.clip_common import image_embeds
    from comfygen.tools.scoring.clip_files import clear_shared

    model, _ = _save_tiny_hf_clip(tmp_path / "clip", projection_dim=768)
    g = torch.Generator().manual_seed(7)
    head: dict[str, torch.Tensor] = {}
    for k, (o, i) in zip((0, 2, 4, 6, 7), ((1024, 768), (128, 1024), (64, 128), (16, 64), (1, 16)), strict=True):
        _linear(g, head, f"layers.{k}", o, i)
    torch.save(head, tmp_path / "sac+logos+ava1-l14-linearMSE.pth")
    clear_shared()
    s = AestheticScorer(clip=str(tmp_path / "clip"), head=tmp_path / "sac+logos+ava1-l14-linearMSE.pth", device="cpu")
    imgs = images(3)
    ours = s.score(imgs, ["ignored"] * 3)
    pixels = torch.stack([resize_center_crop(im, 32) for im in imgs])
    with torch.no_grad():
        z = torch.nn.functional.normalize(image_embeds(model, pixels), dim=-1)
        for k in (0, 2, 4, 6, 7):
            z = torch.nn.functional.linear(z, head[f"layers.{k}.weight"], head[f"layers.{k}.bias"])
    torch.testing.assert_close(ours, z.squeeze(-1), atol=1e-5, rtol=1e-5)
    clear_shared()


def test_aesthetic_head_with_wrong_keys(tmp_path):
    from comfygen.tools.scoring.aesthetic import AestheticScorer

    torch.save({"fc.weight": torch.zeros(1, 768)}, tmp_path / "head.pth")
    _save_tiny_hf_clip(tmp_path / "clip", projection_dim=768)
    with pytest.raises(ScoringError, match="does not match"):
        AestheticScorer(clip=str(tmp_path / "clip"), head=tmp_path / "head.pth", device="cpu").load()
