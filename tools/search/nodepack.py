"""The ``comfygen_noise`` ComfyUI node pack: one node, ``ComfyGenNoise``, that outputs a NOISE built
from recorded seeds and coefficients exactly as :func:`comfygen.tools.search.initial_noise.realise` computes it.

Needed only for zero-order search on flow-matching / EDM families (SD3, Flux, Playground v2.5): their
samplers scale the starting latent by ``1 - sigma0 = 0`` (or shift it), so a weighted sum of noises
cannot enter through the latent as it does for SD1.x/SD2.x/SDXL with core nodes; it has to be the
sampler's NOISE. ``comfygen comfyui install-nodes --path COMFYUI_DIR`` writes the pack into
``COMFYUI_DIR/custom_nodes/comfygen_noise/``; restart ComfyUI afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError
from .initial_noise import NoiseSpec

PACK = "comfygen_noise"
NODE = "ComfyGenNoise"

NODE_SOURCE = '''"""comfygen_noise: a NOISE source from recorded seeds and coefficients (installed by comfygen).

Batch item i gets sum(coef * draw(seed, index)) over noises[i], where draw(seed, index) is the
index-th [1, C, H, W] sample of torch.randn on the CPU generator torch.manual_seed(seed), exactly what
comfy.sample.prepare_noise gives the batch item with batch_index == index. Sums run in float64.
"""

import json

import torch


class _Noise:
    def __init__(self, noises, seed):
        self.noises = noises
        self.seed = seed

    def generate_noise(self, input_latent):
        latent = input_latent["samples"]
        if len(self.noises) != latent.shape[0]:
            raise ValueError("ComfyGenNoise has %d noises for a batch of %d" % (len(self.noises), latent.shape[0]))
        shape = [1] + list(latent.shape[1:])
        cache = {}
        out = []
        for terms in self.noises:
            acc = torch.zeros(shape, dtype=torch.float64)
            for seed, index, coef in terms:
                draws = cache.get(seed)
                if draws is None or len(draws) <= index:
                    gen = torch.manual_seed(int(seed))
                    draws = [torch.randn(shape, dtype=latent.dtype, layout=latent.layout, generator=gen, device="cpu")
                             for _ in range(int(index) + 1)]
                    cache[seed] = draws
                acc += float(coef) * draws[int(index)].double()
            out.append(acc.to(latent.dtype))
        return torch.cat(out, dim=0)


class ComfyGenNoise:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "noises": ("STRING", {"multiline": True, "default": "[[[0, 0, 1.0]]]",
                                  "tooltip": "JSON: per batch item, a list of [seed, index, coef] terms."}),
            "noise_seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff,
                                   "tooltip": "Seed handed to samplers that add noise while sampling."}),
        }}

    RETURN_TYPES = ("NOISE",)
    FUNCTION = "get_noise"
    CATEGORY = "sampling/custom_sampling/noise"
    DESCRIPTION = "Initial noise as weighted sums of seeded draws (comfygen noise search)."

    def get_noise(self, noises, noise_seed):
        return (_Noise(json.loads(noises), noise_seed),)


NODE_CLASS_MAPPINGS = {"ComfyGenNoise": ComfyGenNoise}
NODE_DISPLAY_NAME_MAPPINGS = {"ComfyGenNoise": "ComfyGen Noise (seeds + coefficients)"}
'''


def noises_json(specs: Sequence[NoiseSpec]) -> str:
    """The ``noises`` input of ``ComfyGenNoise`` for a batch of candidates."""
    return json.dumps([[[t.seed, t.index, t.coef] for t in s.terms] for s in specs], separators=(",", ":"))


def install_nodes(comfyui_dir: Path | str) -> Path:
    """Write the pack into ``COMFYUI_DIR/custom_nodes/comfygen_noise/__init__.py``; returns that path."""
    root = Path(comfyui_dir).expanduser()
    if not (root / "custom_nodes").is_dir():
        raise ConfigError(f"{root} does not look like a ComfyUI folder (no custom_nodes/ inside)",
                          hint="pass the folder that holds ComfyUI's main.py, e.g. --path ~/ComfyUI")
    target = root / "custom_nodes" / PACK / "__init__.py"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(NODE_SOURCE, encoding="utf-8")
    return target
