"""Reward models that score generated images, and their ensemble."""
