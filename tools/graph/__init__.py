"""Pure rewrites of ComfyUI API graphs: acceleration, batching and noise hooks, and the safety guard."""

from .accel import ACCEL_MODES, AccelPlan, accelerate, plan_acceleration
from .batch import find_latent_source, find_samplers, set_batch
from .guard import guard

__all__ = ["ACCEL_MODES", "AccelPlan", "accelerate", "plan_acceleration", "find_latent_source", "find_samplers",
           "set_batch", "guard"]
