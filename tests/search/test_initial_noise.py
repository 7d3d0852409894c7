"""Noise math: ComfyUI-identical draws, neighbours on the pivot's sphere at cosine lambda, reproducibility."""

from __future__ import annotations

import math

import pytest
import torch

from comfygen.tools.search.initial_noise import (NoiseSpec, NoiseTerm, cosine, derive_seed, discrete_sigma_max, draw,
                                         eps_start_scale, neighbour, prepare_noise, realise)

SHAPE = (4, 8, 9)  # 4*8*9 = 288 is a multiple of 16; (4, 9, 9) is not


def comfy_prepare_noise(latent: torch.Tensor, seed: int, noise_inds=None) -> torch.Tensor:
    """comfy/sample.py prepare_noise (v0.3.64), verbatim logic."""
    import numpy as np

    generator = torch.manual_seed(seed)
    if noise_inds is None:
        return torch.randn(latent.size(), dtype=latent.dtype, layout=latent.layout, generator=generator, device="cpu")
    unique_inds, inverse = np.unique(noise_inds, return_inverse=True)
    noises = []
    for i in range(unique_inds[-1] + 1):
        noise = torch.randn([1] + list(latent.size())[1:], dtype=latent.dtype, layout=latent.layout,
                            generator=generator, device="cpu")
        if i in unique_inds:
            noises.append(noise)
    noises = [noises[i] for i in inverse]
    return torch.cat(noises, axis=0)


@pytest.mark.parametrize("shape", [(4, 8, 9), (4, 9, 9)])
def test_draws_match_comfyui_batch_index_semantics(shape):
    latent = torch.zeros([3, *shape])
    ref = comfy_prepare_noise(latent, 1234, [2, 3, 4])
    ours = torch.cat([draw(1234, k, shape) for k in (2, 3, 4)])
    assert torch.equal(ref, ours)
    assert torch.equal(prepare_noise(shape, 1234, [2, 3, 4]), ref)
    assert torch.equal(prepare_noise(shape, 7, None, batch=3), comfy_prepare_noise(latent, 7))


def test_whole_batch_differs_from_per_item_draws_when_not_multiple_of_16():
    # why graphs always carry an explicit batch_index
    latent = torch.zeros([2, 4, 9, 9])
    assert not torch.equal(comfy_prepare_noise(latent, 5), comfy_prepare_noise(latent, 5, [0, 1]))


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.9, 0.95, 0.999])
def test_neighbour_keeps_norm_and_has_cosine_lambda(lam):
    pivot = NoiseSpec.seeded(11, 2)
    nb = neighbour(pivot, NoiseTerm(seed=99, index=1), lam, SHAPE)
    x, y = realise(pivot, SHAPE), realise(nb, SHAPE)
    assert math.isclose(float(y.double().norm()), float(x.double().norm()), rel_tol=1e-5)
    assert cosine(x, y) == pytest.approx(lam, abs=1e-5)
    # the orthogonal part points along the recorded direction draw
    v = draw(99, 1, SHAPE).double().flatten()
    xf, yf = x.double().flatten(), y.double().flatten()
    perp = yf - (yf @ xf) / (xf @ xf) * xf
    if lam < 1:
        assert float(perp @ v) > 0


def test_lambda_one_gives_the_pivot():
    pivot = NoiseSpec.seeded(3)
    nb = neighbour(pivot, NoiseTerm(seed=4), 1.0, SHAPE)
    assert torch.allclose(realise(nb, SHAPE), realise(pivot, SHAPE), atol=1e-6)
    assert nb.terms == pivot.terms


def test_neighbour_of_neighbour_stays_exact_and_reproducible():
    p0 = NoiseSpec.seeded(1)
    p1 = neighbour(p0, NoiseTerm(seed=2, index=3), 0.9, SHAPE)
    p2 = neighbour(p1, NoiseTerm(seed=5, index=0), 0.8, SHAPE)
    assert len(p2.terms) == 3
    assert cosine(realise(p1, SHAPE), realise(p2, SHAPE)) == pytest.approx(0.8, abs=1e-5)
    again = neighbour(neighbour(NoiseSpec.seeded(1), NoiseTerm(seed=2, index=3), 0.9, SHAPE),
                      NoiseTerm(seed=5, index=0), 0.8, SHAPE)
    assert again == p2 and again.key() == p2.key()


def test_bad_lambda_and_parallel_direction():
    with pytest.raises(ValueError):
        neighbour(NoiseSpec.seeded(1), NoiseTerm(seed=2), 1.5, SHAPE)
    with pytest.raises(ValueError, match="parallel"):
        neighbour(NoiseSpec.seeded(1), NoiseTerm(seed=1), 0.5, SHAPE)


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(0, "random", 0) == derive_seed(0, "random", 0)
    seeds = {derive_seed(0, s, n) for s in ("random", "pivot") for n in range(50)}
    assert len(seeds) == 100 and all(0 <= s < 2**63 for s in seeds)


def test_start_scale_matches_comfyui_sd_schedule():
    assert discrete_sigma_max() == pytest.approx(14.614642, rel=1e-6)  # KarrasScheduler's default sigma_max
    assert eps_start_scale(discrete_sigma_max()) == pytest.approx(math.sqrt(1 + 14.614642**2), rel=1e-6)
