"""Inference-time noise search (Ma et al. 2025): random and zero-order search over initial noises,
batched through ComfyUI and scored in batches. Every noise derives from recorded seeds."""
