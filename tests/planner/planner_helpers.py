"""Synthetic triplets where the best flow depends on words in the prompt."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

ANIMALS = ["cat", "dog", "horse", "bird"]
THINGS = ["car", "chair", "lamp", "bottle"]


def synthetic_rows(n_per_word: int = 4, seed: int = 0) -> list[dict]:
    """Flow 'photo' is best on average; 'creature' wins clearly on animal prompts; 'weak' is always worst."""
    rng = np.random.default_rng(seed)
    rows = []
    i = 0
    for rep in range(n_per_word):
        for word in ANIMALS + THINGS:
            text = f"a {['small', 'large', 'red', 'old'][rep % 4]} {word} in the picture"
            animal = word in ANIMALS
            for flow, base in (("photo", 3.8), ("creature", 2.6 + (2.0 if animal else 0.0)), ("weak", 2.0)):
                rows.append({"prompt_id": f"p{i:03d}", "prompt": text, "flow": flow,
                             "score": round(base + rng.normal(0, 0.05), 4), "extra": "ignored"})
            i += 1
    return rows


def write_csv(rows: list[dict], path: Path) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


