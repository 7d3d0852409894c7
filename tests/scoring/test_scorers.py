"""Every scorer, tiny: deterministic, batched == one at a time, varied image sizes, long prompts, bad input."""

from __future__ import annotations

import pytest
import torch
from scoring_helpers import PROMPTS, images

from comfygen.tools.errors import ScoringError
from comfygen.tools.scoring.registry import SCORER_NAMES, build_scorer, canonical_name

MODEL_SCORERS = [n for n in SCORER_NAMES if n != "vlm"]


@pytest.fixture(scope="module")
def built():
    return {n: build_scorer(n, tiny=True).load() for n in MODEL_SCORERS}


@pytest.mark.parametrize("name", MODEL_SCORERS)
def test_score_shape_dtype_and_finite(built, name):
    s = built[name]
    out = s.score(images(5), PROMPTS[:5])
    assert out.dtype == torch.float32 and out.shape == (5,)
    assert torch.isfinite(out).all()
    assert out.std() > 0, "different images must get different scores"


@pytest.mark.parametrize("name", MODEL_SCORERS)
def test_deterministic_across_builds(built, name):
    a = built[name].score(images(4), PROMPTS[:4])
    b = build_scorer(name, tiny=True).score(images(4), PROMPTS[:4])
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", MODEL_SCORERS)
def test_batched_equals_one_by_one(built, name):
    s = built[name]
    imgs, prompts = images(7), PROMPTS[:7]
    s.batch_size = 3  # uneven last batch
    batched = s.score(imgs, prompts)
    single = torch.cat([s.score([im], [p]) for im, p in zip(imgs, prompts, strict=True)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", [n for n in MODEL_SCORERS if n != "aesthetic"])
def test_prompt_matters(built, name):
    s = built[name]
    img = images(1)
    a = s.score(img * 2, ["a photo of a cat", "city street at night with neon lights"])
    assert a[0] != a[1]


def test_aesthetic_ignores_prompt(built):
    s = built["aesthetic"]
    a = s.score(images(1) * 2, ["a photo of a cat", "city street at night"])
    assert a[0] == a[1]


@pytest.mark.parametrize("name", ["hpsv21", "pickscore", "clipscore", "hpsv20"])
def test_long_prompt_is_truncated_not_failing(built, name):
    s = built[name]
    long = "a cat " * 400  # far beyond 77 tokens
    out = s.score(images(1), [long])
    assert torch.isfinite(out).all()
    # truncation keeps the first 75 tokens (+ start/end): anything after them cannot change the score
    assert s.score(images(1), [long + " and a very different ending"]) == out


def test_imagereward_truncates_to_35_tokens(built):
    s = built["imagereward"]
    base = "a photo of a cat " * 20
    assert s.score(images(1), [base]) == s.score(images(1), [base + "dog dog dog"])
    enc = s.tokenizer([base], padding="max_length", truncation=True, max_length=35)
    assert len(enc["input_ids"][0]) == 35


def test_single_prompt_string_broadcasts(built):
    s = built["clipscore"]
    torch.testing.assert_close(s.score(images(3), "a cat"), s.score(images(3), ["a cat"] * 3))


def test_mismatched_prompts_raise(built):
    with pytest.raises(ScoringError, match="3 images but 2 prompts"):
        built["hpsv21"].score(images(3), ["a", "b"])


def test_empty_input(built):
    assert built["pickscore"].score([], []).shape == (0,)


def test_grayscale_and_rgba_inputs(built):
    img = images(1)[0]
    for mode in ("L", "RGBA", "P"):
        out = built["imagereward"].score([img.convert(mode)], ["a cat"])
        assert torch.isfinite(out).all()


def test_unknown_scorer_and_aliases():
    assert canonical_name("HPS") == "hpsv21"
    assert canonical_name("hpsv2") == "hpsv20"
    with pytest.raises(ScoringError, match="unknown scorer"):
        build_scorer("nope", tiny=True)


def test_lazy_loading_and_cpu_fp32():
    s = build_scorer("pickscore", tiny=True)
    assert not s.loaded
    s.score(images(1), ["a"])
    assert s.loaded and s.device.type == "cpu" and s.dtype == torch.float32


def test_tiny_build_is_fast():
    import time

    build_scorer("clipscore", tiny=True).load()  # warm the imports
    for name in MODEL_SCORERS:
        t = time.perf_counter()
        build_scorer(name, tiny=True).load()
        assert time.perf_counter() - t < 1.0, name


def test_pickscore_uses_logit_scale(built):
    s = built["pickscore"]
    hps_like = s.score(images(2), PROMPTS[:2]) / s.model.logit_scale.exp()
    assert hps_like.abs().max() <= 1.0 + 1e-5


@pytest.mark.slow
def test_compile_flag_gives_same_scores():
    from comfygen.tools.scoring.clipscore import ClipScoreScorer

    plain = ClipScoreScorer(tiny=True, device="cpu")
    compiled = ClipScoreScorer(tiny=True, device="cpu", compile=True)
    compiled.load()
    assert type(compiled.net).__name__ == "OptimizedModule"
    torch.testing.assert_close(plain.score(images(2), PROMPTS[:2]), compiled.score(images(2), PROMPTS[:2]))


def test_smash_without_pruna_says_what_to_do():
    pytest.importorskip("torch")
    try:
        import pruna  # noqa: F401
        pytest.skip("pruna is installed here")
    except ImportError:
        pass
    with pytest.raises(ScoringError, match="pruna is not importable") as e:
        build_scorer("clipscore", tiny=True).smash()
    assert "pip install pruna" in str(e.value)
