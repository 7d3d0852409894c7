"""Inference-time noise search (Ma et al. 2025): random and zero-order search over initial noises,
batched through ComfyUI and scored in batches. Every noise derives from recorded seeds.

Entry points: :func:`run.run_search` (a flow end to end: records, images, summary) and the engine's
:func:`engine.random_search` / :func:`engine.zero_order_search` (any ``generate`` function)."""

from .engine import Candidate, SearchConfig, SearchProgress, SearchResult, random_search, search, zero_order_search
from .initial_noise import NoiseSpec, NoiseTerm
from .run import regenerate, run_search
from .verify import VerifierSet, build_verifiers

__all__ = ["Candidate", "NoiseSpec", "NoiseTerm", "SearchConfig", "SearchProgress", "SearchResult", "VerifierSet",
           "build_verifiers", "random_search", "regenerate", "run_search", "search", "zero_order_search"]
