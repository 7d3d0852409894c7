"""Parity with the ORIGINAL scorer libraries, without them: golden scores in tests/data/scorer_golden.

``scripts/scorer_golden/build.py`` (run in its own environment with hpsv2 1.2.0, image-reward 1.5, OpenAI clip
1.0.1, open-clip-torch 3.3.0, torch 2.14.1) built tiny random-weight models in the originals' own classes,
saved them in the originals' file formats and scored the images and prompts there with the originals' code.
Here the same files load through comfygen's loaders and must give the same scores to 1e-5, for every image
mode (RGBA, palette, 8/16-bit gray, EXIF-rotated JPEG) and every prompt (HTML entities, curly quotes,
ligatures, full-width letters, mojibake, a prompt over 77 tokens).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from comfygen.tools.scoring.aesthetic import AestheticScorer
from comfygen.tools.scoring.clip_files import clear_shared
from comfygen.tools.scoring.clip_common import tokenize as clip_tokenize
from comfygen.tools.scoring.clipscore import ClipScoreScorer
from comfygen.tools.scoring.hps import HPSv20Scorer, HPSv21Scorer
from comfygen.tools.scoring.imagereward import MAX_TEXT_LEN, ImageRewardScorer
from comfygen.tools.scoring.pickscore import PickScoreScorer
from comfygen.tools.scoring.tokenizers import load_clip_tokenizer
from golden_helpers import CPU, GOLD, TOL, E, S, grid, unpack_clip_tokenizer
from PIL import Image

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clip_tok(tmp_path_factory) -> Path:
    return unpack_clip_tokenizer(tmp_path_factory.mktemp("clip_tok"))


@pytest.fixture(scope="module")
def pick_processor(tmp_path_factory) -> Path:
    d = unpack_clip_tokenizer(tmp_path_factory.mktemp("pick_processor"))
    for f in (GOLD / S["pickscore"]["processor"]).iterdir():
        shutil.copy(f, d / f.name)
    return d


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    out = []
    for f in E["images"]:
        with Image.open(GOLD / "images" / f) as im:
            im.load()
            out.append(im.copy())
    assert [im.mode for im in out] == [E["image_modes"][f] for f in E["images"]]
    return out


def assert_parity(got: np.ndarray, name: str) -> float:
    want = np.array(S[name]["scores"])
    diff = np.abs(got - want)
    worst = np.unravel_index(diff.argmax(), diff.shape)
    assert diff.max() <= TOL, f"{name}: max |diff| {diff.max():.3g} at {worst} (tolerance {TOL})"
    return float(diff.max())


def imagereward_configs() -> tuple[dict, dict]:
    v = S["imagereward"]["vision"]
    med = json.loads((GOLD / S["imagereward"]["med_config"]).read_text())
    vision = dict(hidden_size=v["width"], intermediate_size=4 * v["width"], num_hidden_layers=v["depth"],
                  num_attention_heads=v["heads"], image_size=v["image_size"], patch_size=v["patch_size"],
                  layer_norm_eps=1e-6)
    text = dict(vocab_size=med["vocab_size"], hidden_size=med["hidden_size"],
                num_hidden_layers=med["num_hidden_layers"], num_attention_heads=med["num_attention_heads"],
                intermediate_size=med["intermediate_size"],
                max_position_embeddings=med["max_position_embeddings"], encoder_hidden_size=v["width"],
                layer_norm_eps=med["layer_norm_eps"])
    return vision, text


# ------------------------------------------------------------------ scores


@pytest.mark.parametrize("name,cls,file", [("hpsv21", HPSv21Scorer, "HPS_v2.1_tiny.pt"),
                                           ("hpsv20", HPSv20Scorer, "HPS_v2_tiny.pt")])
def test_hps_matches_hpsv2(name, cls, file, clip_tok, images):
    sc = cls(checkpoint=GOLD / "hps" / file, tokenizer=str(clip_tok), **CPU)
    assert_parity(grid(sc, images), name)


def test_imagereward_matches_image_reward(images):
    vision, text = imagereward_configs()
    sc = ImageRewardScorer(checkpoint=GOLD / S["imagereward"]["checkpoint"], vision_config=vision, text_config=text,
                           **CPU)
    assert_parity(grid(sc, images), "imagereward")


def test_clipscore_matches_openai_clip_from_the_torchscript_archive(clip_tok, images):
    clear_shared()
    sc = ClipScoreScorer(model=str(GOLD / S["clipscore"]["checkpoint"]), tokenizer=str(clip_tok), **CPU)
    assert_parity(grid(sc, images), "clipscore")
    assert sc.model.config.text_config.hidden_act == "quick_gelu"  # OpenAI's marks in the archive


def test_aesthetic_matches_reference_on_openai_clip(images):
    clear_shared()
    sc = AestheticScorer(clip=str(GOLD / S["aesthetic"]["clip"]), head=GOLD / S["aesthetic"]["checkpoint"], **CPU)
    got = np.array(sc.score(images, "").tolist())[None]
    want = np.array(S["aesthetic"]["scores"])[None]
    assert np.abs(got - want).max() <= TOL, np.abs(got - want).max()


def test_pickscore_matches_its_recipe(pick_processor, images):
    sc = PickScoreScorer(model=str(GOLD / S["pickscore"]["model"]), processor=str(pick_processor), **CPU)
    assert_parity(grid(sc, images), "pickscore")


# ------------------------------------------------------------------ token ids (text cleaning) against the originals


def content(ids: list[int]) -> list[int]:
    return ids[:ids.index(49407) + 1]


@pytest.mark.parametrize("original", ["hpsv2", "openai_clip", "open_clip"])
def test_cleaned_clip_tokens_equal_the_originals(original, clip_tok):
    tok = load_clip_tokenizer(str(clip_tok))
    ids, _ = clip_tokenize(tok, E["prompts"], 77, torch.device("cpu"), clean=True)
    for i, p in enumerate(E["prompts"]):
        assert content(ids[i].tolist()) == E["tokens"][original][i], p


def test_cleaning_is_what_changes_the_tricky_prompts(clip_tok):
    """Without ftfy/HTML cleaning, the transformers tokenizer disagrees with the originals on exactly the
    strings the cleaning rewrites; PickScore's original (transformers' processor) is that uncleaned path."""
    tok = load_clip_tokenizer(str(clip_tok))
    raw, _ = clip_tokenize(tok, E["prompts"], 77, torch.device("cpu"), clean=False)
    differ = [p for i, p in enumerate(E["prompts"]) if content(raw[i].tolist()) != E["tokens"]["hpsv2"][i]]
    assert any("&amp;" in p for p in differ) and any("\ufb01" in p for p in differ) and len(differ) >= 4
    for i in range(len(E["prompts"])):
        assert content(raw[i].tolist()) == S["pickscore"]["tokens"][i]


def test_imagereward_tokens_equal_the_original():
    sc = ImageRewardScorer(tiny=True, device="cpu")
    sc.load()
    for p, want in zip(E["prompts"], E["tokens"]["imagereward_bert"], strict=True):
        got = sc.tokenizer(p, padding="max_length", truncation=True, max_length=MAX_TEXT_LEN).input_ids
        assert got == want, p


def test_clean_clip_text_is_open_clips_cleaning():
    from comfygen.tools.scoring.text import clean_clip_text

    assert clean_clip_text("Tom &amp;amp; Jerry") == "Tom & Jerry"  # unescaped twice, as open_clip does
    assert clean_clip_text("\ufb01ne  \t\n\u201cquotes\u201d ") == 'fine "quotes"'
    assert clean_clip_text("\uff26\uff35\uff2c\uff2c \u00c3\u00a9l\u00c3\u00a8ve") == "FULL \u00e9l\u00e8ve"
