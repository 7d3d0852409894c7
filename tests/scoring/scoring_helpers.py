"""Small shared helpers for the scoring tests (images with varied sizes and content)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def images(n: int = 5, seed: int = 0) -> list[Image.Image]:
    """Deterministic noise images of different sizes and aspect ratios (incl. portrait, landscape, tiny)."""
    rng = np.random.default_rng(seed)
    sizes = [(64, 64), (96, 48), (40, 80), (33, 57), (128, 100), (20, 20), (70, 31)]
    out = []
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        base = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        out.append(Image.fromarray(base, "RGB"))
    return out


PROMPTS = ["a photo of a cat on the red sofa", "astronaut riding a horse on the moon", "x",
           "city street at night with neon lights, highly detailed", "an oil painting of the sea at sunset",
           "anime girl", "a dog in the park"]
