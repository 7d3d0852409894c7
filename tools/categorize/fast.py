"""The classifier's serving encoder: MiniLM sentence embeddings from ONNX Runtime (no torch).

A prompt being served (one or two texts) is embedded by the configured planner's graph, whose last slot
is the plain MiniLM: the planner's scores for that prompt come out of the same forward pass and wait in
its cache. Bulk calls (category prototypes, training sets) use the plain encoder graph, which does not
spend work on the planner's members. The category texts' embeddings (the zero-shot prototypes) are
shipped in ``data/prototypes.safetensors`` with a digest of the texts they were computed from, so a
cold process skips that forward pass; a changed category text is recomputed.

    python scripts/build_prototypes.py --out tools/categorize/data   # rewrite the shipped prototypes
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

SHARED_MAX = 2  # texts per call that go through the planner's graph


class OnnxEncoder:
    """Drop-in for ``classifier.Encoder``: texts -> unit-norm 384-d embeddings."""

    def __call__(self, texts: list[str], batch_size: int = 64, bulk: bool = False) -> np.ndarray:
        from ..planner.runtime import encoder_graph, runtime_for, shared_encoder

        if not texts:
            return np.zeros((0, 384), np.float32)
        rt = runtime_for(encoder_graph()) if bulk or len(texts) > SHARED_MAX else shared_encoder()
        return rt.embeddings(list(texts))


def fast_encoder() -> OnnxEncoder | None:
    """The ONNX encoder when the planner backend is ONNX and the shipped encoder graph is present."""
    from ..planner.planner import use_onnx
    from ..planner.runtime import encoder_graph

    if not use_onnx():
        return None
    if not encoder_graph().is_file():
        logger.warning("%s is missing: the category classifier runs on torch", encoder_graph())
        return None
    return OnnxEncoder()


PROTO_FILE = "prototypes.safetensors"


def texts_digest(texts: list[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(texts).encode()).hexdigest()[:32]


def cached_prototypes(texts: list[str], data_dir: Path) -> np.ndarray | None:
    """The embeddings of the category texts stored in ``data_dir``, when computed from exactly these texts."""
    from safetensors import safe_open

    file = data_dir / PROTO_FILE
    if not file.is_file():
        return None
    with safe_open(str(file), framework="np") as f:
        if (f.metadata() or {}).get("texts_sha256") != texts_digest(texts):
            return None
        return f.get_tensor("prototypes")
