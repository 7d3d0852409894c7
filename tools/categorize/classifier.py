"""Multi-label prompt category classifier: frozen MiniLM sentence embeddings + a logistic head.

Categories with real labelled prompts (see MAPPING.md) get a trained logistic unit. Categories no public
taxonomy covers are scored zero-shot: cosine similarity between the prompt and the category's name and
description, squashed by a fixed sigmoid; their probabilities are marked ``zero_shot`` in ``meta.json``.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ...flow_library.categories import CATEGORIES
from ..errors import PlannerError

logger = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
ZERO_SHOT_CENTER = 0.30
ZERO_SHOT_WIDTH = 0.05


def category_text(cat: Any) -> str:
    return f"{cat.name}. {cat.description}"


class Encoder:
    """Frozen MiniLM: texts -> unit-norm 384-d embeddings."""

    def __init__(self) -> None:
        from ..planner.encoder import load_base_model, load_tokenizer

        self.tok = load_tokenizer()
        self.model = load_base_model().eval()

    def __call__(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        import torch

        from ..planner.encoder import mean_pool

        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                enc = self.tok(texts[i:i + batch_size], padding=True, truncation=True, max_length=64,
                               return_tensors="pt")
                hidden = self.model(**enc).last_hidden_state
                out.append(mean_pool(hidden, enc["attention_mask"]).numpy())
        return np.concatenate(out) if out else np.zeros((0, 384), np.float32)


class CategoryClassifier:
    """``CategoryClassifier.load()`` (shipped head) -> ``.predict(prompt, threshold=0.5)`` ->
    ``[(category_id, prob)]`` sorted by probability."""

    _encoder: Encoder | None = None
    _enc_lock = threading.Lock()

    def __init__(self, ids: list[str], weight: np.ndarray, bias: np.ndarray, trained: list[bool],
                 meta: dict[str, Any]):
        self.ids = ids
        self.weight = weight  # [C, 384]
        self.bias = bias
        self.trained = np.array(trained)
        self.meta = meta
        self._proto: np.ndarray | None = None

    @classmethod
    def load(cls, path: Path | None = None) -> "CategoryClassifier":
        path = path or DATA_DIR
        meta_path, w_path = path / "meta.json", path / "head.safetensors"
        if not meta_path.is_file() or not w_path.is_file():
            raise PlannerError(f"no category classifier in {path}",
                               hint="train it: python -m comfygen.tools.categorize.train --data DATA_DIR")
        from safetensors.numpy import load_file

        meta = json.loads(meta_path.read_text())
        t = load_file(str(w_path))
        return cls(meta["ids"], t["weight"].astype(np.float32), t["bias"].astype(np.float32), meta["trained"], meta)

    def save(self, path: Path) -> None:
        from safetensors.numpy import save_file

        path.mkdir(parents=True, exist_ok=True)
        save_file({"weight": self.weight.astype(np.float32), "bias": self.bias.astype(np.float32)},
                  str(path / "head.safetensors"))
        (path / "meta.json").write_text(json.dumps({**self.meta, "ids": self.ids,
                                                     "trained": [bool(t) for t in self.trained]}, indent=1) + "\n")

    @classmethod
    def encoder(cls) -> Encoder:
        with cls._enc_lock:
            if cls._encoder is None:
                from .fast import fast_encoder

                cls._encoder = fast_encoder() or Encoder()  # type: ignore[assignment]
            return cls._encoder

    def prototype_texts(self) -> list[str]:
        by_id = {c.id: c for c in CATEGORIES}
        return [category_text(by_id[i]) if i in by_id else i for i in self.ids]

    def _prototypes(self) -> np.ndarray:
        if self._proto is None:
            from .fast import cached_prototypes

            texts = self.prototype_texts()
            cached = cached_prototypes(texts, DATA_DIR)
            self._proto = cached if cached is not None else self.encoder()(texts)
        return self._proto

    def probs(self, prompts: list[str]) -> np.ndarray:
        """Probabilities [n, C] in ``self.ids`` order."""
        emb = self.encoder()(prompts)
        logits = emb @ self.weight.T + self.bias
        if (~self.trained).any():
            sims = emb @ self._prototypes().T
            logits = np.where(self.trained, logits, (sims - ZERO_SHOT_CENTER) / ZERO_SHOT_WIDTH)
        return 1.0 / (1.0 + np.exp(-logits))

    def predict(self, prompt: str, threshold: float = 0.5) -> list[tuple[str, float]]:
        p = self.probs([prompt])[0]
        return sorted(((self.ids[j], float(p[j])) for j in range(len(self.ids)) if p[j] >= threshold),
                      key=lambda t: -t[1])

    def predict_many(self, prompts: list[str], threshold: float = 0.5) -> list[list[tuple[str, float]]]:
        P = self.probs(prompts)
        return [sorted(((self.ids[j], float(p[j])) for j in range(len(self.ids)) if p[j] >= threshold),
                       key=lambda t: -t[1]) for p in P]


def fit_head(emb: np.ndarray, y: np.ndarray, known: np.ndarray, *, l2: float = 1e-3, steps: int = 400,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Masked, class-balanced logistic regression per category (full batch, Adam)."""
    import torch

    torch.manual_seed(seed)
    x = torch.tensor(emb, dtype=torch.float32)
    t = torch.tensor(y, dtype=torch.float32)
    m = torch.tensor(known, dtype=torch.float32)
    pos = (t * m).sum(0)
    neg = ((1 - t) * m).sum(0)
    w_pos = (neg / pos.clamp(min=1)).clamp(0.1, 20.0)
    lin = torch.nn.Linear(x.shape[1], y.shape[1])
    opt = torch.optim.Adam(lin.parameters(), lr=0.05)
    for _ in range(steps):
        logits = lin(x)
        loss_el = torch.nn.functional.binary_cross_entropy_with_logits(logits, t, reduction="none",
                                                                        pos_weight=w_pos)
        loss = (loss_el * m).sum() / m.sum().clamp(min=1) + l2 * (lin.weight ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return lin.weight.detach().numpy(), lin.bias.detach().numpy()
