"""Inference-time noise search (Ma et al. 2025): random and zero-order search over initial noises,
batched through ComfyUI and scored in batches. Every noise derives from recorded seeds.

Candidates are ranked by a :class:`verifiers.VerifierSet`, a view of the scoring ensemble. Entry points:
:func:`flow_search.run_search` (a flow end to end: records, images, summary; the application's front door over it is
``comfygen.tools.app.noise_search.search_flow``) and the engine's :func:`engine.random_search` /
:func:`engine.zero_order_search` (any ``generate`` function)."""

from .engine import Candidate, SearchConfig, SearchProgress, SearchResult, random_search, search, zero_order_search
from .initial_noise import NoiseSpec, NoiseTerm
from .flow_search import regenerate, run_search
from .verifiers import VerifierSet

__all__ = ["Candidate", "NoiseSpec", "NoiseTerm", "SearchConfig", "SearchProgress", "SearchResult", "VerifierSet",
           "random_search", "regenerate", "run_search", "search", "zero_order_search"]
