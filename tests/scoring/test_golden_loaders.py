"""Loader rules checked on the golden fixtures: the activation of a bare CLIP state dict, TorchScript archives,
tokenizers whose special tokens do not fit the model, and the per-scorer image-mode rules."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from comfygen.tools.errors import ScoringError
from comfygen.tools.scoring.base import load_state_dict_file
from comfygen.tools.scoring.clip_files import OPENAI_MARKS, clear_shared
from comfygen.tools.scoring.clipscore import ClipScoreScorer
from comfygen.tools.scoring.preprocess import resize_center_crop, resize_long_side_pad
from comfygen.tools.scoring.registry import build_scorer
from comfygen.tools.scoring.stored_runs import load_images
from golden_helpers import CPU, GOLD, TOL, E, S, grid, unpack_clip_tokenizer
from PIL import Image

ARCHIVE = GOLD / S["clipscore"]["checkpoint"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clip_tok(tmp_path_factory):
    return unpack_clip_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def few_images():
    return [Image.open(GOLD / "images" / f).copy() for f in E["images"][:3]]


@pytest.fixture(autouse=True)
def fresh_models():
    clear_shared()
    yield
    clear_shared()


def _bare_state_dict(tmp_path, keep_marks: bool):
    sd = load_state_dict_file(ARCHIVE)
    assert all(k in sd for k in OPENAI_MARKS)  # the archive carries OpenAI's marks
    if not keep_marks:
        sd = {k: v for k, v in sd.items() if k not in OPENAI_MARKS}
    path = tmp_path / ("openai_layout.pt" if keep_marks else "ambiguous.pt")
    torch.save(sd, path)
    return path


def test_bare_state_dict_without_evidence_is_refused_naming_the_setting(tmp_path, clip_tok):
    sc = ClipScoreScorer(model=str(_bare_state_dict(tmp_path, keep_marks=False)), tokenizer=str(clip_tok), **CPU)
    with pytest.raises(ScoringError) as e:
        sc.load()
    assert "COMFYGEN_CLIPSCORE_ACTIVATION" in str(e.value.hint) and "QuickGELU" in str(e.value)


def test_the_activation_setting_decides_and_matters(tmp_path, clip_tok, few_images, monkeypatch):
    path = _bare_state_dict(tmp_path, keep_marks=False)
    want = np.array(S["clipscore"]["scores"])[:, :3]
    monkeypatch.setenv("COMFYGEN_CLIPSCORE_MODEL", str(path))
    monkeypatch.setenv("COMFYGEN_CLIPSCORE_TOKENIZER", str(clip_tok))
    monkeypatch.setenv("COMFYGEN_CLIPSCORE_ACTIVATION", "quick_gelu")
    right = build_scorer("clipscore", device="cpu")
    assert np.abs(grid(right, few_images) - want).max() <= TOL
    clear_shared()
    wrong = ClipScoreScorer(model=str(path), tokenizer=str(clip_tok), activation="gelu", **CPU)
    assert np.abs(grid(wrong, few_images) - want).max() > 1e-3  # GELU on OpenAI weights moves every score


def test_openai_marks_in_a_state_dict_mean_quick_gelu(tmp_path, clip_tok, few_images):
    sc = ClipScoreScorer(model=str(_bare_state_dict(tmp_path, keep_marks=True)), tokenizer=str(clip_tok), **CPU)
    assert np.abs(grid(sc, few_images) - np.array(S["clipscore"]["scores"])[:, :3]).max() <= TOL


def test_open_clip_directory_reads_quick_gelu_from_its_config(tmp_path, clip_tok, few_images):
    sd = {k: v for k, v in load_state_dict_file(ARCHIVE).items() if k not in OPENAI_MARKS}
    torch.save(sd, tmp_path / "open_clip_pytorch_model.bin")
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": {"quick_gelu": True}}))
    sc = ClipScoreScorer(model=str(tmp_path), tokenizer=str(clip_tok), **CPU)
    assert np.abs(grid(sc, few_images) - np.array(S["clipscore"]["scores"])[:, :3]).max() <= TOL


def test_a_torchscript_archive_that_is_not_clip_is_refused_readably(tmp_path, clip_tok):
    path = tmp_path / "not_clip.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(ScoringError) as e:
        ClipScoreScorer(model=str(path), tokenizer=str(clip_tok), activation="quick_gelu", **CPU).load()
    assert "not_clip.pt" in str(e.value)


def test_an_unreadable_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ScoringError) as e:
        load_state_dict_file(path)
    assert "broken.pt" in str(e.value)


def test_misnamed_special_tokens_are_refused_before_scoring(tmp_path, clip_tok):
    """open_clip's names (<start_of_text>) in vocab.json: transformers appends <|startoftext|> as id 49408, past
    the embedding; the size check alone passes (49410 >= 49408) and scoring would die with an IndexError."""
    bad = tmp_path / "bad_tok"
    bad.mkdir()
    vocab = json.loads((clip_tok / "vocab.json").read_text())
    vocab["<start_of_text>"] = vocab.pop("<|startoftext|>")
    vocab["<end_of_text>"] = vocab.pop("<|endoftext|>")
    (bad / "vocab.json").write_text(json.dumps(vocab))
    (bad / "merges.txt").write_text((clip_tok / "merges.txt").read_text())
    with pytest.raises(ScoringError) as e:
        ClipScoreScorer(model=str(ARCHIVE), tokenizer=str(bad), **CPU).load()
    assert "bos token" in str(e.value) and "COMFYGEN_CLIPSCORE_TOKENIZER" in str(e.value.hint)


def test_hps_pads_an_image_whose_long_side_is_already_the_size():
    im = Image.new("RGB", (224, 160), (200, 30, 30))
    x = resize_long_side_pad(im, 224)
    assert x.shape == (3, 224, 224)
    assert torch.allclose(x[:, :32], resize_long_side_pad(Image.new("RGB", (224, 224)), 224)[:, :32])


def test_mode_rules_differ_per_original_on_rgba():
    """OpenAI clip/BLIP resize RGBA (premultiplied) then drop alpha; hpsv2's rule here drops alpha first."""
    im = Image.new("RGBA", (40, 40), (255, 0, 0, 0))
    im.paste((0, 0, 255, 255), (10, 10, 30, 30))
    clip_px = resize_center_crop(im, 32)
    hps_px = resize_long_side_pad(im, 32)
    assert not torch.allclose(clip_px, hps_px)
    # the transparent red is black after PIL's premultiplied resize, red when alpha is dropped first
    assert clip_px[0, 0, 0] < hps_px[0, 0, 0]


def test_load_images_keeps_the_mode_and_ignores_exif(tmp_path):
    files = [GOLD / "images" / f for f in ("rgba_cat_120x90.png", "gray16_72x72.png", "exif_rotate90_80x40.jpg")]
    got = load_images(files)
    assert [im.mode for im in got] == ["RGBA", "I;16", "RGB"]
    assert got[2].size == (80, 40)  # stored size: the originals do not apply EXIF orientation


def test_bert_tokenizer_without_blips_tokens_is_refused():
    from comfygen.tools.scoring.tokenizers import check_bert_tokenizer, imagereward_tokenizer, minilm_vocab_dir
    from transformers import BertTokenizer

    check_bert_tokenizer(imagereward_tokenizer(), 30524, "ImageReward", "COMFYGEN_IMAGEREWARD_VOCAB")
    plain = BertTokenizer.from_pretrained(str(minilm_vocab_dir()))  # 30522 entries, no [DEC]/[ENC]
    with pytest.raises(ScoringError) as e:
        check_bert_tokenizer(plain, 30524, "ImageReward", "COMFYGEN_IMAGEREWARD_VOCAB")
    assert "[DEC]" in str(e.value) and "COMFYGEN_IMAGEREWARD_VOCAB" in str(e.value.hint)
