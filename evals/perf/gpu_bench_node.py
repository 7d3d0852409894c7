"""A ComfyUI node for the GPU benchmark: random conditioning of a model family's shape (no text encoder).

``gpu_stage`` copies this file into the staged ComfyUI's ``custom_nodes/``. ComfyUI caches its output
like a text encoder's for a repeated prompt, so a warm run times the sampler and the VAE, as it would
with real text encoders and a fixed prompt.
"""

import torch

SHAPES = {"sdxl": (77, 2048, 1280), "flux": (256, 4096, 768)}  # tokens, width, pooled width


class ComfygenRandomConditioning:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"family": (list(SHAPES),), "seed": ("INT", {"default": 0, "min": 0, "max": 2**31})}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "make"
    CATEGORY = "comfygen/bench"

    def make(self, family, seed):
        tokens, width, pooled = SHAPES[family]
        g = torch.Generator().manual_seed(seed)
        cond = torch.randn(1, tokens, width, generator=g)
        extra = {"pooled_output": torch.randn(1, pooled, generator=g)}
        if family == "flux":
            extra["guidance"] = 3.5
        return ([[cond, extra]],)


NODE_CLASS_MAPPINGS = {"ComfygenRandomConditioning": ComfygenRandomConditioning}
