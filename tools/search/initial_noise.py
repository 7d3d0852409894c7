"""Initial noises for search, every one derived from recorded seeds.

A candidate's noise is a :class:`NoiseSpec`: a weighted sum of *draws*, where ``draw(seed, index)`` is
exactly what ComfyUI's ``comfy.sample.prepare_noise(latent, seed, noise_inds=[..., index, ...])``
gives the batch item whose ``batch_index`` is ``index``: the ``index``-th ``[1, C, H, W]`` sample of
``torch.randn`` on the CPU generator ``torch.manual_seed(seed)``.

(Without a ``batch_index`` ComfyUI draws the whole ``[B, C, H, W]`` batch in one call, which equals the
per-item draws only when ``C*H*W`` is a multiple of 16; graphs built here always carry an explicit
``batch_index``, so a candidate can be re-generated alone and get the same noise.)

Zero-order neighbours follow Ma et al. 2025 / tt-scale-flux's ``generate_neighbors``:
``r * (lam * u + sqrt(1 - lam^2) * w)`` with ``r = ||x||``, ``u = x / r`` and ``w`` the unit component of a
direction draw ``v`` orthogonal to ``u``. Unlike the original (an unseeded numpy RNG), ``v`` is a
recorded draw, and the neighbour is stored as the exact linear combination ``a * x + b * v``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import torch
from pydantic import BaseModel, ConfigDict, Field

MAX_INDEX = 63  # ComfyUI's LatentFromBatch accepts batch_index 0..63
SEED_MAX = 2**63 - 1


class NoiseTerm(BaseModel):
    """``coef * draw(seed, index)``."""

    model_config = ConfigDict(frozen=True)
    seed: int = Field(ge=0, le=2**64 - 1, description="ComfyUI noise seed (torch.manual_seed).")
    index: int = Field(0, ge=0, le=MAX_INDEX, description="Batch index: which [1,C,H,W] draw of that seed.")
    coef: float = Field(1.0, description="Weight of this draw in the candidate's noise.")


class NoiseSpec(BaseModel):
    """A candidate's initial noise: ``sum(t.coef * draw(t.seed, t.index))`` over ``terms``."""

    model_config = ConfigDict(frozen=True)
    terms: tuple[NoiseTerm, ...] = Field(min_length=1)

    @classmethod
    def seeded(cls, seed: int, index: int = 0) -> "NoiseSpec":
        return cls(terms=(NoiseTerm(seed=seed, index=index, coef=1.0),))

    @property
    def is_plain(self) -> bool:
        """True when this is a single unscaled draw, i.e. what a plain seeded sampler produces."""
        return len(self.terms) == 1 and self.terms[0].coef == 1.0

    def key(self) -> str:
        """Stable identifier (used to recognise a noise already generated and scored)."""
        parts = [f"{t.seed}:{t.index}:{t.coef!r}" for t in self.terms]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def label(self) -> str:
        if self.is_plain:
            t = self.terms[0]
            return f"seed {t.seed}#{t.index}"
        return " + ".join(f"{t.coef:.4g}*[{t.seed}#{t.index}]" for t in self.terms)


def latent_shape(width: int, height: int, channels: int = 4) -> tuple[int, int, int]:
    """Per-item latent shape [C, H/8, W/8] of an 8x-downsampling VAE."""
    return (channels, height // 8, width // 8)


def draw(seed: int, index: int, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The noise ComfyUI gives batch item ``batch_index=index`` for ``seed`` (shape [1, *shape])."""
    generator = torch.manual_seed(seed)
    out = None
    for _ in range(index + 1):
        out = torch.randn([1, *shape], dtype=dtype, generator=generator, device="cpu")
    assert out is not None
    return out


def prepare_noise(shape: Sequence[int], seed: int, batch_index: Sequence[int] | None = None,
                  batch: int = 1) -> torch.Tensor:
    """Mirror of ``comfy.sample.prepare_noise`` for an all-zero latent ``[batch, *shape]``."""
    generator = torch.manual_seed(seed)
    if batch_index is None:
        return torch.randn([batch, *shape], generator=generator, device="cpu")
    wanted = sorted(set(batch_index))
    noises: dict[int, torch.Tensor] = {}
    for i in range(wanted[-1] + 1):
        n = torch.randn([1, *shape], generator=generator, device="cpu")
        if i in wanted:
            noises[i] = n
    return torch.cat([noises[i] for i in batch_index], dim=0)


def realise(spec: NoiseSpec, shape: Sequence[int]) -> torch.Tensor:
    """The noise tensor [1, *shape] (float32) a spec stands for (sum computed in float64)."""
    acc = torch.zeros([1, *shape], dtype=torch.float64)
    cache: dict[int, torch.Tensor] = {}
    for t in spec.terms:
        # draws of one seed share a generator: compute up to the largest index once
        if t.seed not in cache:
            top = max(x.index for x in spec.terms if x.seed == t.seed)
            cache[t.seed] = prepare_noise(shape, t.seed, list(range(top + 1))).double()
        acc += t.coef * cache[t.seed][t.index: t.index + 1]
    return acc.float()


def neighbour(pivot: NoiseSpec, direction: NoiseTerm, lam: float, shape: Sequence[int]) -> NoiseSpec:
    """The neighbour of ``pivot`` at cosine similarity ``lam`` with the pivot's norm, along ``direction``.

    ``w`` is the unit component of ``v = draw(direction)`` orthogonal to the pivot; the result is stored
    as ``a * pivot + b * v`` with scalars computed here exactly (float64 over the float32 draws).
    """
    if not -1.0 <= lam <= 1.0:
        raise ValueError(f"lambda {lam} must be a cosine similarity in [-1, 1]")
    x = realise(pivot, shape).double().flatten()
    v = draw(direction.seed, direction.index, shape).double().flatten()
    r = float(x.norm())
    if r == 0.0:
        raise ValueError("pivot noise is all zeros")
    vx = float(v @ x)
    v_perp = v - (vx / (r * r)) * x
    n_perp = float(v_perp.norm())
    if n_perp < 1e-9 * max(1.0, float(v.norm())):
        raise ValueError("direction draw is parallel to the pivot; use another direction seed")
    b = r * math.sqrt(max(0.0, 1.0 - lam * lam)) / n_perp
    a = lam - b * vx / (r * r)
    terms = [NoiseTerm(seed=t.seed, index=t.index, coef=t.coef * a) for t in pivot.terms]
    if b != 0.0:
        terms.append(NoiseTerm(seed=direction.seed, index=direction.index, coef=b))
    return NoiseSpec(terms=tuple(_merge(terms)))


def _merge(terms: list[NoiseTerm]) -> list[NoiseTerm]:
    merged: dict[tuple[int, int], float] = {}
    for t in terms:
        merged[(t.seed, t.index)] = merged.get((t.seed, t.index), 0.0) + t.coef
    return [NoiseTerm(seed=s, index=i, coef=c) for (s, i), c in merged.items() if c != 0.0]


def derive_seed(base: int, stream: str, n: int) -> int:
    """A reproducible seed for the ``n``-th draw of ``stream`` (e.g. 'random', 'pivot', 'dir-3')."""
    digest = hashlib.sha256(f"{base}:{stream}:{n}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & SEED_MAX


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a64, b64 = a.double().flatten(), b.double().flatten()
    return float(a64 @ b64 / (a64.norm() * b64.norm()))


# --- the scale a sampler applies to its initial noise --------------------------------------------

def discrete_sigma_max(linear_start: float = 0.00085, linear_end: float = 0.012, timesteps: int = 1000) -> float:
    """sigma_max of ComfyUI's ModelSamplingDiscrete ("linear" betas, as SD1.x / SD2.x / SDXL use)."""
    betas = torch.linspace(linear_start ** 0.5, linear_end ** 0.5, timesteps, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    sigmas = (((1 - alphas_cumprod) / alphas_cumprod) ** 0.5).float()
    return float(sigmas[-1])


def eps_start_scale(sigma0: float) -> float:
    """What an EPS / v-prediction sampler multiplies the noise by at full denoise: sqrt(1 + sigma0^2)
    (ComfyUI's ``noise_scaling(..., max_denoise=True)``, computed in float32 as ComfyUI does)."""
    s = torch.tensor(sigma0, dtype=torch.float32)
    return float(torch.sqrt(1.0 + s ** 2.0))
