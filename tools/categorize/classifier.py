"""Multi-label prompt category classifier: frozen MiniLM sentence embeddings + a logistic head.

Categories with enough real labelled prompts (see MAPPING.md) get a trained logistic unit. The others
are scored zero-shot: cosine similarity between the prompt and the category's name and
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
        return 1.0 / (1.0 + np.exp(-self.logits(self.encoder()(prompts))))

    def logits(self, emb: np.ndarray) -> np.ndarray:
        """Logits [n, C] for MiniLM embeddings: the trained units, and the zero-shot similarity elsewhere."""
        logits = emb @ self.weight.T + self.bias
        if (~self.trained).any():
            sims = emb @ self._prototypes().T
            logits = np.where(self.trained, logits, (sims - ZERO_SHOT_CENTER) / ZERO_SHOT_WIDTH)
        return logits

    def predict(self, prompt: str, threshold: float = 0.5) -> list[tuple[str, float]]:
        p = self.probs([prompt])[0]
        return sorted(((self.ids[j], float(p[j])) for j in range(len(self.ids)) if p[j] >= threshold),
                      key=lambda t: -t[1])

    def predict_many(self, prompts: list[str], threshold: float = 0.5) -> list[list[tuple[str, float]]]:
        P = self.probs(prompts)
        return [sorted(((self.ids[j], float(p[j])) for j in range(len(self.ids)) if p[j] >= threshold),
                       key=lambda t: -t[1]) for p in P]


L2_GRID = (1e-3, 3e-4, 1e-4, 3e-5, 1e-5)


def fit_head(emb: np.ndarray, y: np.ndarray, known: np.ndarray, *, l2: float | None = None, folds: int = 5,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Masked, class-balanced logistic regression per category (full batch, L-BFGS).

    Each category's loss is its mean over the cells a source labels, positives weighted up to balance the
    negatives, so 0.5 means "as likely as not" whatever the category's share of the training prompts.
    ``l2`` (on the weights, per category) is chosen by ``folds``-fold cross-validation of that balanced
    log-loss when not given: too strong a penalty squeezes every probability towards 0.5."""
    if l2 is None:
        l2 = choose_l2(emb, y, known, folds=folds, seed=seed)
    return _fit(emb, y, known, l2)


def choose_l2(emb: np.ndarray, y: np.ndarray, known: np.ndarray, *, folds: int = 5, seed: int = 0) -> float:
    fold = np.random.default_rng(seed).integers(0, folds, len(emb))
    losses = []
    for l2 in L2_GRID:
        total = 0.0
        for f in range(folds):
            tr, te = fold != f, fold == f
            w, b = _fit(emb[tr], y[tr], known[tr], l2)
            total += balanced_log_loss(emb[te] @ w.T + b, y[te], known[te])
        losses.append(total / folds)
    return L2_GRID[int(np.argmin(losses))]


def balanced_log_loss(logits: np.ndarray, y: np.ndarray, known: np.ndarray) -> float:
    """Mean over categories of (mean loss on labelled positives + mean loss on labelled negatives) / 2."""
    nll_pos = np.logaddexp(0.0, -logits)
    nll_neg = np.logaddexp(0.0, logits)
    out = []
    for j in range(y.shape[1]):
        pos, neg = (known[:, j] > 0) & (y[:, j] > 0), (known[:, j] > 0) & (y[:, j] == 0)
        if pos.any() and neg.any():
            out.append((nll_pos[pos, j].mean() + nll_neg[neg, j].mean()) / 2)
    return float(np.mean(out)) if out else 0.0


def _fit(emb: np.ndarray, y: np.ndarray, known: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray]:
    import torch

    x = torch.tensor(emb, dtype=torch.float64)
    t = torch.tensor(y, dtype=torch.float64)
    m = torch.tensor(known, dtype=torch.float64)
    pos = (t * m).sum(0)
    neg = ((1 - t) * m).sum(0)
    w_pos = (neg / pos.clamp(min=1)).clamp(0.05, 20.0)
    cells = (m * (1 + t * (w_pos - 1))).sum(0).clamp(min=1)  # balanced weight of each category's cells
    w = torch.zeros(y.shape[1], x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(y.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=500, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        el = torch.nn.functional.binary_cross_entropy_with_logits(x @ w.T + b, t, reduction="none",
                                                                  pos_weight=w_pos)
        loss = ((el * m).sum(0) / cells).sum() + l2 * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy().astype(np.float32), b.detach().numpy().astype(np.float32)
