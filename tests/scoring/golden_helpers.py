"""Shared by the golden-fixture tests: where the fixtures are, what the originals scored, how to compare."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np

GOLD = Path(__file__).resolve().parents[1] / "data" / "scorer_golden"
E = json.loads((GOLD / "expected.json").read_text())
S = E["scorers"]
TOL = 1e-5
CPU = dict(device="cpu", batch_size=8)


def unpack_clip_tokenizer(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        with gzip.open(GOLD / "clip_tokenizer" / f"{name}.gz", "rb") as src, open(directory / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return directory


def grid(scorer, images) -> np.ndarray:
    return np.array([scorer.score(images, p).tolist() for p in E["prompts"]])
