"""Where weights come from: explicit paths, COMFYGEN_WEIGHTS_DIR, the HF cache; clear errors when missing."""

from __future__ import annotations

import pytest
import torch

from comfygen.tools.errors import WeightsMissing
from comfygen.tools.scoring.base import resolve_file, resolve_pretrained
from comfygen.tools.scoring.registry import build_scorer, scorer_statuses
from comfygen.tools.scoring.tokenizers import check_tokenizer, imagereward_tokenizer, load_clip_tokenizer
from comfygen.tools.settings import Settings


@pytest.fixture
def offline_empty_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"), raising=False)
    return tmp_path


@pytest.mark.parametrize("name,file,repo,setting", [
    ("imagereward", "ImageReward.pt", "THUDM/ImageReward", "COMFYGEN_IMAGEREWARD_PATH"),
    ("hpsv21", "HPS_v2.1_compressed.pt", "xswu/HPSv2", "COMFYGEN_HPS_PATH"),
    ("hpsv20", "HPS_v2_compressed.pt", "xswu/HPSv2", "COMFYGEN_HPSV20_PATH"),
    ("aesthetic", "aesthetic-model.pth", "trl-lib/ddpo-aesthetic-predictor", "COMFYGEN_AESTHETIC_PATH"),
])
def test_missing_weight_file_names_file_repo_and_setting(offline_empty_cache, name, file, repo, setting):
    s = build_scorer(name, Settings(home=offline_empty_cache))  # building is free: nothing loads yet
    with pytest.raises(WeightsMissing) as e:
        s.load()
    msg = str(e.value)
    assert file in msg and repo in msg and setting in msg and "HF_HUB_OFFLINE" in msg
    assert e.value.details["setting"] == setting


@pytest.mark.parametrize("name,setting", [("pickscore", "COMFYGEN_PICKSCORE_MODEL"),
                                          ("clipscore", "COMFYGEN_CLIPSCORE_MODEL")])
def test_missing_hf_model_names_repo_and_setting(offline_empty_cache, name, setting):
    with pytest.raises(WeightsMissing) as e:
        build_scorer(name, Settings(home=offline_empty_cache)).load()
    assert setting in str(e.value) and "huggingface-cli download" in str(e.value)


def test_resolve_file_prefers_explicit_path_then_weights_dir(tmp_path):
    (tmp_path / "a").mkdir()
    explicit = tmp_path / "a" / "ImageReward.pt"
    explicit.write_bytes(b"x")
    assert resolve_file(filename="ImageReward.pt", repo_id="r/r", setting="S", local=explicit, what="w") == explicit
    assert resolve_file(filename="ImageReward.pt", repo_id="r/r", setting="S", local=tmp_path / "a", what="w") == explicit
    wd = tmp_path / "weights" / "HPSv2"
    wd.mkdir(parents=True)
    (wd / "HPS_v2.1_compressed.pt").write_bytes(b"y")
    got = resolve_file(filename="HPS_v2.1_compressed.pt", repo_id="xswu/HPSv2", setting="S",
                       weights_dir=tmp_path / "weights", what="w")
    assert got == wd / "HPS_v2.1_compressed.pt"
    (tmp_path / "weights" / "PickScore_v1").mkdir()
    assert resolve_pretrained("yuvalkirstain/PickScore_v1", weights_dir=tmp_path / "weights", setting="S") == \
        str(tmp_path / "weights" / "PickScore_v1")
    assert resolve_pretrained("yuvalkirstain/PickScore_v1", weights_dir=None, setting="S") == "yuvalkirstain/PickScore_v1"


def test_offline_tokenizer_trap_is_caught(offline_empty_cache):
    # transformers 5 returns a near-empty tokenizer instead of raising when the vocabulary is not found
    with pytest.raises(WeightsMissing, match="tokenizer has only"):
        load_clip_tokenizer("openai/clip-vit-large-patch14")


def test_bundled_bert_vocab_for_imagereward():
    tok = imagereward_tokenizer()
    assert len(tok) == 30524  # bert-base-uncased 30522 + [DEC] + [ENC], as ImageReward's med_config
    assert tok("a photo of a cat")["input_ids"] == [101, 1037, 6302, 1997, 1037, 4937, 102]
    assert tok.convert_tokens_to_ids("[ENC]") == 30523


def test_check_tokenizer_rejects_small_vocab():
    class Tiny:
        def __len__(self):
            return 5

    with pytest.raises(WeightsMissing):
        check_tokenizer(Tiny(), 30522, "x")


def test_scorers_check_reports_instead_of_crashing(offline_empty_cache):
    rows = {r.name: r for r in scorer_statuses(Settings(home=offline_empty_cache), check=True)}
    assert rows["imagereward"].loadable is False and "ImageReward.pt" in rows["imagereward"].error
    assert rows["vlm"].loadable is False and "COMFYGEN_VLM_URL" in rows["vlm"].error
    tiny = {r.name: r for r in scorer_statuses(Settings(home=offline_empty_cache), check=True, tiny=True,
                                                names=["hpsv21", "aesthetic"])}
    assert tiny["hpsv21"].loadable and tiny["hpsv21"].params > 0 and tiny["hpsv21"].device == "cpu"


def test_weights_dir_from_settings_is_used(tmp_path, offline_empty_cache):
    """A checkpoint dropped into COMFYGEN_WEIGHTS_DIR is found without any per-scorer setting."""
    from test_checkpoints import TEXT, VISION, official_imagereward_state_dict

    from comfygen.tools.scoring.imagereward import ImageRewardScorer

    (tmp_path / "w").mkdir()
    torch.save(official_imagereward_state_dict(), tmp_path / "w" / "ImageReward.pt")
    s = ImageRewardScorer(weights_dir=tmp_path / "w", vision_config=VISION, text_config=TEXT, device="cpu")
    assert s.load().loaded


def test_without_a_network_the_hub_is_asked_once_and_only_the_cache_is_read(monkeypatch, tmp_path):
    """No network, no HF_HUB_OFFLINE: one failed connection, then cache-only lookups (no ~25 s of retries)."""
    import socket

    import huggingface_hub

    from comfygen.tools.scoring import base

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for var in base.PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    connects, downloads = [], []

    def refuse(address, timeout=None):
        connects.append(address)
        raise OSError("Name or service not known")

    def download(repo_id, filename, **kw):
        downloads.append(kw)
        raise huggingface_hub.errors.LocalEntryNotFoundError("not in the cache")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    base.hub_reachable.cache_clear()
    try:
        for _ in range(2):
            with pytest.raises(WeightsMissing) as e:
                resolve_file(filename="ImageReward.pt", repo_id="THUDM/ImageReward", setting="S", what="ImageReward")
        assert "unreachable" in e.value.hint
        assert len(connects) == 1 and connects[0][0] == "huggingface.co"
        assert [d["local_files_only"] for d in downloads] == [True, True]
        base.hub_reachable.cache_clear()
        monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")  # behind a proxy a direct connection says nothing
        assert base.hub_reachable() and len(connects) == 1
    finally:
        base.hub_reachable.cache_clear()
