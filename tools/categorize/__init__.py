"""Prompt categories: a multi-label classifier on the bundled MiniLM.

``CategoryClassifier.load().predict(prompt, threshold=0.5) -> [(category_id, prob)]``.
"""

from .classifier import CategoryClassifier

__all__ = ["CategoryClassifier"]
